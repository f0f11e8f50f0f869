package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"rsc.io/qr"

	"github.com/countersign/countersign/mobile-stub/phone"
)

// cli runs one admin command against tn and returns its exit status and output.
func (tn *testNode) cli(args ...string) (int, string, string) {
	tn.t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"COUNTERSIGN_ISSUER": tn.URL, "COUNTERSIGN_ADMIN_TOKEN": testAdminToken}
	code := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLIClients(t *testing.T) {
	tn := startNode(t, nil)
	tn.user(map[string]any{"id": "alice"})
	code, out, errOut := tn.cli("clients", "add", "--id", "cli-agent", "--name", "CLI agent", "--owner", "ops", "--trust-tier", "standard")
	m := regexp.MustCompile(`(?m)^client_secret: (\S{20,})$`).FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(out, "shown only once") || !regexp.MustCompile(`(?m)^client_id:\s+cli-agent$`).MatchString(out) {
		t.Fatalf("clients add: %d\n%s%s", code, out, errOut)
	}
	secret := m[1]
	// The secret works: a low-risk request is approved by policy.
	form := url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}}
	if r := tn.post("/bc-authorize", "cli-agent", secret, form); r.Status != 200 {
		t.Fatalf("bc-authorize with the printed secret: %d %s", r.Status, r.Raw)
	}
	// JSON output is the server's answer.
	code, out, _ = tn.cli("clients", "add", "--output", "json", "--metadata", `{"client_id":"a2","agent":{"model":"m1"}}`, "--mode", "poll")
	var created map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created["client_id"] != "a2" || created["client_secret"] == "" ||
		created["agent"].(map[string]any)["model"] != "m1" {
		t.Fatalf("clients add --output json: %d %s", code, out)
	}
	code, out, _ = tn.cli("clients", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !regexp.MustCompile(`^CLIENT_ID\s+NAME\s+MODE\s+TRUST_TIER\s+OWNER\s+DISABLED$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`(?m)^cli-agent\s+CLI agent\s+poll\s+standard\s+ops\s+false$`).MatchString(out) {
		t.Fatalf("clients list: %d\n%s", code, out)
	}
	code, out, _ = tn.cli("clients", "show", "cli-agent")
	if code != 0 || !regexp.MustCompile(`(?m)^client_name:\s+CLI agent$`).MatchString(out) || strings.Contains(out, secret) {
		t.Fatalf("clients show: %d\n%s", code, out)
	}
	// Disabled, the agent is refused; enabled again, it works.
	if code, out, _ = tn.cli("clients", "disable", "cli-agent"); code != 0 || !strings.Contains(out, "disabled client cli-agent") {
		t.Fatalf("clients disable: %d %s", code, out)
	}
	wantError(t, tn.post("/bc-authorize", "cli-agent", secret, form), 401, "invalid_client")
	if code, _, _ = tn.cli("clients", "disable", "--enable", "cli-agent"); code != 0 {
		t.Fatalf("clients disable --enable: %d", code)
	}
	if r := tn.post("/bc-authorize", "cli-agent", secret, form); r.Status != 200 {
		t.Fatalf("bc-authorize after --enable: %d %s", r.Status, r.Raw)
	}
	if code, out, _ = tn.cli("clients", "rm", "a2"); code != 0 || out != "deleted client a2\n" {
		t.Fatalf("clients rm: %d %q", code, out)
	}
	// Errors: the server's error_description, exit status 1.
	want := tn.admin("GET", "/admin/clients/a2", nil)
	code, _, errOut = tn.cli("clients", "show", "a2")
	if code != 1 || want.str("error_description") == "" || !strings.Contains(errOut, want.str("error_description")) {
		t.Fatalf("show a deleted client: %d %q (server: %s)", code, errOut, want.Raw)
	}
}

func TestCLIUsersAndEnrollment(t *testing.T) {
	tn := startNode(t, nil)
	code, out, errOut := tn.cli("users", "add", "bob", "--email", "bob@example.com", "--attr", "spending_limit=500", "--attr", "team=ops")
	if code != 0 || out != "created user bob\n" {
		t.Fatalf("users add: %d %q %s", code, out, errOut)
	}
	u := tn.admin("GET", "/admin/users/bob", nil)
	attrs, _ := u.Body["attributes"].(map[string]any)
	if u.str("email") != "bob@example.com" || attrs["spending_limit"] != float64(500) || attrs["team"] != "ops" {
		t.Fatalf("user: %s", u.Raw)
	}
	code, out, _ = tn.cli("users", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^ID\s+EMAIL\s+CREATED\n(?s:.*)^bob\s+bob@example.com\s+\d{4}-`).MatchString(out) {
		t.Fatalf("users list: %d\n%s", code, out)
	}
	code, out, _ = tn.cli("users", "enroll", "bob")
	m := regexp.MustCompile(`(?m)^  code: ([A-Z2-7]{32})\n  link: (\S+)$`).FindStringSubmatch(out)
	if code != 0 || m == nil || m[2] != tn.URL+"/app/enroll?code="+m[1] {
		t.Fatalf("users enroll: %d\n%s", code, out)
	}
	// The printed QR code holds the link.
	if got := readQR(t, out); got != qrModules(t, m[2]) {
		t.Fatalf("QR code does not encode %s", m[2])
	}
	// The printed code enrolls a phone.
	ph := tn.enrollPhoneWithCode(m[1])
	if ph.UserID() != "bob" {
		t.Fatalf("enrolled for %q", ph.UserID())
	}
	if code, out, _ = tn.cli("users", "rm", "bob"); code != 0 || out != "deleted user bob\n" {
		t.Fatalf("users rm: %d %q", code, out)
	}
	if code, _, errOut = tn.cli("users", "show", "bob"); code != 1 || !strings.Contains(errOut, "not_found") {
		t.Fatalf("users show after rm: %d %q", code, errOut)
	}
}

func TestCLIAgentsRevokeAndErrors(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	rsID, rsSecret := tn.client(map[string]any{"client_id": "rs", "resource_server": true})
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
	tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {r.str("auth_req_id")}})
	active := func() bool {
		return tn.post("/introspect", rsID, rsSecret, url.Values{"token": {tok.str("access_token")}}).Body["active"] == true
	}
	if tok.Status != 200 || !active() {
		t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	code, out, errOut := tn.cli("agents", "revoke", id, "--user", "alice")
	if code != 0 || out != "revoked every grant and token of agent-1 for user alice\n" {
		t.Fatalf("agents revoke: %d %q %s", code, out, errOut)
	}
	if active() {
		t.Fatal("token active after agents revoke")
	}
	// The server's error_description, exit status 1.
	want := tn.admin("POST", "/admin/agents/nobody/revoke", map[string]any{})
	if code, _, errOut = tn.cli("agents", "revoke", "nobody"); code != 1 || !strings.Contains(errOut, want.str("error_description")) {
		t.Fatalf("revoke unknown agent: %d %q (server %s)", code, errOut, want.Raw)
	}
	// A wrong admin token: 401 and its description.
	var o, e bytes.Buffer
	code = run(context.Background(), []string{"users", "list", "--server", tn.URL, "--admin-token", "wrong-token-0123456789"},
		func(string) string { return "" }, &o, &e)
	if code != 1 || !strings.Contains(e.String(), "a valid admin bearer token is required") {
		t.Fatalf("wrong token: %d %q", code, e.String())
	}
	// Usage mistakes: exit status 2, nothing sent.
	for _, args := range [][]string{{"users", "list", "extra"}, {"clients", "frobnicate"}, {"users", "show"}, {"users", "list", "--output", "xml"}} {
		if code, _, _ := tn.cli(args...); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
	}
	if code = run(context.Background(), []string{"users", "list"}, func(string) string { return "" }, &o, &e); code != 2 ||
		!strings.Contains(e.String(), "no admin token") {
		t.Fatalf("no token: %d %q", code, e.String())
	}
}

// qrModules is the module matrix of text's QR code as rows of 0 and 1.
func qrModules(t *testing.T, text string) string {
	t.Helper()
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for y := 0; y < c.Size; y++ {
		for x := 0; x < c.Size; x++ {
			if c.Black(x, y) {
				sb.WriteByte('1')
			} else {
				sb.WriteByte('0')
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// readQR turns printed half blocks back into modules (dark = 1), quiet
// zone removed.
func readQR(t *testing.T, out string) string {
	t.Helper()
	var grid [][]byte
	for _, l := range strings.Split(out, "\n") {
		if !strings.ContainsAny(l, "█▀▄") {
			continue
		}
		top, bottom := []byte{}, []byte{}
		for _, r := range l {
			tl, bl := r == '█' || r == '▀', r == '█' || r == '▄'
			top, bottom = append(top, b01(!tl)), append(bottom, b01(!bl))
		}
		grid = append(grid, top, bottom)
	}
	const quiet = 4
	if len(grid) < 2*quiet+21 {
		t.Fatalf("no QR code in\n%s", out)
	}
	size := len(grid[0]) - 2*quiet
	var sb strings.Builder
	for y := quiet; y < quiet+size; y++ {
		sb.Write(grid[y][quiet : quiet+size])
		sb.WriteByte('\n')
	}
	return sb.String()
}

func b01(dark bool) byte {
	if dark {
		return '1'
	}
	return '0'
}

// enrollPhoneWithCode enrolls a stub phone with a code made elsewhere.
func (tn *testNode) enrollPhoneWithCode(code string) *phone.Phone {
	tn.t.Helper()
	p, err := phone.New(tn.URL, phone.Options{Listen: "127.0.0.1:0", Name: "CLI phone", Now: tn.clock.Now})
	if err != nil {
		tn.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.t.Cleanup(func() { cancel(); p.Close() })
	if err := p.Start(ctx); err != nil {
		tn.t.Fatal(err)
	}
	if err := p.Enroll(ctx, code); err != nil {
		tn.t.Fatal(err)
	}
	return p
}

// Each command's --help lists the flags that command reads, and asking
// for help is not an error.
func TestHelpListsTheCommandsOwnFlags(t *testing.T) {
	cases := []struct {
		args      []string
		want, not []string
	}{
		{[]string{"audit", "verify", "--help"}, []string{"-server", "-admin-token", "-output"}, []string{"-since", "-until", "-n", "-follow", "-type"}},
		{[]string{"audit", "export", "--help"}, []string{"-since", "-until", "-user", "-agent", "-type"}, []string{"-n ", "-follow", "-output"}},
		{[]string{"audit", "tail", "--help"}, []string{"-since", "-user", "-agent", "-type", "-n ", "-follow"}, []string{"-until", "-output"}},
		{[]string{"clients", "add", "--help"}, []string{"-id", "-trust-tier", "-metadata"}, []string{"-email", "-may-act"}},
		{[]string{"users", "add", "--help"}, []string{"-email", "-attr", "-may-act"}, []string{"-trust-tier", "-enable"}},
		{[]string{"serve", "--help"}, []string{"-issuer", "-listen", "-redis-url"}, []string{"-stub", "127.0.0.1:8080)"}},
		{[]string{"demo", "--help"}, []string{"-stub", "-listen", "-issuer"}, []string{"-redis-url"}},
	}
	// Users have the repository, not the design notes beside it.
	outside := regexp.MustCompile(`\b(API|RULES|DESIGN|STYLE)\.md\b|\.\./shared`)
	for _, tc := range cases {
		var stdout, stderr strings.Builder
		code := run(t.Context(), tc.args, func(string) string { return "" }, &stdout, &stderr)
		help := stdout.String() + stderr.String()
		if code != 0 {
			t.Errorf("%v: exit %d", tc.args, code)
		}
		if m := outside.FindString(help); m != "" {
			t.Errorf("%v: help refers to %s, a file users do not have", tc.args, m)
		}
		for _, w := range tc.want {
			if !strings.Contains(help, "  "+w) {
				t.Errorf("%v: no %s in\n%s", tc.args, w, help)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(help, n) {
				t.Errorf("%v: %s listed in\n%s", tc.args, n, help)
			}
		}
	}
	for _, args := range [][]string{{"audit", "--help"}, {"clients", "help"}, {"help"}} {
		var stdout, stderr strings.Builder
		if code := run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr); code != 0 || stdout.Len() == 0 {
			t.Errorf("%v: exit %d, stdout %q", args, code, stdout.String())
		}
		if m := outside.FindString(stdout.String()); m != "" {
			t.Errorf("%v: help refers to %s, a file users do not have", args, m)
		}
	}
}
