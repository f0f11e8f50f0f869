package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// served is a `countersign serve` running in the test on the embedded
// store, with what it printed.
type served struct {
	addr, token, issuer string
	stderr              *syncBuffer
}

// startServe runs `countersign serve args...` until the test ends and
// waits for its "listening" line.
func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := lineWriter{lines: make(chan string, 16)}
	s := &served{stderr: &syncBuffer{}}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), func(string) string { return "" }, out, s.stderr)
	}()
	t.Cleanup(func() { cancel(); <-done })
	for s.addr == "" {
		select {
		case l := <-out.lines:
			if v, ok := strings.CutPrefix(l, "Admin token (generated for this run): "); ok {
				s.token = v
			}
			if _, rest, ok := strings.Cut(l, "listening on http://"); ok {
				s.addr, rest, _ = strings.Cut(rest, " ")
				s.issuer = strings.TrimSuffix(strings.TrimPrefix(rest, "(issuer "), ")")
			}
		case code := <-done:
			t.Fatalf("serve exited with %d: %s", code, s.stderr.String())
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not start")
		}
	}
	return s
}

func (s *served) call(t *testing.T, method, path, user, pass string, body io.Reader, ctype string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.addr+path, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	} else {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, m)
	}
	return m
}

// Without --issuer the issuer is the address serve listens on (with :0,
// the port bound), printed at start and named by discovery.
func TestServeIssuerFollowsListen(t *testing.T) {
	s := startServe(t, "--listen", "127.0.0.1:0")
	if s.issuer != "http://"+s.addr || strings.HasSuffix(s.addr, ":0") || strings.HasSuffix(s.addr, ":8080") {
		t.Fatalf("listening on %s, issuer %q", s.addr, s.issuer)
	}
	meta := s.call(t, "GET", "/.well-known/openid-configuration", "", "", nil, "")
	if meta["issuer"] != s.issuer || meta["token_endpoint"] != s.issuer+"/token" {
		t.Fatalf("discovery: %v", meta)
	}
}

func TestDefaultIssuer(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:9000": "http://127.0.0.1:9000",
		"[::1]:9000":     "http://[::1]:9000",
		"localhost:9000": "http://localhost:9000",
		"0.0.0.0:9000":   "http://127.0.0.1:9000",
		"[::]:9000":      "http://127.0.0.1:9000",
		":9000":          "http://127.0.0.1:9000",
	} {
		if got := defaultIssuer(listen); got != want {
			t.Errorf("defaultIssuer(%q) = %q, want %q", listen, got, want)
		}
	}
	// A LAN address is not loopback: http there needs --dev or an https --issuer.
	c, err := parseConfig([]string{"--listen", "192.0.2.7:8080"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "issuer http://192.0.2.7:8080 must be https") {
		t.Fatalf("a LAN listen address without --issuer: %v %+v", err, c)
	}
}

// A second serve on a busy port fails before it generates and prints an
// admin token that would never work.
func TestServeOnABusyPortPrintsNoToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr strings.Builder
	code := run(t.Context(), []string{"serve", "--listen", ln.Addr().String()}, func(string) string { return "" }, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "address already in use") {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "Admin token") || strings.Contains(stdout.String(), "COUNTERSIGN_ADMIN_TOKEN") {
		t.Fatalf("a token printed for a server that never ran:\n%s", stdout.String())
	}
}

// Each unknown COUNTERSIGN_* variable gets a WARN line in the JSON log
// naming the closest known variable; known ones and others get none.
func TestServeWarnsOfUnknownEnvironment(t *testing.T) {
	t.Setenv("COUNTERSIGN_REDIS_ULR", "redis://127.0.0.1:1")
	t.Setenv("COUNTERSIGN_LOG_LEVEL", "info")
	t.Setenv("COUNTERSIGNX", "1")
	s := startServe(t, "--listen", "127.0.0.1:0")
	var warned []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a log line that is not JSON: %q", l)
		}
		if m["msg"] == "unknown environment variable ignored" {
			warned = append(warned, m)
		}
	}
	if len(warned) != 1 || warned[0]["level"] != "WARN" || warned[0]["name"] != "COUNTERSIGN_REDIS_ULR" ||
		warned[0]["did_you_mean"] != "COUNTERSIGN_REDIS_URL" {
		t.Fatalf("warnings: %v\n%s", warned, s.stderr.String())
	}
}

func TestUnknownEnv(t *testing.T) {
	known := knownEnv()
	cases := []struct {
		env  string
		want []envWarning
	}{
		{"COUNTERSIGN_REDIS_URL=redis://x", nil},
		{"COUNTERSIGN_REDIS_ULR=redis://x", []envWarning{{"COUNTERSIGN_REDIS_ULR", "COUNTERSIGN_REDIS_URL"}}},
		{"COUNTERSIGN_REDISURL=x", []envWarning{{"COUNTERSIGN_REDISURL", "COUNTERSIGN_REDIS_URL"}}},
		{"COUNTERSIGN_ADMINTOKEN=x", []envWarning{{"COUNTERSIGN_ADMINTOKEN", "COUNTERSIGN_ADMIN_TOKEN"}}},
		{"COUNTERSIGN_POLL_INTERVALL=3", []envWarning{{"COUNTERSIGN_POLL_INTERVALL", "COUNTERSIGN_POLL_INTERVAL"}}},
		{"COUNTERSIGN_ISUER=https://a", []envWarning{{"COUNTERSIGN_ISUER", "COUNTERSIGN_ISSUER"}}},
		{"COUNTERSIGN_DPOP_NONCES=1", []envWarning{{"COUNTERSIGN_DPOP_NONCES", "COUNTERSIGN_DPOP_NONCE"}}},
		{"COUNTERSIGN_MAX_PENDING_PER_AGENT=2", []envWarning{{"COUNTERSIGN_MAX_PENDING_PER_AGENT", "COUNTERSIGN_MAX_PENDING_PER_USER"}}},
		{"COUNTERSIGN_CHROMIUM=/usr/bin/chromium", nil}, // read by the tests
		{"REDIS_URL=redis://x", nil},
		{"COUNTERSIGNER=1", nil},
	}
	for _, tc := range cases {
		got := unknownEnv([]string{"PATH=/bin", tc.env}, known)
		if len(got) != len(tc.want) || len(got) == 1 && got[0] != tc.want[0] {
			t.Errorf("%s: got %v, want %v", tc.env, got, tc.want)
		}
	}
}

// The token's expires_in is the access token lifetime as the token states
// it (exp - iat): 300 with the defaults, as the README shows, not 299
// because a clock read later than the minting one.
func TestServeTokenExpiresInIsExact(t *testing.T) {
	s := startServe(t, "--listen", "127.0.0.1:0")
	s.call(t, "POST", "/admin/users", "", "", strings.NewReader(`{"id":"alice","attributes":{"spending_limit":1000}}`), "application/json")
	cl := s.call(t, "POST", "/admin/clients", "", "", strings.NewReader(`{"client_id":"agent-1","agent":{"trust_tier":"standard"}}`), "application/json")
	id, secret := cl["client_id"].(string), cl["client_secret"].(string)
	form := url.Values{"scope": {"openid"}, "login_hint": {"alice"},
		"authorization_details": {`[{"type":"agent_action","action":"read","resource":"calendar"}]`}}
	ack := s.call(t, "POST", "/bc-authorize", id, secret, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
	if ack["expires_in"] != float64(300) {
		t.Fatalf("bc-authorize: %v", ack)
	}
	form = url.Values{"grant_type": {"urn:openid:params:grant-type:ciba"}, "auth_req_id": {ack["auth_req_id"].(string)}}
	tok := s.call(t, "POST", "/token", id, secret, strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
	if tok["expires_in"] != float64(300) {
		t.Fatalf("token: %v", tok)
	}
}
