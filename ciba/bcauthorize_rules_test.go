package ciba

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/oauth"
)

// TestAuthorizeRules is one row per validation rule of /bc-authorize
// (CIBA Core §7.1, §7.1.1, §13): the request, and the OAuth error and
// status it gets; "" is accepted.
func TestAuthorizeRules(t *testing.T) {
	h := newHarness(t)
	base := func() url.Values {
		return url.Values{"scope": {"openid"}, "login_hint": {"alice@example.com"}, "authorization_details": {hRead}}
	}
	with := func(k, v string) url.Values { f := base(); f.Set(k, v); return f }
	without := func(k string) url.Values { f := base(); f.Del(k); return f }
	ro := func(mod func(jwt.MapClaims)) url.Values {
		c := jwt.MapClaims{"iss": "signer", "aud": hIssuer, "iat": h.now.Unix(), "nbf": h.now.Unix(),
			"exp": h.now.Add(time.Minute).Unix(), "jti": "ro-" + strings.Repeat("x", 1), "scope": "openid",
			"login_hint": "alice@example.com"}
		mod(c)
		return url.Values{"request": {h.sign(c)}}
	}
	for _, c := range []struct {
		name, client string
		form         url.Values
		code         string
		status       int
	}{
		{"accepted", "agent", base(), "", 0},
		{"§13 client not registered for CIBA", "exchange-only", base(), oauth.UnauthorizedClient, 400},
		{"§7.1 scope required", "agent", without("scope"), oauth.InvalidRequest, 400},
		{"§7.1 scope must contain openid", "agent", with("scope", "profile"), oauth.InvalidRequest, 400},
		{"RFC 6749 §3.3 scope outside the client's", "narrow", with("scope", "openid payments"), oauth.InvalidScope, 400},
		{"§7.1 a hint is required", "agent", without("login_hint"), oauth.InvalidRequest, 400},
		{"§7.1 only one hint", "agent", with("login_hint_token", "x.y.z"), oauth.InvalidRequest, 400},
		{"§7.1 binding_message too long", "agent", with("binding_message", strings.Repeat("a", 65)), oauth.InvalidBindingMessage, 400},
		{"§7.1 binding_message empty", "agent", with("binding_message", ""), oauth.InvalidBindingMessage, 400},
		{"§7.1 binding_message hidden characters", "agent", with("binding_message", "Pay\u202eEMCA"), oauth.InvalidBindingMessage, 400},
		{"§7.1 requested_expiry not a number", "agent", with("requested_expiry", "soon"), oauth.InvalidRequest, 400},
		{"§7.1 requested_expiry zero", "agent", with("requested_expiry", "0"), oauth.InvalidRequest, 400},
		{"§7.1 requested_expiry clamped", "agent", with("requested_expiry", "999999"), "", 0},
		{"RFC 9396 malformed authorization_details", "agent", with("authorization_details", "{"), oauth.InvalidAuthorizationDetails, 400},
		{"§7.1 ping needs client_notification_token", "pinger", base(), oauth.InvalidRequest, 400},
		{"RFC 6750 §2.1 client_notification_token characters", "pinger", with("client_notification_token", "a b"), oauth.InvalidRequest, 400},
		{"ping with client_notification_token", "pinger", with("client_notification_token", "tok-1"), "", 0},
		{"§13 unknown_user_id", "agent", with("login_hint", "mallory@example.com"), oauth.UnknownUserID, 400},
		{"§7.1 id_token_hint not ours", "agent", url.Values{"scope": {"openid"}, "id_token_hint": {"a.b.c"}}, oauth.InvalidRequest, 400},
		{"§13 missing_user_code", "coder", base(), oauth.MissingUserCode, 400},
		{"§13 invalid_user_code", "coder", with("user_code", "0000"), oauth.InvalidUserCode, 400},
		{"user_code matches", "coder", with("user_code", "4711"), "", 0},
		{"may_act: agent not listed", "agent", with("login_hint", "bob@example.com"), oauth.AccessDenied, 403},
		{"may_act: listed agent", "narrow", with("login_hint", "bob@example.com"), "", 0},
		{"may_act: scope beyond it", "narrow", func() url.Values {
			f := with("login_hint", "bob@example.com")
			f.Set("scope", "openid profile")
			return f
		}(), oauth.AccessDenied, 403},
		{"§7.1.1 signing client must sign", "signer", base(), oauth.InvalidRequest, 400},
		{"§7.1.1 request object from a client without alg", "agent", url.Values{"request": {"a.b.c"}}, oauth.InvalidRequest, 400},
		{"§7.1.1 signed request accepted", "signer", ro(func(jwt.MapClaims) {}), "", 0},
		{"§7.1.1 jti is single use", "signer", ro(func(jwt.MapClaims) {}), oauth.InvalidRequest, 400},
		{"§7.1.1 nbf required", "signer", ro(func(c jwt.MapClaims) { c["jti"] = "ro-2"; delete(c, "nbf") }), oauth.InvalidRequest, 400},
		{"FAPI-CIBA §5.2.2 lifetime at most 60 minutes", "signer", ro(func(c jwt.MapClaims) { c["jti"] = "ro-3"; c["exp"] = h.now.Add(61 * time.Minute).Unix() }), oauth.InvalidRequest, 400},
		{"§7.1.1 aud is the issuer", "signer", ro(func(c jwt.MapClaims) { c["jti"] = "ro-4"; c["aud"] = "https://other.example" }), oauth.InvalidRequest, 400},
		{"§7.1.1 jti required", "signer", ro(func(c jwt.MapClaims) { delete(c, "jti") }), oauth.InvalidRequest, 400},
		{"§7.1.1 claim of the wrong type", "signer", ro(func(c jwt.MapClaims) { c["jti"] = "ro-5"; c["scope"] = 7 }), oauth.InvalidRequest, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := h.authorize(c.client, c.form)
			wantErr(t, err, c.code, c.status)
			if c.code == "" && (resp.AuthReqID == "" || resp.ExpiresIn <= 0 || resp.ExpiresIn > 1800) {
				t.Fatalf("acknowledgement %+v", resp)
			}
		})
	}
	t.Run("§13 wrong client secret", func(t *testing.T) {
		cr := creds("agent")
		cr.Secret = "wrong"
		_, err := h.s.BackchannelAuthorize(t.Context(), AuthorizeInput{Credentials: cr, Form: base(), Endpoint: hIssuer + "/bc-authorize"})
		wantErr(t, err, oauth.InvalidClient, 401)
	})
}

// TestAuthorizePaths: the acknowledgement of each path (CIBA Core §7.3):
// policy-approved asks for 1 s, pending for the configured interval, and
// push clients get no interval.
func TestAuthorizePaths(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		name, client, details string
		interval              int // 0: none
	}{
		{"policy", "agent", hRead, decidedInterval},
		{"device", "agent", hPayment, 5},
		{"push", "pusher", hRead, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := h.authorize(c.client, url.Values{"scope": {"openid"}, "login_hint": {"alice@example.com"},
				"authorization_details": {c.details}, "client_notification_token": {"tok"}})
			wantErr(t, err, "", 0)
			switch {
			case c.interval == 0 && resp.Interval != nil:
				t.Fatalf("push acknowledgement with interval %d", *resp.Interval)
			case c.interval != 0 && (resp.Interval == nil || *resp.Interval != c.interval):
				t.Fatalf("interval %v, want %d", resp.Interval, c.interval)
			}
		})
	}
}
