package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// rulesCLI runs `countersign rules ...` against tn.
func (tn *testNode) rulesCLI(env map[string]string, args ...string) (int, string, string) {
	tn.t.Helper()
	var out, errOut bytes.Buffer
	if env == nil {
		env = map[string]string{"COUNTERSIGN_ISSUER": tn.URL, "COUNTERSIGN_ADMIN_TOKEN": testAdminToken}
	}
	code := rulesCommand(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeRulesFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRulesCLI(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	dir := t.TempDir()
	good := writeRulesFile(t, dir, "good.yaml", noPayments)
	bad := writeRulesFile(t, dir, "bad.yaml", "format: countersign/v1\nname: b\nrules:\n  - id: misspelt\n    when: action.amout > 10.0\n    score: 10\n    reason: r\n")

	if code, out, errOut := tn.rulesCLI(nil, "validate", good); code != 0 || !strings.Contains(out, "2 tests passed, 0 failed") {
		t.Fatalf("validate offline: %d %s %s", code, out, errOut)
	}
	code, out, errOut := tn.rulesCLI(nil, "push", bad)
	if code != 1 || out != "" || !strings.Contains(errOut, "the ruleset has a problem") ||
		!strings.Contains(errOut, "\n"+bad+":5:17: misspelt: when: undefined field 'amout'") {
		t.Fatalf("push bad: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := tn.rulesCLI(nil, "push", good, "--comment", "payments off"); code != 0 || out != "version 2 is active\n" {
		t.Fatalf("push: %d %q %q", code, out, errOut)
	}
	code, out, _ = tn.rulesCLI(nil, "show")
	if code != 0 || !regexp.MustCompile(`^version 2 \(no-payments\), activated \S+ by admin: payments off\n---\n`).MatchString(out) ||
		!strings.HasSuffix(out, noPayments) {
		t.Fatalf("show: %d %q", code, out)
	}
	code, out, _ = tn.rulesCLI(nil, "versions")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !regexp.MustCompile(`^VERSION\s+ACTIVE\s+NAME`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^2\s+\*\s+no-payments\s+\S+\s+admin\s+payments off$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^1\s+default\s+\S+\s+countersign\s+the embedded default ruleset$`).MatchString(lines[2]) {
		t.Fatalf("versions: %d\n%s", code, out)
	}
	code, out, _ = tn.rulesCLI(nil, "versions", "--output", "json")
	var vs struct {
		Versions []map[string]any `json:"versions"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &vs) != nil || len(vs.Versions) != 2 || vs.Versions[0]["active"] != true {
		t.Fatalf("versions json: %d %s", code, out)
	}

	if code, out, errOut := tn.rulesCLI(nil, "rollback", "1"); code != 0 || out != "version 1 is active\n" {
		t.Fatalf("rollback: %d %q %q", code, out, errOut)
	}
	tn.waitVersion("1", 5*time.Second)
	r := rulesPay(tn, id, secret)
	if r.Status != 200 {
		t.Fatalf("payment: %s", r.Raw)
	}
	code, out, _ = tn.rulesCLI(nil, "simulate", good, "--last", "5")
	if code != 0 || !strings.HasPrefix(out, "1 requests, 1 would change\n") ||
		!regexp.MustCompile(`(?m)^  context->deny\s+1$`).MatchString(out) ||
		!strings.Contains(out, "rules firing most, candidate: no-payments (1)") ||
		!regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(r.str("auth_req_id"))+`\s+context -> deny\s+no-payments$`).MatchString(out) {
		t.Fatalf("simulate: %d\n%s", code, out)
	}
	inputs := writeRulesFile(t, dir, "inputs.json", `[{"action":{"details":[{"type":"payment_initiation","amount":5}]}}]`)
	code, out, _ = tn.rulesCLI(nil, "simulate", good, "--requests", inputs, "--output", "json")
	var sim map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &sim) != nil || sim["summary"].(map[string]any)["changed"] != float64(1) {
		t.Fatalf("simulate json: %d %s", code, out)
	}

	if code, _, errOut := tn.rulesCLI(nil, "simulate", good); code != 2 || !strings.Contains(errOut, "exactly one of --last") {
		t.Fatalf("simulate without inputs: %d %s", code, errOut)
	}
	if code, _, errOut := tn.rulesCLI(nil, "rollback", "99"); code != 1 || !strings.Contains(errOut, "no ruleset version 99 (404 not_found)") {
		t.Fatalf("rollback 99: %d %s", code, errOut)
	}
	if code, _, errOut := tn.rulesCLI(map[string]string{"COUNTERSIGN_ISSUER": tn.URL}, "show"); code != 2 || !strings.Contains(errOut, "no admin token") {
		t.Fatalf("no token: %d %s", code, errOut)
	}
	if code, _, errOut := tn.rulesCLI(nil, "show", "--admin-token", "wrong"); code != 1 || !strings.Contains(errOut, "401 invalid_token") {
		t.Fatalf("wrong token: %d %s", code, errOut)
	}
	if code, _, _ := tn.rulesCLI(nil, "frobnicate"); code != 2 {
		t.Fatalf("unknown verb: %d", code)
	}
}

// A command missing its argument says which one, and --output is named
// the same everywhere (table|json, as for the other admin commands).
func TestRulesCLIUsage(t *testing.T) {
	tn := startNode(t, nil)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rollback"}, "countersign rules rollback: VERSION is missing: the version to make active again (see countersign rules versions)\n"},
		{[]string{"push"}, "countersign rules push: FILE is missing: the ruleset YAML file\n"},
		{[]string{"simulate", "--last", "3"}, "countersign rules simulate: FILE is missing: the ruleset YAML file\n"},
		{[]string{"rollback", "1", "2"}, "countersign rules rollback: takes one VERSION, got 2 arguments\n"},
		{[]string{"versions", "3"}, "countersign rules versions: takes no argument, got \"3\"\n"},
		{[]string{"validate"}, "countersign rules validate: takes one FILE, the ruleset YAML file\n"},
		{[]string{"show", "--output", "human-readable"}, "countersign rules: --output must be table or json, not \"human-readable\"\n"},
	} {
		code, out, errOut := tn.rulesCLI(nil, c.args...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, c.want) {
			t.Errorf("%v: %d %q %q", c.args, code, out, errOut)
		}
	}
	if !strings.Contains(rulesUsage, "--output table|json") || strings.Contains(rulesUsage, "human") ||
		!strings.Contains(adminUsage, "--output table|json") {
		t.Errorf("usage texts disagree on --output:\n%s\n%s", rulesUsage, adminUsage)
	}
	if code, out, errOut := tn.rulesCLI(nil, "versions", "--output", "table"); code != 0 || !strings.HasPrefix(out, "VERSION") {
		t.Errorf("--output table: %d %q %q", code, out, errOut)
	}
}

// TestRulesREADME runs every `countersign rules` line of rules/README.md's
// session, in order, against a fresh server, from the repository root: the
// guide's commands work as written, and it shows every command.
func TestRulesREADME(t *testing.T) {
	readme, err := os.ReadFile("../../rules/README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, session, ok := strings.Cut(string(readme), "## A session")
	if !ok {
		t.Fatal("rules/README.md has no session")
	}
	_, block, _ := strings.Cut(session, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	tn := startNode(t, nil)
	verbs := map[string]bool{}
	for _, line := range strings.Split(block, "\n") {
		rest, ok := strings.CutPrefix(line, "countersign rules ")
		if !ok {
			continue
		}
		args := shellWords(t, rest)
		for i, a := range args {
			if strings.HasPrefix(a, "rules/") {
				args[i] = filepath.Join("..", "..", a) // the test runs in cmd/countersign
			}
		}
		code, out, errOut := tn.rulesCLI(nil, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", line, code, out, errOut)
		}
		verbs[args[0]] = true
		switch {
		case strings.Contains(line, "--requests"):
			if !strings.HasPrefix(out, "2 requests, 1 would change\n") || !strings.Contains(out, "  #1  policy -> device  night-payment\n") {
				t.Errorf("%s:\n%s", line, out)
			}
		case args[0] == "push" && out != "version 2 is active\n", args[0] == "rollback" && out != "version 1 is active\n":
			t.Errorf("%s: %q", line, out)
		}
	}
	for _, v := range []string{"validate", "test", "show", "versions", "simulate", "push", "rollback"} {
		if !verbs[v] || !strings.Contains(rulesUsage, "countersign rules "+v) {
			t.Errorf("the README session or the usage lacks countersign rules %s", v)
		}
	}
	if tn.rulesVersion() != "1" {
		t.Errorf("after the session the node runs version %s, want 1", tn.rulesVersion())
	}
}

// shellWords splits a command line as sh does for the README's simple
// lines: words separated by spaces, double quotes grouping.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
			}
			inWord = false
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
