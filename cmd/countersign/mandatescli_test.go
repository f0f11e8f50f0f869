package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gowebpki/jcs"

	"github.com/countersign/countersign/ciba/dpop"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/mobile-stub/phone"
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

// travelMandate is the travel example's mandate entry, ending 72 h after now.
func travelMandate(now time.Time) string {
	return `[{"type":"intent_mandate","intent":"Book my travel for the conference","actions":[` +
		`{"type":"agent_action","action":"read","resource":"calendar"},` +
		`{"type":"agent_action","action":"search","resource":"flights"},` +
		`{"type":"agent_action","action":"search","resource":"hotels"},` +
		`{"type":"payment_initiation","currency":"EUR","max_amount":2000},` +
		`{"type":"agent_action","action":"write","resource":"calendar"}],` +
		`"budget":{"currency":"EUR","amount":2000},"max_uses":20,"valid_until":"` + now.Add(72*time.Hour).UTC().Format(time.RFC3339) + `"}]`
}

// approvedMandate asks alice's phone for the travel mandate, approves it
// and returns the mandate id from the token.
func (tn *testNode) approvedMandate(ph *phone.Phone, id, secret string) string {
	tn.t.Helper()
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"binding_message": {"Trip 7"}, "authorization_details": {travelMandate(tn.clock.Now())}})
	if r.Status != 200 {
		tn.t.Fatalf("mandate request: %d %s", r.Status, r.Raw)
	}
	req := r.str("auth_req_id")
	if err := ph.Decide(context.Background(), req, phone.Approve); err != nil {
		tn.t.Fatal(err)
	}
	tok := tn.poll(id, secret, req)
	ds, _ := tok.Body["authorization_details"].([]any)
	if tok.Status != 200 || len(ds) != 1 {
		tn.t.Fatalf("mandate token: %d %s", tok.Status, tok.Raw)
	}
	mid, _ := ds[0].(map[string]any)["mandate_id"].(string)
	if mid == "" {
		tn.t.Fatalf("no mandate_id in %s", tok.Raw)
	}
	return mid
}

// withinMandate asks for details under mandate mid and returns the token
// response of the first poll.
func (tn *testNode) withinMandate(id, secret, mid, details string) reply {
	tn.t.Helper()
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"mandate_id": {mid}, "authorization_details": {details}})
	if r.Status != 200 {
		tn.t.Fatalf("request under the mandate: %d %s", r.Status, r.Raw)
	}
	return tn.poll(id, secret, r.str("auth_req_id"))
}

const trainTicket = `[{"type":"payment_initiation","currency":"EUR","amount":"412.50","creditor":{"name":"Rail Europe"}}]`

func TestMandatesCLIAndRoutes(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	disc := tn.do(mustReq(t, "GET", tn.URL+"/.well-known/openid-configuration", ""))
	if !strings.Contains(disc.Raw, `"urn:countersign:acr:mandate"`) || !strings.Contains(disc.Raw, `"intent_mandate"`) {
		t.Fatalf("discovery does not advertise mandates: %s", disc.Raw)
	}
	ph := tn.enrollPhone("alice", "Pixel")
	mid := tn.approvedMandate(ph, id, secret)
	tok := tn.withinMandate(id, secret, mid, trainTicket)
	if tok.Status != 200 {
		t.Fatalf("a purchase inside the mandate was not approved by it: %d %s", tok.Status, tok.Raw)
	}
	if idt := tn.verify(tok.str("id_token"), "JWT"); idt["acr"] != "urn:countersign:acr:mandate" {
		t.Fatalf("acr %v", idt["acr"])
	}

	code, out, errOut := tn.cli("mandates", "list", "--user", "alice")
	if code != 0 || !strings.Contains(out, mid) || !strings.Contains(out, "active") || !strings.Contains(out, "412.50") ||
		!strings.Contains(out, "Book my travel for the conference") {
		t.Fatalf("list: %d %s %s", code, out, errOut)
	}
	if code, out, _ := tn.cli("mandates", "list", "--agent", "someone-else", "--output", "json"); code != 0 || strings.Contains(out, mid) {
		t.Fatalf("list of another agent: %d %s", code, out)
	}

	code, out, errOut = tn.cli("mandates", "show", mid)
	if code != 0 || !strings.Contains(out, "signed intent: VERIFIED: ES256 signature of device "+ph.DeviceID()) ||
		!strings.Contains(out, "path=mandate") || !strings.Contains(out, "Rail Europe") {
		t.Fatalf("show: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = tn.cli("mandates", "show", mid, "--output", "json")
	var shown struct {
		Mandate   map[string]any `json:"mandate"`
		Signature intentCheck    `json:"signature"`
		Actions   []auditEvent   `json:"actions"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || !shown.Signature.Verified || shown.Mandate["spent"] != "412.50" {
		t.Fatalf("show --output json: %d %s", code, out)
	}
	approvedUnder := 0
	for _, e := range shown.Actions {
		if e.MandateID != mid {
			t.Fatalf("an event of another mandate: %+v", e)
		}
		if e.Type == "request.approved" && e.Path == "mandate" {
			approvedUnder++
		}
	}
	if approvedUnder != 1 {
		t.Fatalf("want the one purchase approved under the mandate, got %+v", shown.Actions)
	}

	// The device API: the user's phone sees it with what was spent.
	ms, err := ph.Mandates(context.Background())
	if err != nil || len(ms) != 1 || ms[0].ID != mid || ms[0].Spent != "412.50" || ms[0].Uses != 1 || len(ms[0].Taken) != 1 {
		t.Fatalf("device mandates: %+v %v", ms, err)
	}
	var se *phone.ServerError
	if err := ph.RevokeMandate(context.Background(), "nosuchmandate0000000000"); !errors.As(err, &se) || se.Status != 404 || se.Code != "not_found" {
		t.Fatalf("revoking an unknown mandate from the phone: %v", err)
	}
	wantError(t, tn.admin("GET", "/admin/mandates/nosuchmandate0000000000", nil), 404, "not_found")
	wantError(t, tn.admin("POST", "/admin/mandates/nosuchmandate0000000000/revoke", nil), 404, "not_found")
	wantError(t, tn.admin("GET", "/admin/users/nobody/devices", nil), 404, "not_found")
	wantError(t, tn.do(mustReq(t, "GET", tn.URL+"/device/mandates", "")), 401, "invalid_token")
	if code, _, errOut := tn.cli("mandates", "show", "nosuchmandate0000000000"); code != 1 || !strings.Contains(errOut, "404 not_found") {
		t.Fatalf("show of an unknown mandate: %d %s", code, errOut)
	}
	if code, _, _ := tn.cli("mandates", "show"); code != 2 {
		t.Fatalf("show without an id: %d", code)
	}

	// Revoked: the CLI says so, later requests take the ordinary path.
	if code, out, errOut := tn.cli("mandates", "revoke", mid); code != 0 || !strings.Contains(out, "revoked mandate "+mid) {
		t.Fatalf("revoke: %d %s %s", code, out, errOut)
	}
	if r := tn.admin("GET", "/admin/mandates/"+mid, nil); r.Status != 200 || r.str("status") != "revoked" {
		t.Fatalf("after revoke: %d %s", r.Status, r.Raw)
	}
	// The same purchase now takes the ordinary path: the default rules
	// approve 412.50 EUR by policy, and the token names no mandate.
	after := tn.withinMandate(id, secret, mid, trainTicket)
	if after.Status != 200 {
		t.Fatalf("after revoke: %d %s", after.Status, after.Raw)
	}
	if ap, _ := tn.verify(after.str("access_token"), "at+jwt")["approval"].(map[string]any); ap["by"] != "policy" || ap["mandate_id"] != nil {
		t.Fatalf("a request under a revoked mandate was approved by %v", ap)
	}
	if code, _, _ := tn.cli("mandates", "revoke", mid); code != 0 {
		t.Fatal("revoking twice must succeed")
	}

	// The signed intent still verifies once the phone is removed: the
	// server kept the device's public key with the mandate.
	devs, err := tn.db.Devices(context.Background(), "alice")
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices: %v %v", devs, err)
	}
	if err := tn.db.RemoveDevice(context.Background(), devs[0], store.Event{At: tn.clock.Now(), Type: "device.removed",
		User: "alice", DeviceID: devs[0].ID}); err != nil {
		t.Fatal(err)
	}
	if r := tn.admin("GET", "/admin/users/alice/devices", nil); r.Raw != `{"devices":[]}`+"\n" {
		t.Fatalf("devices after removal: %s", r.Raw)
	}
	if code, out, errOut := tn.cli("mandates", "show", mid); code != 0 || !strings.Contains(out, "signed intent: VERIFIED") {
		t.Fatalf("show after the device was removed: %d\n%s\n%s", code, out, errOut)
	}
}

func TestDeviceJWKRefusesWhatIsNotAPublicP256Key(t *testing.T) {
	m, ev, key := signedMandate(t, travelEntry, nil)
	var k map[string]string
	_ = json.Unmarshal(key, &k)
	for name, change := range map[string]func(map[string]string){
		"private":   func(k map[string]string) { k["d"] = k["x"] },
		"P-384":     func(k map[string]string) { k["crv"] = "P-384" },
		"off-curve": func(k map[string]string) { k["y"] = k["x"] },
		"short x":   func(k map[string]string) { k["x"] = "AAAA" },
		"not EC":    func(k map[string]string) { k["kty"] = "RSA" },
	} {
		c := map[string]string{}
		for a, b := range k {
			c[a] = b
		}
		change(c)
		b, _ := json.Marshal(c)
		if ck := verifyIntent(m, ev, b); ck.Verified || !strings.Contains(ck.Problem, "device key") {
			t.Errorf("%s: %+v", name, ck)
		}
	}
}
