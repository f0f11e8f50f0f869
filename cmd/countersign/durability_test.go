package main

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/store"
)

// TestSignedRequestKeepsNumbersExactly: the numbers of authorization_details
// in a signed request object reach the token as the agent signed them, not
// rounded through float64.
func TestSignedRequestKeepsNumbersExactly(t *testing.T) {
	tn := startNode(t, nil)
	if r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": denyRules, "comment": "policy approves payments"}); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Raw)
	}
	waitRules(t, tn, "2")
	key := newAgentKey(t)
	id, secret := tn.client(map[string]any{"client_id": "ro-agent", "jwks": key.jwks(),
		"backchannel_authentication_request_signing_alg": "ES256"})
	tn.user(map[string]any{"id": "alice"})
	now := tn.clock.Now()
	for _, amount := range []string{"12.300000000000000000001", "0.1000000000000000055511151231257827"} {
		details := []any{map[string]any{"type": "payment_initiation", "amount": json.Number(amount), "currency": "EUR"}}
		ro := key.sign(t, jwt.MapClaims{"iss": id, "aud": tn.URL, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
			"nbf": now.Unix(), "jti": store.NewID(), "scope": "openid", "login_hint": "alice", "authorization_details": details})
		r := tn.post("/bc-authorize", id, secret, url.Values{"request": {ro}})
		if r.Status != 200 {
			t.Fatalf("signed request: %d %s", r.Status, r.Raw)
		}
		tok := tn.post("/token", id, secret, cibaForm(r.str("auth_req_id")))
		if tok.Status != 200 {
			t.Fatalf("token: %d %s", tok.Status, tok.Raw)
		}
		tn.verify(tok.str("access_token"), "at+jwt")
		payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok.str("access_token"), ".")[1])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(payload), `"amount":`+amount+`,`) && !strings.Contains(string(payload), `"amount":`+amount+`}`) {
			t.Fatalf("amount %s not carried exactly: %s", amount, payload)
		}
		if !strings.Contains(tok.Raw, `"amount":`+amount) {
			t.Fatalf("token response lost the amount %s: %s", amount, tok.Raw)
		}
	}
}
