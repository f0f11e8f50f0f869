package ciba

import (
	"net/url"
	"testing"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/token"
)

// TestRevokeRules is one row per rule of revocation (RFC 7009 §2.1, §2.2):
// active says whether the row's token is still active afterwards.
func TestRevokeRules(t *testing.T) {
	h := newHarness(t)
	mine, theirs := h.accessToken(), h.accessToken()
	for _, c := range []struct {
		name   string
		cred   clientauth.Credentials
		tok    string
		code   string
		status int
		active bool
	}{
		{"§2.1 token required", creds("agent"), "", oauth.InvalidRequest, 400, false},
		{"§2.1 client authentication", clientauth.Credentials{ClientID: "agent", Method: clientauth.SecretBasic, Secret: "wrong"},
			mine, oauth.InvalidClient, 401, true},
		{"§2.2 an invalid token needs no action", creds("agent"), "a.b.c", "", 0, false},
		{"§2.2 another client's token is ignored", creds("narrow"), theirs, "", 0, true},
		{"§2.2 the client's own token is revoked", creds("agent"), mine, "", 0, false},
		{"§2.2 revoking twice succeeds", creds("agent"), mine, "", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := h.s.Revoke(t.Context(), TokenInput{Credentials: c.cred, Form: url.Values{"token": {c.tok}},
				Endpoint: hIssuer + "/revoke", IP: "192.0.2.1"})
			wantErr(t, err, c.code, c.status)
			if c.tok == "" || c.tok == "a.b.c" {
				return
			}
			claims, err := h.s.tokens.Verify(c.tok)
			if err != nil {
				t.Fatal(err)
			}
			if active := h.active(t, claims); active != c.active {
				t.Fatalf("active %v, want %v", active, c.active)
			}
		})
	}
}

func (h *harness) active(t *testing.T, c token.AccessClaims) bool {
	revoked, _, err := h.db.Revoked(t.Context(), tokenRef(&c))
	if err != nil {
		t.Fatal(err)
	}
	return !revoked
}
