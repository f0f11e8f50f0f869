package ciba

import (
	"net/url"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// TestPollErrorIsTotal: every poll outcome has its CIBA Core §11 answer,
// and one the mapping does not know is a server_error, never an approval.
func TestPollErrorIsTotal(t *testing.T) {
	want := map[store.PollStatus]string{
		store.PollUnknown: oauth.InvalidGrant, store.PollWrongClient: oauth.InvalidGrant, store.PollRedeemed: oauth.InvalidGrant,
		store.PollExpired: oauth.ExpiredToken, store.PollSlowDown: oauth.SlowDown, store.PollPending: oauth.AuthorizationPending,
		store.PollDenied: oauth.AccessDenied, "frozen": oauth.ServerError, "": oauth.ServerError,
	}
	for st, code := range want {
		e := pollError(st)
		if e == nil || e.Code != code {
			t.Fatalf("%q: %+v, want %s", st, e, code)
		}
		if wantStatus := map[bool]int{true: 500, false: 400}[code == oauth.ServerError]; e.Status != wantStatus {
			t.Fatalf("%q: status %d, want %d", st, e.Status, wantStatus)
		}
	}
	if e := pollError(store.PollApproved); e != nil {
		t.Fatalf("approved: %+v", e)
	}
}

// TestTokenRules is one row per rule of the CIBA grant at /token (CIBA
// Core §10.1, §11): each row polls a request in the state it names.
func TestTokenRules(t *testing.T) {
	h := newHarness(t)
	grant := func(id string) url.Values { return url.Values{"grant_type": {oauth.GrantCIBA}, "auth_req_id": {id}} }
	approved := h.mustAuthorize(hRead)
	pending := h.mustAuthorize(hPayment)
	slow := h.mustAuthorize(hPayment)
	if _, err := h.token("agent", grant(slow)); err == nil {
		t.Fatal("a pending request gave a token")
	}
	redeemed := h.mustAuthorize(hRead)
	if _, err := h.token("agent", grant(redeemed)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, client string
		form         url.Values
		code         string
		status       int
	}{
		{"RFC 6749 §5.2 grant_type required", "agent", url.Values{"auth_req_id": {approved}}, oauth.InvalidRequest, 400},
		{"RFC 6749 §5.2 unsupported grant", "agent", url.Values{"grant_type": {"password"}}, oauth.UnsupportedGrantType, 400},
		{"§13 client not registered for CIBA", "exchange-only", grant(approved), oauth.UnauthorizedClient, 400},
		{"§10.3 push clients never poll", "pusher", grant(approved), oauth.UnauthorizedClient, 400},
		{"RFC 9449 §5.2 dpop_bound_access_tokens without proof", "dpop-only", grant(approved), oauth.InvalidDPoPProof, 400},
		{"§10.1 auth_req_id required", "agent", grant(""), oauth.InvalidRequest, 400},
		{"§11 unknown auth_req_id", "agent", grant("nope"), oauth.InvalidGrant, 400},
		{"§11 another client's auth_req_id", "narrow", grant(approved), oauth.InvalidGrant, 400},
		{"§11 authorization_pending", "agent", grant(pending), oauth.AuthorizationPending, 400},
		{"§11 slow_down", "agent", grant(slow), oauth.SlowDown, 400},
		{"approved", "agent", grant(approved), "", 0},
		{"§11 already redeemed", "agent", grant(redeemed), oauth.InvalidGrant, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := h.token(c.client, c.form)
			wantErr(t, err, c.code, c.status)
			if c.code == "" && (resp.AccessToken == "" || resp.IDToken == "" || resp.TokenType != "Bearer") {
				t.Fatalf("token response %+v", resp)
			}
		})
	}
	t.Run("§11 expired_token", func(t *testing.T) {
		id := h.mustAuthorize(hPayment)
		h.now = h.now.Add(10 * time.Minute)
		defer func() { h.now = hStart }()
		_, err := h.token("agent", grant(id))
		wantErr(t, err, oauth.ExpiredToken, 400)
	})
}
