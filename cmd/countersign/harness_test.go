package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba"
	"github.com/countersign/countersign/ciba/store/redistest"
	"github.com/countersign/countersign/notify"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const testAdminToken = "test-admin-token-0123456789"

// clock is the test's clock, shared by every part of a node.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testNode is a whole server node on a real redis-server, behind a real
// HTTP listener on a free loopback port.
type testNode struct {
	*node
	t     testing.TB
	URL   string
	clock *clock
}

func startNode(t testing.TB, mutate func(*Config)) *testNode {
	t.Helper()
	return launchNode(t, nodeSetup{mutate: mutate})
}

// nodeSetup says how launchNode starts a node; the zero value is the
// tests' usual node.
type nodeSetup struct {
	redisURL, prefix string           // default: the test binary's redis-server, a fresh prefix
	log              *slog.Logger     // default: warnings and errors to the test log
	now              func() time.Time // default: the returned node's test clock
	mutate           func(*Config)
}

// launchNode is a whole server node on a real redis-server, behind a real
// HTTP listener on a free loopback port.
func launchNode(t testing.TB, s nodeSetup) *testNode {
	t.Helper()
	if s.redisURL == "" {
		rs := redistest.Real(t)
		s.redisURL, s.prefix = "redis://"+rs.Addr, rs.Prefix
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Issuer, cfg.RedisURL, cfg.AdminToken, cfg.Dev = issuer, s.redisURL, testAdminToken, true
	if s.prefix != "" {
		cfg.KeyPrefix = s.prefix
	}
	// The e2e tests are not about the rules' time limit, and -race on a
	// busy machine can pass the default 50 ms.
	cfg.RuleDeadline = 5 * time.Second
	if _, bench := t.(*testing.B); bench {
		// Benchmarks send far more than the default limits from one
		// address; the limiter still runs, with room.
		cfg.RateLimitPerIP, cfg.RateLimitPerClient = 1<<30, 1<<30
	}
	if s.mutate != nil {
		s.mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// Noon UTC today: rules see a daytime request, and Web Push's VAPID
	// JWT (webpush-go dates it from the real clock, 12 h ahead) is valid
	// on this clock too.
	y, m, d := time.Now().UTC().Date()
	clk := &clock{t: time.Date(y, m, d, 12, 0, 0, 0, time.UTC)}
	if s.now == nil {
		s.now = clk.Now
	}
	if s.log == nil {
		s.log = testLogger(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := newNode(ctx, cfg, s.log, io.Discard, s.now)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(n.handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); cancel(); n.close() })
	return &testNode{node: n, t: t, URL: issuer, clock: clk}
}

// reply is a decoded HTTP response.
type reply struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (r reply) str(k string) string { s, _ := r.Body[k].(string); return s }

func (tn *testNode) do(req *http.Request) reply {
	tn.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tn.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(b)}
	_ = json.Unmarshal(b, &r.Body)
	return r
}

func (tn *testNode) admin(method, path string, body any) reply {
	tn.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, tn.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	return tn.do(req)
}

// client registers a client and returns its id and secret.
func (tn *testNode) client(meta map[string]any) (string, string) {
	tn.t.Helper()
	r := tn.admin("POST", "/admin/clients", meta)
	if r.Status != 201 {
		tn.t.Fatalf("create client: %d %s", r.Status, r.Raw)
	}
	return r.str("client_id"), r.str("client_secret")
}

func (tn *testNode) user(u map[string]any) {
	tn.t.Helper()
	if r := tn.admin("POST", "/admin/users", u); r.Status != 201 {
		tn.t.Fatalf("create user: %d %s", r.Status, r.Raw)
	}
}

// post sends a form with HTTP Basic client authentication (id "" for none).
func (tn *testNode) post(path, id, secret string, form url.Values) reply {
	tn.t.Helper()
	req, _ := http.NewRequest("POST", tn.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return tn.do(req)
}

// wantError asserts an RFC 6749 error response: status, code, only the
// two members, and no-store.
func wantError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.Status != status || r.str("error") != code {
		t.Fatalf("want %d %s, got %d %s", status, code, r.Status, r.Raw)
	}
	for k := range r.Body {
		if k != "error" && k != "error_description" {
			t.Fatalf("extra member %q in %s", k, r.Raw)
		}
	}
	if r.str("error_description") == "" {
		t.Fatalf("no error_description in %s", r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q", ct)
	}
}

// verify checks a JWT against the node's JWKS as a resource server would.
func (tn *testNode) verify(tok, typ string) jwt.MapClaims {
	tn.t.Helper()
	req, _ := http.NewRequest("GET", tn.URL+"/jwks.json", nil)
	r := tn.do(req)
	keys, _ := r.Body["keys"].([]any)
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		for _, k := range keys {
			m := k.(map[string]any)
			if m["kid"] == t.Header["kid"] {
				return ecKey(tn.t, m), nil
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(tn.clock.Now), jwt.WithIssuer(tn.URL))
	if err != nil {
		tn.t.Fatalf("token does not verify with the JWKS: %v", err)
	}
	if parsed.Header["typ"] != typ {
		tn.t.Fatalf("typ %v, want %s", parsed.Header["typ"], typ)
	}
	return claims
}

func ecKey(t testing.TB, m map[string]any) *ecdsa.PublicKey {
	t.Helper()
	b, _ := json.Marshal(m)
	var jwk struct{ X, Y string }
	_ = json.Unmarshal(b, &jwk)
	pub, err := jwkToECDSA(jwk.X, jwk.Y)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// tlog sends a node's warnings and errors to the test log.
// Lines written once the test has finished its cleanups (a node's
// goroutine still winding down) are dropped: testing.T must not be used
// after the test ends.
type tlog struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

// newTLog returns a test log writer that stops with the test's cleanups;
// made before a node starts, it stops after the node's own cleanup.
func newTLog(t testing.TB) *tlog {
	w := &tlog{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return w
}

func (w *tlog) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}

// testLogger is a node's logger for tests: warnings and errors to the
// test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(newTLog(t), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func mustReq(t testing.TB, method, u, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// stopWorker ends the node's own outbox worker.
func (tn *testNode) stopWorker() {
	tn.t.Helper()
	tn.node.stopWorker()
}

// newWorker returns another outbox worker on the node's service.
func (tn *testNode) newWorker(consumer string, claimIdle time.Duration) *ciba.Worker {
	return &ciba.Worker{Service: tn.service, Consumer: consumer, ClaimIdle: claimIdle,
		Callback: &notify.Callback{Client: notify.EndpointPolicy{AllowHTTP: true, AllowPrivate: true}.Client(5 * time.Second)}}
}
