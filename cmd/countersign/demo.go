package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"rsc.io/qr"

	"github.com/countersign/countersign/mobile-stub/phone"
)

// `countersign demo`: a server on the embedded store, a user, an agent and
// a phone (a real one through the enrollment link, or --stub), then
// requests through the CIBA poll flow that show the four paths: context,
// policy, device, and acting within an intent mandate the phone approved.

const (
	demoUser  = "demo"
	demoAgent = "demo-agent"
)

// demoRequest is one request the demo agent makes.
type demoRequest struct {
	title, bindingMessage, details string
}

// The small payment comes first: once any request of this agent for this
// user is approved, the first_time signal (docs/rules.md) is false, and a second
// small payment is low risk.
var demoRequests = []demoRequest{
	{"A first small payment (medium risk: context checks)", "Dinner 50",
		`[{"type":"payment_initiation","action":"transfer","amount":50,"currency":"EUR","creditor":{"name":"Café Central"}}]`},
	{"A low-risk read (the rules approve it at once)", "Read calendar",
		`[{"type":"agent_action","action":"read","resource":"calendar"}]`},
	{"A payment over the user's limit (waits for the phone)", "Flight 2400",
		`[{"type":"payment_initiation","action":"transfer","amount":2400,"currency":"EUR","creditor":{"name":"ACME Air"}}]`},
}

// lockedWriter serialises the demo's output (the stub phone reports from
// its own goroutine).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func demo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stub := fs.Bool("stub", false, "use the in-process mobile stub (it approves everything) instead of a real phone")
	listen := fs.String("listen", "127.0.0.1:8080", "listen address")
	issuer := fs.String("issuer", "", "issuer URL (default http://LISTEN); a phone on the LAN needs an https URL (see the README)")
	withMCP := fs.Bool("mcp", false, "the MCP gateway instead: an agent host reads and deletes notes through it, the stub phone approves")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "countersign demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	out := &lockedWriter{w: stdout}
	if *withMCP {
		if err := runMCPDemo(ctx, *listen, out, stderr); err != nil {
			fmt.Fprintf(stderr, "countersign demo --mcp: %v\n", err)
			return 1
		}
		return 0
	}
	if err := runDemo(ctx, *stub, *listen, *issuer, time.Now, out, stderr); err != nil {
		fmt.Fprintf(stderr, "countersign demo: %v\n", err)
		return 1
	}
	return 0
}

// runDemo runs the demo on the clock now (the server's and the stub
// phone's).
func runDemo(ctx context.Context, stub bool, listen, issuer string, now func() time.Time, out io.Writer, stderr io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := startDemoServer(ctx, listen, issuer, now, out, stderr)
	if err != nil {
		return err
	}
	defer d.stop()
	client, enr, err := d.setUp(ctx, out)
	if err != nil {
		return err
	}
	if stub {
		stop, err := d.enrollStub(ctx, enr, out)
		if err != nil {
			return err
		}
		defer stop()
	} else if err := d.enrollPhone(ctx, enr, out); err != nil {
		return err
	}
	agent := &demoAgentClient{base: d.local, id: client.ID, secret: client.Secret, http: &http.Client{Timeout: 30 * time.Second}, out: out}
	for i, r := range demoRequests {
		fmt.Fprintf(out, "\n%d. %s\n", i+4, r.title)
		if _, err := agent.run(ctx, r); err != nil {
			return err
		}
	}
	if err := agent.mandate(ctx, now(), len(demoRequests)+4); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nDone: four paths (context, policy, device, mandate).")
	return nil
}

// demoServer is the demo's own node, served on a loopback listener.
type demoServer struct {
	cfg   *Config
	node  *node
	local string // http://host:port
	now   func() time.Time
	stop  func()
}

// startDemoServer starts a dev node with the embedded store.
func startDemoServer(ctx context.Context, listen, issuer string, now func() time.Time, out, stderr io.Writer) (*demoServer, error) {
	cfg, err := parseConfig(nil, func(string) string { return "" }, stderr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	local := "http://" + ln.Addr().String()
	cfg.Listen, cfg.Issuer, cfg.Dev, cfg.PollInterval, cfg.LogLevel = ln.Addr().String(), local, true, 2, "warn"
	if issuer != "" {
		cfg.Issuer = strings.TrimRight(issuer, "/")
	}
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return nil, err
	}
	n, err := newNode(ctx, cfg, newLogger(cfg.LogLevel, stderr), out, now)
	if err != nil {
		ln.Close()
		return nil, err
	}
	hs := &http.Server{Handler: n.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	stop := func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = hs.Shutdown(sctx)
		n.close()
	}
	fmt.Fprintf(out, "Countersign demo server on %s (issuer %s), embedded store: everything is forgotten on exit.\n\n", local, cfg.Issuer)
	return &demoServer{cfg: cfg, node: n, local: local, now: now, stop: stop}, nil
}

// demoClient is the registered demo agent's credentials.
type demoClient struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret"`
}

// demoEnrollment is the one-use enrollment of the demo user's phone.
type demoEnrollment struct{ Code, URL string }

// setUp creates the demo user, registers the demo agent and opens an
// enrollment for the user's phone, through the admin API.
func (d *demoServer) setUp(ctx context.Context, out io.Writer) (demoClient, demoEnrollment, error) {
	var client demoClient
	var enr demoEnrollment
	admin := &adminClient{server: d.local, token: d.cfg.AdminToken, client: &http.Client{Timeout: 30 * time.Second}}
	tz := daytimeZone(d.now())
	if _, err := admin.call(ctx, "POST", "/admin/users", map[string]any{"id": demoUser, "email": "demo@example.com",
		"attributes": map[string]any{"spending_limit": 1000, "timezone": tz}}); err != nil {
		return client, enr, fmt.Errorf("creating the user: %w", err)
	}
	fmt.Fprintf(out, "1. Created the user %q (spending limit 1000 EUR, time zone %s, where it is daytime now:\n"+
		"   at night the default rules send even a small payment to the phone).\n", demoUser, tz)
	b, err := admin.call(ctx, "POST", "/admin/clients", map[string]any{"client_id": demoAgent, "client_name": "Demo travel agent",
		"agent": map[string]any{"trust_tier": "standard", "owner": "Countersign demo"}})
	if err != nil {
		return client, enr, fmt.Errorf("creating the agent: %w", err)
	}
	_ = json.Unmarshal(b, &client)
	fmt.Fprintf(out, "2. Registered the agent %q (a CIBA poll client).\n", client.ID)
	b, err = admin.call(ctx, "POST", "/admin/users/"+demoUser+"/enrollments", nil)
	if err != nil {
		return client, enr, fmt.Errorf("creating the enrollment: %w", err)
	}
	_ = json.Unmarshal(b, &enr)
	return client, enr, nil
}

// enrollStub enrolls the mobile stub, which approves everything; stop
// closes it.
func (d *demoServer) enrollStub(ctx context.Context, enr demoEnrollment, out io.Writer) (stop func(), err error) {
	fmt.Fprintf(out, "3. Enroll a phone: the mobile stub opens the enrollment link\n   %s\n\n", enr.URL)
	p, err := phone.New(d.local, phone.Options{Listen: "127.0.0.1:0", Name: "Demo stub phone", Now: d.now})
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.Enroll(ctx, enr.Code); err != nil {
		p.Close()
		return nil, err
	}
	fmt.Fprintf(out, "   The mobile stub enrolled as device %s; it approves everything it is asked.\n", p.DeviceID())
	go p.AutoDecide(ctx, phone.Approve, func(push phone.Push, err error) {
		if err != nil {
			fmt.Fprintf(out, "   phone: could not decide %q: %v\n", push.BindingMessage, err)
			return
		}
		what := ""
		if push.Summary != "" {
			what = " (" + push.Summary + ")"
		}
		fmt.Fprintf(out, "   phone: notified%s, approved %q with its device key\n", what, push.BindingMessage)
	})
	return func() { p.Close() }, nil
}

// enrollPhone shows the enrollment link and QR code and waits for a real
// phone to enroll.
func (d *demoServer) enrollPhone(ctx context.Context, enr demoEnrollment, out io.Writer) error {
	fmt.Fprintf(out, "3. Enroll a phone: open this link on it, or scan the code.\n   %s\n\n", enr.URL)
	if err := writeQR(out, enr.URL); err != nil {
		return err
	}
	fmt.Fprintln(out)
	if u, err := url.Parse(d.cfg.Issuer); err == nil && isLoopbackHost(u.Hostname()) {
		fmt.Fprintln(out, "   (A loopback address only works in a browser on this machine. For a real phone, serve it over\n"+
			"   HTTPS on your network and pass --listen 0.0.0.0:8080 --issuer https://<that name>; see the README.)")
	}
	fmt.Fprintln(out, "   Waiting for a phone to enroll (Ctrl-C to stop)…")
	if err := waitForDevice(ctx, d.node, demoUser); err != nil {
		return err
	}
	fmt.Fprintln(out, "   A phone enrolled.")
	return nil
}

// daytimeZone is a fixed-offset IANA zone (Etc/GMT±N) where it is about
// noon at t, so the demo shows the paths it announces at any hour: the
// default ruleset's night-time rule is not weakened, the demo user just
// lives where it is day.
func daytimeZone(t time.Time) string {
	off := 12 - t.UTC().Hour() // hours east of UTC, -11..12
	switch {
	case off > 0:
		return fmt.Sprintf("Etc/GMT-%d", off) // POSIX sign: Etc/GMT-3 is UTC+3
	case off < 0:
		return fmt.Sprintf("Etc/GMT+%d", -off)
	}
	return "UTC"
}

func waitForDevice(ctx context.Context, n *node, user string) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		devs, err := n.db.Devices(ctx, user)
		if err != nil {
			return err
		}
		if len(devs) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// demoAgentClient is the agent side of CIBA poll mode (CIBA Core §7, §10.1).
type demoAgentClient struct {
	base, id, secret string
	http             *http.Client
	out              io.Writer
}

func (a *demoAgentClient) post(ctx context.Context, path string, form url.Values) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", a.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret)) // RFC 6749 §2.3.1
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body := map[string]any{}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s: undecodable answer (%d)", path, resp.StatusCode)
	}
	return resp.StatusCode, body, nil
}

// run makes one backchannel authentication request and polls for the
// token; it returns the token response (nil when refused).
// extra are more form parameters as name, value pairs (mandate_id).
func (a *demoAgentClient) run(ctx context.Context, r demoRequest, extra ...string) (map[string]any, error) {
	form := url.Values{"scope": {"openid"}, "login_hint": {demoUser},
		"binding_message": {r.bindingMessage}, "authorization_details": {r.details}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	status, ack, err := a.post(ctx, "/bc-authorize", form)
	if err != nil {
		return nil, err
	}
	if status != 200 {
		fmt.Fprintf(a.out, "   ✗ bc-authorize refused: %v (%v)\n", ack["error"], ack["error_description"])
		return nil, nil
	}
	id, _ := ack["auth_req_id"].(string)
	interval, _ := ack["interval"].(float64)
	fmt.Fprintf(a.out, "   agent: POST /bc-authorize, binding message %q → auth_req_id %s…, poll every %gs\n", r.bindingMessage, id[:8], interval)
	waiting := false
	for {
		status, tok, err := a.post(ctx, "/token", url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {id}})
		if err != nil {
			return nil, err
		}
		switch code, _ := tok["error"].(string); {
		case status == 200:
			a.printToken(tok)
			return tok, nil
		case code == "authorization_pending":
			if !waiting {
				fmt.Fprintf(a.out, "   agent: authorization_pending: waiting for the phone (message %q)\n", r.bindingMessage)
				waiting = true
			}
		case code == "slow_down": // CIBA Core §11: add 5 s
			interval += 5
		default:
			fmt.Fprintf(a.out, "   ✗ %s: %v\n", code, tok["error_description"])
			return nil, nil
		}
		wait := time.Duration(max(interval, 1)) * time.Second
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// printToken shows what the token says. It came straight from the server
// over loopback, so it is read here without verifying the signature.
func (a *demoAgentClient) printToken(tok map[string]any) {
	at, _ := tok["access_token"].(string)
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(at, claims); err != nil {
		fmt.Fprintf(a.out, "   ✓ token issued (unreadable: %v)\n", err)
		return
	}
	ap, _ := claims["approval"].(map[string]any)
	var rules []string
	if rs, ok := ap["rules"].([]any); ok {
		for _, r := range rs {
			switch r := r.(type) {
			case string:
				rules = append(rules, r)
			case map[string]any:
				rules = append(rules, fmt.Sprint(r["id"]))
			}
		}
	}
	line := fmt.Sprintf("   ✓ token issued: approved by %v", ap["by"])
	if len(rules) > 0 {
		line += " (rules: " + strings.Join(rules, ", ") + ")"
	}
	if m, _ := ap["mandate_id"].(string); m != "" && ap["by"] == "mandate" {
		line += " " + m + ", the intent the device signed"
	} else if d, _ := ap["device_id"].(string); d != "" {
		line += ", signed by device " + d
	}
	fmt.Fprintln(a.out, line)
}

// writeQR draws text as a QR code (ISO/IEC 18004) with Unicode half
// blocks, two modules per character cell, light modules drawn, with the
// four-module quiet zone the standard asks for: it reads on a dark
// terminal, and phone cameras read the inverted code on a light one too.
func writeQR(w io.Writer, text string) error {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return err
	}
	const quiet = 4
	n := code.Size + 2*quiet
	light := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		return x < 0 || y < 0 || x >= code.Size || y >= code.Size || !code.Black(x, y)
	}
	var sb strings.Builder
	for y := 0; y < n; y += 2 {
		for x := 0; x < n; x++ {
			top, bottom := light(x, y), y+1 >= n || light(x, y+1)
			switch {
			case top && bottom:
				sb.WriteString("█")
			case top:
				sb.WriteString("▀")
			case bottom:
				sb.WriteString("▄")
			default:
				sb.WriteString(" ")
			}
		}
		sb.WriteString("\n")
	}
	_, err = io.WriteString(w, sb.String())
	return err
}
