package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// startLoggedNode is startNode with the node's log as JSON lines in logs.
func startLoggedNode(t *testing.T, logs io.Writer, mutate func(*Config)) *testNode {
	t.Helper()
	return launchNode(t, nodeSetup{mutate: mutate,
		log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
}

// refusals returns the audit entries of a query (a type, agent and user).
func (tn *testNode) refusals(query string) []map[string]any {
	tn.t.Helper()
	r := tn.admin("GET", "/admin/audit?"+query, nil)
	if r.Status != 200 {
		tn.t.Fatalf("audit %s: %d %s", query, r.Status, r.Raw)
	}
	var out []map[string]any
	for _, e := range r.Body["entries"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

// wantOneRefusal asserts that query finds exactly one entry with these
// members, and returns it.
func wantOneRefusal(t *testing.T, tn *testNode, query string, members map[string]string) map[string]any {
	t.Helper()
	es := tn.refusals(query)
	if len(es) != 1 {
		t.Fatalf("%s: %d entries, want 1: %v", query, len(es), es)
	}
	for k, v := range members {
		if got, _ := es[0][k].(string); got != v {
			t.Fatalf("%s: %s is %q, want %q in %v", query, k, got, v, es[0])
		}
	}
	if es[0]["ip"] != "127.0.0.1" || es[0]["detail"] == "" || es[0]["hash"] == nil {
		t.Fatalf("%s: no ip, detail or hash: %v", query, es[0])
	}
	if _, ok := es[0]["decision_jwt"]; ok {
		t.Fatalf("%s: a refusal stores the JWT: %v", query, es[0])
	}
	return es[0]
}

func TestRefusalsOfIdentifiedCallersAreAuditedOnce(t *testing.T) {
	var logs syncBuffer
	tn := startLoggedNode(t, &logs, func(c *Config) { c.MaxPendingPerAgent = 2 })
	id, secret := setup(t, tn)
	secrets := []string{secret, testAdminToken}
	ph := tn.enrollPhone("alice", "Pixel")
	ctx := context.Background()

	// A decision signed by another key than the authenticated device's.
	pending := tn.highRisk(id, secret, "Pay ACME")
	view, err := ph.View(ctx, pending)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := ph.DecisionJWT(view, "approve", tn.clock.Now())
	claims := jwt.MapClaims{}
	_, _, _ = jwt.NewParser().ParseUnverified(good, claims)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(other)
	auth, _ := ph.DeviceJWT(tn.clock.Now())
	req := mustReq(t, "POST", tn.URL+"/device/requests/"+pending+"/decision", `{"decision_jwt":"`+forged+`"}`)
	req.Header.Set("Authorization", "Device "+auth)
	wantError(t, tn.do(req), 400, "invalid_request")
	secrets = append(secrets, forged, good)
	wantOneRefusal(t, tn, "type=decision.refused&user=alice&agent="+id, map[string]string{"user": "alice", "agent": id,
		"device_id": ph.DeviceID(), "request_id": pending, "error": "invalid_request"})

	// The device's other calls: a request that is not its user's.
	auth, _ = ph.DeviceJWT(tn.clock.Now())
	req = mustReq(t, "GET", tn.URL+"/device/requests/not-a-request", "")
	req.Header.Set("Authorization", "Device "+auth)
	wantError(t, tn.do(req), 404, "not_found")
	wantOneRefusal(t, tn, "type=device.refused&user=alice", map[string]string{"user": "alice", "device_id": ph.DeviceID(),
		"error": "not_found"})

	// An agent the user's may_act does not list.
	tn.user(map[string]any{"id": "carol", "may_act": []map[string]any{{"client_id": "someone-else"}}})
	wantError(t, tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"carol"}}), 403, "access_denied")
	wantOneRefusal(t, tn, "type=request.refused&user=carol&agent="+id, map[string]string{"user": "carol", "agent": id,
		"error": "access_denied"})

	// The push-bombing cap (2 pending per agent and user; one is pending).
	tn.highRisk(id, secret, "Pay ACME again")
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {bigPayment}})
	wantError(t, r, 429, "slow_down")
	wantOneRefusal(t, tn, "type=request.refused&user=alice&agent="+id, map[string]string{"user": "alice", "agent": id,
		"error": "slow_down"})

	// An exchange by a client the subject token's actor does not delegate to.
	subID, subSecret := tn.client(map[string]any{"client_id": "sub", "grant_types": []string{exchangeGrant}})
	secrets = append(secrets, subSecret)
	low := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "authorization_details": {readDetails}})
	tok := tn.post("/token", id, secret, cibaForm(low.str("auth_req_id")))
	if tok.Status != 200 {
		t.Fatalf("token: %d %s", tok.Status, tok.Raw)
	}
	secrets = append(secrets, tok.str("access_token"), tok.str("id_token"))
	wantError(t, tn.post("/token", subID, subSecret, exchangeForm(tok.str("access_token"))), 400, "invalid_request")
	e := wantOneRefusal(t, tn, "type=exchange.refused&user=alice&agent="+subID, map[string]string{"user": "alice", "agent": subID,
		"error": "invalid_request"})
	if !strings.Contains(e["detail"].(string), "delegates_to") {
		t.Fatalf("exchange refusal does not say why: %v", e)
	}

	// Another client's auth_req_id at /token; a poll while pending is not a refusal.
	otherID, otherSecret := tn.client(map[string]any{"client_id": "agent-2"})
	secrets = append(secrets, otherSecret)
	wantError(t, tn.poll(otherID, otherSecret, pending), 400, "invalid_grant")
	wantError(t, tn.poll(id, secret, pending), 400, "authorization_pending")
	wantOneRefusal(t, tn, "type=token.refused&agent="+otherID, map[string]string{"agent": otherID, "error": "invalid_grant"})
	if es := tn.refusals("type=token.refused&agent=" + id); len(es) != 0 {
		t.Fatalf("a pending poll was audited as a refusal: %v", es)
	}

	// A wrong secret for a client that exists: audited against that client
	// as not authenticated (and counted; see the next test).
	wrong := "wrong-secret-" + strings.Repeat("x", 20)
	secrets = append(secrets, wrong)
	wantError(t, tn.post("/introspect", id, wrong, url.Values{"token": {tok.str("access_token")}}), 401, "invalid_client")
	e = wantOneRefusal(t, tn, "type=introspection.refused&agent="+id, map[string]string{"agent": id, "error": "invalid_client"})
	if !strings.HasPrefix(e["detail"].(string), "not authenticated: ") || e["user"] != nil {
		t.Fatalf("wrong secret refusal: %v", e)
	}

	// A policy denial is audited once, as request.denied.
	if r := tn.admin("PUT", "/admin/rules", map[string]any{"ruleset": denyRules, "comment": "no deletes"}); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Raw)
	}
	waitRules(t, tn, "2")
	wantError(t, tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"authorization_details": {`[{"type":"agent_action","action":"delete","resource":"mail","actions":["delete"]}]`}}), 403, "access_denied")
	if n := len(tn.refusals("type=request.denied&user=alice")); n != 1 {
		t.Fatalf("%d request.denied entries, want 1", n)
	}
	if n := len(tn.refusals("type=request.refused&user=alice")); n != 1 { // the slow_down above
		t.Fatalf("a policy denial was audited twice: %d request.refused", n)
	}

	// Nothing secret in the stored entries.
	raw := rawAuditStreams(t, tn)
	for _, s := range secrets {
		if s != "" && strings.Contains(raw, s) {
			t.Fatalf("a secret or token value is in the audit stream: %.12s...", s)
		}
	}
	if rep := tn.admin("POST", "/admin/audit/verify", nil); rep.Status != 200 || strings.Contains(rep.Raw, `"ok":false`) {
		t.Fatalf("audit chain: %d %s", rep.Status, rep.Raw)
	}
}

// logLines decodes every line of a JSON log; a line that is not JSON fails.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// authFailureLines returns the WARN lines of failed authentications at
// endpoint for reason.
func authFailureLines(t *testing.T, logs *syncBuffer, endpoint, reason string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range logLines(t, logs.String()) {
		if m["msg"] == "authentication failed" && m["endpoint"] == endpoint && m["reason"] == reason {
			if m["level"] != "WARN" {
				t.Fatalf("level: %v", m)
			}
			out = append(out, m)
		}
	}
	return out
}

// authFailures reads countersign_auth_failures_total for endpoint and reason.
func (tn *testNode) authFailures(endpoint, reason string) int {
	tn.t.Helper()
	r := tn.do(mustReq(tn.t, "GET", tn.URL+"/metrics", ""))
	re := regexp.MustCompile(`(?m)^countersign_auth_failures_total\{endpoint="` + endpoint + `",reason="` + reason + `"\} (\d+)$`)
	m := re.FindStringSubmatch(r.Raw)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestUnidentifiedFailuresAreCountedAndLoggedWithinLimits(t *testing.T) {
	var logs syncBuffer
	tn := startLoggedNode(t, &logs, nil)
	id, secret := setup(t, tn)
	badToken := "not-the-admin-token-" + strings.Repeat("y", 20)
	adminAs := func(token string) reply {
		req := mustReq(t, "GET", tn.URL+"/admin/clients", "")
		req.Header.Set("Authorization", "Bearer "+token)
		return tn.do(req)
	}
	// A wrong admin token, 15 times: every one counted, 10 logged.
	for i := 0; i < 15; i++ {
		wantError(t, adminAs(badToken), 401, "invalid_token")
	}
	if n := tn.authFailures("admin", "bad_token"); n != 15 {
		t.Fatalf("admin bad_token counted %d times, want 15", n)
	}
	if lines := authFailureLines(t, &logs, "admin", "bad_token"); len(lines) != 10 || lines[0]["ip"] != "127.0.0.1" {
		t.Fatalf("%d log lines for 15 bad admin tokens, want 10: %v", len(lines), lines)
	}
	// A minute later the next line says how many were left out.
	tn.clock.Advance(61 * time.Second)
	wantError(t, adminAs(badToken), 401, "invalid_token")
	lines := authFailureLines(t, &logs, "admin", "bad_token")
	if len(lines) != 11 || lines[10]["suppressed"] != float64(5) {
		t.Fatalf("after a minute: %d lines, last %v", len(lines), lines[len(lines)-1])
	}
	// No admin bearer at all.
	wantError(t, tn.do(mustReq(t, "GET", tn.URL+"/admin/clients", "")), 401, "invalid_token")
	if n := tn.authFailures("admin", "missing_token"); n != 1 {
		t.Fatalf("missing admin token counted %d times", n)
	}

	// An unknown client: counted and logged, nothing to audit.
	wantError(t, tn.post("/token", "ghost", "boo", cibaForm("x")), 401, "invalid_client")
	if n := tn.authFailures("token", "unknown_client"); n != 1 {
		t.Fatalf("unknown client counted %d times", n)
	}
	if l := authFailureLines(t, &logs, "token", "unknown_client"); len(l) != 1 || l[0]["client_id"] != "ghost" {
		t.Fatalf("unknown client log: %v", l)
	}
	if es := tn.refusals("agent=ghost"); len(es) != 0 {
		t.Fatalf("an unknown client was audited: %v", es)
	}
	// A wrong secret of a known client is counted too (and audited, above).
	wrong := "wrong-" + strings.Repeat("z", 30)
	wantError(t, tn.post("/bc-authorize", id, wrong, url.Values{"scope": {"openid"}, "login_hint": {"alice"}}), 401, "invalid_client")
	if n := tn.authFailures("bc_authorize", "bad_credentials"); n != 1 {
		t.Fatalf("wrong secret counted %d times", n)
	}
	// No client authentication at all.
	wantError(t, tn.post("/token", "", "", cibaForm("x")), 401, "invalid_client")
	if n := tn.authFailures("token", "malformed_credentials"); n != 1 {
		t.Fatalf("missing client authentication counted %d times", n)
	}
	// Device authentication: garbage, then an unknown device.
	for _, h := range []string{"Device garbage", "Bearer x"} {
		req := mustReq(t, "GET", tn.URL+"/device/requests", "")
		req.Header.Set("Authorization", h)
		if r := tn.do(req); r.Status != 401 {
			t.Fatalf("device auth %q: %d %s", h, r.Status, r.Raw)
		}
	}
	if tn.authFailures("device", "malformed") != 1 || tn.authFailures("device", "missing") != 1 {
		t.Fatalf("device failures not counted")
	}
	if l := authFailureLines(t, &logs, "device", "malformed"); len(l) != 1 || l[0]["ip"] != "127.0.0.1" {
		t.Fatalf("device failure log: %v", l)
	}
	// The log never holds the secrets tried.
	for _, s := range []string{badToken, testAdminToken, wrong, secret} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("a secret is in the log: %.8s...", s)
		}
	}
}
