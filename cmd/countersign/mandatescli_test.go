package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gowebpki/jcs"

	"github.com/countersign/countersign/ciba/dpop"
)

// signedMandate is a device key, a mandate as the server holds it and the
// approval event with the device's decision JWT over the mandate entry.
func signedMandate(t *testing.T, entry string, claims jwt.MapClaims) (*mandateView, *auditEvent, json.RawMessage) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, err := dpop.PublicJWK(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jwkJSON, _ := json.Marshal(jwk)
	details := json.RawMessage("[" + entry + "]")
	canon, _ := jcs.Transform(details)
	sum := sha256.Sum256(canon)
	c := jwt.MapClaims{"iss": "dev1", "aud": "http://as", "req": "R1", "decision": "approve", "jti": "J1",
		"ad_hash": base64.RawURLEncoding.EncodeToString(sum[:]), "bm_hash": "x", "iat": 1000, "exp": 1120}
	for k, v := range claims {
		c[k] = v
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	m := &mandateView{ID: "M1", UserID: "alice", ClientID: "trip", Intent: "Book my travel",
		Actions: json.RawMessage(`[{"type":"agent_action","action":"read","resource":"calendar"}]`),
		Budget:  &mandateBudget{Currency: "EUR", Amount: "2000.00"}, MaxUses: 20,
		ValidUntil: time.Date(2026, 12, 13, 0, 0, 0, 0, time.UTC), DeviceID: "dev1", RequestID: "R1"}
	return m, &auditEvent{Type: "request.approved", RequestID: "R1", Action: details, DecisionJWT: tok}, jwkJSON
}

const travelEntry = `{"type":"intent_mandate","intent":"Book my travel","actions":[{"resource":"calendar","action":"read","type":"agent_action"}],
 "budget":{"currency":"EUR","amount":2000},"max_uses":20,"valid_until":"2026-12-13T01:00:00+01:00"}`

func TestVerifyIntentOffline(t *testing.T) {
	m, ev, key := signedMandate(t, travelEntry, nil)
	if ck := verifyIntent(m, ev, key); !ck.Verified || ck.DecisionJTI != "J1" || ck.DeviceID != "dev1" || ck.SignedAt.Unix() != 1000 {
		t.Fatalf("a genuine signed intent: %+v", ck)
	}
	cases := map[string]struct {
		entry  string
		claims jwt.MapClaims
		change func(m *mandateView, ev *auditEvent, key *json.RawMessage)
		want   string
	}{
		"other key": {change: func(m *mandateView, ev *auditEvent, key *json.RawMessage) {
			_, _, *key = signedMandate(t, travelEntry, nil)
		}, want: "signature does not verify"},
		"budget raised at the server": {change: func(m *mandateView, ev *auditEvent, key *json.RawMessage) {
			m.Budget.Amount = "20000"
		}, want: "budget"},
		"no budget at the server": {change: func(m *mandateView, ev *auditEvent, key *json.RawMessage) { m.Budget = nil }, want: "budget"},
		"actions widened": {change: func(m *mandateView, ev *auditEvent, key *json.RawMessage) {
			m.Actions = json.RawMessage(`[{"type":"agent_action","action":"write","resource":"calendar"}]`)
		}, want: "actions"},
		"later end": {change: func(m *mandateView, ev *auditEvent, key *json.RawMessage) {
			m.ValidUntil = m.ValidUntil.Add(time.Hour)
		}, want: "valid_until"},
		"more uses": {change: func(m *mandateView, ev *auditEvent, key *json.RawMessage) { m.MaxUses = 21 }, want: "max_uses"},
		"details swapped in the audit": {change: func(m *mandateView, ev *auditEvent, key *json.RawMessage) {
			ev.Action = json.RawMessage(strings.Replace(string(ev.Action), "2000", "9000", 1))
		}, want: "ad_hash"},
		"denied":        {claims: jwt.MapClaims{"decision": "deny"}, want: "not approve"},
		"other request": {claims: jwt.MapClaims{"req": "R2"}, want: "request"},
		"other device":  {claims: jwt.MapClaims{"iss": "dev2"}, want: "device"},
		"not a mandate": {entry: `{"type":"agent_action","action":"read","resource":"calendar"}`, want: "type agent_action"},
	}
	for name, tc := range cases {
		entry := travelEntry
		if tc.entry != "" {
			entry = tc.entry
		}
		m, ev, key := signedMandate(t, entry, tc.claims)
		if tc.change != nil {
			tc.change(m, ev, &key)
		}
		if ck := verifyIntent(m, ev, key); ck.Verified || !strings.Contains(ck.Problem, tc.want) {
			t.Errorf("%s: %+v, want a problem naming %q", name, ck, tc.want)
		}
	}
}
