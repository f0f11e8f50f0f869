package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/dpop"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/token"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const clientID, secret = "agent 1", "s3cret&="

// fakeAS is a CIBA authorization server at the boundary: it checks every
// request it gets and answers from a script.
type fakeAS struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	tokens   []func(w http.ResponseWriter, r *http.Request) // /token answers, in order
	calls    int                                            // /token calls
	answered int                                            // /token calls past the DPoP check
	ack      map[string]any
	form     url.Values // the last bc-authorize form
	before   func()     // runs in bc-authorize before the answer
	dpop     *dpop.Verifier
	proofs   []*dpop.Proof
}

func newFakeAS(t *testing.T) *fakeAS {
	f := &fakeAS{t: t, ack: map[string]any{"auth_req_id": "req-1", "expires_in": 120, "interval": 2}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": f.srv.URL, "token_endpoint": f.srv.URL + "/token",
			"backchannel_authentication_endpoint": f.srv.URL + "/bc-authorize"})
	})
	mux.HandleFunc("POST /bc-authorize", func(w http.ResponseWriter, r *http.Request) {
		f.checkClient(r)
		f.mu.Lock()
		f.form = r.PostForm
		f.mu.Unlock()
		if f.before != nil {
			f.before()
		}
		json.NewEncoder(w).Encode(f.ack)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		f.checkClient(r)
		f.mu.Lock()
		f.calls++
		f.mu.Unlock()
		if f.dpop != nil {
			h, _ := dpop.FromHeader(r.Header)
			p, err := f.dpop.Verify(r.Context(), h, r.Method, f.srv.URL+"/token", "")
			if err != nil {
				writeOAuth(w, err)
				return
			}
			f.mu.Lock()
			f.proofs = append(f.proofs, p)
			f.mu.Unlock()
		}
		f.mu.Lock()
		i := f.answered
		f.answered++
		f.mu.Unlock()
		if i >= len(f.tokens) {
			t.Errorf("unexpected /token call %d", i)
			w.WriteHeader(500)
			return
		}
		f.tokens[i](w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// checkClient asserts client_secret_basic with form-encoded credentials.
func (f *fakeAS) checkClient(r *http.Request) {
	u, p, ok := r.BasicAuth()
	if !ok || u != url.QueryEscape(clientID) || p != url.QueryEscape(secret) {
		f.t.Errorf("client authentication %q %q %v", u, p, ok)
	}
	if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		f.t.Errorf("content type %q", r.Header.Get("Content-Type"))
	}
	if err := r.ParseForm(); err != nil {
		f.t.Error(err)
	}
}

func oauthError(code string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "scripted " + code})
	}
}

func issued(tokenType string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PostForm.Get("grant_type") != grantCIBA || r.PostForm.Get("auth_req_id") != "req-1" {
			w.WriteHeader(400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at-1", "token_type": tokenType, "expires_in": 300,
			"id_token": "id-1", "scope": "openid", "authorization_details": []any{map[string]any{"type": "agent_action"}}})
	}
}

// writeOAuth renders a proof failure as the server would.
func writeOAuth(w http.ResponseWriter, err error) {
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		w.WriteHeader(500)
		return
	}
	for k, v := range oe.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(oe.Status)
	json.NewEncoder(w).Encode(map[string]string{"error": oe.Code, "error_description": oe.Description})
}

func (f *fakeAS) client() (*Client, *[]time.Duration) {
	var sleeps []time.Duration
	c := &Client{Issuer: f.srv.URL, ClientID: clientID, Secret: secret, HTTP: f.srv.Client(), Now: func() time.Time { return t0 },
		Sleep: func(ctx context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil }}
	return c, &sleeps
}

func TestAuthorizePollsHonouringIntervalAndSlowDown(t *testing.T) {
	f := newFakeAS(t)
	f.tokens = append(f.tokens, oauthError("authorization_pending"), oauthError("slow_down"), oauthError("authorization_pending"), issued("Bearer"))
	c, sleeps := f.client()
	tok, err := c.Authorize(context.Background(), Request{Scope: "openid", LoginHint: "alice", BindingMessage: "Trip ✈ 42",
		AuthorizationDetails: []map[string]any{{"type": "agent_action", "action": "read"}}, RequestedExpiry: 120, ACRValues: "urn:countersign:acr:device"})
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"scope": {"openid"}, "login_hint": {"alice"}, "binding_message": {"Trip ✈ 42"},
		"authorization_details": {`[{"action":"read","type":"agent_action"}]`}, "requested_expiry": {"120"}, "acr_values": {"urn:countersign:acr:device"}}
	if f.form.Encode() != want.Encode() {
		t.Fatalf("bc-authorize form %v, want %v", f.form, want)
	}
	// First poll at once, then the interval (2 s), 5 s more after slow_down.
	if got := *sleeps; len(got) != 3 || got[0] != 2*time.Second || got[1] != 7*time.Second || got[2] != 7*time.Second {
		t.Fatalf("waits %v", got)
	}
	if tok.AccessToken != "at-1" || tok.TokenType != "Bearer" || tok.IDToken != "id-1" || tok.ExpiresIn != 300 ||
		tok.Scope != "openid" || tok.AuthReqID != "req-1" || string(tok.AuthorizationDetails) != `[{"type":"agent_action"}]` {
		t.Fatalf("token %+v", tok)
	}
}

func TestAuthorizeDefaultIntervalAndDenial(t *testing.T) {
	f := newFakeAS(t)
	delete(f.ack, "interval")
	f.tokens = append(f.tokens, oauthError("authorization_pending"), oauthError("access_denied"))
	c, sleeps := f.client()
	_, err := c.Authorize(context.Background(), Request{Scope: "openid", LoginHint: "alice"})
	var e *Error
	if !errors.As(err, &e) || e.Code != "access_denied" || e.Status != 400 || e.Description != "scripted access_denied" {
		t.Fatalf("want access_denied, got %v", err)
	}
	// CIBA Core §7.3: no interval means 5 s.
	if got := *sleeps; len(got) != 1 || got[0] != 5*time.Second {
		t.Fatalf("waits %v", got)
	}
}

func TestAuthorizeRefusedRequest(t *testing.T) {
	f := newFakeAS(t)
	c, _ := f.client()
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bc-authorize" {
			w.WriteHeader(403)
			w.Write([]byte(`{"error":"access_denied","error_description":"rule night_payments"}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"issuer": f.srv.URL, "token_endpoint": f.srv.URL + "/token",
			"backchannel_authentication_endpoint": f.srv.URL + "/bc-authorize"})
	})
	_, err := c.Authorize(context.Background(), Request{Scope: "openid", LoginHint: "alice"})
	var e *Error
	if !errors.As(err, &e) || e.Code != "access_denied" || e.Status != 403 || e.Description != "rule night_payments" {
		t.Fatalf("got %v", err)
	}
}

func TestDiscoveryIssuerMustMatch(t *testing.T) {
	f := newFakeAS(t)
	c, _ := f.client()
	c.Issuer = f.srv.URL + "/"
	if _, err := c.Authorize(context.Background(), Request{Scope: "openid"}); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Fatalf("got %v", err)
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDPoPAtTokenRetriesOnceWithNonce(t *testing.T) {
	f := newFakeAS(t)
	now := t0
	f.dpop = &dpop.Verifier{Now: func() time.Time { return now }, Replay: &dpop.MemoryGuard{},
		Nonces: &dpop.Nonces{Key: func() []byte { return []byte("0123456789abcdef0123456789abcdef") }, Now: func() time.Time { return now }}}
	f.tokens = append(f.tokens, issued("DPoP"), issued("DPoP"))
	c, _ := f.client()
	key := newKey(t)
	c.DPoPKey = key
	tok, err := c.Authorize(context.Background(), Request{Scope: "openid", LoginHint: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	// One refused call (use_dpop_nonce) and its retry.
	jwk, _ := dpop.PublicJWK(&key.PublicKey)
	jkt, _ := token.Thumbprint(jwk)
	if f.calls != 2 || len(f.proofs) != 1 || f.proofs[0].JKT != jkt || f.proofs[0].Nonce == "" || tok.TokenType != "DPoP" {
		t.Fatalf("calls %d proofs %+v token %+v", f.calls, f.proofs, tok)
	}
	// The nonce is remembered: the next call needs no retry.
	if _, err := c.Authorize(context.Background(), Request{Scope: "openid", LoginHint: "alice"}); err != nil {
		t.Fatal(err)
	}
	if f.calls != 3 || len(f.proofs) != 2 {
		t.Fatalf("calls %d proofs %d", f.calls, len(f.proofs))
	}
}

func TestDPoPNonceRetriedOnlyOnce(t *testing.T) {
	f := newFakeAS(t)
	f.tokens = append(f.tokens, nonceDemand("n1"), nonceDemand("n2"), issued("DPoP"))
	c, _ := f.client()
	c.DPoPKey = newKey(t)
	_, err := c.Authorize(context.Background(), Request{Scope: "openid", LoginHint: "alice"})
	var e *Error
	if !errors.As(err, &e) || e.Code != "use_dpop_nonce" || f.calls != 2 {
		t.Fatalf("got %v after %d calls", err, f.calls)
	}
}

func nonceDemand(n string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("DPoP-Nonce", n)
		oauthError("use_dpop_nonce")(w, r)
	}
}

func TestExchangeWithDPoP(t *testing.T) {
	f := newFakeAS(t)
	f.dpop = &dpop.Verifier{Now: func() time.Time { return t0 }, Replay: &dpop.MemoryGuard{}}
	f.tokens = append(f.tokens, func(w http.ResponseWriter, r *http.Request) {
		want := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {"parent-at"}, "subject_token_type": {accessTokenType},
			"requested_token_type": {accessTokenType}, "scope": {"calendar"}, "authorization_details": {`[{"type":"agent_action"}]`}}
		if r.PostForm.Encode() != want.Encode() {
			t.Errorf("exchange form %v", r.PostForm)
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": "child-at", "token_type": "DPoP", "issued_token_type": accessTokenType, "expires_in": 60})
	})
	c, _ := f.client()
	c.DPoPKey = newKey(t)
	tok, err := c.Exchange(context.Background(), "parent-at", "calendar", json.RawMessage(`[{"type":"agent_action"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "child-at" || tok.TokenType != "DPoP" || tok.IssuedTokenType != accessTokenType || len(f.proofs) != 1 {
		t.Fatalf("token %+v proofs %d", tok, len(f.proofs))
	}
}

func TestProofForResourceCall(t *testing.T) {
	c := &Client{DPoPKey: newKey(t), Now: func() time.Time { return t0 }}
	p, err := c.Proof("GET", "https://rs.example/calendar?day=1", "at-1")
	if err != nil {
		t.Fatal(err)
	}
	v := &dpop.Verifier{Now: func() time.Time { return t0 }, Replay: &dpop.MemoryGuard{}}
	got, err := v.Verify(context.Background(), p, "GET", "https://rs.example/calendar", "at-1")
	if err != nil || got.ATH != dpop.TokenHash("at-1") {
		t.Fatalf("proof %+v: %v", got, err)
	}
	if _, err := (&Client{}).Proof("GET", "https://rs.example/", "at"); err == nil {
		t.Fatal("a proof without a key")
	}
}

func TestPingModeWaitsForThePing(t *testing.T) {
	f := newFakeAS(t)
	pr := &PingReceiver{}
	cb := httptest.NewServer(pr)
	defer cb.Close()
	pinged := false
	// The server pings before it even answers bc-authorize: the receiver
	// must already know the token.
	f.before = func() {
		if got := f.form.Get("client_notification_token"); got != "nt-0123456789abcdef" {
			t.Errorf("client_notification_token %q", got)
		}
		req, _ := http.NewRequest("POST", cb.URL, strings.NewReader(`{"auth_req_id":"req-1"}`))
		req.Header.Set("Authorization", "Bearer nt-0123456789abcdef")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 204 {
			t.Errorf("ping: %v %v", resp, err)
			return
		}
		resp.Body.Close()
		pinged = true
	}
	f.tokens = append(f.tokens, func(w http.ResponseWriter, r *http.Request) {
		if !pinged {
			t.Error("/token called before the ping")
		}
		issued("Bearer")(w, r)
	})
	c, sleeps := f.client()
	c.Pings = pr
	tok, err := c.Authorize(context.Background(), Request{Scope: "openid", LoginHint: "alice", NotificationToken: "nt-0123456789abcdef"})
	if err != nil || tok.AccessToken != "at-1" || f.calls != 1 || len(*sleeps) != 0 {
		t.Fatalf("token %+v err %v calls %d sleeps %v", tok, err, f.calls, *sleeps)
	}
	// Done: the token is no longer accepted.
	if code := ping(t, cb.URL, "Bearer nt-0123456789abcdef", `{"auth_req_id":"req-1"}`, "POST"); code != 401 {
		t.Fatalf("ping after completion: %d", code)
	}
}

func ping(t *testing.T, u, auth, body, method string) int {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	return resp.StatusCode
}

func TestPingReceiverRefuses(t *testing.T) {
	pr := &PingReceiver{}
	cb := httptest.NewServer(pr)
	defer cb.Close()
	ch, done := pr.expect("good-token")
	defer done()
	cases := []struct {
		name, auth, body, method string
		want                     int
	}{
		{"no authorization", "", `{"auth_req_id":"r"}`, "POST", 401},
		{"wrong token", "Bearer bad-token", `{"auth_req_id":"r"}`, "POST", 401},
		{"basic scheme", "Basic good-token", `{"auth_req_id":"r"}`, "POST", 401},
		{"no auth_req_id", "Bearer good-token", `{}`, "POST", 400},
		{"not JSON", "Bearer good-token", `auth_req_id=r`, "POST", 400},
		{"GET", "Bearer good-token", ``, "GET", 405},
		{"good", "bearer good-token", `{"auth_req_id":"r"}`, "POST", 204},
	}
	for _, c := range cases {
		if got := ping(t, cb.URL, c.auth, c.body, c.method); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if got := <-ch; got != "r" || len(ch) != 0 {
		t.Fatalf("delivered %q, %d more", got, len(ch))
	}
}
