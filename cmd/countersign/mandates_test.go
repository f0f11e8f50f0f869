package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/mobile-stub/phone"
)

// mandateRules make every payment a phone approval by its score (so that
// only a mandate approves one without the phone), send purchases over
// 1500 to the phone whatever covers them, and refuse deletions.
const mandateRules = `format: countersign/v1
name: mandate-test
thresholds: {medium: 30, high: 60}
rules:
  - id: payment
    when: "'payment_initiation' in action.types"
    score: 60
    reason: A payment needs your approval.
  - id: big-purchase
    when: action.amount > 1500.0
    decision: require_device
    reason: Purchases over 1500 go to the phone.
  - id: no-deletes
    when: "'delete' in action.actions"
    decision: deny
    reason: Agents may not delete anything.
`

// mandateFixture is a node with the mandate rules, agent-1 (which
// delegates to a sub-agent), alice with a stub phone, and a resource
// server.
type mandateFixture struct {
	user       string // "alice" unless set
	t          testing.TB
	tn         *testNode
	id, secret string
	sub, subS  string
	rs, rsS    string
	ph         *phone.Phone
	key        *agentKey // set: requests are signed request objects
}

func newMandateFixture(t *testing.T) *mandateFixture { return newMandateFixtureWith(t, nil) }

// newMandateFixtureWith registers agent-1 with key's JWKS and request
// signing, when key is set: its requests are then signed request objects.
func newMandateFixtureWith(t *testing.T, key *agentKey) *mandateFixture {
	t.Helper()
	// Many requests wait for the phone here: no caps on them.
	tn := startNode(t, func(c *Config) { c.MaxPendingPerUser, c.MaxPendingPerAgent, c.MaxPushesPerMinute = 0, 0, 0 })
	f := &mandateFixture{t: t, tn: tn}
	f.sub, f.subS = tn.client(map[string]any{"client_id": "sub-agent", "grant_types": []string{exchangeGrant}})
	meta := map[string]any{"client_id": "agent-1", "client_name": "Trip planner",
		"delegates_to": []string{"sub-agent"}, "agent": map[string]any{"trust_tier": "standard"}}
	if key != nil {
		meta["jwks"], meta["backchannel_authentication_request_signing_alg"] = key.jwks(), "ES256"
		f.key = key
	}
	f.id, f.secret = tn.client(meta)
	f.rs, f.rsS = tn.client(map[string]any{"client_id": "hotel-api", "resource_server": true})
	tn.user(map[string]any{"id": "alice", "attributes": map[string]any{"spending_limit": 5000, "timezone": "UTC"}})
	if r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": mandateRules, "comment": "mandate tests"}); r.Status != 200 {
		t.Fatalf("rules: %d %s", r.Status, r.Raw)
	}
	f.ph = tn.enrollPhone("alice", "Pixel")
	return f
}

// travel is the worked example's mandate: read the calendar, search
// flights and hotels, purchases up to 2,000 EUR, update the calendar.
func travel(until time.Time, budget string, uses int) string {
	extra := ""
	if budget != "" {
		extra += `,"budget":{"currency":"EUR","amount":` + budget + `}`
	}
	if uses > 0 {
		extra += fmt.Sprintf(`,"max_uses":%d`, uses)
	}
	return `[{"type":"intent_mandate","intent":"Book my travel for the conference","actions":[
 {"type":"agent_action","action":"read","resource":"calendar"},
 {"type":"agent_action","action":"search","resource":"flights"},
 {"type":"agent_action","action":"search","resource":"hotels"},
 {"type":"payment_initiation","currency":"EUR","max_amount":2000},
 {"type":"agent_action","action":"update","resource":"calendar"}]` + extra +
		`,"valid_until":"` + until.UTC().Format(time.RFC3339) + `"}]`
}

func pay(amount float64) string {
	return fmt.Sprintf(`[{"type":"payment_initiation","amount":%v,"currency":"EUR","creditor":{"name":"Hotel Adlon"}}]`, amount)
}

// ask sends /bc-authorize for alice; mandate "" sends no mandate_id.
func (f *mandateFixture) ask(details, mandate string) reply {
	f.t.Helper()
	user := f.user
	if user == "" {
		user = "alice"
	}
	form := url.Values{"scope": {"openid"}, "login_hint": {user}, "authorization_details": {details}}
	if mandate != "" {
		form.Set("mandate_id", mandate)
	}
	if f.key != nil {
		// mandate_id as a claim of the signed request object.
		now := f.tn.clock.Now()
		c := jwt.MapClaims{"iss": f.id, "aud": f.tn.URL, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
			"nbf": now.Unix(), "jti": store.NewID()}
		for k := range form {
			c[k] = form.Get(k)
		}
		var ad []any
		_ = json.Unmarshal([]byte(details), &ad)
		c["authorization_details"] = ad
		form = url.Values{"request": {f.key.sign(f.t.(*testing.T), c)}}
	}
	return f.tn.post("/bc-authorize", f.id, f.secret, form)
}

// token polls once and returns the token response.
func (f *mandateFixture) token(authReqID string) reply {
	f.t.Helper()
	f.tn.clock.Advance(6 * time.Second)
	return f.tn.post("/token", f.id, f.secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {authReqID}})
}

// createMandate asks for a mandate, approves it on the phone and returns
// its id and the token response.
func (f *mandateFixture) createMandate(details string) (string, reply) {
	f.t.Helper()
	r := f.ask(details, "")
	if r.Status != 200 || r.Body["interval"] != float64(5) {
		f.t.Fatalf("mandate request: %d %s", r.Status, r.Raw)
	}
	for push := range f.ph.Pushes() {
		if push.ID != r.str("auth_req_id") {
			continue
		}
		if push.Risk.Level != "high" || push.Summary != "Approve a mandate: Book my travel for the conference" {
			f.t.Fatalf("mandate push: %+v", push)
		}
		break
	}
	view, err := f.ph.View(context.Background(), r.str("auth_req_id"))
	if err != nil || !strings.Contains(strings.Join(view.Risk.RequiredBy, ","), "intent_mandate") {
		f.t.Fatalf("the phone does not say why: %+v %v", view, err)
	}
	// The phone signs ad_hash over the whole mandate entry.
	if err := f.ph.Decide(context.Background(), r.str("auth_req_id"), "approve"); err != nil {
		f.t.Fatal(err)
	}
	tok := f.token(r.str("auth_req_id"))
	if tok.Status != 200 {
		f.t.Fatalf("mandate token: %d %s", tok.Status, tok.Raw)
	}
	var ad []map[string]any
	_ = json.Unmarshal([]byte(mustJSON(tok.Body["authorization_details"])), &ad)
	if len(ad) != 1 || ad[0]["type"] != "intent_mandate" || len(ad[0]["mandate_id"].(string)) != store.IDLen {
		f.t.Fatalf("the mandate token's authorization_details: %s", tok.Raw)
	}
	at := f.tn.verify(tok.str("access_token"), "at+jwt")
	if ap := at["approval"].(map[string]any); ap["by"] != "device" || ap["mandate_id"] != ad[0]["mandate_id"] {
		f.t.Fatalf("the mandate token's approval: %v", ap)
	}
	return ad[0]["mandate_id"].(string), tok
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// decided asks and returns how the request was decided: "device" when it
// waits for the phone, otherwise the token's approval.by (with the token).
func (f *mandateFixture) decided(details, mandate string) (string, reply) {
	f.t.Helper()
	r := f.ask(details, mandate)
	if r.Status != 200 {
		f.t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	if r.Body["interval"] == float64(5) {
		return "device", r
	}
	tok := f.token(r.str("auth_req_id"))
	if tok.Status != 200 {
		f.t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	at := f.tn.verify(tok.str("access_token"), "at+jwt")
	return at["approval"].(map[string]any)["by"].(string), tok
}

func (f *mandateFixture) view(id string) *struct {
	Spent, Status string
	Uses          int64
	Taken         []map[string]any
} {
	f.t.Helper()
	v, err := f.tn.service.Mandate(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return &struct {
		Spent, Status string
		Uses          int64
		Taken         []map[string]any
	}{v.Spent, v.Status, v.Uses, nil}
}

func (f *mandateFixture) introspect(tok string) bool {
	f.t.Helper()
	r := f.tn.post("/introspect", f.rs, f.rsS, url.Values{"token": {tok}})
	if r.Status != 200 {
		f.t.Fatalf("introspect: %d %s", r.Status, r.Raw)
	}
	return r.Body["active"] == true
}

func TestMandateActionsPassWithoutThePhone(t *testing.T) {
	f := newMandateFixture(t)
	now := f.tn.clock.Now()
	mid, _ := f.createMandate(travel(now.Add(72*time.Hour), "2000", 20))
	// Without the mandate a purchase goes to the phone ...
	if by, _ := f.decided(pay(600), ""); by != "device" {
		t.Fatalf("a purchase without the mandate: %s", by)
	}
	// ... within it, it is approved by the mandate, named in the token.
	by, tok := f.decided(pay(600), mid)
	if by != "mandate" {
		t.Fatalf("a purchase within the mandate: %s", by)
	}
	at := f.tn.verify(tok.str("access_token"), "at+jwt")
	ap := at["approval"].(map[string]any)
	if ap["mandate_id"] != mid || ap["device_id"] != f.ph.DeviceID() || ap["decision_jti"] == "" || at["acr"] != "urn:countersign:acr:mandate" {
		t.Fatalf("approval claim: %v acr %v", ap, at["acr"])
	}
	if idt := f.tn.verify(tok.str("id_token"), "JWT"); idt["acr"] != "urn:countersign:acr:mandate" {
		t.Fatalf("ID token acr: %v", idt["acr"])
	}
	if !strings.Contains(tok.Raw, `"amount":600`) || strings.Contains(tok.Raw, "intent_mandate") {
		t.Fatalf("the token's authorization_details are the concrete entries: %s", tok.Raw)
	}
	// Reading and updating the calendar, two entries with two templates.
	two := `[{"type":"agent_action","action":"read","resource":"calendar"},{"type":"agent_action","action":"update","resource":"calendar"}]`
	if by, _ := f.decided(two, mid); by != "mandate" {
		t.Fatalf("two covered actions: %s", by)
	}
	// The mandate's view: spent and used, the actions taken.
	v, err := f.tn.service.Mandate(context.Background(), mid)
	if err != nil || v.Spent != "600.00" || v.Uses != 2 || v.Status != "active" || len(v.Taken) != 2 ||
		v.Taken[0].Amount != "600.00" || v.ClientName != "Trip planner" || v.DeviceID != f.ph.DeviceID() {
		t.Fatalf("view: %v %+v", err, v)
	}
	list, err := f.tn.service.ListMandates(context.Background(), "alice", "agent-1")
	if err != nil || len(list) != 1 || list[0].MandateID != mid {
		t.Fatalf("list: %v %+v", err, list)
	}
	// The intent ledger: the creation and both actions, by mandate id.
	evs, _, err := f.tn.db.AuditEntries(context.Background(), store.AuditQuery{Mandate: mid, Type: "request.approved"})
	if err != nil || len(evs) != 3 || evs[0].DecisionJWT == "" || evs[1].Path != "mandate" {
		t.Fatalf("audit by mandate: %v %+v", err, evs)
	}
	// The signed intent checks offline: the decision JWT verifies with the
	// device key kept in the record, and its ad_hash is the entry's.
	rec, err := f.tn.service.MandateRecord(context.Background(), mid)
	if err != nil {
		t.Fatal(err)
	}
	var jwk struct{ X, Y string }
	_ = json.Unmarshal(rec.DeviceJWK, &jwk)
	pub, err := jwkToECDSA(jwk.X, jwk.Y)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(evs[0].DecisionJWT, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation()); err != nil {
		t.Fatalf("the decision does not verify with the recorded device key: %v", err)
	}
	var entry []rar.Detail
	_ = json.Unmarshal([]byte("["+string(rec.Entry)+"]"), &entry)
	if claims["ad_hash"] != rar.Hash(entry) || claims["decision"] != "approve" {
		t.Fatalf("ad_hash %v does not cover the recorded entry (%s)", claims["ad_hash"], rec.Entry)
	}
}

func TestMandateOutsideAndOverriddenTakeTheOrdinaryPath(t *testing.T) {
	f := newMandateFixture(t)
	mid, _ := f.createMandate(travel(f.tn.clock.Now().Add(24*time.Hour), "2000", 0))
	cases := []struct{ name, details, want string }{
		// Outside the templates: decided as without a mandate.
		{"another currency", `[{"type":"payment_initiation","amount":600,"currency":"USD"}]`, "device"},
		{"over max_amount", pay(2100), "device"},
		{"one template for two payments", `[{"type":"payment_initiation","amount":10,"currency":"EUR"},{"type":"payment_initiation","amount":10,"currency":"EUR"}]`, "device"},
		{"an action not listed", `[{"type":"agent_action","action":"book","resource":"taxi"}]`, "policy"},
		// A rule overrides the mandate: the phone, or a refusal.
		{"a rule asks for the phone", pay(1600), "device"},
	}
	for _, c := range cases {
		if by, r := f.decided(c.details, mid); by != c.want {
			t.Errorf("%s: %s, want %s (%s)", c.name, by, c.want, r.Raw)
		}
	}
	r := f.ask(`[{"type":"agent_action","action":"delete","resource":"calendar","actions":["delete"]}]`, mid)
	wantError(t, r, 403, "access_denied")
	// Another agent cannot use it; an unknown id is no mandate either.
	other, otherS := f.tn.client(map[string]any{"client_id": "agent-2"})
	r = f.tn.post("/bc-authorize", other, otherS, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"authorization_details": {pay(600)}, "mandate_id": {mid}})
	if r.Status != 200 || r.Body["interval"] != float64(5) {
		t.Fatalf("another agent's use: %d %s", r.Status, r.Raw)
	}
	if by, _ := f.decided(pay(600), store.NewID()); by != "device" {
		t.Fatalf("an unknown mandate: %s", by)
	}
	wantError(t, f.ask(pay(600), "not-an-id"), 400, "invalid_request")
	if v := f.view(mid); v.Spent != "0.00" || v.Uses != 0 {
		t.Fatalf("nothing outside it was charged: %+v", v)
	}
}

func TestMandateBudgetUsesAndExpiry(t *testing.T) {
	f := newMandateFixture(t)
	now := f.tn.clock.Now()
	mid, _ := f.createMandate(travel(now.Add(time.Hour), "1000", 0))
	steps := []struct {
		amount float64
		want   string
	}{{600, "mandate"}, {500, "device"}, {400, "mandate"}, {0.01, "device"}}
	for _, s := range steps {
		if by, _ := f.decided(pay(s.amount), mid); by != s.want {
			t.Fatalf("%v EUR: %s, want %s", s.amount, by, s.want)
		}
	}
	if v := f.view(mid); v.Spent != "1000.00" || v.Uses != 2 || v.Status != "exhausted" {
		t.Fatalf("budget spent: %+v", v)
	}
	uses, _ := f.createMandate(travel(f.tn.clock.Now().Add(time.Hour), "", 2))
	for i, want := range []string{"mandate", "mandate", "device"} {
		if by, _ := f.decided(pay(100), uses); by != want {
			t.Fatalf("use %d: %s, want %s", i+1, by, want)
		}
	}
	// Expiry: from valid_until on, the ordinary path.
	ends, _ := f.createMandate(travel(f.tn.clock.Now().Add(time.Hour), "", 0))
	if by, _ := f.decided(pay(100), ends); by != "mandate" {
		t.Fatalf("before its end: %s", by)
	}
	f.tn.clock.Advance(time.Hour)
	if by, _ := f.decided(pay(100), ends); by != "device" {
		t.Fatalf("after its end: %s", by)
	}
	if v := f.view(ends); v.Status != "expired" {
		t.Fatalf("status after its end: %+v", v)
	}
	// valid_until beyond the maximum, or past, is refused.
	wantError(t, f.ask(travel(f.tn.clock.Now().Add(8*24*time.Hour), "", 0), ""), 400, "invalid_authorization_details")
	wantError(t, f.ask(travel(f.tn.clock.Now().Add(-time.Minute), "", 0), ""), 400, "invalid_authorization_details")
	// A request for a mandate cannot act within one.
	wantError(t, f.ask(travel(f.tn.clock.Now().Add(time.Hour), "", 0), ends), 400, "invalid_request")
}

func TestMandateRevocation(t *testing.T) {
	f := newMandateFixture(t)
	mid, mtok := f.createMandate(travel(f.tn.clock.Now().Add(24*time.Hour), "2000", 0))
	_, tok := f.decided(pay(100), mid)
	at := tok.str("access_token")
	if !f.introspect(at) || !f.introspect(mtok.str("access_token")) {
		t.Fatal("tokens inactive before revocation")
	}
	// Another user's device cannot revoke it.
	f.tn.user(map[string]any{"id": "bob"})
	bobPhone := f.tn.enrollPhone("bob", "Bob's")
	bobDev, err := f.tn.db.Device(context.Background(), bobPhone.DeviceID())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.tn.service.RevokeMandate(context.Background(), mid, bobDev); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("bob revokes alice's mandate: %v", err)
	}
	dev, err := f.tn.db.Device(context.Background(), f.ph.DeviceID())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.tn.service.RevokeMandate(context.Background(), mid, dev); err != nil {
		t.Fatal(err)
	}
	if err := f.tn.service.RevokeMandate(context.Background(), mid, nil); err != nil { // idempotent, by the admin
		t.Fatal(err)
	}
	if f.introspect(at) || f.introspect(mtok.str("access_token")) {
		t.Fatal("a token of a revoked mandate is active")
	}
	if by, _ := f.decided(pay(100), mid); by != "device" {
		t.Fatalf("a request after revocation: %s", by)
	}
	if v := f.view(mid); v.Status != "revoked" || v.Uses != 1 {
		t.Fatalf("after revocation: %+v", v)
	}
}

// Fifty concurrent purchases of 30 EUR against a budget of 1000 EUR: 33
// are approved by the mandate, exactly 990 EUR is spent, and the others
// take the ordinary path.
func TestMandateConcurrentSpendingNeverOverspends(t *testing.T) {
	f := newMandateFixture(t)
	mid, _ := f.createMandate(travel(f.tn.clock.Now().Add(24*time.Hour), "1000", 0))
	var wg sync.WaitGroup
	replies := make([]reply, 50)
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = f.ask(pay(30), mid)
		}()
	}
	wg.Wait()
	f.tn.clock.Advance(6 * time.Second)
	byMandate, toPhone := 0, 0
	for _, r := range replies {
		if r.Status != 200 {
			t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
		}
		if r.Body["interval"] == float64(5) {
			toPhone++
			continue
		}
		tok := f.tn.post("/token", f.id, f.secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {r.str("auth_req_id")}})
		if by := f.tn.verify(tok.str("access_token"), "at+jwt")["approval"].(map[string]any)["by"]; by == "mandate" {
			byMandate++
		}
	}
	v := f.view(mid)
	if byMandate != 33 || toPhone != 17 || v.Spent != "990.00" || v.Uses != 33 {
		t.Fatalf("%d by the mandate, %d to the phone, spent %s in %d uses", byMandate, toPhone, v.Spent, v.Uses)
	}
}

func TestMandateSubAgents(t *testing.T) {
	f := newMandateFixture(t)
	mid, mtok := f.createMandate(travel(f.tn.clock.Now().Add(24*time.Hour), "2000", 0))
	_, tok := f.decided(pay(600), mid)
	exchange := func(subject string, extra ...string) reply {
		form := url.Values{"grant_type": {exchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessTokenType}}
		for i := 0; i < len(extra); i += 2 {
			form.Set(extra[i], extra[i+1])
		}
		return f.tn.post("/token", f.sub, f.subS, form)
	}
	// Attenuation as for any token: narrower passes, wider is refused.
	narrow := exchange(tok.str("access_token"), "authorization_details", pay(200))
	if narrow.Status != 200 {
		t.Fatalf("narrower exchange: %d %s", narrow.Status, narrow.Raw)
	}
	wantError(t, exchange(tok.str("access_token"), "authorization_details", pay(700)), 400, "invalid_authorization_details")
	// The exchanged token stays inside the mandate: it names it, and its
	// revocation reaches it.
	sat := f.tn.verify(narrow.str("access_token"), "at+jwt")
	if sat["approval"].(map[string]any)["mandate_id"] != mid {
		t.Fatalf("exchanged approval: %v", sat["approval"])
	}
	// A sub-agent may not create mandates: not by exchange, not at
	// /bc-authorize, nor carry the mandate's own token on.
	r := exchange(tok.str("access_token"), "authorization_details", travel(f.tn.clock.Now().Add(time.Hour), "", 0))
	wantError(t, r, 400, "invalid_authorization_details")
	if !strings.Contains(r.str("error_description"), "sub-agent may not create mandates") {
		t.Fatalf("refusal: %s", r.Raw)
	}
	wantError(t, exchange(mtok.str("access_token")), 400, "invalid_authorization_details")
	r = f.tn.post("/bc-authorize", f.sub, f.subS, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"authorization_details": {travel(f.tn.clock.Now().Add(time.Hour), "", 0)}})
	wantError(t, r, 400, "invalid_authorization_details")
	dev, _ := f.tn.db.Device(context.Background(), f.ph.DeviceID())
	if err := f.tn.service.RevokeMandate(context.Background(), mid, dev); err != nil {
		t.Fatal(err)
	}
	if f.introspect(narrow.str("access_token")) {
		t.Fatal("an exchanged token of a revoked mandate is active")
	}
}

// A signed request object carries mandate_id as a claim; the mandate is
// then read after the user is known (the lookup had no hint to read it by).
func TestMandateIDInRequestObject(t *testing.T) {
	f := newMandateFixtureWith(t, newAgentKey(t))
	mid, _ := f.createMandate(travel(f.tn.clock.Now().Add(24*time.Hour), "2000", 0))
	if by, _ := f.decided(pay(600), mid); by != "mandate" {
		t.Fatalf("mandate_id in a request object: %s", by)
	}
	if by, _ := f.decided(pay(600), ""); by != "device" {
		t.Fatalf("without it: %s", by)
	}
	if v := f.view(mid); v.Spent != "600.00" {
		t.Fatalf("spent %s", v.Spent)
	}
}
