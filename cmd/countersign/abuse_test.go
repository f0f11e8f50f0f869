package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A client that sends its headers a byte at a time never gets an answer:
// the server closes the connection once the header timeout passes.
func TestSlowLorisClientIsCutOff(t *testing.T) {
	cfg, err := parseConfig([]string{"--http-read-header-timeout", "300ms"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	hs := cfg.httpServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "served") }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + strings.Repeat("a", 40) + "\r\n\r\n"
	cut := false
	for i := 0; i < len(req); i++ {
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			cut = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if !cut {
			t.Fatalf("a slow-loris client was served: %d", resp.StatusCode)
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept the slow connection open")
	}
}

// Rate limits live in Redis: requests to two nodes add up, past the limit
// the answer is 429 slow_down with Retry-After, and nothing else counts.
func TestRateLimitPerIPSharedByNodes(t *testing.T) {
	limit := func(c *Config) { c.RateLimitPerIP, c.RateLimitPerClient, c.RateLimitSync = 4, 0, 0 }
	a := startNode(t, limit)
	b := startNode(t, func(c *Config) { limit(c); c.RedisURL, c.KeyPrefix = a.cfg.RedisURL, a.cfg.KeyPrefix })
	revoke := func(tn *testNode) reply { return tn.post("/revoke", "", "", url.Values{"token": {"x"}}) }
	for i, tn := range []*testNode{a, a, b, b} {
		if r := revoke(tn); r.Status != 401 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Raw)
		}
	}
	// Probes and key fetches are not counted.
	if r := b.do(mustReq(t, "GET", b.URL+"/jwks.json", "")); r.Status != 200 {
		t.Fatalf("jwks past the limit: %d", r.Status)
	}
	r := revoke(b)
	wantError(t, r, 429, "slow_down")
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	wantError(t, revoke(a), 429, "slow_down")
}

// With --rate-limit-sync a node counts in memory (no Redis round trip per
// request) and shares its counts every sync period: its own limit holds at
// once, and the other nodes learn the total within a few periods.
func TestRateLimitSyncedCountsAreShared(t *testing.T) {
	limit := func(c *Config) { c.RateLimitPerIP, c.RateLimitPerClient, c.RateLimitSync = 4, 0, 20*time.Millisecond }
	a := startNode(t, limit)
	b := startNode(t, func(c *Config) { limit(c); c.RedisURL, c.KeyPrefix = a.cfg.RedisURL, a.cfg.KeyPrefix })
	revoke := func(tn *testNode) reply { return tn.post("/revoke", "", "", url.Values{"token": {"x"}}) }
	for i := 0; i < 4; i++ {
		if r := revoke(a); r.Status != 401 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Raw)
		}
	}
	wantError(t, revoke(a), 429, "slow_down")
	served := 0
	for deadline := time.Now().Add(10 * time.Second); ; served++ {
		r := revoke(b)
		if r.Status == 429 {
			wantError(t, r, 429, "slow_down")
			break
		}
		if r.Status != 401 || time.Now().After(deadline) {
			t.Fatalf("node b never learnt a's count: %d %s after %d requests", r.Status, r.Raw, served)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if served > 100 {
		t.Fatalf("node b served %d requests past the shared limit", served)
	}
}

// The per-client limit counts the requests of a client across nodes; a
// caller naming the client without its secret does not spend its budget.
func TestRateLimitPerClientSharedByNodes(t *testing.T) {
	limit := func(c *Config) { c.RateLimitPerIP, c.RateLimitPerClient, c.RateLimitSync = 0, 3, 0 }
	a := startNode(t, limit)
	b := startNode(t, func(c *Config) { limit(c); c.RedisURL, c.KeyPrefix = a.cfg.RedisURL, a.cfg.KeyPrefix })
	id, secret := setup(t, a)
	form := url.Values{"token": {"not-a-token"}}
	for i := 0; i < 5; i++ {
		wantError(t, b.post("/revoke", id, "wrong-secret", form), 401, "invalid_client")
	}
	for i, tn := range []*testNode{a, b, a} {
		if r := tn.post("/revoke", id, secret, form); r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Raw)
		}
	}
	r := b.post("/revoke", id, secret, form)
	wantError(t, r, 429, "slow_down")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// Another client has its own budget.
	other, otherSecret := a.client(map[string]any{"client_id": "agent-2"})
	if r := b.post("/revoke", other, otherSecret, form); r.Status != 200 {
		t.Fatalf("another client: %d %s", r.Status, r.Raw)
	}
}

// RFC 9110 §11.1: auth scheme names are case-insensitive, for the admin
// Bearer token and the phone's Device JWT alike.
func TestAuthSchemesCaseInsensitive(t *testing.T) {
	tn := startNode(t, nil)
	setup(t, tn)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		req := mustReq(t, "GET", tn.URL+"/admin/clients", "")
		req.Header.Set("Authorization", scheme+" "+testAdminToken)
		if r := tn.do(req); r.Status != 200 {
			t.Fatalf("%s: %d %s", scheme, r.Status, r.Raw)
		}
	}
	for _, bad := range []string{"Basic " + testAdminToken, "Bearer" + testAdminToken, "Bearer x" + testAdminToken} {
		req := mustReq(t, "GET", tn.URL+"/admin/clients", "")
		req.Header.Set("Authorization", bad)
		wantError(t, tn.do(req), 401, "invalid_token")
	}
	ph := tn.enrollPhone("alice", "Pixel")
	for _, scheme := range []string{"Device", "device", "DEVICE"} {
		auth, err := ph.DeviceJWT(tn.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		req := mustReq(t, "GET", tn.URL+"/device/requests", "")
		req.Header.Set("Authorization", scheme+" "+auth)
		if r := tn.do(req); r.Status != 200 {
			t.Fatalf("%s: %d %s", scheme, r.Status, r.Raw)
		}
	}
}

// /metrics behind a token, and on a listener of its own.
func TestMetricsTokenAndListener(t *testing.T) {
	const token = "metrics-token-0123456789"
	tn := startNode(t, func(c *Config) { c.MetricsToken = token })
	get := func(u, auth string) reply {
		req := mustReq(t, "GET", u, "")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return tn.do(req)
	}
	wantError(t, get(tn.URL+"/metrics", ""), 401, "invalid_token")
	wantError(t, get(tn.URL+"/metrics", "Bearer wrong-token-0123456789"), 401, "invalid_token")
	if r := get(tn.URL+"/metrics", "bearer "+token); r.Status != 200 || !strings.Contains(r.Raw, "countersign_") {
		t.Fatalf("with the token: %d", r.Status)
	}

	sep := startNode(t, func(c *Config) { c.MetricsListen = "127.0.0.1:0" })
	wantError(t, get(sep.URL+"/metrics", ""), 404, "not_found")
	stop, addr, err := sep.cfg.serveMetrics(sep.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if r := get("http://"+addr+"/metrics", ""); r.Status != 200 || !strings.Contains(r.Raw, "countersign_") {
		t.Fatalf("metrics listener: %d", r.Status)
	}
}

// An unknown client, a wrong secret and a client registered for another
// method get the same answer at every client-authenticated endpoint, so
// the answer does not tell which client ids exist.
func TestUnknownClientAndWrongSecretAnsweredAlike(t *testing.T) {
	tn := startNode(t, nil)
	id, _ := setup(t, tn)
	postID, _ := tn.client(map[string]any{"client_id": "agent-post", "token_endpoint_auth_method": "client_secret_post"})
	forms := map[string]url.Values{
		"/bc-authorize": {"scope": {"openid"}, "login_hint": {"alice@example.com"}},
		"/token":        {"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {"x"}},
		"/revoke":       {"token": {"x"}},
		"/introspect":   {"token": {"x"}},
	}
	for path, form := range forms {
		unknown := tn.post(path, "no-such-client", "some-secret", form)
		wantError(t, unknown, 401, "invalid_client")
		for name, r := range map[string]reply{
			"wrong secret": tn.post(path, id, "some-secret", form),
			"wrong method": tn.post(path, postID, "some-secret", form),
		} {
			if r.Status != unknown.Status || r.Raw != unknown.Raw ||
				r.Header.Get("WWW-Authenticate") != unknown.Header.Get("WWW-Authenticate") ||
				r.Header.Get("Cache-Control") != unknown.Header.Get("Cache-Control") {
				t.Errorf("%s %s: %d %q %s; unknown client: %d %q %s", path, name, r.Status, r.Header.Get("WWW-Authenticate"), r.Raw,
					unknown.Status, unknown.Header.Get("WWW-Authenticate"), unknown.Raw)
			}
		}
	}
}

// `countersign serve --metrics-listen` serves /metrics on that address
// only, behind --metrics-token when one is set.
func TestServeMetricsOnItsOwnListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const token = "metrics-token-0123456789"
	s := startServe(t, "--listen", "127.0.0.1:0", "--metrics-listen", addr, "--metrics-token", token)
	get := func(u, auth string) (int, string) {
		req, _ := http.NewRequest("GET", u, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("http://"+s.addr+"/metrics", "Bearer "+token); code != 404 {
		t.Fatalf("/metrics on --listen: %d, want 404", code)
	}
	if code, _ := get("http://"+addr+"/metrics", ""); code != 401 {
		t.Fatalf("/metrics without the token: %d, want 401", code)
	}
	if code, body := get("http://"+addr+"/metrics", "Bearer "+token); code != 200 || !strings.Contains(body, "countersign_http_requests_total") {
		t.Fatalf("/metrics with the token: %d", code)
	}
}
