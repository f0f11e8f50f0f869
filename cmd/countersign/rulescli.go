package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The rules CLI against a running server (issue 8 "CLI"): show, versions,
// push, rollback and simulate over the admin API (docs/api.md "Admin API", Rules).
// validate and test stay offline (rulescmd.go). rules/README.md shows every
// command with an example.

const rulesUsage = `Rules commands:
  countersign rules validate FILE          compile a ruleset, time its rules and run its tests (offline; exit 1 on failure)
  countersign rules test FILE              run a ruleset's tests (offline)
  countersign rules show                   the active version and its YAML
  countersign rules versions               every version, newest first
  countersign rules push FILE [--comment C]
                                           validate, test and activate FILE on every node
  countersign rules rollback VERSION       make an earlier version active again
  countersign rules simulate FILE (--last N | --requests INPUTS.json)
                                           what FILE would change against the active ruleset
Server commands take --server URL (COUNTERSIGN_ISSUER), --admin-token T
(COUNTERSIGN_ADMIN_TOKEN) and --output table|json.
The rule language: docs/rules.md; every command with examples: rules/README.md.
`

// rulesArgs names the positional argument of each server command.
var rulesArgs = map[string]string{"push": "FILE", "rollback": "VERSION", "simulate": "FILE"}

// rulesRemote runs `countersign rules show|versions|push|rollback|simulate`.
func rulesRemote(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	verb := args[0]
	fs := flag.NewFlagSet("rules "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f rulesFlags
	f.cf.register(fs, getenv)
	fs.StringVar(&f.comment, "comment", "", "push: a comment recorded with the version")
	fs.IntVar(&f.last, "last", 0, "simulate: over the last N audited decisions")
	fs.StringVar(&f.requests, "requests", "", "simulate: a JSON file holding a list of inputs")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if f.cf.output == "human" { // the name earlier releases documented
		f.cf.output = "table"
	}
	if f.cf.output != "table" && f.cf.output != "json" {
		fmt.Fprintf(stderr, "countersign rules: --output must be table or json, not %q\n", f.cf.output)
		return 2
	}
	rc := f.cf.connect(stderr, "countersign rules", 60*time.Second)
	if rc == nil {
		return 2
	}
	if msg := rulesArgsProblem(verb, pos); msg != "" {
		fmt.Fprintf(stderr, "countersign rules %s: %s\n\n%s", verb, msg, rulesUsage)
		return 2
	}
	req, fail := f.request(verb, pos)
	if fail != nil {
		fmt.Fprint(stderr, fail.msg)
		return fail.code
	}
	return rulesSend(ctx, rc, f.cf.output, verb, req, stdout, stderr)
}

// rulesFlags are the flags of the remote rules verbs.
type rulesFlags struct {
	cf       cliFlags
	comment  string
	last     int
	requests string
}

// rulesRequest is one call of a remote rules verb.
type rulesRequest struct {
	method, path string
	body         map[string]any
	file         string // the ruleset file sent, for problem lines
}

// cliFailure is how a verb ends early: its exit code and what it prints.
type cliFailure struct {
	code int
	msg  string
}

func failf(code int, format string, a ...any) *cliFailure {
	return &cliFailure{code: code, msg: fmt.Sprintf(format, a...)}
}

// request maps a verb and its arguments onto the admin API.
func (f *rulesFlags) request(verb string, pos []string) (rulesRequest, *cliFailure) {
	switch verb {
	case "show":
		return rulesRequest{method: "GET", path: "/admin/rules"}, nil
	case "versions":
		return rulesRequest{method: "GET", path: "/admin/rules/versions"}, nil
	case "rollback":
		v, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil || v < 1 {
			return rulesRequest{}, failf(2, "countersign rules rollback: %q is not a version number\n", pos[0])
		}
		return rulesRequest{method: "POST", path: "/admin/rules/rollback", body: map[string]any{"version": v}}, nil
	case "push", "simulate":
		return f.rulesetRequest(verb, pos[0])
	}
	return rulesRequest{}, failf(2, "countersign rules: unknown command %q\n\n%s", verb, rulesUsage)
}

// rulesetRequest sends the ruleset in file: to become active (push) or
// to be tried on past or given inputs (simulate).
func (f *rulesFlags) rulesetRequest(verb, file string) (rulesRequest, *cliFailure) {
	src, err := os.ReadFile(file)
	if err != nil {
		return rulesRequest{}, failf(1, "countersign rules %s: %v\n", verb, err)
	}
	req := rulesRequest{method: "PUT", path: "/admin/rules", body: map[string]any{"ruleset": string(src)}, file: file}
	if verb == "push" {
		req.body["comment"] = f.comment
		return req, nil
	}
	req.method, req.path = "POST", "/admin/rules/simulate"
	switch {
	case (f.last > 0) == (f.requests != ""):
		return req, failf(2, "countersign rules simulate: give exactly one of --last N and --requests FILE\n")
	case f.last > 0:
		req.body["last"] = f.last
	default:
		b, err := os.ReadFile(f.requests)
		if err != nil {
			return req, failf(1, "countersign rules simulate: %v\n", err)
		}
		req.body["requests"] = json.RawMessage(b)
	}
	return req, nil
}

// rulesSend makes the call and prints the answer as JSON or a table; a
// refused ruleset prints one line per problem.
func rulesSend(ctx context.Context, rc *adminClient, output, verb string, req rulesRequest, stdout, stderr io.Writer) int {
	resp, err := rc.call(ctx, req.method, req.path, req.body)
	if err != nil {
		fmt.Fprintf(stderr, "countersign rules %s: %v\n", verb, err)
		var re *apiError
		if errors.As(err, &re) {
			for _, p := range re.Problems {
				fmt.Fprintf(stderr, "%s\n", problemLine(req.file, p.Line, p.Column, p.Rule, p.Message))
			}
		}
		return 1
	}
	if output == "json" {
		var buf bytes.Buffer
		if err := json.Indent(&buf, resp, "", "  "); err != nil {
			fmt.Fprintf(stderr, "countersign rules %s: %v\n", verb, err)
			return 1
		}
		buf.WriteByte('\n')
		_, _ = stdout.Write(buf.Bytes())
		return 0
	}
	if err := printRules(stdout, verb, resp); err != nil {
		fmt.Fprintf(stderr, "countersign rules %s: decoding the answer: %v\n", verb, err)
		return 1
	}
	return 0
}

// rulesArgsProblem says what is wrong with the positional arguments of a
// server command, or "". rollback never guesses a version: the admin picks
// one from `countersign rules versions`.
func rulesArgsProblem(verb string, pos []string) string {
	want := rulesArgs[verb]
	switch {
	case want == "" && len(pos) > 0:
		return fmt.Sprintf("takes no argument, got %q", pos[0])
	case want != "" && len(pos) == 0 && verb == "rollback":
		return "VERSION is missing: the version to make active again (see countersign rules versions)"
	case want != "" && len(pos) == 0:
		return want + " is missing: the ruleset YAML file"
	case len(pos) > 1:
		return fmt.Sprintf("takes one %s, got %d arguments", want, len(pos))
	}
	return ""
}

// problemLine prints a problem as compilers do: FILE:LINE:COL: RULE: MESSAGE.
func problemLine(file string, line, col int, rule, msg string) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file + ":")
	}
	switch {
	case line > 0 && col > 0:
		fmt.Fprintf(&b, "%d:%d:", line, col)
	case line > 0:
		fmt.Fprintf(&b, "%d:", line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if rule != "" {
		b.WriteString(rule + ": ")
	}
	return b.String() + msg
}

func printRules(w io.Writer, verb string, resp []byte) error {
	switch verb {
	case "show":
		var v struct {
			Version     int64  `json:"version"`
			Name        string `json:"name"`
			Ruleset     string `json:"ruleset"`
			ActivatedAt string `json:"activated_at"`
			ActivatedBy string `json:"activated_by"`
			Comment     string `json:"comment"`
		}
		if err := json.Unmarshal(resp, &v); err != nil {
			return err
		}
		fmt.Fprintf(w, "version %d (%s), activated %s by %s", v.Version, v.Name, v.ActivatedAt, v.ActivatedBy)
		if v.Comment != "" {
			fmt.Fprintf(w, ": %s", v.Comment)
		}
		fmt.Fprintf(w, "\n---\n%s", v.Ruleset)
		if !strings.HasSuffix(v.Ruleset, "\n") {
			fmt.Fprintln(w)
		}
	case "versions":
		var v struct {
			Versions []struct {
				Version     int64  `json:"version"`
				Name        string `json:"name"`
				ActivatedAt string `json:"activated_at"`
				ActivatedBy string `json:"activated_by"`
				Comment     string `json:"comment"`
				Active      bool   `json:"active"`
			} `json:"versions"`
		}
		if err := json.Unmarshal(resp, &v); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tACTIVE\tNAME\tACTIVATED\tBY\tCOMMENT")
		for _, r := range v.Versions {
			active := ""
			if r.Active {
				active = "*"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Version, active, r.Name, r.ActivatedAt, r.ActivatedBy, r.Comment)
		}
		return tw.Flush()
	case "push", "rollback":
		var v struct {
			Version int64 `json:"version"`
		}
		if err := json.Unmarshal(resp, &v); err != nil {
			return err
		}
		fmt.Fprintf(w, "version %d is active\n", v.Version)
	case "simulate":
		return printSimulation(w, resp)
	}
	return nil
}

func printSimulation(w io.Writer, resp []byte) error {
	var v simReport
	if err := json.Unmarshal(resp, &v); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d requests, %d would change\n", v.Summary.Total, v.Summary.Changed)
	printMoves(w, v.Summary.Moves)
	for _, side := range []struct {
		name string
		hits []simHits
	}{{"active", v.TopRules.Active}, {"candidate", v.TopRules.Candidate}} {
		var parts []string
		for _, h := range side.hits {
			parts = append(parts, fmt.Sprintf("%s (%d)", h.ID, h.Hits))
		}
		if len(parts) == 0 {
			parts = []string{"none"}
		}
		fmt.Fprintf(w, "rules firing most, %s: %s\n", side.name, strings.Join(parts, ", "))
	}
	if v.Summary.Changed == 0 {
		return nil
	}
	return printChanged(w, v.Results)
}

// simReport is the answer of POST /admin/rules/simulate, as printed.
type simReport struct {
	Summary struct {
		Total   int            `json:"total"`
		Changed int            `json:"changed"`
		Moves   map[string]int `json:"moves"`
	} `json:"summary"`
	Results  []simResult `json:"results"`
	TopRules struct {
		Active    []simHits `json:"active"`
		Candidate []simHits `json:"candidate"`
	} `json:"top_rules"`
}

type simOutcome struct {
	Path  string `json:"path"`
	Rules []struct {
		ID string `json:"id"`
	} `json:"rules"`
}

type simResult struct {
	RequestID string     `json:"request_id"`
	Active    simOutcome `json:"active"`
	Candidate simOutcome `json:"candidate"`
	Changed   bool       `json:"changed"`
}

type simHits struct {
	ID   string `json:"id"`
	Hits int    `json:"hits"`
}

// printMoves prints each path change with its count, most frequent first.
func printMoves(w io.Writer, counts map[string]int) {
	moves := make([]string, 0, len(counts))
	for m := range counts {
		moves = append(moves, m)
	}
	sort.Slice(moves, func(i, j int) bool {
		if counts[moves[i]] != counts[moves[j]] {
			return counts[moves[i]] > counts[moves[j]]
		}
		return moves[i] < moves[j]
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, m := range moves {
		fmt.Fprintf(tw, "  %s\t%d\n", m, counts[m])
	}
	_ = tw.Flush()
}

// printChanged lists the requests whose path would change.
func printChanged(w io.Writer, results []simResult) error {
	fmt.Fprintln(w, "changed requests:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, r := range results {
		if !r.Changed {
			continue
		}
		id := r.RequestID
		if id == "" {
			id = fmt.Sprintf("#%d", i+1)
		}
		var ids []string
		for _, m := range r.Candidate.Rules {
			ids = append(ids, m.ID)
		}
		fmt.Fprintf(tw, "  %s\t%s -> %s\t%s\n", id, r.Active.Path, r.Candidate.Path, strings.Join(ids, " "))
	}
	return tw.Flush()
}
