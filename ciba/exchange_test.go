package ciba

import (
	"net/url"
	"testing"

	"github.com/countersign/countersign/ciba/oauth"
)

// TestExchangeRules is one row per rule of token exchange (RFC 8693 §2.1,
// §2.2.2, and the delegation rules of docs/api.md): sub is the agent's
// delegate, stranger is not.
func TestExchangeRules(t *testing.T) {
	h := newHarness(t)
	subject := h.accessToken()
	revoked := h.accessToken()
	if err := h.s.Revoke(t.Context(), TokenInput{Credentials: creds("agent"), Form: url.Values{"token": {revoked}},
		Endpoint: hIssuer + "/revoke"}); err != nil {
		t.Fatal(err)
	}
	base := func() url.Values {
		return url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {subject},
			"subject_token_type": {oauth.TokenTypeAccessToken}}
	}
	with := func(k, v string) url.Values { f := base(); f.Set(k, v); return f }
	without := func(k string) url.Values { f := base(); f.Del(k); return f }
	for _, c := range []struct {
		name, client string
		form         url.Values
		code         string
		status       int
	}{
		{"accepted", "sub", base(), "", 0},
		{"narrower scope accepted", "sub", with("scope", "openid"), "", 0},
		{"client not registered for exchange", "narrow", base(), oauth.UnauthorizedClient, 400},
		{"§2.1 subject_token required", "sub", without("subject_token"), oauth.InvalidRequest, 400},
		{"§2.1 subject_token_type required", "sub", without("subject_token_type"), oauth.InvalidRequest, 400},
		{"§2.1 subject_token_type unsupported", "sub", with("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), oauth.InvalidRequest, 400},
		{"§2.1 only access tokens are issued", "sub", with("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"), oauth.InvalidRequest, 400},
		{"§2.1 actor_token not supported", "sub", with("actor_token", "x"), oauth.InvalidRequest, 400},
		{"§2.2.2 forged subject_token", "sub", with("subject_token", "a.b.c"), oauth.InvalidRequest, 400},
		{"§2.2.2 revoked subject_token", "sub", with("subject_token", revoked), oauth.InvalidRequest, 400},
		{"delegates_to does not list the caller", "stranger", base(), oauth.InvalidRequest, 400},
		{"§2.2.2 scope wider than the subject's", "sub", with("scope", "openid payments"), oauth.InvalidScope, 400},
		{"§2.2.2 audience not the subject's", "sub", with("audience", "https://elsewhere.example"), oauth.InvalidTarget, 400},
		{"authorization_details wider than the subject's", "sub",
			with("authorization_details", `[{"type":"payment_initiation","action":"transfer","amount":5,"currency":"EUR"}]`), oauth.InvalidAuthorizationDetails, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := h.token(c.client, c.form)
			wantErr(t, err, c.code, c.status)
			if c.code == "" && (resp.AccessToken == "" || resp.IssuedTokenType != oauth.TokenTypeAccessToken) {
				t.Fatalf("exchange response %+v", resp)
			}
		})
	}
}
