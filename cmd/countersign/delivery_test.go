package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/notify"
)

// agentEndpoint is an agent's notification endpoint: it accepts only the
// client_notification_tokens the test registered (before the request: a
// ping can beat the acknowledgement) and JSON bodies, records what came,
// and answers from a script of statuses, then 204.
type agentEndpoint struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	tokens map[string]bool
	script []int
	bad    []string
	hits   chan callback
}

type callback struct {
	Bearer string
	Body   map[string]any
	Status int
}

func newAgentEndpoint(t *testing.T, script ...int) *agentEndpoint {
	a := &agentEndpoint{t: t, tokens: map[string]bool{}, script: script, hits: make(chan callback, 64)}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *agentEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	if r.Method != "POST" || r.URL.Path != "/cb" || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &body) != nil {
		a.bad = append(a.bad, r.Method+" "+r.URL.Path+": "+string(b))
		w.WriteHeader(400)
		return
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !a.tokens[bearer] {
		a.bad = append(a.bad, "unknown bearer")
		w.WriteHeader(401)
		return
	}
	status := 204
	if len(a.script) > 0 {
		status, a.script = a.script[0], a.script[1:]
	}
	if status == 301 {
		w.Header().Set("Location", a.srv.URL+"/moved")
	}
	w.WriteHeader(status)
	a.hits <- callback{Bearer: bearer, Body: body, Status: status}
}

func (a *agentEndpoint) allow(token string) {
	a.mu.Lock()
	a.tokens[token] = true
	a.mu.Unlock()
}

func (a *agentEndpoint) wait(t *testing.T) callback {
	t.Helper()
	select {
	case c := <-a.hits:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no callback arrived")
		return callback{}
	}
}

// waitFor waits for the callback of authReqID with its token and returns
// its body.
func (a *agentEndpoint) waitFor(t *testing.T, authReqID, token string) map[string]any {
	t.Helper()
	c := a.wait(t)
	if c.Body["auth_req_id"] != authReqID || c.Bearer != token {
		t.Fatalf("callback %+v, want auth_req_id %s with bearer %s", c, authReqID, token)
	}
	return c.Body
}

// fastRetries makes the node's worker retry without real waiting and
// records finished deliveries.
func fastRetries(tn *testNode) chan notify.Result {
	done := make(chan notify.Result, 64)
	tn.worker.Hooks(func(_ store.OutboxMsg, r notify.Result) { done <- r }, func(ctx context.Context, d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
			return nil
		}
	})
	return done
}

func (tn *testNode) modeClient(id, mode, endpoint string) (string, string) {
	return tn.client(map[string]any{"client_id": id, "backchannel_token_delivery_mode": mode,
		"backchannel_client_notification_endpoint": endpoint})
}

// notified starts a request for a ping or push client with a fresh
// client_notification_token the endpoint accepts.
func (tn *testNode) notified(ep *agentEndpoint, id, secret, token, details string, extra ...string) string {
	tn.t.Helper()
	ep.allow(token)
	f := url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "client_notification_token": {token}, "authorization_details": {details}}
	for i := 0; i < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	r := tn.post("/bc-authorize", id, secret, f)
	if r.Status != 200 {
		tn.t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	return r.str("auth_req_id")
}

func TestPingModeApprovedDeniedExpired(t *testing.T) {
	tn := startNode(t, nil)
	setup(t, tn)
	ep := newAgentEndpoint(t)
	fastRetries(tn)
	id, secret := tn.modeClient("pinger", "ping", ep.srv.URL+"/cb")
	ph := tn.enrollPhone("alice", "Phone")

	// Approved by policy: pinged at once, then /token.
	low := tn.notified(ep, id, secret, "ntok-1", readDetails)
	if b := ep.waitFor(t, low, "ntok-1"); len(b) != 1 {
		t.Fatalf("ping body: %v", b)
	}
	if r := tn.post("/token", id, secret, cibaForm(low)); r.Status != 200 {
		t.Fatalf("token after ping: %d %s", r.Status, r.Raw)
	}
	// Denied on the phone: pinged, /token says access_denied.
	denied := tn.notified(ep, id, secret, "ntok-2", bigPayment)
	waitPush(t, ph, denied)
	if err := ph.Decide(context.Background(), denied, "deny"); err != nil {
		t.Fatal(err)
	}
	ep.waitFor(t, denied, "ntok-2")
	tn.clock.Advance(6 * time.Second)
	wantError(t, tn.post("/token", id, secret, cibaForm(denied)), 400, "access_denied")
	// Expired while pending: pinged, /token says expired_token.
	exp := tn.notified(ep, id, secret, "ntok-3", bigPayment, "requested_expiry", "30")
	tn.clock.Advance(31 * time.Second)
	ep.waitFor(t, exp, "ntok-3")
	wantError(t, tn.post("/token", id, secret, cibaForm(exp)), 400, "expired_token")
	if len(ep.bad) != 0 {
		t.Fatalf("endpoint saw bad callbacks: %v", ep.bad)
	}
	// The expiry was audited.
	r := tn.admin("GET", "/admin/audit?request="+exp+"&type=request.expired", nil)
	if entries, _ := r.Body["entries"].([]any); len(entries) != 1 {
		t.Fatalf("expiry audit: %s", r.Raw)
	}
}

func TestPushModeDeliversTheTokenItself(t *testing.T) {
	tn := startNode(t, nil)
	setup(t, tn)
	ep := newAgentEndpoint(t)
	fastRetries(tn)
	id, secret := tn.modeClient("pusher", "push", ep.srv.URL+"/cb")
	ph := tn.enrollPhone("alice", "Phone")
	// A push client gets no interval and may not poll.
	ep.allow("ptok-1")
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"client_notification_token": {"ptok-1"}, "authorization_details": {readDetails}})
	if r.Status != 200 || r.Body["interval"] != nil {
		t.Fatalf("push ack: %d %s", r.Status, r.Raw)
	}
	low := r.str("auth_req_id")
	b := ep.waitFor(t, low, "ptok-1")
	if b["token_type"] != "Bearer" || b["access_token"] == nil {
		t.Fatalf("push body: %v", b)
	}
	idt := tn.verify(b["id_token"].(string), "JWT")
	if idt["urn:openid:params:jwt:claim:auth_req_id"] != low || idt["at_hash"] == nil {
		t.Fatalf("push id token: %v", idt)
	}
	tn.verify(b["access_token"].(string), "at+jwt")
	wantError(t, tn.post("/token", id, secret, cibaForm(low)), 400, "unauthorized_client")
	// Denied: an error body.
	denied := tn.notified(ep, id, secret, "ptok-2", bigPayment)
	waitPush(t, ph, denied)
	if err := ph.Decide(context.Background(), denied, "deny"); err != nil {
		t.Fatal(err)
	}
	if b := ep.waitFor(t, denied, "ptok-2"); b["error"] != "access_denied" || b["error_description"] == nil {
		t.Fatalf("denied push: %v", b)
	}
	// Approved on the phone: the token with device approval.
	ok := tn.notified(ep, id, secret, "ptok-3", bigPayment)
	waitPush(t, ph, ok)
	if err := ph.Decide(context.Background(), ok, "approve"); err != nil {
		t.Fatal(err)
	}
	b = ep.waitFor(t, ok, "ptok-3")
	if at := tn.verify(b["access_token"].(string), "at+jwt"); at["approval"].(map[string]any)["by"] != "device" {
		t.Fatalf("device push token: %v", at)
	}
	// Expired: an error body with expired_token.
	exp := tn.notified(ep, id, secret, "ptok-4", bigPayment, "requested_expiry", "30")
	tn.clock.Advance(31 * time.Second)
	if b := ep.waitFor(t, exp, "ptok-4"); b["error"] != "expired_token" {
		t.Fatalf("expired push: %v", b)
	}
}

func TestCallbackRetriesThenDeliversTheSameToken(t *testing.T) {
	tn := startNode(t, nil)
	setup(t, tn)
	ep := newAgentEndpoint(t, 500, 500)
	done := fastRetries(tn)
	id, secret := tn.modeClient("pusher", "push", ep.srv.URL+"/cb")
	req := tn.notified(ep, id, secret, "rtok", readDetails)
	var tokens []string
	for i, want := range []int{500, 500, 204} {
		c := ep.wait(t)
		if c.Status != want || c.Body["auth_req_id"] != req {
			t.Fatalf("attempt %d: %+v", i+1, c)
		}
		tokens = append(tokens, c.Body["access_token"].(string))
	}
	if tokens[0] != tokens[1] || tokens[1] != tokens[2] {
		t.Fatal("retries minted different tokens")
	}
	if r := <-done; r.Outcome != notify.Delivered {
		t.Fatalf("outcome %v", r.Outcome)
	}
	select {
	case c := <-ep.hits:
		t.Fatalf("delivered again: %+v", c)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestCallback401IsNotRetriedAnd301NotFollowed(t *testing.T) {
	for _, status := range []int{401, 301} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			tn := startNode(t, nil)
			setup(t, tn)
			ep := newAgentEndpoint(t, status)
			done := fastRetries(tn)
			id, secret := tn.modeClient("pinger", "ping", ep.srv.URL+"/cb")
			req := tn.notified(ep, id, secret, "tok", readDetails)
			if c := ep.wait(t); c.Status != status || c.Body["auth_req_id"] != req {
				t.Fatalf("callback: %+v", c)
			}
			if r := <-done; r.Outcome != notify.Failed {
				t.Fatalf("outcome %v", r.Outcome)
			}
			select {
			case c := <-ep.hits:
				t.Fatalf("retried or followed: %+v", c)
			case <-time.After(300 * time.Millisecond):
			}
			if len(ep.bad) != 0 {
				t.Fatalf("the redirect target was called: %v", ep.bad)
			}
		})
	}
}

func TestDeadWorkersNotificationIsTakenOver(t *testing.T) {
	tn := startNode(t, nil)
	setup(t, tn)
	ep := newAgentEndpoint(t)
	// Stop the node's own worker: another consumer ("dead") reads the
	// notification and never finishes it; a fresh worker takes it over.
	id, secret := tn.modeClient("pinger", "ping", ep.srv.URL+"/cb")
	tn.stopWorker()
	ctx := context.Background()
	if err := tn.db.EnsureOutboxGroups(ctx); err != nil {
		t.Fatal(err)
	}
	req := tn.notified(ep, id, secret, "dtok", readDetails)
	msgs, err := tn.db.ReadOutbox(ctx, "dead-node", 10, time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].Outbox.RequestID != req {
		t.Fatalf("dead node read: %+v %v", msgs, err)
	}
	w := tn.newWorker("rescuer", 200*time.Millisecond)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.Run(wctx)
	ep.waitFor(t, req, "dtok")
}

func TestNotificationEndpointSSRFRefused(t *testing.T) {
	tn := startNode(t, func(c *Config) { c.Dev = false; c.Issuer = strings.Replace(c.Issuer, "127.0.0.1", "localhost", 1) })
	for _, ep := range []string{"http://agent.example.com/cb", "https://127.0.0.1/cb", "https://10.0.0.5/cb", "https://[::1]/cb",
		"https://169.254.169.254/latest", "https://192.168.1.1/cb", "https://user:pw@agent.example.com/cb"} {
		r := tn.admin("POST", "/admin/clients", map[string]any{"backchannel_token_delivery_mode": "ping",
			"backchannel_client_notification_endpoint": ep})
		if r.Status != 400 || r.str("error") != "invalid_client_metadata" {
			t.Errorf("%s: %d %s", ep, r.Status, r.Raw)
		}
	}
	if r := tn.admin("POST", "/admin/clients", map[string]any{"backchannel_token_delivery_mode": "ping",
		"backchannel_client_notification_endpoint": "https://agent.example.com/cb"}); r.Status != 201 {
		t.Fatalf("public https endpoint: %d %s", r.Status, r.Raw)
	}
}

// A failing callback is retried until the request's last second: a
// backoff that would pass the expiry is cut short, never skipped.
func TestCallbackRetriedUntilTheLastSecond(t *testing.T) {
	tn := startNode(t, nil)
	setup(t, tn)
	// An endpoint that always fails, noting the node's clock at each try
	// (the worker's other loops move the clock too, so it is read here).
	var mu sync.Mutex
	var tries []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tries = append(tries, tn.clock.Now())
		mu.Unlock()
		w.WriteHeader(503)
	}))
	t.Cleanup(srv.Close)
	done := make(chan notify.Result, 4)
	tn.worker.Hooks(func(_ store.OutboxMsg, r notify.Result) { done <- r }, func(ctx context.Context, d time.Duration) error {
		tn.clock.Advance(d) // the worker waits on the node's clock
		return ctx.Err()
	})
	id, secret := tn.modeClient("pinger", "ping", srv.URL+"/cb")
	start := tn.clock.Now()
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"client_notification_token": {"ptok"}, "authorization_details": {readDetails}, "requested_expiry": {"40"}})
	if r.Status != 200 {
		t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	select {
	case res := <-done:
		if res.Outcome == notify.Delivered {
			t.Fatal("delivered to an endpoint that always fails")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker never gave up")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tries) < 2 {
		t.Fatalf("%d tries", len(tries))
	}
	if last := tries[len(tries)-1].Sub(start); last < 39*time.Second {
		t.Fatalf("the worker gave up %v after the request, with more than a second of its 40 s left", last)
	}
}
