package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// authzenSchemas are the AuthZEN 1.0 request and response schemas (in
// testdata, written from the specification's information model).
type authzenSchemas struct{ request, response, batch *jsonschema.Schema }

func loadAuthZENSchemas(t *testing.T) authzenSchemas {
	t.Helper()
	c := jsonschema.NewCompiler()
	load := func(name string) *jsonschema.Schema {
		f, err := os.Open(filepath.Join("testdata", "authzen", name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(name, doc); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return authzenSchemas{load("evaluation-request.schema.json"), load("evaluation-response.schema.json"),
		load("evaluations-response.schema.json")}
}

func validJSON(t *testing.T, s *jsonschema.Schema, raw string) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	if err := s.Validate(v); err != nil {
		t.Fatalf("%s does not match %s: %v", raw, s.Location, err)
	}
}

// evaluate posts an AuthZEN request with client_secret_basic.
func (tn *testNode) evaluate(path, id, secret string, body any) reply {
	tn.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", tn.URL+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return tn.do(req)
}

func startWithRules(t testing.TB, ruleset string) *testNode {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(ruleset), 0o600); err != nil {
		t.Fatal(err)
	}
	return startNode(t, func(c *Config) { c.RulesFile = path })
}

func pepClient(tn *testNode, extra map[string]any) (string, string) {
	meta := map[string]any{"client_id": "gateway", "client_name": "API gateway", "policy_enforcement_point": true}
	for k, v := range extra {
		meta[k] = v
	}
	return tn.client(meta)
}

// The AuthZEN interop "Todo" scenario: its users registered as ordinary
// users, its 40 published decisions answered by rules/examples/authzen-todo.yaml.
func TestAuthZENTodoScenario(t *testing.T) {
	src, err := os.ReadFile("../../rules/examples/authzen-todo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tn := startWithRules(t, string(src))
	sc := loadAuthZENSchemas(t)
	users := []struct{ name, email, roles, want string }{
		// want: read_user(beth), read_user(self), read_todos, create,
		// update(rick's), update(own), delete(rick's), delete(own).
		{"Rick Sanchez", "rick@the-citadel.com", "admin evil_genius", "11111111"},
		{"Morty Smith", "morty@the-citadel.com", "editor", "11110101"},
		{"Summer Smith", "summer@the-smiths.com", "editor", "11110101"},
		{"Beth Smith", "beth@the-smiths.com", "viewer", "11100000"},
		{"Jerry Smith", "jerry@the-smiths.com", "viewer", "11100000"},
	}
	for _, u := range users {
		id, _, _ := strings.Cut(u.email, "@")
		tn.user(map[string]any{"id": id, "email": u.email,
			"attributes": map[string]any{"name": u.name, "email": u.email, "roles": strings.Fields(u.roles)}})
	}
	pep, secret := pepClient(tn, map[string]any{"grant_types": []string{"urn:openid:params:grant-type:ciba"}})
	var batch []any
	var want []bool
	for _, u := range users {
		subject := map[string]any{"type": "user", "id": u.email, "identity": "pid-of-" + u.email}
		todo := func(owner string) map[string]any {
			return map[string]any{"type": "todo", "id": "todo-of-" + owner, "ownerID": owner}
		}
		reqs := []map[string]any{
			{"action": map[string]any{"name": "can_read_user"}, "resource": map[string]any{"type": "user", "id": "beth@the-smiths.com", "userID": "beth@the-smiths.com"}},
			{"action": map[string]any{"name": "can_read_user"}, "resource": map[string]any{"type": "user", "id": u.email, "userID": u.email}},
			{"action": map[string]any{"name": "can_read_todos"}, "resource": map[string]any{"type": "todo", "id": "todo-1"}},
			{"action": map[string]any{"name": "can_create_todo"}, "resource": map[string]any{"type": "todo", "id": "todo-1"}},
			{"action": map[string]any{"name": "can_update_todo"}, "resource": todo("rick@the-citadel.com")},
			{"action": map[string]any{"name": "can_update_todo"}, "resource": todo(u.email)},
			{"action": map[string]any{"name": "can_delete_todo"}, "resource": todo("rick@the-citadel.com")},
			{"action": map[string]any{"name": "can_delete_todo"}, "resource": todo(u.email)},
		}
		for i, r := range reqs {
			r["subject"] = subject
			b, _ := json.Marshal(r)
			validJSON(t, sc.request, string(b))
			got := tn.evaluate("/access/v1/evaluation", pep, secret, r)
			if got.Status != 200 {
				t.Fatalf("%s %v: %d %s", u.email, r, got.Status, got.Raw)
			}
			validJSON(t, sc.response, got.Raw)
			if w := u.want[i] == '1'; got.Body["decision"] != w {
				t.Errorf("%s %s on %v: decision %v, want %v (%s)", u.email, r["action"], r["resource"], got.Body["decision"], w, got.Raw)
			}
			batch = append(batch, r)
			want = append(want, u.want[i] == '1')
		}
	}
	// The same 40 in one boxcarred request, in order.
	got := tn.evaluate("/access/v1/evaluations", pep, secret, map[string]any{"evaluations": batch})
	validJSON(t, sc.batch, got.Raw)
	evs, _ := got.Body["evaluations"].([]any)
	if len(evs) != len(want) {
		t.Fatalf("batch: %d %s", got.Status, got.Raw)
	}
	for i, e := range evs {
		if e.(map[string]any)["decision"] != want[i] {
			t.Errorf("batch entry %d: %v, want %v", i, e, want[i])
		}
	}
}

const authzenRules = `format: countersign/v1
name: gateway
thresholds: {medium: 30, high: 60}
rules:
  - id: no-repo-deletion
    when: request.kind == 'authzen' && request.authzen.action.name == 'delete_repo'
    decision: deny
    reason: Repositories are never deleted through the gateway.
  - id: transfers-on-the-phone
    when: request.kind == 'authzen' && request.authzen.action.name == 'transfer'
    decision: require_device
    reason: Transfers need your approval.
  - id: rogue-agent
    when: agent.client_id == 'rogue'
    decision: deny
    reason: This agent is blocked.
  - id: large-resource
    when: request.kind == 'authzen' && request.authzen.resource.?properties.?size.orValue(0) > 100
    score: 10
    reason: A large resource.
`

func TestAuthZENDecisionPaths(t *testing.T) {
	tn := startWithRules(t, authzenRules)
	sc := loadAuthZENSchemas(t)
	setup(t, tn)
	tn.client(map[string]any{"client_id": "rogue", "client_name": "Rogue"})
	pep, secret := pepClient(tn, nil)
	alice := map[string]any{"type": "user", "id": "alice@example.com"}
	eval := func(action string, extra map[string]any) reply {
		t.Helper()
		body := map[string]any{"subject": alice, "action": map[string]any{"name": action},
			"resource": map[string]any{"type": "repo", "id": "countersign", "properties": map[string]any{"size": 500}}}
		for k, v := range extra {
			body[k] = v
		}
		r := tn.evaluate("/access/v1/evaluation", pep, secret, body)
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", action, r.Status, r.Raw)
		}
		validJSON(t, sc.response, r.Raw)
		return r
	}
	if r := eval("read", nil); r.Body["decision"] != true || r.Body["context"] != nil {
		t.Fatalf("policy path: %s", r.Raw)
	}
	r := eval("delete_repo", nil)
	ctx, _ := r.Body["context"].(map[string]any)
	admin, _ := ctx["reason_admin"].(map[string]any)
	user, _ := ctx["reason_user"].(map[string]any)
	if r.Body["decision"] != false || !strings.Contains(admin["403"].(string), "no-repo-deletion") ||
		user["403"] != "Repositories are never deleted through the gateway." {
		t.Fatalf("deny path: %s", r.Raw)
	}
	r = eval("transfer", nil)
	ctx, _ = r.Body["context"].(map[string]any)
	if r.Body["decision"] != false || ctx["approval_required"] != true || ctx["acr"] != "urn:countersign:acr:device" || ctx["approval"] != nil {
		t.Fatalf("device path without request_approval: %s", r.Raw)
	}
	// An agent subject acting for alice is judged as that agent.
	rogue := map[string]any{"type": "agent", "id": "rogue", "properties": map[string]any{"on_behalf_of": "alice"}}
	if r := eval("read", map[string]any{"subject": rogue}); r.Body["decision"] != false ||
		!strings.Contains(r.Raw, "rogue-agent") {
		t.Fatalf("agent subject: %s", r.Raw)
	}
	if r := eval("read", map[string]any{"subject": map[string]any{"type": "agent", "id": "rogue"}}); r.Body["decision"] != false ||
		!strings.Contains(r.Raw, `"status":400`) {
		t.Fatalf("agent without on_behalf_of: %s", r.Raw)
	}
	if r := eval("read", map[string]any{"subject": map[string]any{"type": "user", "id": "nobody@example.com"}}); r.Body["decision"] != false ||
		!strings.Contains(r.Raw, `"status":404`) {
		t.Fatalf("unknown subject: %s", r.Raw)
	}
	// The rules saw the request: audited with the PEP, counted in /metrics.
	a := tn.admin("GET", "/admin/audit?type=authzen.decision&user=alice", nil)
	entries, _ := a.Body["entries"].([]any)
	if len(entries) < 4 {
		t.Fatalf("audit: %s", a.Raw)
	}
	last := entries[len(entries)-1].(map[string]any)
	if last["agent"] != "rogue" || !strings.Contains(last["detail"].(string), "pep gateway") || last["path"] != "deny" {
		t.Fatalf("audit entry: %v", last)
	}
	m := tn.do(mustReq(t, "GET", tn.URL+"/metrics", ""))
	if !strings.Contains(m.Raw, `rule="no-repo-deletion"`) {
		t.Fatalf("metrics do not count the AuthZEN decisions by rule")
	}
}

// A PEP registered for the CIBA grant asks the PDP to start the phone
// approval; it redeems the auth_req_id at /token like any CIBA client.
func TestAuthZENRequestApprovalOnThePhone(t *testing.T) {
	tn := startWithRules(t, authzenRules)
	setup(t, tn)
	pep, secret := pepClient(tn, map[string]any{"grant_types": []string{"urn:openid:params:grant-type:ciba"}})
	ph := tn.enrollPhone("alice", "Pixel")
	body := map[string]any{"subject": map[string]any{"type": "user", "id": "alice"},
		"action":   map[string]any{"name": "transfer", "properties": map[string]any{"amount": 120}},
		"resource": map[string]any{"type": "account", "id": "DE89 3704"},
		"context":  map[string]any{"request_approval": true, "binding_message": "Transfer 120 EUR"}}
	r := tn.evaluate("/access/v1/evaluation", pep, secret, body)
	ctx, _ := r.Body["context"].(map[string]any)
	ap, _ := ctx["approval"].(map[string]any)
	authReqID, _ := ap["auth_req_id"].(string)
	if r.Status != 200 || r.Body["decision"] != false || authReqID == "" || ap["expires_in"] != float64(300) || ap["interval"] != float64(5) {
		t.Fatalf("approval: %d %s", r.Status, r.Raw)
	}
	push := waitPush(t, ph, authReqID)
	if push.BindingMessage != "Transfer 120 EUR" || push.Agent.ClientID != pep || push.Summary != "transfer account DE89 3704" {
		t.Fatalf("push: %+v", push)
	}
	// Repeated while pending: the same request, no second push.
	r2 := tn.evaluate("/access/v1/evaluation", pep, secret, body)
	if !strings.Contains(r2.Raw, authReqID) {
		t.Fatalf("repeat: %s", r2.Raw)
	}
	select {
	case p := <-ph.Pushes():
		t.Fatalf("second push: %+v", p)
	default:
	}
	wantError(t, tn.poll(pep, secret, authReqID), 400, "authorization_pending")
	if err := ph.Decide(context.Background(), authReqID, "approve"); err != nil {
		t.Fatal(err)
	}
	tok := tn.poll(pep, secret, authReqID)
	if tok.Status != 200 {
		t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	at := tn.verify(tok.str("access_token"), "at+jwt")
	ad, _ := at["authorization_details"].([]any)
	if at["sub"] != "alice" || len(ad) != 1 || ad[0].(map[string]any)["type"] != "authzen_evaluation" ||
		!strings.Contains(tok.Raw, `"name":"transfer"`) {
		t.Fatalf("token claims: %v", at)
	}
	// Once decided, the same evaluation starts a new approval.
	r3 := tn.evaluate("/access/v1/evaluation", pep, secret, body)
	if strings.Contains(r3.Raw, authReqID) || !strings.Contains(r3.Raw, "auth_req_id") {
		t.Fatalf("after the decision: %s", r3.Raw)
	}
	// A PEP without the CIBA grant gets the device answer and an error.
	other, osecret := tn.client(map[string]any{"client_id": "gateway-2", "policy_enforcement_point": true,
		"grant_types": []string{"urn:ietf:params:oauth:grant-type:token-exchange"}})
	r4 := tn.evaluate("/access/v1/evaluation", other, osecret, body)
	if r4.Body["decision"] != false || !strings.Contains(r4.Raw, `"status":403`) || strings.Contains(r4.Raw, "auth_req_id") {
		t.Fatalf("PEP without CIBA: %s", r4.Raw)
	}
}

func TestAuthZENBatchSemantics(t *testing.T) {
	tn := startWithRules(t, authzenRules)
	sc := loadAuthZENSchemas(t)
	setup(t, tn)
	pep, secret := pepClient(tn, nil)
	ev := func(action string) map[string]any { return map[string]any{"action": map[string]any{"name": action}} }
	three := []any{ev("read"), ev("delete_repo"), ev("read")}
	for _, c := range []struct {
		semantic string
		list     []any
		want     []bool
	}{
		{"", three, []bool{true, false, true}},
		{"execute_all", three, []bool{true, false, true}},
		{"deny_on_first_deny", three, []bool{true, false}},
		{"permit_on_first_permit", []any{ev("delete_repo"), ev("read"), ev("delete_repo")}, []bool{false, true}},
	} {
		body := map[string]any{"subject": map[string]any{"type": "user", "id": "alice"},
			"resource": map[string]any{"type": "repo", "id": "r1"}, "evaluations": c.list}
		if c.semantic != "" {
			body["options"] = map[string]any{"evaluations_semantic": c.semantic}
		}
		r := tn.evaluate("/access/v1/evaluations", pep, secret, body)
		validJSON(t, sc.batch, r.Raw)
		evs, _ := r.Body["evaluations"].([]any)
		if len(evs) != len(c.want) {
			t.Fatalf("%s: %s", c.semantic, r.Raw)
		}
		for i, e := range evs {
			if e.(map[string]any)["decision"] != c.want[i] {
				t.Fatalf("%s entry %d: %s", c.semantic, i, r.Raw)
			}
		}
	}
	// An entry overrides a default; without evaluations the body is one.
	r := tn.evaluate("/access/v1/evaluations", pep, secret, map[string]any{"subject": map[string]any{"type": "user", "id": "alice"},
		"action": ev("delete_repo")["action"], "resource": map[string]any{"type": "repo", "id": "r1"},
		"evaluations": []any{map[string]any{}, ev("read")}})
	if !strings.Contains(r.Raw, `{"evaluations":[{"decision":false`) || !strings.HasSuffix(strings.TrimSpace(r.Raw), `{"decision":true}]}`) {
		t.Fatalf("defaults: %s", r.Raw)
	}
}

func TestAuthZENRefusals(t *testing.T) {
	tn := startWithRules(t, authzenRules)
	setup(t, tn)
	pep, secret := pepClient(tn, nil)
	good := map[string]any{"subject": map[string]any{"type": "user", "id": "alice"},
		"action": map[string]any{"name": "read"}, "resource": map[string]any{"type": "repo", "id": "r1"}}
	// Discovery (AuthZEN 1.0 §"Policy Decision Point Metadata").
	d := tn.do(mustReq(t, "GET", tn.URL+"/.well-known/authzen-configuration", ""))
	if d.Status != 200 || d.str("policy_decision_point") != tn.URL || d.str("access_evaluation_endpoint") != tn.URL+"/access/v1/evaluation" ||
		d.str("access_evaluations_endpoint") != tn.URL+"/access/v1/evaluations" {
		t.Fatalf("metadata: %d %s", d.Status, d.Raw)
	}
	// X-Request-ID is echoed.
	b, _ := json.Marshal(good)
	req := mustReq(t, "POST", tn.URL+"/access/v1/evaluation", string(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-ID", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
	req.SetBasicAuth(pep, secret)
	if r := tn.do(req); r.Status != 200 || r.Header.Get("X-Request-ID") != "bfe9eb29-ab87-4ca3-be83-a1d5d8305716" {
		t.Fatalf("request id: %d %v", r.Status, r.Header)
	}
	// client_secret_post as members of the JSON body.
	postID, postSecret := tn.client(map[string]any{"client_id": "gateway-post", "policy_enforcement_point": true,
		"token_endpoint_auth_method": "client_secret_post"})
	post := map[string]any{"client_id": postID, "client_secret": postSecret}
	for k, v := range good {
		post[k] = v
	}
	if r := tn.evaluate("/access/v1/evaluation", "", "", post); r.Status != 200 || r.Body["decision"] != true {
		t.Fatalf("client_secret_post: %d %s", r.Status, r.Raw)
	}
	wantError(t, tn.evaluate("/access/v1/evaluation", "", "", good), 401, "invalid_client")
	wantError(t, tn.evaluate("/access/v1/evaluation", pep, "wrong", good), 401, "invalid_client")
	agentID, agentSecret := tn.client(map[string]any{"client_id": "not-a-pep"})
	wantError(t, tn.evaluate("/access/v1/evaluation", agentID, agentSecret, good), 403, "access_denied")
	// An identified caller's refusal is audited.
	if a := tn.admin("GET", "/admin/audit?type=evaluation.refused&agent=not-a-pep", nil); !strings.Contains(a.Raw, `"error":"access_denied"`) {
		t.Fatalf("refusal not audited: %s", a.Raw)
	}
	without := func(k string) map[string]any {
		m := map[string]any{}
		for kk, v := range good {
			if kk != k {
				m[kk] = v
			}
		}
		return m
	}
	for name, body := range map[string]any{
		"no subject":      without("subject"),
		"no action":       without("action"),
		"no resource":     without("resource"),
		"action no name":  map[string]any{"subject": good["subject"], "resource": good["resource"], "action": map[string]any{"properties": map[string]any{}}},
		"subject no id":   map[string]any{"subject": map[string]any{"type": "user"}, "action": good["action"], "resource": good["resource"]},
		"array body":      []any{good},
		"string context":  map[string]any{"subject": good["subject"], "action": good["action"], "resource": good["resource"], "context": "x"},
		"properties list": map[string]any{"subject": map[string]any{"type": "user", "id": "alice", "properties": []any{}}, "action": good["action"], "resource": good["resource"]},
	} {
		r := tn.evaluate("/access/v1/evaluation", pep, secret, body)
		if r.Status != 400 || r.str("error") != "invalid_request" {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	wantError(t, tn.evaluate("/access/v1/evaluations", pep, secret, map[string]any{"evaluations": []any{good},
		"options": map[string]any{"evaluations_semantic": "sometimes"}}), 400, "invalid_request")
	wantError(t, tn.evaluate("/access/v1/evaluations", pep, secret, map[string]any{"subject": good["subject"],
		"evaluations": []any{map[string]any{"action": good["action"]}}}), 400, "invalid_request")
	form := tn.post("/access/v1/evaluation", pep, secret, url.Values{"subject": {"alice"}})
	wantError(t, form, 400, "invalid_request")
}
