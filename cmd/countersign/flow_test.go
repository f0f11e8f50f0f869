package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const readDetails = `[{"type":"agent_action","action":"read","resource":"calendar"}]`
const bigPayment = `[{"type":"payment_initiation","action":"transfer","amount":25000,"currency":"EUR","creditor":{"name":"ACME"}}]`

// setup registers a standard poll agent and the user alice.
func setup(t *testing.T, tn *testNode) (id, secret string) {
	t.Helper()
	id, secret = tn.client(map[string]any{"client_id": "agent-1", "client_name": "Trip planner",
		"agent": map[string]any{"trust_tier": "standard", "owner": "acme"}})
	tn.user(map[string]any{"id": "alice", "email": "Alice@example.com",
		"attributes": map[string]any{"spending_limit": 1000, "timezone": "UTC", "user_code": "4711"}})
	return id, secret
}

func TestLowRiskFlowIssuesVerifiedToken(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice@example.com"},
		"binding_message": {"Trip ✈ 42"}, "authorization_details": {readDetails}})
	if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("bc-authorize: %d %s %v", r.Status, r.Raw, r.Header)
	}
	if r.Body["interval"] != float64(1) || r.Body["expires_in"] != float64(300) || len(r.str("auth_req_id")) < 22 {
		t.Fatalf("acknowledgement: %s", r.Raw)
	}
	authReqID := r.str("auth_req_id")
	tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
	if tok.Status != 200 || tok.Header.Get("Cache-Control") != "no-store" || tok.str("token_type") != "Bearer" {
		t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	if tok.Body["expires_in"] != float64(300) || tok.str("scope") != "openid" {
		t.Fatalf("token response: %s", tok.Raw)
	}
	at := tn.verify(tok.str("access_token"), "at+jwt")
	if at["sub"] != "alice" || at["client_id"] != id || at["aud"] != tn.URL {
		t.Fatalf("access token claims: %v", at)
	}
	if act, _ := at["act"].(map[string]any); act["sub"] != id {
		t.Fatalf("act: %v", at["act"])
	}
	ap, _ := at["approval"].(map[string]any)
	if ap["by"] != "policy" {
		t.Fatalf("approval: %v", at["approval"])
	}
	ad, _ := at["authorization_details"].([]any)
	if len(ad) != 1 || ad[0].(map[string]any)["resource"] != "calendar" {
		t.Fatalf("authorization_details: %v", at["authorization_details"])
	}
	if at["grant_id"] == "" || at["jti"] == "" || at["exp"].(float64)-at["iat"].(float64) != 300 {
		t.Fatalf("claims: %v", at)
	}
	idt := tn.verify(tok.str("id_token"), "JWT")
	if idt["acr"] != "urn:countersign:acr:policy" || idt["aud"] != id || idt["sub"] != "alice" || idt["at_hash"] == "" {
		t.Fatalf("id token: %v", idt)
	}
	// CIBA: one token response per auth_req_id, ever.
	again := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
	wantError(t, again, 400, "invalid_grant")
}

func TestHighRiskStaysPendingWithSlowDown(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"authorization_details": {bigPayment}, "requested_expiry": {"120"}})
	if r.Status != 200 || r.Body["interval"] != float64(5) || r.Body["expires_in"] != float64(120) {
		t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	form := url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {r.str("auth_req_id")}}
	wantError(t, tn.post("/token", id, secret, form), 400, "authorization_pending")
	tn.clock.Advance(time.Second)
	wantError(t, tn.post("/token", id, secret, form), 400, "slow_down")
	tn.clock.Advance(10 * time.Second)
	wantError(t, tn.post("/token", id, secret, form), 400, "authorization_pending")
	// Another client may not learn anything about it.
	other, osecret := tn.client(map[string]any{"client_id": "agent-2"})
	wantError(t, tn.post("/token", other, osecret, form), 400, "invalid_grant")
	tn.clock.Advance(2 * time.Minute)
	wantError(t, tn.post("/token", id, secret, form), 400, "expired_token")
}

func TestRequestedExpiryClampedAndDefaults(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "requested_expiry": {"999999"}})
	if r.Status != 200 || r.Body["expires_in"] != float64(1800) {
		t.Fatalf("clamp: %d %s", r.Status, r.Raw)
	}
}

func TestBackchannelAuthorizeErrors(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	ucID, ucSecret := tn.client(map[string]any{"client_id": "uc-agent", "backchannel_user_code_parameter": true})
	pingID, pingSecret := tn.client(map[string]any{"client_id": "ping-agent", "backchannel_token_delivery_mode": "ping",
		"backchannel_client_notification_endpoint": "http://127.0.0.1:9/cb"})
	exID, exSecret := tn.client(map[string]any{"client_id": "exchanger", "grant_types": []string{"urn:ietf:params:oauth:grant-type:token-exchange"}})
	scID, scSecret := tn.client(map[string]any{"client_id": "scoped", "scope": "calendar"})
	base := func(kv ...string) url.Values {
		v := url.Values{"scope": {"openid"}, "login_hint": {"alice"}}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	cases := []struct {
		name       string
		id, secret string
		form       url.Values
		status     int
		code       string
	}{
		{"no openid scope", id, secret, base("scope", "calendar"), 400, "invalid_request"},
		{"no scope", id, secret, base("scope", ""), 400, "invalid_request"},
		{"scope not allowed", scID, scSecret, base("scope", "openid payments"), 400, "invalid_scope"},
		{"no hint", id, secret, base("login_hint", ""), 400, "invalid_request"},
		{"two hints", id, secret, base("id_token_hint", "x.y.z"), 400, "invalid_request"},
		{"unknown user", id, secret, base("login_hint", "mallory"), 400, "unknown_user_id"},
		{"unknown email", id, secret, base("login_hint", "nobody@example.com"), 400, "unknown_user_id"},
		{"bad id_token_hint", id, secret, base("login_hint", "", "id_token_hint", "abc.def.ghi"), 400, "invalid_request"},
		{"binding message too long", id, secret, base("binding_message", strings.Repeat("é", 65)), 400, "invalid_binding_message"},
		{"binding message control", id, secret, base("binding_message", "pay\nnow"), 400, "invalid_binding_message"},
		{"binding message empty", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "binding_message": {""}}, 400, "invalid_binding_message"},
		{"requested_expiry text", id, secret, base("requested_expiry", "soon"), 400, "invalid_request"},
		{"requested_expiry zero", id, secret, base("requested_expiry", "0"), 400, "invalid_request"},
		{"requested_expiry negative", id, secret, base("requested_expiry", "-5"), 400, "invalid_request"},
		{"details not json", id, secret, base("authorization_details", "{nope"), 400, "invalid_authorization_details"},
		{"details unknown type", id, secret, base("authorization_details", `[{"type":"teleport"}]`), 400, "invalid_authorization_details"},
		{"details bad currency", id, secret, base("authorization_details", `[{"type":"payment_initiation","amount":5,"currency":"euro"}]`), 400, "invalid_authorization_details"},
		{"missing user_code", ucID, ucSecret, base(), 400, "missing_user_code"},
		{"wrong user_code", ucID, ucSecret, base("user_code", "0000"), 400, "invalid_user_code"},
		{"ping without notification token", pingID, pingSecret, base(), 400, "invalid_request"},
		{"client without CIBA grant", exID, exSecret, base(), 400, "unauthorized_client"},
		{"wrong secret", id, "nope", base(), 401, "invalid_client"},
		{"unknown client", "ghost", "nope", base(), 401, "invalid_client"},
		{"no client auth", "", "", base(), 401, "invalid_client"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := tn.post("/bc-authorize", c.id, c.secret, c.form)
			wantError(t, r, c.status, c.code)
			if c.status == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("401 without WWW-Authenticate: %v", r.Header)
			}
		})
	}
	// A right user_code passes.
	if r := tn.post("/bc-authorize", ucID, ucSecret, base("user_code", "4711")); r.Status != 200 {
		t.Fatalf("right user_code: %d %s", r.Status, r.Raw)
	}
}

func TestHTTPHygiene(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	// Wrong content type.
	req, _ := http.NewRequest("POST", tn.URL+"/bc-authorize", strings.NewReader(`{"scope":"openid"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(id, secret)
	wantError(t, tn.do(req), 400, "invalid_request")
	// Repeated parameter (RFC 6749 §3.1).
	req, _ = http.NewRequest("POST", tn.URL+"/bc-authorize", strings.NewReader("scope=openid&login_hint=alice&login_hint=bob"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	wantError(t, tn.do(req), 400, "invalid_request")
	// 64 KiB.
	big := url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "pad": {strings.Repeat("a", 70<<10)}}
	r := tn.post("/bc-authorize", id, secret, big)
	if r.Status != 413 || r.str("error") == "" {
		t.Fatalf("big body: %d %s", r.Status, r.Raw)
	}
	// 404 and 405 in our error form.
	req, _ = http.NewRequest("GET", tn.URL+"/nope", nil)
	wantError(t, tn.do(req), 404, "not_found")
	req, _ = http.NewRequest("GET", tn.URL+"/token", nil)
	r = tn.do(req)
	wantError(t, r, 405, "method_not_allowed")
	if !strings.Contains(r.Header.Get("Allow"), "POST") {
		t.Fatalf("Allow: %q", r.Header.Get("Allow"))
	}
	// Admin API needs the token.
	req, _ = http.NewRequest("GET", tn.URL+"/admin/clients", nil)
	req.Header.Set("Authorization", "Bearer wrong-token-wrong-token")
	r = tn.do(req)
	if r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("admin without token: %d %s", r.Status, r.Raw)
	}
	// Token endpoint errors.
	wantError(t, tn.post("/token", id, secret, url.Values{}), 400, "invalid_request")
	wantError(t, tn.post("/token", id, secret, url.Values{"grant_type": {"password"}}), 400, "unsupported_grant_type")
	wantError(t, tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}}), 400, "invalid_request")
	wantError(t, tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {"nope"}}), 400, "invalid_grant")
	// Operations endpoints.
	for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready"`, "/metrics": "countersign_http_requests_total"} {
		req, _ = http.NewRequest("GET", tn.URL+path, nil)
		if r := tn.do(req); r.Status != 200 || !strings.Contains(r.Raw, want) {
			t.Fatalf("%s: %d %s", path, r.Status, r.Raw[:min(200, len(r.Raw))])
		}
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	tn := startNode(t, nil)
	req, _ := http.NewRequest("GET", tn.URL+"/.well-known/openid-configuration", nil)
	r := tn.do(req)
	if r.Status != 200 || r.str("issuer") != tn.URL || r.str("backchannel_authentication_endpoint") != tn.URL+"/bc-authorize" {
		t.Fatalf("discovery: %s", r.Raw)
	}
	for _, k := range []string{"token_endpoint", "jwks_uri", "backchannel_token_delivery_modes_supported",
		"backchannel_authentication_request_signing_alg_values_supported", "backchannel_user_code_parameter_supported",
		"grant_types_supported", "token_endpoint_auth_methods_supported", "introspection_endpoint", "revocation_endpoint",
		"scopes_supported", "authorization_details_types_supported", "id_token_signing_alg_values_supported",
		"subject_types_supported", "response_types_supported"} {
		if _, ok := r.Body[k]; !ok {
			t.Errorf("discovery lacks %s", k)
		}
	}
	if !strings.Contains(r.Raw, `"urn:openid:params:grant-type:ciba"`) || !strings.Contains(r.Raw, `["poll","ping","push"]`) {
		t.Fatalf("discovery: %s", r.Raw)
	}
	req, _ = http.NewRequest("GET", tn.URL+"/jwks.json", nil)
	r = tn.do(req)
	keys, _ := r.Body["keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["alg"] != "ES256" || keys[0].(map[string]any)["d"] != nil {
		t.Fatalf("jwks: %s", r.Raw)
	}
}

func TestAudienceFromLocationsOrConfigured(t *testing.T) {
	tn := startNode(t, func(c *Config) { c.DefaultAudience = "https://api.example" })
	id, secret := setup(t, tn)
	token := func(details string) map[string]any {
		t.Helper()
		r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {details}})
		tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {r.str("auth_req_id")}})
		if tok.Status != 200 {
			t.Fatalf("token: %d %s", tok.Status, tok.Raw)
		}
		return tn.verify(tok.str("access_token"), "at+jwt")
	}
	if at := token(readDetails); at["aud"] != "https://api.example" {
		t.Fatalf("configured audience: %v", at["aud"])
	}
	at := token(`[{"type":"agent_action","action":"read","resource":"calendar","locations":["https://cal.example","https://mail.example"]}]`)
	if aud, _ := at["aud"].([]any); len(aud) != 2 || aud[0] != "https://cal.example" || aud[1] != "https://mail.example" {
		t.Fatalf("audience from locations: %v", at["aud"])
	}
}
