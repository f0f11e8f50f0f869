package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// The admin CLI: `countersign clients|users|agents ...` against a running
// server's admin API (docs/api.md "Admin API").

const adminUsage = `Admin commands (against a running server):
  countersign clients add [--id ID] [--name NAME] [--owner O] [--trust-tier T] [--mode poll|ping|push]
                          [--endpoint URL] [--scope S] [--metadata JSON]
  countersign clients list | show ID | rm ID | disable ID [--enable]
  countersign users add ID [--email E] [--attr KEY=VALUE]... [--attributes JSON] [--may-act JSON]
  countersign users list | show ID | rm ID
  countersign users enroll ID        one-time enrollment code, link and QR code for a new phone
  countersign agents revoke CLIENT [--user U]
                                     kill switch: revoke every grant and token of an agent
Common flags: --server URL (COUNTERSIGN_ISSUER, default http://127.0.0.1:8080),
  --admin-token T (COUNTERSIGN_ADMIN_TOKEN), --output table|json
`

// apiError is an error answer of the server.
type apiError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
	// Problems are the rules API's invalid_ruleset details.
	Problems []struct {
		Rule    string `json:"rule"`
		Line    int    `json:"line"`
		Column  int    `json:"column"`
		Message string `json:"message"`
	} `json:"problems"`
}

func (e *apiError) Error() string {
	if e.Description != "" {
		return fmt.Sprintf("%s (%d %s)", e.Description, e.Status, e.Code)
	}
	return fmt.Sprintf("the server answered %d %s", e.Status, e.Code)
}

// adminClient calls the admin API with the bearer token.
type adminClient struct {
	server, token string
	client        *http.Client
}

// call sends in as JSON (nil: no body) and returns the answer's body.
func (c *adminClient) call(ctx context.Context, method, path string, in any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &apiError{Status: resp.StatusCode}
		_ = json.Unmarshal(b, e)
		return nil, e
	}
	return b, nil
}

// cliFlags are the flags every admin command takes.
type cliFlags struct {
	server, token, output string
	getenv                func(string) string
}

// connect returns a client of the admin API, or nil after telling who
// (the command) on stderr that no admin token was given.
func (f *cliFlags) connect(stderr io.Writer, who string, timeout time.Duration) *adminClient {
	if f.fillToken() == "" {
		fmt.Fprintf(stderr, "%s: no admin token: pass --admin-token or set COUNTERSIGN_ADMIN_TOKEN\n", who)
		return nil
	}
	return &adminClient{server: strings.TrimRight(f.server, "/"), token: f.token, client: &http.Client{Timeout: timeout}}
}

// fillToken takes the admin token from the environment when no flag gave
// one (after parsing, so that --help never prints it) and returns it.
func (f *cliFlags) fillToken() string {
	if f.token == "" && f.getenv != nil {
		f.token = f.getenv("COUNTERSIGN_ADMIN_TOKEN")
	}
	return f.token
}

func (f *cliFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	f.registerServer(fs, getenv)
	fs.StringVar(&f.output, "output", "table", "table or json")
}

// registerServer adds --server and --admin-token only, for commands whose
// output has one form.
func (f *cliFlags) registerServer(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("COUNTERSIGN_ISSUER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	fs.StringVar(&f.server, "server", def, "server URL (COUNTERSIGN_ISSUER)")
	f.getenv = getenv
	fs.StringVar(&f.token, "admin-token", "", "admin bearer token (COUNTERSIGN_ADMIN_TOKEN)")
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool { return arg == "help" || arg == "-h" || arg == "--help" }

// verbFlags begins a `countersign <group> <verb> ...` command: without a
// verb it prints usage to stderr (exit 2), for help to stdout (exit 0), and
// done is true; otherwise it returns the verb and its flag set (named
// "<name> <verb>", errors to stderr).
func verbFlags(name string, args []string, usage string, stdout, stderr io.Writer) (verb string, fs *flag.FlagSet, code int, done bool) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return "", nil, 2, true
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, usage)
		return "", nil, 0, true
	}
	fs = flag.NewFlagSet(name+" "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	return args[0], fs, 0, false
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// adminCmd runs `countersign clients|users|agents ...` and returns the exit status.
func adminCmd(ctx context.Context, group string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	verb, fs, code, done := verbFlags(group, args, adminUsage, stdout, stderr)
	if done {
		return code
	}
	var cf cliFlags
	cf.register(fs, getenv)
	run, ok := adminVerbs(fs)[group+" "+verb]
	if !ok {
		fmt.Fprintf(stderr, "countersign: unknown command %q\n\n%s", group+" "+verb, adminUsage)
		return 2
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if cf.output != "table" && cf.output != "json" {
		fmt.Fprintf(stderr, "countersign: --output must be table or json, not %q\n", cf.output)
		return 2
	}
	c := cf.connect(stderr, "countersign", 30*time.Second)
	if c == nil {
		return 2
	}
	out := &output{w: stdout, json: cf.output == "json"}
	if err := run(ctx, c, pos, out); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "countersign %s %s: %v\n", group, verb, err)
			return 2
		}
		fmt.Fprintf(stderr, "countersign %s %s: %v\n", group, verb, err)
		return 1
	}
	return 0
}

// usageError is a mistake in the command line (exit status 2).
type usageError string

func (e usageError) Error() string { return string(e) }

func wantArgs(pos []string, n int, names string) error {
	if len(pos) != n {
		return usageError("usage: " + names)
	}
	return nil
}

type verbFunc func(ctx context.Context, c *adminClient, pos []string, out *output) error

// adminVerbs declares each verb's own flags on fs and returns the verbs.
func adminVerbs(fs *flag.FlagSet) map[string]verbFunc {
	f := &adminFlags{}
	f.register(fs)
	return map[string]verbFunc{
		"clients add":     f.clientsAdd,
		"clients list":    clientsList,
		"clients show":    getVerb("clients show CLIENT_ID", "/admin/clients/"),
		"clients rm":      deleteVerb("clients rm CLIENT_ID", "/admin/clients/", "deleted client"),
		"clients disable": f.clientsDisable,
		"users add":       f.usersAdd,
		"users list":      usersList,
		"users show":      getVerb("users show USER_ID", "/admin/users/"),
		"users rm":        deleteVerb("users rm USER_ID", "/admin/users/", "deleted user"),
		"users enroll":    usersEnroll,
		"agents revoke":   f.agentsRevoke,
	}
}

// adminFlags are the flags of the admin verbs; each verb registers its own.
type adminFlags struct {
	id, name, owner, tier, mode, endpoint, scope, meta string
	email, attrsJSON, mayAct, user                     string
	enable                                             bool
	attrs                                              listFlag
}

// register adds the flags of the verb fs is named after (unknown flags of
// other verbs are refused by fs).
func (f *adminFlags) register(fs *flag.FlagSet) {
	switch fs.Name() {
	case "clients add":
		fs.StringVar(&f.id, "id", "", "client_id (default: generated)")
		fs.StringVar(&f.name, "name", "", "client_name shown to users")
		fs.StringVar(&f.owner, "owner", "", "agent owner shown to users")
		fs.StringVar(&f.tier, "trust-tier", "", "first_party, standard or untrusted")
		fs.StringVar(&f.mode, "mode", "", "token delivery: poll, ping or push")
		fs.StringVar(&f.endpoint, "endpoint", "", "backchannel_client_notification_endpoint (ping and push)")
		fs.StringVar(&f.scope, "scope", "", "scopes the client may ask for")
		fs.StringVar(&f.meta, "metadata", "", "more client metadata as a JSON object (the fields of POST /admin/clients in docs/api.md)")
	case "clients disable":
		fs.BoolVar(&f.enable, "enable", false, "enable the client again")
	case "users add":
		fs.StringVar(&f.email, "email", "", "email address (also a login_hint)")
		fs.Var(&f.attrs, "attr", "attribute KEY=VALUE (VALUE as JSON when it parses); repeatable")
		fs.StringVar(&f.attrsJSON, "attributes", "", "attributes as a JSON object")
		fs.StringVar(&f.mayAct, "may-act", "", `may_act as a JSON array, e.g. [{"client_id":"a","max_amount":100}]`)
	case "agents revoke":
		fs.StringVar(&f.user, "user", "", "revoke for this user only")
	}
}

func (f *adminFlags) clientsAdd(ctx context.Context, c *adminClient, pos []string, out *output) error {
	if err := wantArgs(pos, 0, "clients add [flags]"); err != nil {
		return err
	}
	body, err := f.clientBody()
	if err != nil {
		return err
	}
	b, err := c.call(ctx, "POST", "/admin/clients", body)
	if err != nil {
		return err
	}
	return out.object(b, func(m map[string]any) {
		out.kv(m, "client_id", "client_name", "backchannel_token_delivery_mode", "token_endpoint_auth_method")
		if s, _ := m["client_secret"].(string); s != "" {
			fmt.Fprintf(out.w, "client_secret: %s\n\nThe secret is shown only once: store it now.\n", s)
		}
	})
}

// clientBody is the POST /admin/clients body: --metadata, overridden by
// the flags given.
func (f *adminFlags) clientBody() (map[string]any, error) {
	body := map[string]any{}
	if f.meta != "" {
		if err := json.Unmarshal([]byte(f.meta), &body); err != nil {
			return nil, usageError("--metadata is not a JSON object: " + err.Error())
		}
	}
	for k, v := range map[string]string{"client_id": f.id, "client_name": f.name, "backchannel_token_delivery_mode": f.mode,
		"backchannel_client_notification_endpoint": f.endpoint, "scope": f.scope} {
		if v != "" {
			body[k] = v
		}
	}
	if f.owner != "" || f.tier != "" {
		agent, _ := body["agent"].(map[string]any)
		if agent == nil {
			agent = map[string]any{}
		}
		if f.owner != "" {
			agent["owner"] = f.owner
		}
		if f.tier != "" {
			agent["trust_tier"] = f.tier
		}
		body["agent"] = agent
	}
	return body, nil
}

func clientsList(ctx context.Context, c *adminClient, pos []string, out *output) error {
	if err := wantArgs(pos, 0, "clients list"); err != nil {
		return err
	}
	b, err := c.call(ctx, "GET", "/admin/clients", nil)
	if err != nil {
		return err
	}
	return out.table(b, "clients", []string{"CLIENT_ID", "NAME", "MODE", "TRUST_TIER", "OWNER", "DISABLED"},
		[]string{"client_id", "client_name", "backchannel_token_delivery_mode", "agent.trust_tier", "agent.owner", "disabled"})
}

func (f *adminFlags) clientsDisable(ctx context.Context, c *adminClient, pos []string, out *output) error {
	if err := wantArgs(pos, 1, "clients disable CLIENT_ID [--enable]"); err != nil {
		return err
	}
	b, err := c.call(ctx, "PATCH", "/admin/clients/"+url.PathEscape(pos[0]), map[string]any{"disabled": !f.enable})
	if err != nil {
		return err
	}
	return out.object(b, func(map[string]any) {
		if f.enable {
			fmt.Fprintf(out.w, "enabled client %s\n", pos[0])
		} else {
			fmt.Fprintf(out.w, "disabled client %s: it now gets invalid_client\n", pos[0])
		}
	})
}

func (f *adminFlags) usersAdd(ctx context.Context, c *adminClient, pos []string, out *output) error {
	if err := wantArgs(pos, 1, "users add USER_ID [--email E] [--attr KEY=VALUE]..."); err != nil {
		return err
	}
	body, err := f.userBody(pos[0])
	if err != nil {
		return err
	}
	b, err := c.call(ctx, "POST", "/admin/users", body)
	if err != nil {
		return err
	}
	return out.object(b, func(m map[string]any) { fmt.Fprintf(out.w, "created user %s\n", m["id"]) })
}

// userBody is the POST /admin/users body for user id.
func (f *adminFlags) userBody(id string) (map[string]any, error) {
	body := map[string]any{"id": id}
	if f.email != "" {
		body["email"] = f.email
	}
	a, err := f.attributes()
	if err != nil {
		return nil, err
	}
	if len(a) > 0 {
		body["attributes"] = a
	}
	if f.mayAct != "" {
		var m []any
		if err := json.Unmarshal([]byte(f.mayAct), &m); err != nil {
			return nil, usageError("--may-act is not a JSON array: " + err.Error())
		}
		body["may_act"] = m
	}
	return body, nil
}

// attributes merges --attributes and every --attr.
func (f *adminFlags) attributes() (map[string]any, error) {
	a := map[string]any{}
	if f.attrsJSON != "" {
		if err := json.Unmarshal([]byte(f.attrsJSON), &a); err != nil {
			return nil, usageError("--attributes is not a JSON object: " + err.Error())
		}
	}
	for _, kv := range f.attrs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError("--attr wants KEY=VALUE, not " + kv)
		}
		var val any = v
		if json.Unmarshal([]byte(v), &val) != nil { // numbers, booleans, lists as JSON; the rest as text
			val = v
		}
		a[k] = val
	}
	return a, nil
}

func usersList(ctx context.Context, c *adminClient, pos []string, out *output) error {
	if err := wantArgs(pos, 0, "users list"); err != nil {
		return err
	}
	b, err := c.call(ctx, "GET", "/admin/users", nil)
	if err != nil {
		return err
	}
	return out.table(b, "users", []string{"ID", "EMAIL", "CREATED"}, []string{"id", "email", "created_at"})
}

func usersEnroll(ctx context.Context, c *adminClient, pos []string, out *output) error {
	if err := wantArgs(pos, 1, "users enroll USER_ID"); err != nil {
		return err
	}
	b, err := c.call(ctx, "POST", "/admin/users/"+url.PathEscape(pos[0])+"/enrollments", nil)
	if err != nil {
		return err
	}
	return out.object(b, func(m map[string]any) {
		link, _ := m["url"].(string)
		fmt.Fprintf(out.w, "Enrollment for %s (one use, until %s)\n  code: %s\n  link: %s\n\n", pos[0], m["expires_at"], m["code"], link)
		if err := writeQR(out.w, link); err == nil {
			fmt.Fprintln(out.w, "\nScan the code with the phone's camera, or open the link on the phone.")
		}
	})
}

func (f *adminFlags) agentsRevoke(ctx context.Context, c *adminClient, pos []string, out *output) error {
	if err := wantArgs(pos, 1, "agents revoke CLIENT_ID [--user USER_ID]"); err != nil {
		return err
	}
	body := map[string]any{}
	if f.user != "" {
		body["user_id"] = f.user
	}
	b, err := c.call(ctx, "POST", "/admin/agents/"+url.PathEscape(pos[0])+"/revoke", body)
	if err != nil {
		return err
	}
	return out.object(b, func(map[string]any) {
		who := "every user"
		if f.user != "" {
			who = "user " + f.user
		}
		fmt.Fprintf(out.w, "revoked every grant and token of %s for %s\n", pos[0], who)
	})
}

func getVerb(usage, prefix string) verbFunc {
	return func(ctx context.Context, c *adminClient, pos []string, out *output) error {
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		b, err := c.call(ctx, "GET", prefix+url.PathEscape(pos[0]), nil)
		if err != nil {
			return err
		}
		return out.object(b, func(m map[string]any) { out.kv(m) })
	}
}

func deleteVerb(usage, prefix, done string) verbFunc {
	return func(ctx context.Context, c *adminClient, pos []string, out *output) error {
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		if _, err := c.call(ctx, "DELETE", prefix+url.PathEscape(pos[0]), nil); err != nil {
			return err
		}
		if out.json {
			fmt.Fprintf(out.w, "{\"deleted\":%q}\n", pos[0])
			return nil
		}
		fmt.Fprintf(out.w, "%s %s\n", done, pos[0])
		return nil
	}
}

// output prints answers as human tables or as indented JSON.
type output struct {
	w    io.Writer
	json bool
}

func (o *output) object(b []byte, human func(map[string]any)) error {
	if o.json {
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		_, err := o.w.Write(buf.Bytes())
		return err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	human(m)
	return nil
}

// kv prints keys (all of them, sorted, when none are named) as "key: value".
func (o *output) kv(m map[string]any, keys ...string) {
	if len(keys) == 0 {
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		if v, ok := m[k]; ok {
			fmt.Fprintf(tw, "%s:\t%s\n", k, cell(v))
		}
	}
	tw.Flush()
}

// table prints the list under member as columns of the dotted fields.
func (o *output) table(b []byte, member string, head, fields []string) error {
	if o.json {
		return o.object(b, nil)
	}
	var resp map[string][]map[string]any
	if err := json.Unmarshal(b, &resp); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, row := range resp[member] {
		cells := make([]string, len(fields))
		for i, f := range fields {
			var v any = row
			for _, part := range strings.Split(f, ".") {
				m, _ := v.(map[string]any)
				v = m[part]
			}
			cells[i] = cell(v)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		if v == "" {
			return "-"
		}
		return v
	case map[string]any, []any:
		b, _ := json.Marshal(v)
		return string(b)
	}
	return fmt.Sprint(v)
}
