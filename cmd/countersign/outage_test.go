package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/countersign/countersign/ciba/store/redistest"
)

// outageTimeout is the request deadline of the outage tests' nodes.
const outageTimeout = time.Second

// patience is how long a test waits for an answer: far past the deadline,
// so a hang shows as the client's own timeout, not as slowness.
const patience = 15 * time.Second

// startOutageNode starts a node on a redis-server of the test's own, which
// the test may stop or freeze.
func startOutageNode(t *testing.T) (*testNode, *redistest.Proc) {
	t.Helper()
	p := redistest.Own(t)
	tn := startNode(t, func(c *Config) { c.RedisURL, c.RequestTimeout = "redis://"+p.Addr, outageTimeout })
	return tn, p
}

// call sends req with a client that gives up after patience.
func (tn *testNode) call(req *http.Request) reply {
	tn.t.Helper()
	c := &http.Client{Timeout: patience}
	resp, err := c.Do(req)
	if err != nil {
		tn.t.Fatalf("%s %s: no answer within %v (the request hangs): %v", req.Method, req.URL.Path, patience, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(b)}
	_ = json.Unmarshal(b, &r.Body)
	return r
}

func (tn *testNode) form(path, id, secret string, form url.Values) *http.Request {
	req, _ := http.NewRequest("POST", tn.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return req
}

func (tn *testNode) adminReq(method, path, body string) *http.Request {
	req, _ := http.NewRequest(method, tn.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// wantUnavailable asserts docs/api.md's answer to an unreachable Redis: 503
// temporarily_unavailable in the RFC 6749 §5.2 form, with Retry-After.
func wantUnavailable(t *testing.T, what string, r reply) {
	t.Helper()
	if r.Status != 503 || r.str("error") != "temporarily_unavailable" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: want 503 temporarily_unavailable with Retry-After, got %d %v %s", what, r.Status, r.Header, r.Raw)
	}
	wantError(t, r, 503, "temporarily_unavailable")
	if strings.Contains(r.Raw, "dial") || strings.Contains(r.Raw, "127.0.0.1") || strings.Contains(r.Raw, "deadline") {
		t.Fatalf("%s: internal detail in the answer: %s", what, r.Raw)
	}
}

// outageRequests are one request of each kind: OAuth, admin, device,
// readiness. approved is an auth_req_id approved by policy, not redeemed.
type outageRequests struct {
	id, secret, approved string
}

func (o outageRequests) all(tn *testNode) map[string]*http.Request {
	// A device JWT naming an unknown device: the server must read Redis
	// to know it is unknown.
	devJWT, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Issuer: "phone-1"}).SignedString([]byte("k"))
	dev, _ := http.NewRequest("GET", tn.URL+"/device/requests", nil)
	dev.Header.Set("Authorization", "Device "+devJWT)
	return map[string]*http.Request{
		"bc-authorize": tn.form("/bc-authorize", o.id, o.secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
			"authorization_details": {readDetails}}),
		"token": tn.form("/token", o.id, o.secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"},
			"auth_req_id": {o.approved}}),
		"admin list":  tn.adminReq("GET", "/admin/clients", ""),
		"admin write": tn.adminReq("POST", "/admin/users", `{"id":"bob","email":"bob@example.com"}`),
		"device":      dev,
	}
}

func prepareOutage(t *testing.T, tn *testNode) outageRequests {
	t.Helper()
	id, secret := setup(t, tn)
	r := tn.post("/bc-authorize", id, secret, url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"authorization_details": {readDetails}})
	if r.Status != 200 {
		t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	return outageRequests{id: id, secret: secret, approved: r.str("auth_req_id")}
}

// checkOutage asserts every kind of request answers 503 and /readyz says
// not ready, without internal detail.
func checkOutage(t *testing.T, tn *testNode, o outageRequests) {
	t.Helper()
	for what, req := range o.all(tn) {
		wantUnavailable(t, what, tn.call(req))
	}
	r := tn.call(mustReq(t, "GET", tn.URL+"/readyz", ""))
	if r.Status != 503 || r.Raw != `{"status":"not ready"}`+"\n" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("readyz: want 503 {\"status\":\"not ready\"}, got %d %q", r.Status, r.Raw)
	}
}

// checkRecovered asserts the node serves again once Redis is back: ready,
// the approved request redeemable, new requests accepted.
func checkRecovered(t *testing.T, tn *testNode, o outageRequests) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for tn.call(mustReq(t, "GET", tn.URL+"/readyz", "")).Status != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("not ready %v after Redis came back", patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
	reqs := o.all(tn)
	if r := tn.call(reqs["token"]); r.Status != 200 || r.str("access_token") == "" {
		t.Fatalf("token after recovery: %d %s", r.Status, r.Raw)
	}
	if r := tn.call(reqs["bc-authorize"]); r.Status != 200 {
		t.Fatalf("bc-authorize after recovery: %d %s", r.Status, r.Raw)
	}
	if r := tn.call(reqs["admin list"]); r.Status != 200 {
		t.Fatalf("admin after recovery: %d %s", r.Status, r.Raw)
	}
	wantError(t, tn.call(reqs["device"]), 401, "invalid_token")
}

// TestRedisStoppedAnswers503 kills Redis: connections are refused.
func TestRedisStoppedAnswers503(t *testing.T) {
	tn, p := startOutageNode(t)
	o := prepareOutage(t, tn)
	p.Stop()
	checkOutage(t, tn, o)
	p.Start()
	checkRecovered(t, tn, o)
}

// TestRedisStalledAnswers503 freezes Redis (SIGSTOP): connections open
// and commands are sent, but nothing answers. Every request must still
// answer within its deadline.
func TestRedisStalledAnswers503(t *testing.T) {
	tn, p := startOutageNode(t)
	o := prepareOutage(t, tn)
	p.Pause()
	resumed := false
	defer func() {
		if !resumed {
			p.Resume()
		}
	}()
	checkOutage(t, tn, o)
	p.Resume()
	resumed = true
	checkRecovered(t, tn, o)
}

func TestRequestTimeoutConfig(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "COUNTERSIGN_REQUEST_TIMEOUT" {
				return v
			}
			return ""
		}
	}
	if c, err := parseConfig(nil, env(""), io.Discard); err != nil || c.RequestTimeout != 5*time.Second {
		t.Fatalf("default: %v %v", c, err)
	}
	if c, err := parseConfig([]string{"--request-timeout", "1500ms"}, env("2s"), io.Discard); err != nil || c.RequestTimeout != 1500*time.Millisecond {
		t.Fatalf("flag over env: %v %v", c, err)
	}
	for _, bad := range []string{"10ms", "1m", "0s"} {
		if _, err := parseConfig(nil, env(bad), io.Discard); err == nil || !strings.Contains(err.Error(), "request-timeout") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestStallLeavesNothingHalfWritten sends requests into a frozen Redis,
// thaws it, and checks what the store holds: a request stored during the
// stall is stored whole (record and audit event together, redeemable
// once) or not at all, whatever its answer was. (The answer itself was
// 503: the outcome was unknown when the deadline passed.)
func TestStallLeavesNothingHalfWritten(t *testing.T) {
	tn, p := startOutageNode(t)
	o := prepareOutage(t, tn)
	p.Pause()
	done := make(chan reply)
	for i := 0; i < 4; i++ {
		go func(i int) {
			reqs := o.all(tn)
			if i == 0 {
				done <- tn.call(reqs["token"])
				return
			}
			done <- tn.call(reqs["bc-authorize"])
		}(i)
	}
	for i := 0; i < 4; i++ {
		wantUnavailable(t, "during the stall", <-done)
	}
	p.Resume()
	checkRecovered(t, tn, outageRequests{id: o.id, secret: o.secret, approved: prepareOutage2(t, tn, o)})
	approved := tn.auditIDs("request.approved")
	issued := map[string]bool{}
	for _, id := range tn.auditIDs("token.issued") {
		issued[id] = true
	}
	keys, err := tn.db.Redis().Keys(t.Context(), tn.cfg.KeyPrefix+"*:req:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the stall: %d requests stored, %d redeemed", len(keys), len(issued))
	if len(keys) != len(approved) {
		t.Fatalf("%d request records but %d request.approved events: %v", len(keys), len(approved), keys)
	}
	for _, id := range approved {
		r := tn.call(tn.form("/token", o.id, o.secret, url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {id}}))
		switch {
		case issued[id]:
			wantError(t, r, 400, "invalid_grant")
		case r.Status != 200:
			t.Fatalf("request %s stored, never redeemed, but /token says %d %s", id, r.Status, r.Raw)
		}
	}
}

// prepareOutage2 makes one more policy-approved request once Redis is
// back, for checkRecovered to redeem.
func prepareOutage2(t *testing.T, tn *testNode, o outageRequests) string {
	t.Helper()
	r := tn.call(o.all(tn)["bc-authorize"])
	if r.Status != 200 {
		t.Fatalf("bc-authorize: %d %s", r.Status, r.Raw)
	}
	return r.str("auth_req_id")
}

// auditIDs returns the request ids of the audit events of one type.
func (tn *testNode) auditIDs(typ string) []string {
	tn.t.Helper()
	var ids []string
	for _, e := range tn.auditEvents() {
		if e["type"] == typ {
			id, _ := e["request_id"].(string)
			ids = append(ids, id)
		}
	}
	return ids
}

// outageLog is a log destination shared by a node's goroutines, read in parts.
type outageLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *outageLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *outageLog) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// TestOutageLogIsJSONAndBounded keeps Redis down for a few seconds under
// the production logger and reads what the node wrote: every line JSON
// (go-redis's own lines included), each kind of failure once, not once
// per turn of each loop, and a "recovered" line when Redis is back.
func TestOutageLogIsJSONAndBounded(t *testing.T) {
	logs := &outageLog{}
	p := redistest.Own(t)
	tn := launchNode(t, nodeSetup{redisURL: "redis://" + p.Addr, log: newLogger("info", logs), now: time.Now,
		mutate: func(c *Config) { c.RequestTimeout = outageTimeout }})
	n, cfg, ctx := tn.node, tn.cfg, context.Background()
	// The outbox worker's loops start once its 16 streams exist.
	for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
		keys, _ := n.db.Redis().Keys(ctx, cfg.KeyPrefix+"*outbox*").Result()
		if len(keys) >= 16 || time.Now().After(deadline) {
			break
		}
	}
	logs.take()

	p.Stop()
	// Three seconds of outage: every background loop fails several
	// times, and twenty requests answer 503.
	for i := 0; i < 20; i++ {
		wantUnavailable(t, "admin", tn.call(tn.adminReq("GET", "/admin/users", "")))
		time.Sleep(150 * time.Millisecond)
	}
	down := lines(t, logs.take())
	p.Start()
	deadline := time.Now().Add(patience)
	for tn.call(mustReq(t, "GET", tn.URL+"/readyz", "")).Status != 200 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // a turn of every 1 s loop
	up := lines(t, logs.take())

	perMsg := map[string]int{}
	for _, l := range down {
		perMsg[l["msg"].(string)]++
	}
	t.Logf("%d lines in 3 s of outage: %v", len(down), perMsg)
	if perMsg["redis client"] == 0 {
		t.Errorf("go-redis's own lines (failed dials) are not in the JSON log: %v", down)
	}
	for msg, n := range perMsg {
		if n > 2 {
			t.Errorf("%q logged %d times in 3 s: not rate-limited", msg, n)
		}
	}
	if perMsg["request answered 503: store unavailable"] != 1 {
		t.Errorf("the 20 503s should log one line: %v", perMsg)
	}
	recovered := 0
	for _, l := range up {
		if strings.HasSuffix(l["msg"].(string), ": recovered") {
			recovered++
		}
	}
	if recovered == 0 {
		t.Errorf("no recovered line once Redis was back: %v", up)
	}
}

// lines parses a log: every line must be one JSON object.
func lines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a log line that is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// TestWorkerStartsThroughAnOutage starts an outbox worker while Redis is
// down: it must wait for Redis, not give up for good, and deliver once
// Redis is back.
func TestWorkerStartsThroughAnOutage(t *testing.T) {
	tn, p := startOutageNode(t)
	setup(t, tn)
	ep := newAgentEndpoint(t)
	id, secret := tn.modeClient("pinger", "ping", ep.srv.URL+"/cb")
	tn.stopWorker()
	p.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	ran, stopped := make(chan error, 1), make(chan struct{})
	go func() { ran <- tn.newWorker("late", time.Second).Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	select {
	case err := <-ran:
		t.Fatalf("the outbox worker gave up while Redis was down: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
	p.Start()
	for deadline := time.Now().Add(patience); tn.call(mustReq(t, "GET", tn.URL+"/readyz", "")).Status != 200; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not ready after Redis came back")
		}
	}
	authReqID := tn.notified(ep, id, secret, "ntok-outage", readDetails)
	ep.waitFor(t, authReqID, "ntok-outage")
}

// TestEveryRedisFormHasDeadlines checks that the deadlines reach the
// client of every URL form (one node, Sentinel, Cluster) as go-redis
// builds it from the universal options (the embedded store takes the
// one-node form).
func TestEveryRedisFormHasDeadlines(t *testing.T) {
	for _, u := range []string{"redis://h:1/2", "rediss://h:1", "redis+sentinel://h:1,h:2/master?db=1",
		"redis+cluster://h:1,h:2", "rediss+cluster://h:1"} {
		o, err := redisOptions(u)
		if err != nil {
			t.Fatal(err)
		}
		o = withDeadlines(o, 2*time.Second)
		var got []*redis.Options
		switch {
		case o.IsClusterMode:
			c := o.Cluster()
			got = append(got, &redis.Options{ContextTimeoutEnabled: c.ContextTimeoutEnabled, DialTimeout: c.DialTimeout,
				ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout, PoolTimeout: c.PoolTimeout, MaxRetries: c.MaxRetries})
		case o.MasterName != "":
			f := o.Failover()
			got = append(got, &redis.Options{ContextTimeoutEnabled: f.ContextTimeoutEnabled, DialTimeout: f.DialTimeout,
				ReadTimeout: f.ReadTimeout, WriteTimeout: f.WriteTimeout, PoolTimeout: f.PoolTimeout, MaxRetries: f.MaxRetries})
		default:
			got = append(got, o.Simple())
		}
		for _, g := range got {
			if !g.ContextTimeoutEnabled || g.DialTimeout != 2*time.Second || g.ReadTimeout != 2*time.Second ||
				g.WriteTimeout != 2*time.Second || g.PoolTimeout != 2*time.Second || g.MaxRetries != 2 {
				t.Errorf("%s: %+v", u, g)
			}
		}
	}
}
