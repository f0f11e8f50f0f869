package resource

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/dpop"
	"github.com/countersign/countersign/ciba/token"
)

const audience = "https://calendar.example"

// fakeAS is the authorization server at the boundary: discovery, the
// JWKS and introspection, from a real token.Minter. It counts JWKS
// fetches and checks the resource server's credentials.
type fakeAS struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	keys    token.KeySet
	minter  *token.Minter
	fetches int
	revoked map[string]bool
	now     time.Time
}

func newFakeAS(t *testing.T) *fakeAS {
	f := &fakeAS{t: t, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), revoked: map[string]bool{}}
	k, err := token.GenerateKey(f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.keys = token.KeySet{Current: k}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.minter = &token.Minter{Issuer: f.srv.URL, Keys: func() token.KeySet { f.mu.Lock(); defer f.mu.Unlock(); return f.keys }, Now: f.clock}
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": f.srv.URL, "jwks_uri": f.srv.URL + "/jwks.json", "introspection_endpoint": f.srv.URL + "/introspect"})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.fetches++
		ks := f.keys
		f.mu.Unlock()
		json.NewEncoder(w).Encode(ks.JWKS())
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "rs+1" || secret != "rs-secret" || r.PostFormValue("token_type_hint") != "access_token" {
			t.Errorf("introspection request: %q %q %v %v", id, secret, ok, r.PostForm)
			w.WriteHeader(401)
			return
		}
		c, err := f.minter.Verify(r.PostFormValue("token"))
		f.mu.Lock()
		revoked := f.revoked[c.ID]
		f.mu.Unlock()
		if err != nil || revoked {
			json.NewEncoder(w).Encode(map[string]any{"active": false})
			return
		}
		out := map[string]any{"active": true, "iss": c.Issuer, "sub": c.Subject, "client_id": c.ClientID, "scope": c.Scope,
			"jti": c.ID, "exp": c.Expiry.Unix(), "aud": c.Audience, "act": c.Act, "token_type": "Bearer",
			"authorization_details": json.RawMessage(c.AuthorizationDetails)}
		if c.Cnf != nil {
			out["cnf"], out["token_type"] = c.Cnf, "DPoP"
		}
		json.NewEncoder(w).Encode(out)
	})
	return f
}

func (f *fakeAS) clock() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }

func (f *fakeAS) advance(d time.Duration) { f.mu.Lock(); f.now = f.now.Add(d); f.mu.Unlock() }

func (f *fakeAS) mint(mod func(*token.AccessClaims)) string {
	f.t.Helper()
	c := token.AccessClaims{Subject: "alice", ClientID: "sub-agent", Audience: []string{audience}, Scope: "openid calendar",
		Act: &token.Act{Sub: "sub-agent", Act: &token.Act{Sub: "agent-1"}}, AuthorizationDetails: json.RawMessage(`[{"type":"agent_action","action":"read"}]`)}
	if mod != nil {
		mod(&c)
	}
	tok, _, err := f.minter.Access(c)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// rs is a resource server behind the middleware; it records the claims
// its handler saw.
type rs struct {
	m    *Middleware
	srv  *httptest.Server
	seen *Claims
}

func newRS(t *testing.T, f *fakeAS, mod func(*Middleware)) *rs {
	r := &rs{m: &Middleware{Issuer: f.srv.URL, Audience: audience, Now: f.clock, Realm: "calendar"}}
	if mod != nil {
		mod(r.m)
	}
	r.srv = httptest.NewServer(r.m.Handler(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, ok := FromContext(req.Context())
		if !ok {
			t.Error("no claims in the context")
		}
		r.seen = c
		w.WriteHeader(204)
	})))
	t.Cleanup(r.srv.Close)
	return r
}

type answer struct {
	status    int
	challenge []string
	code      string
	nonce     string
}

func (r *rs) call(t *testing.T, path string, hdr map[string]string) answer {
	t.Helper()
	r.seen = nil
	req, _ := http.NewRequest("GET", r.srv.URL+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body struct{ Error string }
	_ = json.Unmarshal(b, &body)
	return answer{status: resp.StatusCode, challenge: resp.Header.Values("WWW-Authenticate"), code: body.Error, nonce: resp.Header.Get("DPoP-Nonce")}
}

func wantRefusal(t *testing.T, a answer, scheme, code string) {
	t.Helper()
	if a.status != 401 || a.code != code || len(a.challenge) != 1 ||
		!strings.HasPrefix(a.challenge[0], scheme+` realm="calendar"`) || !strings.Contains(a.challenge[0], `error="`+code+`"`) {
		t.Fatalf("want 401 %s %s, got %+v", scheme, code, a)
	}
}

func TestBearerToken(t *testing.T) {
	f := newFakeAS(t)
	r := newRS(t, f, nil)
	a := r.call(t, "/events", map[string]string{"Authorization": "Bearer " + f.mint(nil)})
	if a.status != 204 || r.seen == nil {
		t.Fatalf("answer %+v", a)
	}
	c := r.seen
	if c.Subject != "alice" || c.ClientID != "sub-agent" || !c.HasScope("calendar") || c.HasScope("payments") || c.JKT != "" ||
		strings.Join(c.Act.Chain(), ",") != "agent-1,sub-agent" || string(c.AuthorizationDetails) != `[{"type":"agent_action","action":"read"}]` ||
		c.Audience[0] != audience || c.Issuer != f.srv.URL || !c.Expiry.Equal(f.now.Add(5*time.Minute)) {
		t.Fatalf("claims %+v", c)
	}
}

func TestRefusedTokens(t *testing.T) {
	f := newFakeAS(t)
	r := newRS(t, f, nil)
	other := &token.Minter{Issuer: "https://other.example", Keys: f.minter.Keys, Now: f.clock}
	foreign, _, _ := other.Access(token.AccessClaims{Subject: "alice", ClientID: "a", Audience: []string{audience}})
	idt, _ := f.minter.ID(token.IDClaims{Subject: "alice", Audience: audience})
	expired := f.mint(nil)
	// No credentials: both challenges, no error code (RFC 6750 §3.1).
	a := r.call(t, "/", nil)
	if a.status != 401 || a.code != "" || len(a.challenge) != 2 || a.challenge[0] != `Bearer realm="calendar"` ||
		a.challenge[1] != `DPoP realm="calendar", algs="ES256 ES384 EdDSA PS256 RS256"` {
		t.Fatalf("no credentials: %+v", a)
	}
	cases := map[string]string{
		"wrong audience": f.mint(func(c *token.AccessClaims) { c.Audience = []string{"https://bank.example"} }),
		"other issuer":   foreign,
		"ID token":       idt,
		"garbage":        "abc.def.ghi",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			wantRefusal(t, r.call(t, "/", map[string]string{"Authorization": "Bearer " + tok}), "Bearer", "invalid_token")
		})
	}
	f.advance(5*time.Minute + time.Second)
	wantRefusal(t, r.call(t, "/", map[string]string{"Authorization": "Bearer " + expired}), "Bearer", "invalid_token")
	if r.seen != nil {
		t.Fatal("the handler ran for a refused token")
	}
}

func TestRotatedKeyPickedUp(t *testing.T) {
	f := newFakeAS(t)
	r := newRS(t, f, nil)
	if a := r.call(t, "/", map[string]string{"Authorization": "Bearer " + f.mint(nil)}); a.status != 204 {
		t.Fatalf("%+v", a)
	}
	next, _ := token.GenerateKey(f.now)
	f.mu.Lock()
	f.keys = f.keys.Rotate(next)
	f.mu.Unlock()
	tok := f.mint(nil)
	// Within refetchAfter of the last fetch an unknown kid costs nothing.
	wantRefusal(t, r.call(t, "/", map[string]string{"Authorization": "Bearer " + tok}), "Bearer", "invalid_token")
	if f.fetches != 1 {
		t.Fatalf("fetches %d", f.fetches)
	}
	f.advance(refetchAfter)
	if a := r.call(t, "/", map[string]string{"Authorization": "Bearer " + tok}); a.status != 204 || f.fetches != 2 {
		t.Fatalf("%+v after %d fetches", a, f.fetches)
	}
}

func newKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, _ := dpop.PublicJWK(&k.PublicKey)
	jkt, _ := token.Thumbprint(jwk)
	return k, jkt
}

func TestDPoPBoundToken(t *testing.T) {
	f := newFakeAS(t)
	r := newRS(t, f, nil)
	key, jkt := newKey(t)
	other, _ := newKey(t)
	tok := f.mint(func(c *token.AccessClaims) { c.Cnf = &token.Cnf{JKT: jkt} })
	u := r.srv.URL + "/events"
	proof := func(k *ecdsa.PrivateKey, c dpop.Claims) string {
		if c.HTM == "" {
			c.HTM = "GET"
		}
		if c.HTU == "" {
			c.HTU = u
		}
		c.IAT = f.clock()
		p, err := dpop.Sign(k, c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := proof(key, dpop.Claims{AccessToken: tok})
	a := r.call(t, "/events?day=1", map[string]string{"Authorization": "DPoP " + tok, "DPoP": good})
	if a.status != 204 || r.seen == nil || r.seen.JKT != jkt || r.seen.Subject != "alice" {
		t.Fatalf("answer %+v claims %+v", a, r.seen)
	}
	dp := func(p string) map[string]string { return map[string]string{"Authorization": "DPoP " + tok, "DPoP": p} }
	// RFC 9449 §7.1: every way of presenting it without its proof fails.
	wantRefusal(t, r.call(t, "/events", map[string]string{"Authorization": "Bearer " + tok}), "DPoP", "invalid_token")
	wantRefusal(t, r.call(t, "/events", map[string]string{"Authorization": "Bearer " + tok, "DPoP": proof(key, dpop.Claims{AccessToken: tok})}), "DPoP", "invalid_token")
	wantRefusal(t, r.call(t, "/events", map[string]string{"Authorization": "DPoP " + tok}), "DPoP", "invalid_dpop_proof")
	wantRefusal(t, r.call(t, "/events", dp(good)), "DPoP", "invalid_dpop_proof") // replay
	wantRefusal(t, r.call(t, "/events", dp(proof(other, dpop.Claims{AccessToken: tok}))), "DPoP", "invalid_dpop_proof")
	wantRefusal(t, r.call(t, "/events", dp(proof(key, dpop.Claims{}))), "DPoP", "invalid_dpop_proof")
	wantRefusal(t, r.call(t, "/events", dp(proof(key, dpop.Claims{AccessToken: "another"}))), "DPoP", "invalid_dpop_proof")
	wantRefusal(t, r.call(t, "/events", dp(proof(key, dpop.Claims{AccessToken: tok, HTM: "POST"}))), "DPoP", "invalid_dpop_proof")
	wantRefusal(t, r.call(t, "/events", dp(proof(key, dpop.Claims{AccessToken: tok, HTU: r.srv.URL + "/admin"}))), "DPoP", "invalid_dpop_proof")
	// An unbound token is not accepted under the DPoP scheme (§7.2).
	plain := f.mint(nil)
	wantRefusal(t, r.call(t, "/events", map[string]string{"Authorization": "DPoP " + plain, "DPoP": proof(key, dpop.Claims{AccessToken: plain})}), "DPoP", "invalid_token")
}

func TestDPoPNonceAndPublicURL(t *testing.T) {
	f := newFakeAS(t)
	nonces := &dpop.Nonces{Key: func() []byte { return []byte("0123456789abcdef0123456789abcdef") }, Now: f.clock}
	r := newRS(t, f, func(m *Middleware) {
		m.PublicURL = "https://calendar.example/"
		m.DPoP = &dpop.Verifier{Algs: []string{"ES256"}, Now: f.clock, Replay: &dpop.MemoryGuard{Now: f.clock}, Nonces: nonces}
	})
	key, jkt := newKey(t)
	tok := f.mint(func(c *token.AccessClaims) { c.Cnf = &token.Cnf{JKT: jkt} })
	sign := func(nonce string) string {
		p, _ := dpop.Sign(key, dpop.Claims{HTM: "GET", HTU: "https://calendar.example/events", IAT: f.clock(), AccessToken: tok, Nonce: nonce})
		return p
	}
	// RFC 9449 §9: 401 use_dpop_nonce with the nonce to use.
	a := r.call(t, "/events", map[string]string{"Authorization": "DPoP " + tok, "DPoP": sign("")})
	wantRefusal(t, a, "DPoP", "use_dpop_nonce")
	if a.nonce != nonces.Issue() || !strings.Contains(a.challenge[0], `algs="ES256"`) {
		t.Fatalf("%+v", a)
	}
	if a := r.call(t, "/events", map[string]string{"Authorization": "DPoP " + tok, "DPoP": sign(a.nonce)}); a.status != 204 {
		t.Fatalf("%+v", a)
	}
}

func TestMultipleAuthorizationHeaders(t *testing.T) {
	f := newFakeAS(t)
	r := newRS(t, f, nil)
	req, _ := http.NewRequest("GET", r.srv.URL+"/", nil)
	req.Header.Add("Authorization", "Bearer "+f.mint(nil))
	req.Header.Add("Authorization", "Bearer "+f.mint(nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestIntrospection(t *testing.T) {
	f := newFakeAS(t)
	r := newRS(t, f, func(m *Middleware) { m.IntrospectionClientID, m.IntrospectionSecret = "rs 1", "rs-secret" })
	tok := f.mint(nil)
	if a := r.call(t, "/", map[string]string{"Authorization": "Bearer " + tok}); a.status != 204 || r.seen.Subject != "alice" ||
		strings.Join(r.seen.Act.Chain(), ",") != "agent-1,sub-agent" || !r.seen.HasScope("calendar") {
		t.Fatalf("%+v %+v", a, r.seen)
	}
	// Revocation is seen at once.
	c, _ := f.minter.Verify(tok)
	f.mu.Lock()
	f.revoked[c.ID] = true
	f.mu.Unlock()
	wantRefusal(t, r.call(t, "/", map[string]string{"Authorization": "Bearer " + tok}), "Bearer", "invalid_token")
	wantRefusal(t, r.call(t, "/", map[string]string{"Authorization": "Bearer " + f.mint(func(c *token.AccessClaims) { c.Audience = []string{"https://x.example"} })}), "Bearer", "invalid_token")
	// A bound token through introspection still needs its proof.
	key, jkt := newKey(t)
	bound := f.mint(func(c *token.AccessClaims) { c.Cnf = &token.Cnf{JKT: jkt} })
	wantRefusal(t, r.call(t, "/", map[string]string{"Authorization": "Bearer " + bound}), "DPoP", "invalid_token")
	p, _ := dpop.Sign(key, dpop.Claims{HTM: "GET", HTU: r.srv.URL + "/", IAT: f.clock(), AccessToken: bound})
	if a := r.call(t, "/", map[string]string{"Authorization": "DPoP " + bound, "DPoP": p}); a.status != 204 || r.seen.JKT != jkt {
		t.Fatalf("%+v", a)
	}
	if f.fetches != 0 {
		t.Fatal("introspection mode fetched the JWKS")
	}
}

func TestServerErrorWhenASUnreachable(t *testing.T) {
	f := newFakeAS(t)
	var logged strings.Builder
	r := newRS(t, f, func(m *Middleware) { m.Log = slog.New(slog.NewTextHandler(&logged, nil)) })
	tok := f.mint(nil)
	f.srv.Close()
	a := r.call(t, "/", map[string]string{"Authorization": "Bearer " + tok})
	if a.status != 500 || a.code != "server_error" || len(a.challenge) != 0 {
		t.Fatalf("%+v", a)
	}
	if !strings.Contains(logged.String(), "cannot verify") || strings.Contains(logged.String(), tok) {
		t.Fatalf("log %q", logged.String())
	}
}
