package main

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

const exchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
const accessTokenType = "urn:ietf:params:oauth:token-type:access_token"

const paymentDetails = `[{"type":"payment_initiation","action":"transfer","amount":100,"currency":"EUR","creditor":{"name":"ACME"}}]`

// chainSetup registers a planner (CIBA) that delegates to a booker, which
// delegates to a payer, a resource server, and alice; it returns the
// planner's token for a 100 EUR payment approved by policy.
type chain struct {
	tn                             *testNode
	planner, booker, payer, rs     string
	plannerS, bookerS, payerS, rsS string
	token                          string
}

func newChain(t *testing.T, tn *testNode) *chain {
	t.Helper()
	c := &chain{tn: tn}
	c.payer, c.payerS = tn.client(map[string]any{"client_id": "payer", "grant_types": []string{exchangeGrant}})
	c.booker, c.bookerS = tn.client(map[string]any{"client_id": "booker", "grant_types": []string{exchangeGrant}, "delegates_to": []string{"payer"}})
	c.planner, c.plannerS = tn.client(map[string]any{"client_id": "planner", "delegates_to": []string{"booker"},
		"agent": map[string]any{"trust_tier": "first_party"}})
	c.rs, c.rsS = tn.client(map[string]any{"client_id": "bank-api", "resource_server": true})
	tn.user(map[string]any{"id": "alice", "attributes": map[string]any{"spending_limit": 1000}})
	// Make the planner a known payer so a 100 EUR payment is low risk.
	r := tn.post("/bc-authorize", c.planner, c.plannerS, url.Values{"scope": {"openid payments"}, "login_hint": {"alice"},
		"authorization_details": {paymentDetails}})
	if r.Status != 200 {
		t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	if r.Body["interval"] != float64(1) {
		// A first payment may need the device in the default rules; approve
		// through a phone then.
		ph := tn.enrollPhone("alice", "Phone")
		waitPush(t, ph, r.str("auth_req_id"))
		if err := ph.Decide(t.Context(), r.str("auth_req_id"), "approve"); err != nil {
			t.Fatal(err)
		}
		tn.clock.Advance(6 * time.Second)
	}
	tok := tn.post("/token", c.planner, c.plannerS, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {r.str("auth_req_id")}})
	if tok.Status != 200 {
		t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	c.token = tok.str("access_token")
	return c
}

func (c *chain) exchange(id, secret, subject string, extra ...string) reply {
	c.tn.t.Helper()
	f := url.Values{"grant_type": {exchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessTokenType}}
	for i := 0; i < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return c.tn.post("/token", id, secret, f)
}

func (c *chain) introspect(tok string) reply {
	c.tn.t.Helper()
	r := c.tn.post("/introspect", c.rs, c.rsS, url.Values{"token": {tok}})
	if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
		c.tn.t.Fatalf("introspect: %d %s", r.Status, r.Raw)
	}
	return r
}

func TestDelegationChainAttenuatesAtEachHop(t *testing.T) {
	tn := startNode(t, nil)
	c := newChain(t, tn)
	// A three-deep chain over mail: each hop narrows the actions and scope.
	r := tn.post("/bc-authorize", c.planner, c.plannerS, url.Values{"scope": {"openid mail"}, "login_hint": {"alice"},
		"authorization_details": {`[{"type":"agent_action","action":"read","resource":"mailbox","actions":["read","list","archive"]}]`}})
	tok := tn.post("/token", c.planner, c.plannerS, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {r.str("auth_req_id")}})
	if tok.Status != 200 {
		t.Fatalf("planner token: %d %s", tok.Status, tok.Raw)
	}
	r = c.exchange(c.booker, c.bookerS, tok.str("access_token"), "authorization_details",
		`[{"type":"agent_action","action":"read","resource":"mailbox","actions":["read","list"]}]`)
	if r.Status != 200 || r.str("issued_token_type") != accessTokenType || r.str("token_type") != "Bearer" {
		t.Fatalf("hop 1: %d %s", r.Status, r.Raw)
	}
	hop1 := r.str("access_token")
	at := tn.verify(hop1, "at+jwt")
	act := at["act"].(map[string]any)
	if at["sub"] != "alice" || at["client_id"] != "booker" || act["sub"] != "booker" || act["act"].(map[string]any)["sub"] != "planner" {
		t.Fatalf("hop 1 claims: %v", at)
	}
	r = c.exchange(c.payer, c.payerS, hop1, "scope", "mail", "authorization_details",
		`[{"type":"agent_action","action":"read","resource":"mailbox","actions":["read"]}]`)
	if r.Status != 200 {
		t.Fatalf("hop 2: %d %s", r.Status, r.Raw)
	}
	hop2 := r.str("access_token")
	in := c.introspect(hop2)
	if in.Body["active"] != true || in.str("scope") != "mail" || in.str("client_id") != "payer" || in.str("sub") != "alice" {
		t.Fatalf("introspect hop 2: %s", in.Raw)
	}
	a := in.Body["act"].(map[string]any)
	if a["sub"] != "payer" || a["act"].(map[string]any)["sub"] != "booker" || a["act"].(map[string]any)["act"].(map[string]any)["sub"] != "planner" {
		t.Fatalf("act chain: %v", in.Body["act"])
	}
	if acts := in.Body["authorization_details"].([]any)[0].(map[string]any)["actions"].([]any); len(acts) != 1 || acts[0] != "read" {
		t.Fatalf("details: %v", in.Body["authorization_details"])
	}
	if in.str("grant_id") != tn.verify(tok.str("access_token"), "at+jwt")["grant_id"] {
		t.Fatal("exchanged token lost its grant id")
	}
	// Lifetime never past the subject's.
	if tn.verify(hop2, "at+jwt")["exp"].(float64) > tn.verify(tok.str("access_token"), "at+jwt")["exp"].(float64) {
		t.Fatal("exchanged token outlives its subject")
	}
	// Payments: the booker may narrow 100 EUR to 80 (medium, context checks
	// pass); the payer's first payment two hops deep is high risk and refused.
	r = c.exchange(c.booker, c.bookerS, c.token, "authorization_details",
		`[{"type":"payment_initiation","action":"transfer","amount":80,"currency":"EUR","creditor":{"name":"ACME"}}]`)
	if r.Status != 200 || tn.verify(r.str("access_token"), "at+jwt")["authorization_details"].([]any)[0].(map[string]any)["amount"] != float64(80) {
		t.Fatalf("payment hop 1: %d %s", r.Status, r.Raw)
	}
	high := c.exchange(c.payer, c.payerS, r.str("access_token"))
	wantError(t, high, 400, "invalid_request")
	if !strings.Contains(high.str("error_description"), "start a CIBA request") {
		t.Fatalf("high-risk refusal: %s", high.Raw)
	}
}

func TestDelegationRefusals(t *testing.T) {
	tn := startNode(t, nil)
	c := newChain(t, tn)
	hop1 := c.exchange(c.booker, c.bookerS, c.token).str("access_token")
	cases := []struct {
		name, id, secret, subject string
		extra                     []string
		code                      string
	}{
		{"wider scope", c.booker, c.bookerS, c.token, []string{"scope", "openid payments admin"}, "invalid_scope"},
		{"larger amount", c.booker, c.bookerS, c.token, []string{"authorization_details", `[{"type":"payment_initiation","action":"transfer","amount":101,"currency":"EUR","creditor":{"name":"ACME"}}]`}, "invalid_authorization_details"},
		{"another action", c.booker, c.bookerS, c.token, []string{"authorization_details", `[{"type":"payment_initiation","action":"refund","amount":10,"currency":"EUR","creditor":{"name":"ACME"}}]`}, "invalid_authorization_details"},
		{"another creditor", c.booker, c.bookerS, c.token, []string{"authorization_details", `[{"type":"payment_initiation","action":"transfer","amount":10,"currency":"EUR","creditor":{"name":"Evil"}}]`}, "invalid_authorization_details"},
		{"not in delegates_to", c.payer, c.payerS, c.token, nil, "invalid_request"},
		{"forged subject", c.booker, c.bookerS, c.token[:len(c.token)-4] + "AAAA", nil, "invalid_request"},
		{"garbage subject", c.booker, c.bookerS, "nope", nil, "invalid_request"},
		{"wrong subject type", c.booker, c.bookerS, c.token, []string{"subject_token_type", "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"},
		{"foreign audience", c.booker, c.bookerS, c.token, []string{"audience", "https://elsewhere.example"}, "invalid_target"},
		{"caller without exchange grant", c.planner, c.plannerS, c.token, nil, "unauthorized_client"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, c.exchange(tc.id, tc.secret, tc.subject, tc.extra...), 400, tc.code)
		})
	}
	// Depth limit: the payer may act at depth 2 by default; with a limit of 1
	// on the booker the second hop is refused.
	if r := tn.admin("PATCH", "/admin/clients/booker", map[string]any{"max_delegation_depth": 1}); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	r := c.exchange(c.payer, c.payerS, hop1)
	wantError(t, r, 400, "invalid_request")
	// Expired subject token.
	tn.clock.Advance(10 * time.Minute)
	wantError(t, c.exchange(c.booker, c.bookerS, c.token), 400, "invalid_request")
}

func TestMayActHoldsAtEveryHop(t *testing.T) {
	tn := startNode(t, nil)
	c := newChain(t, tn)
	// Alice now lets only the planner and the booker act, the booker up to 20 EUR.
	if r := tn.admin("PATCH", "/admin/users/alice", map[string]any{"may_act": []map[string]any{
		{"client_id": "planner"}, {"client_id": "booker", "max_amount": 20}}}); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	wantError(t, c.exchange(c.booker, c.bookerS, c.token), 400, "invalid_request")
	r := c.exchange(c.booker, c.bookerS, c.token, "authorization_details",
		`[{"type":"payment_initiation","action":"transfer","amount":20,"currency":"EUR","creditor":{"name":"ACME"}}]`)
	if r.Status != 200 {
		t.Fatalf("within may_act: %d %s", r.Status, r.Raw)
	}
	wantError(t, c.exchange(c.payer, c.payerS, r.str("access_token")), 400, "invalid_request")
	// may_act at /bc-authorize: an unlisted agent is refused with 403.
	other, otherS := tn.client(map[string]any{"client_id": "stranger"})
	wantError(t, tn.post("/bc-authorize", other, otherS, url.Values{"scope": {"openid"}, "login_hint": {"alice"}}), 403, "access_denied")
}

func TestRevocationReachesIntrospectionAtOnce(t *testing.T) {
	tn := startNode(t, nil)
	c := newChain(t, tn)
	hop1 := c.exchange(c.booker, c.bookerS, c.token).str("access_token")
	if c.introspect(hop1).Body["active"] != true {
		t.Fatal("hop 1 inactive before revocation")
	}
	// A client that is not a resource server learns nothing.
	if r := tn.post("/introspect", c.booker, c.bookerS, url.Values{"token": {hop1}}); r.Raw != `{"active":false}`+"\n" && r.Body["active"] != false {
		t.Fatalf("non-RS introspection: %s", r.Raw)
	}
	// RFC 7009: the booker revokes its own token; others' tokens are ignored.
	if r := tn.post("/revoke", c.payer, c.payerS, url.Values{"token": {hop1}}); r.Status != 200 {
		t.Fatalf("revoke by stranger: %d", r.Status)
	}
	if c.introspect(hop1).Body["active"] != true {
		t.Fatal("a stranger's revocation took effect")
	}
	if r := tn.post("/revoke", c.booker, c.bookerS, url.Values{"token": {hop1}}); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	if c.introspect(hop1).Body["active"] != false {
		t.Fatal("revoked token still active")
	}
	if c.introspect(c.token).Body["active"] != true {
		t.Fatal("revoking one token revoked its subject")
	}
	// A revoked subject cannot be exchanged.
	wantError(t, c.exchange(c.payer, c.payerS, hop1), 400, "invalid_request")

	// Grant revocation from the phone kills the token and everything exchanged from it.
	hop1b := c.exchange(c.booker, c.bookerS, c.token).str("access_token")
	ph := tn.enrollPhone("alice", "Revoker")
	auth, _ := ph.DeviceJWT(tn.clock.Now())
	req := mustReq(t, "GET", tn.URL+"/device/grants", "")
	req.Header.Set("Authorization", "Device "+auth)
	g := tn.do(req)
	grants, _ := g.Body["grants"].([]any)
	if g.Status != 200 || len(grants) != 1 || grants[0].(map[string]any)["client_id"] != "planner" {
		t.Fatalf("device grants: %d %s", g.Status, g.Raw)
	}
	grantID := grants[0].(map[string]any)["grant_id"].(string)
	auth, _ = ph.DeviceJWT(tn.clock.Now())
	req = mustReq(t, "POST", tn.URL+"/device/grants/"+grantID+"/revoke", "")
	req.Header.Set("Authorization", "Device "+auth)
	if r := tn.do(req); r.Status != 204 {
		t.Fatalf("revoke grant: %d %s", r.Status, r.Raw)
	}
	for _, tok := range []string{c.token, hop1b} {
		if c.introspect(tok).Body["active"] != false {
			t.Fatal("token of a revoked grant still active")
		}
	}
}

func TestAgentKillSwitch(t *testing.T) {
	tn := startNode(t, nil)
	c := newChain(t, tn)
	hop1 := c.exchange(c.booker, c.bookerS, c.token).str("access_token")
	tn.user(map[string]any{"id": "bob"})
	// Per user: bob's revocation leaves alice's tokens alone.
	if r := tn.admin("POST", "/admin/agents/booker/revoke", map[string]any{"user_id": "bob"}); r.Status != 200 {
		t.Fatalf("revoke for bob: %d %s", r.Status, r.Raw)
	}
	if c.introspect(hop1).Body["active"] != true {
		t.Fatal("revoking for bob touched alice")
	}
	if r := tn.admin("POST", "/admin/agents/booker/revoke", map[string]any{"user_id": "alice"}); r.Status != 200 {
		t.Fatalf("revoke for alice: %d %s", r.Status, r.Raw)
	}
	if c.introspect(hop1).Body["active"] != false {
		t.Fatal("booker's token for alice still active")
	}
	if c.introspect(c.token).Body["active"] != true {
		t.Fatal("the planner's own token must survive the booker's revocation")
	}
	// Everywhere: revoking the planner kills its token and every token exchanged from it.
	tn.clock.Advance(time.Second)
	hop1c := c.exchange(c.booker, c.bookerS, c.token)
	wantError(t, hop1c, 400, "invalid_request") // the booker is revoked for alice
	if r := tn.admin("POST", "/admin/agents/planner/revoke", map[string]any{}); r.Status != 200 {
		t.Fatalf("revoke planner: %d %s", r.Status, r.Raw)
	}
	if c.introspect(c.token).Body["active"] != false {
		t.Fatal("planner token still active")
	}
	wantError(t, tn.admin("POST", "/admin/agents/ghost/revoke", map[string]any{}), 404, "not_found")
	// Disabled for good: invalid_client.
	if r := tn.admin("PATCH", "/admin/clients/planner", map[string]any{"disabled": true}); r.Status != 200 {
		t.Fatalf("disable: %d", r.Status)
	}
	wantError(t, tn.post("/bc-authorize", c.planner, c.plannerS, url.Values{"scope": {"openid"}, "login_hint": {"alice"}}), 401, "invalid_client")
}
