package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/store"
)

// TestGeneratedClientIDs registers clients without a client_id: every
// generated id is accepted by the server's own validator and works as a
// path segment and as HTTP Basic user name.
func TestGeneratedClientIDs(t *testing.T) {
	tn := startNode(t, nil)
	tn.user(map[string]any{"id": "alice"})
	for i := 0; i < 100; i++ {
		r := tn.admin("POST", "/admin/clients", map[string]any{"client_name": "generated"})
		id := r.str("client_id")
		if r.Status != 201 || len(id) != store.IDLen || strings.Trim(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
			t.Fatalf("create %d: %d %s", i, r.Status, r.Raw)
		}
		if g := tn.admin("GET", "/admin/clients/"+id, nil); g.Status != 200 || g.str("client_id") != id {
			t.Fatalf("get %s: %d %s", id, g.Status, g.Raw)
		}
		if i < 5 {
			a := tn.post("/bc-authorize", id, r.str("client_secret"), url.Values{"scope": {"openid"}, "login_hint": {"alice"}})
			if a.Status != 200 || a.Body["interval"] != float64(1) || len(a.str("auth_req_id")) != 2+store.IDLen {
				t.Fatalf("bc-authorize as %s: %d %s", id, a.Status, a.Raw)
			}
		}
	}
}

// TestResourceServerWithoutGrants: a resource server registered with no
// grant (or with grant_types left out) introspects and revokes but can
// obtain no token.
func TestResourceServerWithoutGrants(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	for _, meta := range []map[string]any{
		{"client_id": "api-rs", "resource_server": true, "grant_types": []string{}},
		{"client_id": "api-rs2", "resource_server": true},
	} {
		r := tn.admin("POST", "/admin/clients", meta)
		if r.Status != 201 || !strings.Contains(r.Raw, `"grant_types":[]`) {
			t.Fatalf("register %v: %d %s", meta, r.Status, r.Raw)
		}
		rsID, rsSecret := r.str("client_id"), r.str("client_secret")
		if g := tn.admin("GET", "/admin/clients/"+rsID, nil); !strings.Contains(g.Raw, `"grant_types":[]`) {
			t.Fatalf("get %s: %s", rsID, g.Raw)
		}
		// It can obtain no token.
		wantError(t, tn.post("/bc-authorize", rsID, rsSecret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}}), 400, "unauthorized_client")
		wantError(t, tn.post("/token", rsID, rsSecret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {"0a" + store.NewID()}}), 400, "unauthorized_client")
		// It introspects an agent's token.
		ack := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
		tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {ack.str("auth_req_id")}})
		in := tn.post("/introspect", rsID, rsSecret, url.Values{"token": {tok.str("access_token")}})
		if in.Status != 200 || in.Body["active"] != true || in.str("client_id") != id {
			t.Fatalf("introspect: %d %s", in.Status, in.Raw)
		}
		if rv := tn.post("/revoke", rsID, rsSecret, url.Values{"token": {tok.str("access_token")}}); rv.Status != 200 {
			t.Fatalf("revoke: %d %s", rv.Status, rv.Raw)
		}
	}
	// Any other client still needs a grant.
	r := tn.admin("POST", "/admin/clients", map[string]any{"client_id": "no-grants", "grant_types": []string{}})
	wantError(t, r, 400, "invalid_client_metadata")
}

// TestHiddenCharactersRefused: bidi overrides and invisible characters
// are refused in binding_message and in authorization_details, as form
// parameters and inside a signed request object.
func TestHiddenCharactersRefused(t *testing.T) {
	tn := startNode(t, nil)
	key := newAgentKey(t)
	id, secret := setup(t, tn)
	roID, roSecret := tn.client(map[string]any{"client_id": "ro-agent", "jwks": key.jwks(),
		"backchannel_authentication_request_signing_alg": "ES256"})
	lying := `[{"type":"payment_initiation","action":"transfer","amount":250,"currency":"EUR","creditor":{"name":"Pay \u202eRUE 00052 EMCA"}}]`
	hiddenAction := `[{"type":"agent_action","action":"re\u200bad","resource":"calendar"}]`
	form := func(k, v string) url.Values {
		return url.Values{"scope": {"openid"}, "login_hint": {"alice@example.com"}, k: {v}}
	}
	for _, c := range []struct {
		form url.Values
		code string
	}{
		{form("binding_message", "Pay \u202eRUE 00052 EMCA"), "invalid_binding_message"},
		{form("binding_message", "ACME\u2066 Ltd\u2069"), "invalid_binding_message"},
		{form("binding_message", "AC\u200bME"), "invalid_binding_message"},
		{form("binding_message", "\ufeffACME"), "invalid_binding_message"},
		{form("binding_message", "ACME\U000E0067"), "invalid_binding_message"},
		{form("authorization_details", lying), "invalid_authorization_details"},
		{form("authorization_details", hiddenAction), "invalid_authorization_details"},
	} {
		wantError(t, tn.post("/bc-authorize", id, secret, c.form), 400, c.code)
	}
	now := tn.clock.Now()
	ro := func(k string, v any) url.Values {
		c := jwt.MapClaims{"iss": roID, "aud": tn.URL, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
			"nbf": now.Unix(), "jti": store.NewID(), "scope": "openid", "login_hint": "alice@example.com", k: v}
		return url.Values{"request": {key.sign(t, c)}}
	}
	wantError(t, tn.post("/bc-authorize", roID, roSecret, ro("binding_message", "Pay \u202eRUE 00052 EMCA")), 400, "invalid_binding_message")
	wantError(t, tn.post("/bc-authorize", roID, roSecret, ro("authorization_details", []any{map[string]any{
		"type": "payment_initiation", "amount": 250, "currency": "EUR", "creditor": map[string]any{"name": "ACME\u200f"}}})), 400, "invalid_authorization_details")
	// Joiners that scripts and emoji need are accepted.
	r := tn.post("/bc-authorize", id, secret, form("binding_message", "👩\u200d💻 می\u200cخواهم"))
	if r.Status != 200 {
		t.Fatalf("joiners: %d %s", r.Status, r.Raw)
	}
}
