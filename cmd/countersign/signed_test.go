package main

import (
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/store"
)

// postAssertion sends a form authenticated with private_key_jwt.
func (tn *testNode) postAssertion(path, assertion string, form url.Values) reply {
	tn.t.Helper()
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", assertion)
	return tn.post(path, "", "", form)
}

func TestPrivateKeyJWTClientAuthentication(t *testing.T) {
	tn := startNode(t, nil)
	key := newAgentKey(t)
	id, _ := tn.client(map[string]any{"client_id": "jwt-agent", "token_endpoint_auth_method": "private_key_jwt", "jwks": key.jwks()})
	tn.user(map[string]any{"id": "alice"})
	now := tn.clock.Now()
	assertion := func(mut func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"iss": id, "sub": id, "aud": tn.URL, "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": store.NewID()}
		if mut != nil {
			mut(c)
		}
		return key.sign(t, c)
	}
	form := func() url.Values { return url.Values{"scope": {"openid"}, "login_hint": {"alice"}} }
	if r := tn.postAssertion("/bc-authorize", assertion(nil), form()); r.Status != 200 {
		t.Fatalf("good assertion: %d %s", r.Status, r.Raw)
	}
	// The endpoint URL is an accepted audience too.
	if r := tn.postAssertion("/bc-authorize", assertion(func(c jwt.MapClaims) { c["aud"] = tn.URL + "/bc-authorize" }), form()); r.Status != 200 {
		t.Fatalf("endpoint audience: %d %s", r.Status, r.Raw)
	}
	replayed := assertion(nil)
	tn.postAssertion("/bc-authorize", replayed, form())
	other := newAgentKey(t)
	cases := map[string]string{
		"replayed jti": replayed,
		"expired":      assertion(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }),
		"no exp":       assertion(func(c jwt.MapClaims) { delete(c, "exp") }),
		"no jti":       assertion(func(c jwt.MapClaims) { delete(c, "jti") }),
		"wrong aud":    assertion(func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" }),
		"sub not iss":  assertion(func(c jwt.MapClaims) { c["sub"] = "someone" }),
		"too long":     assertion(func(c jwt.MapClaims) { c["exp"] = now.Add(time.Hour).Unix() }),
		"other key":    other.sign(t, jwt.MapClaims{"iss": id, "sub": id, "aud": tn.URL, "exp": now.Add(time.Minute).Unix(), "jti": "x"}),
		"not a JWT":    "not-a-jwt",
		"unknown iss":  key.sign(t, jwt.MapClaims{"iss": "ghost", "sub": "ghost", "aud": tn.URL, "exp": now.Add(time.Minute).Unix(), "jti": "y"}),
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			r := tn.postAssertion("/bc-authorize", a, form())
			wantError(t, r, 401, "invalid_client")
		})
	}
	// A secret for a private_key_jwt client is refused.
	wantError(t, tn.post("/bc-authorize", id, "guess", form()), 401, "invalid_client")
}

func TestSignedRequestObject(t *testing.T) {
	tn := startNode(t, nil)
	key := newAgentKey(t)
	id, secret := tn.client(map[string]any{"client_id": "ro-agent", "jwks": key.jwks(),
		"backchannel_authentication_request_signing_alg": "ES256"})
	tn.user(map[string]any{"id": "alice", "email": "alice@example.com"})
	now := tn.clock.Now()
	ro := func(mut func(jwt.MapClaims)) url.Values {
		c := jwt.MapClaims{"iss": id, "aud": tn.URL, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
			"nbf": now.Unix(), "jti": store.NewID(), "scope": "openid", "login_hint": "alice@example.com",
			"binding_message": "Code 7", "requested_expiry": 120}
		if mut != nil {
			mut(c)
		}
		return url.Values{"request": {key.sign(t, c)}}
	}
	r := tn.post("/bc-authorize", id, secret, ro(nil))
	if r.Status != 200 || r.Body["expires_in"] != float64(120) {
		t.Fatalf("signed request: %d %s", r.Status, r.Raw)
	}
	// requested_expiry may be a string inside the object.
	r = tn.post("/bc-authorize", id, secret, ro(func(c jwt.MapClaims) { c["requested_expiry"] = "90" }))
	if r.Status != 200 || r.Body["expires_in"] != float64(90) {
		t.Fatalf("string requested_expiry: %d %s", r.Status, r.Raw)
	}
	// authorization_details as a JSON array inside the object.
	r = tn.post("/bc-authorize", id, secret, ro(func(c jwt.MapClaims) {
		c["authorization_details"] = []any{map[string]any{"type": "agent_action", "action": "read", "resource": "mail"}}
	}))
	if r.Status != 200 {
		t.Fatalf("details in object: %d %s", r.Status, r.Raw)
	}
	replay := ro(nil)
	tn.post("/bc-authorize", id, secret, replay)
	other := newAgentKey(t)
	cases := map[string]url.Values{
		"unsigned for a signing client": {"scope": {"openid"}, "login_hint": {"alice"}},
		"replayed jti":                  replay,
		"expired":                       ro(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }),
		"no nbf":                        ro(func(c jwt.MapClaims) { delete(c, "nbf") }),
		"no iat":                        ro(func(c jwt.MapClaims) { delete(c, "iat") }),
		"no jti":                        ro(func(c jwt.MapClaims) { delete(c, "jti") }),
		"wrong aud":                     ro(func(c jwt.MapClaims) { c["aud"] = "https://other.example" }),
		"wrong iss":                     ro(func(c jwt.MapClaims) { c["iss"] = "someone" }),
		"over 60 minutes":               ro(func(c jwt.MapClaims) { c["exp"] = now.Add(61 * time.Minute).Unix() }),
		"not yet valid":                 ro(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }),
		"fractional expiry":             ro(func(c jwt.MapClaims) { c["requested_expiry"] = 1.5 }),
		"other key":                     {"request": {other.sign(t, jwt.MapClaims{"iss": id, "aud": tn.URL, "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": "z", "scope": "openid", "login_hint": "alice"})}},
		"garbage":                       {"request": {"a.b.c"}},
	}
	for name, form := range cases {
		t.Run(name, func(t *testing.T) {
			wantError(t, tn.post("/bc-authorize", id, secret, form), 400, "invalid_request")
		})
	}
	// A client that did not register an alg may not send a request object.
	plainID, plainSecret := tn.client(map[string]any{"client_id": "plain"})
	wantError(t, tn.post("/bc-authorize", plainID, plainSecret, ro(nil)), 400, "invalid_request")
}

func TestLoginHintTokenAndIDTokenHint(t *testing.T) {
	tn := startNode(t, nil)
	key := newAgentKey(t)
	id, secret := tn.client(map[string]any{"client_id": "lht-agent", "jwks": key.jwks()})
	tn.user(map[string]any{"id": "alice", "email": "alice@example.com"})
	now := tn.clock.Now()
	lht := func(c jwt.MapClaims) url.Values {
		return url.Values{"scope": {"openid"}, "login_hint_token": {key.sign(t, c)}}
	}
	base := jwt.MapClaims{"iss": id, "aud": tn.URL, "exp": now.Add(time.Minute).Unix()}
	withSub := jwt.MapClaims{"sub": "alice"}
	for k, v := range base {
		withSub[k] = v
	}
	r := tn.post("/bc-authorize", id, secret, lht(withSub))
	if r.Status != 200 {
		t.Fatalf("login_hint_token by sub: %d %s", r.Status, r.Raw)
	}
	byEmail := jwt.MapClaims{"email": "alice@example.com"}
	for k, v := range base {
		byEmail[k] = v
	}
	if r := tn.post("/bc-authorize", id, secret, lht(byEmail)); r.Status != 200 {
		t.Fatalf("login_hint_token by email: %d %s", r.Status, r.Raw)
	}
	expired := jwt.MapClaims{"iss": id, "aud": tn.URL, "exp": now.Add(-time.Minute).Unix(), "sub": "alice"}
	wantError(t, tn.post("/bc-authorize", id, secret, lht(expired)), 400, "expired_login_hint_token")
	nobody := jwt.MapClaims{"iss": id, "aud": tn.URL, "exp": now.Add(time.Minute).Unix(), "sub": "nobody"}
	wantError(t, tn.post("/bc-authorize", id, secret, lht(nobody)), 400, "unknown_user_id")

	// id_token_hint: an ID token this server issued names the user.
	tok := tn.post("/token", id, secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {r.str("auth_req_id")}})
	if tok.Status != 200 {
		t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	r = tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "id_token_hint": {tok.str("id_token")}})
	if r.Status != 200 {
		t.Fatalf("id_token_hint: %d %s", r.Status, r.Raw)
	}
	// An ID token issued to another client is not a hint for this one.
	otherID, otherSecret := tn.client(map[string]any{"client_id": "other-agent"})
	wantError(t, tn.post("/bc-authorize", otherID, otherSecret, url.Values{"scope": {"openid"}, "id_token_hint": {tok.str("id_token")}}), 400, "invalid_request")
	// An access token is not an ID token.
	wantError(t, tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "id_token_hint": {tok.str("access_token")}}), 400, "invalid_request")
}
