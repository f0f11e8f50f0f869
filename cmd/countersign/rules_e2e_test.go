package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// startNodeOn starts a further node on the Redis and key prefix of another:
// two nodes of one deployment.
func startNodeOn(t *testing.T, first *testNode) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := *first.cfg
	cfg.Issuer = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := newNode(ctx, &cfg, testLogger(t), io.Discard, first.clock.Now)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(n.handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); cancel(); n.close() })
	return &testNode{node: n, t: t, URL: cfg.Issuer, clock: first.clock}
}

// rulesVersion is the version a node reports on /readyz.
func (tn *testNode) rulesVersion() string {
	tn.t.Helper()
	return tn.do(mustReq(tn.t, "GET", tn.URL+"/readyz", "")).str("rules_version")
}

// waitVersion waits until the node runs version v. The deadline is
// generous; the "within one second" is what pub/sub gives, and
// the polls in between show it (no timed assertion).
func (tn *testNode) waitVersion(v string, within time.Duration) {
	tn.t.Helper()
	deadline := time.Now().Add(within)
	for tn.rulesVersion() != v {
		if time.Now().After(deadline) {
			tn.t.Fatalf("%s still on rules version %q, want %q", tn.URL, tn.rulesVersion(), v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const noPayments = `format: countersign/v1
name: no-payments
rules:
  - id: no-payments
    when: "'payment_initiation' in action.types"
    decision: deny
    reason: Payments are switched off.
tests:
  - name: a payment is refused
    input:
      action: {details: [{type: payment_initiation, amount: 5, currency: EUR}]}
    expect: {path: deny, rules: [no-payments]}
  - name: a read passes
    input:
      action: {details: [{type: agent_action, action: read}]}
    expect: {path: policy}
`

// rulesProblem is what a test expects of one member of "problems".
type rulesProblem struct {
	rule      string
	line, col int
	msg       string // a part of the message
}

func wantProblems(t *testing.T, r reply, want ...rulesProblem) {
	t.Helper()
	if r.Status != 400 || r.str("error") != "invalid_ruleset" || r.str("error_description") == "" {
		t.Fatalf("want 400 invalid_ruleset, got %d %s", r.Status, r.Raw)
	}
	got, _ := r.Body["problems"].([]any)
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d: %s", len(got), len(want), r.Raw)
	}
	for i, w := range want {
		p, _ := got[i].(map[string]any)
		rule, _ := p["rule"].(string)
		line, _ := p["line"].(float64)
		col, _ := p["column"].(float64)
		msg, _ := p["message"].(string)
		if rule != w.rule || int(line) != w.line || int(col) != w.col || !strings.Contains(msg, w.msg) {
			t.Errorf("problem %d: %v, want %+v", i, p, w)
		}
	}
}

func TestRulesBrokenRulesetsNeverBecomeActive(t *testing.T) {
	tn := startNode(t, nil)
	long := strings.Repeat("action.amount > 1.0 || ", 100) + "false"
	cases := []struct {
		name, src string
		want      []rulesProblem
	}{
		{"misspelt field", "format: countersign/v1\nname: b\nrules:\n  - id: misspelt\n    when: action.amout > 10.0\n    score: 10\n    reason: r\n",
			[]rulesProblem{{"misspelt", 5, 17, "undefined field 'amout'"}}},
		{"unknown key", "format: countersign/v1\nname: b\nrules:\n  - id: k\n    when: 'true'\n    score: 1\n    reason: r\n    colour: red\n",
			[]rulesProblem{{"k", 8, 5, `unknown key "colour"`}}},
		{"duplicate id", "format: countersign/v1\nname: b\nrules:\n  - id: d\n    when: 'true'\n    score: 1\n    reason: r\n  - id: d\n    when: 'true'\n    score: 2\n    reason: r\n",
			[]rulesProblem{{"d", 8, 9, `duplicate id "d"`}}},
		{"score and decision", "format: countersign/v1\nname: b\nrules:\n  - id: both\n    when: 'true'\n    score: 1\n    decision: allow\n    reason: r\n",
			[]rulesProblem{{"both", 7, 5, "not both"}}},
		{"neither score nor decision", "format: countersign/v1\nname: b\nrules:\n  - id: neither\n    when: 'true'\n    reason: r\n",
			[]rulesProblem{{"neither", 4, 5, "needs a score or a decision"}}},
		{"medium not below high", "format: countersign/v1\nname: b\nthresholds:\n  medium: 60\n  high: 30\nrules: []\n",
			[]rulesProblem{{"", 4, 3, "must be below high"}}},
		{"constant bad CIDR", "format: countersign/v1\nname: b\nrules:\n  - id: net\n    when: in_networks(request.ip, ['10.0.0.0/33'])\n    score: 1\n    reason: r\n",
			[]rulesProblem{{"net", 5, 36, `bad CIDR "10.0.0.0/33"`}}},
		{"cost over the limit", "format: countersign/v1\nname: b\nrules:\n  - id: costly\n    when: action.details.all(a, action.details.all(b, action.scopes.all(s, action.scopes.all(t, s.contains(t + s) && a == b))))\n    score: 1\n    reason: r\n",
			[]rulesProblem{{"costly", 5, 11, "estimated worst-case cost"}}},
		{"computed regex", "format: countersign/v1\nname: b\nrules:\n  - id: computed\n    when: agent.name.matches(agent.owner)\n    score: 1\n    reason: r\n",
			[]rulesProblem{{"computed", 5, 35, "needs a constant pattern"}}}, // CEL places a field selection at its dot
		{"regex over 256 instructions", "format: countersign/v1\nname: b\nrules:\n  - id: big-regex\n    when: agent.name.matches('[a-z]{300}')\n    score: 1\n    reason: r\n",
			[]rulesProblem{{"big-regex", 5, 30, "compiles to 302 instructions: at most 256 are allowed"}}},
		{"expression over 2 KiB", "format: countersign/v1\nname: b\nrules:\n  - id: long\n    when: " + long + "\n    score: 1\n    reason: r\n",
			[]rulesProblem{{"long", 5, 11, "at most 2048 are allowed"}}},
		{"every problem at once", "format: countersign/v1\nname: b\nrules:\n  - id: one\n    when: user.nme == 'x'\n    score: 1\n    reason: r\n  - id: two\n    when: 'true'\n    reason: r\n",
			[]rulesProblem{{"one", 5, 15, "undefined field 'nme'"}, {"two", 8, 5, "needs a score or a decision"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tn.t = t
			wantProblems(t, tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": c.src, "comment": c.name}), c.want...)
			wantProblems(t, tn.admin("POST", "/admin/rules/validate", map[string]any{"ruleset": c.src}), c.want...)
			wantProblems(t, tn.admin("POST", "/admin/rules/test", map[string]any{"ruleset": c.src}), c.want...)
			wantProblems(t, tn.admin("PUT", "/admin/rules/shadow", map[string]any{"ruleset": c.src}), c.want...)
		})
	}
	tn.t = t
	if r := tn.admin("GET", "/admin/rules/versions", nil); r.Status != 200 || len(r.Body["versions"].([]any)) != 1 {
		t.Fatalf("versions after refusals: %s", r.Raw)
	}
	r := tn.admin("GET", "/admin/rules", nil)
	if r.Status != 200 || r.Body["version"] != float64(1) || !strings.HasPrefix(r.str("ruleset"), "format: countersign/v1") ||
		r.str("name") != "default" || r.str("activated_by") != "countersign" {
		t.Fatalf("active after refusals: %s", r.Raw)
	}
	wantError(t, tn.admin("PUT", "/admin/rules", map[string]any{"comment": "no ruleset"}), 400, "invalid_request")
	wantError(t, tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": noPayments, "colour": "red"}), 400, "invalid_request")
}

func TestRulesFailingTestsGateActivation(t *testing.T) {
	tn := startNode(t, nil)
	failing := strings.Replace(noPayments, "expect: {path: deny, rules: [no-payments]}", "expect: {path: policy}", 1)
	want := rulesProblem{"", 0, 0, `test "a payment is refused" failed: expected path policy, got path deny, level high, rules [no-payments]`}
	wantProblems(t, tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": failing}), want)
	wantProblems(t, tn.admin("POST", "/admin/rules/validate", map[string]any{"ruleset": failing}), want)
	r := tn.admin("POST", "/admin/rules/test", map[string]any{"ruleset": failing})
	res, _ := r.Body["results"].([]any)
	if r.Status != 200 || r.Body["passed"] != float64(1) || r.Body["failed"] != float64(1) || len(res) != 2 {
		t.Fatalf("test: %s", r.Raw)
	}
	if first := res[0].(map[string]any); first["passed"] != false || first["got"].(map[string]any)["path"] != "deny" ||
		first["expected"].(map[string]any)["path"] != "policy" {
		t.Fatalf("first result: %v", first)
	}
	if tn.rulesVersion() != "1" {
		t.Fatalf("version after refusal: %s", tn.rulesVersion())
	}
	// The active ruleset's own tests (ruleset omitted): the default's pass.
	r = tn.admin("POST", "/admin/rules/test", map[string]any{})
	if r.Status != 200 || r.Body["failed"] != float64(0) || r.Body["passed"].(float64) < 8 {
		t.Fatalf("default tests: %s", r.Raw)
	}
	if r := tn.admin("POST", "/admin/rules/validate", map[string]any{"ruleset": noPayments}); r.Status != 200 ||
		r.Body["valid"] != true || r.Body["rules"] != float64(1) {
		t.Fatalf("validate: %s", r.Raw)
	}
	if r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": noPayments}); r.Status != 200 || r.Body["version"] != float64(2) {
		t.Fatalf("activate: %s", r.Raw)
	}
}

func rulesPay(tn *testNode, id, secret string) reply {
	tn.t.Helper()
	return tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice@example.com"},
		"authorization_details": {paymentDetails}})
}

func rulesRead(tn *testNode, id, secret string) reply {
	tn.t.Helper()
	return tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice@example.com"},
		"authorization_details": {readDetails}})
}

func TestRulesActivationAndRollbackReachSecondNode(t *testing.T) {
	a := startNode(t, nil)
	b := startNodeOn(t, a)
	id, secret := setup(t, a)
	if r := rulesPay(b, id, secret); r.Status != 200 {
		t.Fatalf("payment before: %d %s", r.Status, r.Raw)
	}
	r := a.admin("PUT", "/admin/rules", map[string]any{"ruleset": noPayments, "comment": "payments off for the audit"})
	if r.Status != 200 || r.Body["version"] != float64(2) {
		t.Fatalf("activate: %s", r.Raw)
	}
	b.waitVersion("2", 5*time.Second)
	r = rulesPay(b, id, secret)
	wantError(t, r, 403, "access_denied")
	if !strings.Contains(r.str("error_description"), "no-payments") {
		t.Fatalf("deny description: %s", r.Raw)
	}
	r = b.admin("GET", "/admin/rules", nil)
	if r.Body["version"] != float64(2) || r.str("ruleset") != noPayments || r.str("activated_by") != "admin" ||
		r.str("comment") != "payments off for the audit" || r.str("name") != "no-payments" {
		t.Fatalf("rules on b: %s", r.Raw)
	}
	vs, _ := b.admin("GET", "/admin/rules/versions", nil).Body["versions"].([]any)
	if len(vs) != 2 || vs[0].(map[string]any)["version"] != float64(2) || vs[0].(map[string]any)["active"] != true ||
		vs[1].(map[string]any)["active"] != false {
		t.Fatalf("versions: %v", vs)
	}
	metrics := b.do(mustReq(t, "GET", b.URL+"/metrics", "")).Raw
	if !strings.Contains(metrics, `countersign_rules_active_info{name="no-payments",version="2"} 1`) {
		t.Fatalf("metrics of b do not show version 2:\n%s", linesWith(metrics, "countersign_rules"))
	}

	if r := a.admin("POST", "/admin/rules/rollback", map[string]any{"version": 1}); r.Status != 200 || r.Body["version"] != float64(1) {
		t.Fatalf("rollback: %s", r.Raw)
	}
	b.waitVersion("1", 5*time.Second)
	if r := rulesPay(b, id, secret); r.Status != 200 {
		t.Fatalf("payment after rollback: %d %s", r.Status, r.Raw)
	}
	wantError(t, a.admin("POST", "/admin/rules/rollback", map[string]any{"version": 99}), 404, "not_found")
	wantError(t, a.admin("POST", "/admin/rules/rollback", map[string]any{}), 400, "invalid_request")
	if b.rulesVersion() != "1" {
		t.Fatalf("a refused rollback moved b to %s", b.rulesVersion())
	}
}

func linesWith(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A node that missed the announcement (the active pointer moved with no
// message, as when its subscription was down) catches up on its periodic
// check.
func TestRulesNodeThatMissedTheMessageCatchesUp(t *testing.T) {
	a := startNode(t, nil)
	b := startNodeOn(t, a)
	if r := a.admin("PUT", "/admin/rules", map[string]any{"ruleset": noPayments}); r.Status != 200 {
		t.Fatalf("activate: %s", r.Raw)
	}
	b.waitVersion("2", 5*time.Second)
	if err := a.db.Redis().Set(context.Background(), a.cfg.KeyPrefix+"{dir}:rules:active", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	b.waitVersion("1", 15*time.Second) // the periodic check runs every 5 s
}

func TestRulesSimulation(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)

	// Given inputs.
	pay := map[string]any{"user": map[string]any{"id": "alice", "attributes": map[string]any{"spending_limit": 1000}},
		"action": map[string]any{"details": []any{map[string]any{"type": "payment_initiation", "amount": 50, "currency": "EUR"}}}}
	rd := map[string]any{"action": map[string]any{"details": []any{map[string]any{"type": "agent_action", "action": "read"}}}}
	r := tn.admin("POST", "/admin/rules/simulate", map[string]any{"ruleset": noPayments, "requests": []any{pay, rd}})
	sum, _ := r.Body["summary"].(map[string]any)
	if r.Status != 200 || sum["total"] != float64(2) || sum["changed"] != float64(1) ||
		!reflect.DeepEqual(sum["moves"], map[string]any{"policy->deny": float64(1)}) {
		t.Fatalf("simulate given: %s", r.Raw)
	}
	res := r.Body["results"].([]any)
	if c := res[0].(map[string]any)["candidate"].(map[string]any); c["path"] != "deny" {
		t.Fatalf("candidate outcome: %v", c)
	}

	// Audited requests: a first payment (context: the agent's first
	// approved request for alice), reads and a second payment (policy).
	var ids []string
	for _, send := range []func(*testNode, string, string) reply{rulesPay, rulesRead, rulesRead, rulesPay, rulesRead} {
		r := send(tn, id, secret)
		if r.Status != 200 || r.Body["interval"] != float64(1) {
			t.Fatalf("request: %d %s", r.Status, r.Raw)
		}
		ids = append(ids, r.str("auth_req_id"))
		tn.clock.Advance(time.Millisecond)
	}
	r = tn.admin("POST", "/admin/rules/simulate", map[string]any{"ruleset": noPayments, "last": 10})
	sum, _ = r.Body["summary"].(map[string]any)
	if r.Status != 200 || sum["total"] != float64(5) || sum["changed"] != float64(2) ||
		!reflect.DeepEqual(sum["moves"], map[string]any{"context->deny": float64(1), "policy->deny": float64(1)}) {
		t.Fatalf("simulate audited: %s", r.Raw)
	}
	res = r.Body["results"].([]any)
	if res[0].(map[string]any)["request_id"] != ids[4] || res[4].(map[string]any)["request_id"] != ids[0] {
		t.Fatalf("results are not the audited requests, newest first: %s", r.Raw)
	}
	top := r.Body["top_rules"].(map[string]any)["candidate"].([]any)
	if len(top) != 1 || !reflect.DeepEqual(top[0], map[string]any{"id": "no-payments", "hits": float64(2)}) {
		t.Fatalf("top rules: %v", top)
	}
	r = tn.admin("POST", "/admin/rules/simulate", map[string]any{"ruleset": noPayments, "last": 2})
	if r.Body["summary"].(map[string]any)["total"] != float64(2) {
		t.Fatalf("last 2: %s", r.Raw)
	}

	wantError(t, tn.admin("POST", "/admin/rules/simulate", map[string]any{"ruleset": noPayments, "last": 1, "requests": []any{}}), 400, "invalid_request")
	wantError(t, tn.admin("POST", "/admin/rules/simulate", map[string]any{"ruleset": noPayments, "last": 0}), 400, "invalid_request")
	wantError(t, tn.admin("POST", "/admin/rules/simulate", map[string]any{"ruleset": noPayments,
		"requests": []any{map[string]any{"agent": map[string]any{"tier": "x"}}}}), 400, "invalid_request")
	wantProblems(t, tn.admin("POST", "/admin/rules/simulate", map[string]any{"ruleset": "format: countersign/v1\nname: b\nrules:\n  - id: x\n    when: nope\n    score: 1\n    reason: r\n", "last": 5}),
		rulesProblem{"x", 5, 11, "undeclared reference to 'nope'"})
}

func TestRulesShadowDifferencesCounted(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	wantError(t, tn.admin("GET", "/admin/rules/shadow", nil), 404, "not_found")
	r := tn.admin("PUT", "/admin/rules/shadow", map[string]any{"ruleset": noPayments})
	if r.Status != 200 || r.str("name") != "no-payments" || r.Body["total"] != float64(0) || r.str("set_by") != "admin" {
		t.Fatalf("set shadow: %s", r.Raw)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tn.engine.Shadow() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the node never set the shadow ruleset")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The shadow never changes a decision: both payments are approved.
	for _, send := range []func(*testNode, string, string) reply{rulesPay, rulesRead, rulesPay} {
		if r := send(tn, id, secret); r.Status != 200 || r.Body["interval"] != float64(1) {
			t.Fatalf("request under shadow: %d %s", r.Status, r.Raw)
		}
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		r = tn.admin("GET", "/admin/rules/shadow", nil)
		if r.Body["total"] == float64(3) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shadow counts: %s", r.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.Body["changed"] != float64(2) || !reflect.DeepEqual(r.Body["moves"], map[string]any{"context->deny": float64(1), "policy->deny": float64(1)}) ||
		r.str("ruleset") != noPayments {
		t.Fatalf("shadow: %s", r.Raw)
	}
	if r := tn.admin("DELETE", "/admin/rules/shadow", nil); r.Status != 204 {
		t.Fatalf("clear: %d %s", r.Status, r.Raw)
	}
	wantError(t, tn.admin("GET", "/admin/rules/shadow", nil), 404, "not_found")
	wantError(t, tn.admin("DELETE", "/admin/rules/shadow", nil), 404, "not_found")
}

const brittle = `format: countersign/v1
name: brittle
rules:
  - id: vip-limit
    when: action.amount > double(user.attributes.vip_limit)
    score: 10
    reason: Above the VIP limit.
tests:
  - name: a user without vip_limit goes to the phone
    input:
      action: {details: [{type: payment_initiation, amount: 5}]}
    expect: {path: device, rules: [vip-limit]}
`

// An expression that fails at run time never approves: the request waits
// for the phone, and the decision names the rule.
func TestRulesRuntimeErrorsFailClosed(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	if r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": brittle}); r.Status != 200 {
		t.Fatalf("activate: %s", r.Raw)
	}
	tn.waitVersion("2", 5*time.Second)
	r := rulesPay(tn, id, secret)
	if r.Status != 200 || r.Body["interval"] != float64(5) {
		t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	wantError(t, tn.poll(id, secret, r.str("auth_req_id")), 400, "authorization_pending")
	a := tn.admin("GET", "/admin/audit?request="+url.QueryEscape(r.str("auth_req_id"))+"&type=risk.decision", nil)
	entries, _ := a.Body["entries"].([]any)
	if len(entries) != 1 {
		t.Fatalf("audit: %s", a.Raw)
	}
	risk := entries[0].(map[string]any)["risk"].(map[string]any)
	m := risk["rules"].([]any)[0].(map[string]any)
	if risk["path"] != "device" || m["id"] != "vip-limit" || m["error"] == nil {
		t.Fatalf("recorded decision: %v", risk)
	}
}

// An activation or a rollback is in force on the node that answered it as
// soon as the call returns: a deny rule activated there refuses the very
// next request, and after the rollback the next one passes again. Repeated,
// because without the swap before the answer pub/sub only sometimes wins.
func TestRulesActivationInForceWhenTheCallReturns(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	for i := range 5 {
		r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": noPayments})
		if r.Status != 200 {
			t.Fatalf("activate: %s", r.Raw)
		}
		r = rulesPay(tn, id, secret)
		wantError(t, r, 403, "access_denied")
		if !strings.Contains(r.str("error_description"), "no-payments") {
			t.Fatalf("round %d: deny description: %s", i, r.Raw)
		}
		if r := tn.admin("POST", "/admin/rules/rollback", map[string]any{"version": 1}); r.Status != 200 {
			t.Fatalf("rollback: %s", r.Raw)
		}
		if r := rulesPay(tn, id, secret); r.Status != 200 {
			t.Fatalf("round %d: payment right after the rollback: %d %s", i, r.Status, r.Raw)
		}
	}
}

// The ruleset: 20 rules of 30 matches() terms whose short pattern
// compiles to about 3,000 instructions. It was accepted and then took 10 s
// per request on every node; now validate and activate refuse it, naming
// every rule at every pattern, and nothing changes.
func TestRulesHugeRegexRefused(t *testing.T) {
	tn := startNode(t, nil)
	var b strings.Builder
	b.WriteString("format: countersign/v1\nname: stall\nrules:\n")
	term := `action.binding_message.matches(r'(\pL|\pN|\pP|\pS|\pM){1000}$')`
	for i := range 20 {
		fmt.Fprintf(&b, "  - id: stall-%d\n    when: %s\n    score: 1\n    reason: r\n", i, strings.TrimSuffix(strings.Repeat(term+" || ", 30), " || "))
	}
	for _, call := range []struct{ method, path string }{{"POST", "/admin/rules/validate"}, {"PUT", "/admin/rules"}} {
		r := tn.admin(call.method, call.path, map[string]any{"ruleset": b.String()})
		if r.Status != 400 || r.str("error") != "invalid_ruleset" {
			t.Fatalf("%s %s: %d %.300s", call.method, call.path, r.Status, r.Raw)
		}
		ps, _ := r.Body["problems"].([]any)
		if len(ps) != 600 {
			t.Fatalf("%s: %d problems, want 600", call.path, len(ps))
		}
		for i, p := range []any{ps[0], ps[599]} {
			want := []rulesProblem{{"stall-0", 5, 42, "instructions: at most 256 are allowed"},
				{"stall-19", 81, 42 + 29*(len(term)+4), "instructions: at most 256 are allowed"}}[i]
			m := p.(map[string]any)
			if m["rule"] != want.rule || m["line"] != float64(want.line) || m["column"] != float64(want.col) ||
				!strings.Contains(m["message"].(string), want.msg) {
				t.Errorf("%s: problem %v, want %+v", call.path, m, want)
			}
		}
	}
	if v := tn.rulesVersion(); v != "1" {
		t.Fatalf("the refused ruleset moved the node to version %s", v)
	}
}
