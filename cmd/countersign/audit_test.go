package main

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"net/url"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/store"
)

const denyRules = `format: countersign/v1
name: no-deletes
thresholds: {medium: 30, high: 60}
rules:
  - id: no-deletes
    when: "'delete' in action.actions"
    decision: deny
    reason: Agents may not delete anything.
  - id: big-payment
    when: action.amount > 1000.0
    decision: require_device
    reason: Big payments need the phone.
`

// auditEvents returns every audit entry, oldest first.
func (tn *testNode) auditEvents() []map[string]any {
	tn.t.Helper()
	var all []map[string]any
	cursor := ""
	for {
		r := tn.admin("GET", "/admin/audit?limit=1000&cursor="+url.QueryEscape(cursor), nil)
		if r.Status != 200 {
			tn.t.Fatalf("audit: %d %s", r.Status, r.Raw)
		}
		for _, e := range r.Body["entries"].([]any) {
			all = append(all, e.(map[string]any))
		}
		if cursor = r.str("next_cursor"); cursor == "" {
			return all
		}
	}
}

func TestEveryEventTypeIsAuditedWithItsFieldsAndNoSecrets(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	secrets := []string{secret, testAdminToken}
	ph := tn.enrollPhone("alice", "Phone")
	ctx := context.Background()

	// Policy approval and token.
	low := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
	tok := tn.post("/token", id, secret, cibaForm(low.str("auth_req_id")))
	secrets = append(secrets, tok.str("access_token"), tok.str("id_token"))
	// Device approval and denial.
	approved := tn.highRisk(id, secret, "Pay ACME")
	waitPush(t, ph, approved)
	if err := ph.Decide(ctx, approved, "approve"); err != nil {
		t.Fatal(err)
	}
	devTok := tn.poll(id, secret, approved)
	secrets = append(secrets, devTok.str("access_token"))
	denied := tn.highRisk(id, secret, "Pay evil")
	waitPush(t, ph, denied)
	if err := ph.Decide(ctx, denied, "deny"); err != nil {
		t.Fatal(err)
	}
	// Expiry of a pending request (the sweeper).
	expiring := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"authorization_details": {bigPayment}, "requested_expiry": {"20"}}).str("auth_req_id")
	tn.clock.Advance(21 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r := tn.admin("GET", "/admin/audit?type=request.expired&request="+expiring, nil); len(r.Body["entries"].([]any)) == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Token exchange, revocations, a refused introspection.
	subID, subSecret := tn.client(map[string]any{"client_id": "sub", "grant_types": []string{exchangeGrant}})
	tn.admin("PATCH", "/admin/clients/"+id, map[string]any{"delegates_to": []string{"sub"}})
	ex := tn.post("/token", subID, subSecret, exchangeForm(tok.str("access_token")))
	if ex.Status != 200 {
		t.Fatalf("exchange: %d %s", ex.Status, ex.Raw)
	}
	secrets = append(secrets, ex.str("access_token"), subSecret)
	tn.post("/revoke", subID, subSecret, url.Values{"token": {ex.str("access_token")}})
	tn.post("/introspect", subID, subSecret, url.Values{"token": {tok.str("access_token")}})
	grant := tn.verify(devTok.str("access_token"), "at+jwt")["grant_id"].(string)
	auth, _ := ph.DeviceJWT(tn.clock.Now())
	req := mustReq(t, "POST", tn.URL+"/device/grants/"+grant+"/revoke", "")
	req.Header.Set("Authorization", "Device "+auth)
	tn.do(req)
	tn.admin("POST", "/admin/agents/"+id+"/revoke", map[string]any{"user_id": "alice"})
	// A rule change, then a request refused by a deny rule.
	if r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": denyRules, "comment": "no deletes"}); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Raw)
	}
	waitRules(t, tn, "2")
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"authorization_details": {`[{"type":"agent_action","action":"delete","resource":"mail","actions":["delete"]}]`}})
	wantError(t, r, 403, "access_denied")
	if !strings.Contains(r.str("error_description"), "no-deletes") {
		t.Fatalf("denial does not name the rule: %s", r.Raw)
	}

	events := tn.auditEvents()
	byType := map[string][]map[string]any{}
	for _, e := range events {
		byType[e["type"].(string)] = append(byType[e["type"].(string)], e)
	}
	want := map[string][]string{
		"risk.decision":         {"request_id", "user", "agent", "actors", "risk", "path", "ip", "input"},
		"request.approved":      {"request_id", "grant_id", "user", "agent", "path"},
		"request.denied":        {"request_id", "user", "agent", "path"},
		"request.expired":       {"request_id", "user", "agent"},
		"token.issued":          {"request_id", "grant_id", "user", "agent", "token_jti", "path"},
		"token.exchanged":       {"grant_id", "user", "agent", "actors", "risk", "token_jti"},
		"token.revoked":         {"user", "agent", "token_jti"},
		"grant.revoked":         {"grant_id", "user", "device_id"},
		"agent.revoked":         {"agent", "user"},
		"device.enrolled":       {"user", "device_id"},
		"rules.activated":       {},
		"introspection.refused": {"agent"},
		"client.created":        {"agent", "detail"},
		"client.updated":        {"agent", "detail"},
		"user.created":          {"user", "detail"},
	}
	for typ, fields := range want {
		es := byType[typ]
		if len(es) == 0 {
			t.Errorf("no %s event", typ)
			continue
		}
		for _, f := range fields {
			if es[0][f] == nil || es[0][f] == "" {
				t.Errorf("%s lacks %s: %v", typ, f, es[0])
			}
		}
		for _, e := range es {
			if e["hash"] == nil || e["id"] == nil {
				t.Errorf("%s without hash or id", typ)
			}
		}
	}
	// The device approval carries the device and its signed decision.
	var dev map[string]any
	for _, e := range byType["request.approved"] {
		if e["request_id"] == approved {
			dev = e
		}
	}
	if dev == nil || dev["path"] != "device" || dev["device_id"] != ph.DeviceID() || strings.Count(dev["decision_jwt"].(string), ".") != 2 {
		t.Fatalf("device approval event: %v", dev)
	}
	// The exchange names the whole chain.
	if a := byType["token.exchanged"][0]["actors"].([]any); len(a) != 2 || a[0] != id || a[1] != "sub" {
		t.Fatalf("exchange actors: %v", a)
	}
	// Nothing secret anywhere in the raw streams.
	raw := rawAuditStreams(t, tn)
	for _, s := range secrets {
		if s != "" && strings.Contains(raw, s) {
			t.Fatalf("a secret or token value is in the audit stream: %.12s...", s)
		}
	}
	if strings.Contains(raw, "client_secret") || strings.Contains(raw, "client_notification_token") {
		t.Fatal("a secret member is in the audit stream")
	}
}

func rawAuditStreams(t *testing.T, tn *testNode) string {
	t.Helper()
	var b strings.Builder
	ctx := context.Background()
	keys, err := tn.db.Redis().Keys(ctx, tn.cfg.KeyPrefix+"*audit*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("audit keys: %v %v", keys, err)
	}
	for _, k := range keys {
		if typ, _ := tn.db.Redis().Type(ctx, k).Result(); typ != "stream" {
			continue
		}
		msgs, _ := tn.db.Redis().XRange(ctx, k, "-", "+").Result()
		for _, m := range msgs {
			for _, v := range m.Values {
				b.WriteString(v.(string))
			}
		}
	}
	return b.String()
}

func waitRules(t *testing.T, tn *testNode, version string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		req := mustReq(t, "GET", tn.URL+"/readyz", "")
		if r := tn.do(req); r.str("rules_version") == version {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("rules version %s never became active", version)
}

func TestAuditVerifyExportAndRetention(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	for i := 0; i < 3; i++ {
		r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
		tn.post("/token", id, secret, cibaForm(r.str("auth_req_id")))
	}
	code, out, errOut := tn.cli("audit", "verify")
	if code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	total := len(tn.auditEvents())
	code, out, _ = tn.cli("audit", "export")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != total {
		t.Fatalf("export: %d, %d lines for %d events", code, len(lines), total)
	}
	code, out, _ = tn.cli("audit", "tail", "--n", "2", "--type", "token")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "token.issued") {
		t.Fatalf("tail: %d %q", code, out)
	}
	// Retention: everything older than an hour goes to a file, then out of Redis.
	tn.clock.Advance(2 * time.Hour)
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
	if r.Status != 200 {
		t.Fatal(r.Raw)
	}
	dir := t.TempDir()
	ret := &ciba.Retention{Service: tn.service, Keep: time.Hour, Dir: dir}
	file, n, err := ret.RunOnce(context.Background())
	if err != nil || n != int64(total) {
		t.Fatalf("retention: %s %d of %d: %v", file, n, total, err)
	}
	b, _ := os.ReadFile(file)
	if got := strings.Count(string(b), "\n"); got != total {
		t.Fatalf("exported file has %d lines", got)
	}
	var first store.Event
	_ = json.Unmarshal([]byte(strings.SplitN(string(b), "\n", 2)[0]), &first)
	if first.Hash == "" || first.Type == "" {
		t.Fatalf("exported event: %+v", first)
	}
	if left := len(tn.auditEvents()); left == 0 || left >= total {
		t.Fatalf("%d events left after trimming %d", left, total)
	}
	if code, out, _ := tn.cli("audit", "verify"); code != 0 {
		t.Fatalf("verify after trim: %d %s", code, out)
	}
	// Tampering is caught and named.
	evs := tn.auditEvents()
	victim := evs[len(evs)-1]["id"].(string)
	shard, sid, _ := strings.Cut(victim, "-")
	sh, _ := strconv.Atoi(shard)
	key := tn.cfg.KeyPrefix + "{s" + pad(sh) + "}:audit"
	if sh == store.Shards {
		key = tn.cfg.KeyPrefix + "{dir}:audit"
	}
	if n, err := tn.db.Redis().XDel(context.Background(), key, sid).Result(); err != nil || n != 1 {
		t.Fatalf("xdel %s %s: %d %v", key, sid, n, err)
	}
	code, out, _ = tn.cli("audit", "verify")
	if code != 1 || !strings.Contains(out, "BROKEN") {
		t.Fatalf("tampering not caught: %d %s", code, out)
	}
}

func pad(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
