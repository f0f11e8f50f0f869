package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/token"
)

const tokenURL = "https://as.example.com/token"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// guard is the fake replay store (the boundary to Redis): it records what
// it is asked and answers as SET NX would.
type guard struct {
	calls []string
	until []time.Time
	seen  map[string]bool
	err   error
}

func (g *guard) UseOnce(_ context.Context, kind, id string, until time.Time) (bool, error) {
	if g.err != nil {
		return false, g.err
	}
	g.calls = append(g.calls, kind+" "+id)
	g.until = append(g.until, until)
	if g.seen == nil {
		g.seen = map[string]bool{}
	}
	if g.seen[kind+id] {
		return false, nil
	}
	g.seen[kind+id] = true
	return true, nil
}

type fixture struct {
	key   *ecdsa.PrivateKey
	now   time.Time
	guard *guard
	v     *Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{key: key, now: t0, guard: &guard{}}
	f.v = &Verifier{Algs: []string{"ES256", "ES384", "EdDSA"}, IATWindow: time.Minute, Now: func() time.Time { return f.now }, Replay: f.guard}
	return f
}

func (f *fixture) proof(t testing.TB, c Claims) string {
	t.Helper()
	if c.HTM == "" {
		c.HTM = "POST"
	}
	if c.HTU == "" {
		c.HTU = tokenURL
	}
	if c.IAT.IsZero() {
		c.IAT = f.now
	}
	p, err := Sign(f.key, c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// forge builds a proof with jwt's signer so headers can be wrong on purpose.
func forge(t *testing.T, m jwt.SigningMethod, key any, hdr map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range hdr {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantCode(t *testing.T, err error, code, inDescription string) *oauth.Error {
	t.Helper()
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Code != code || oe.Status != 400 {
		t.Fatalf("want 400 %s, got %v", code, err)
	}
	if !strings.Contains(oe.Description, inDescription) {
		t.Fatalf("description %q does not name %q", oe.Description, inDescription)
	}
	return oe
}

func TestValidProofP256(t *testing.T) {
	f := newFixture(t)
	p := f.proof(t, Claims{JTI: "jti-1"})
	got, err := f.v.Verify(context.Background(), p, "POST", tokenURL, "")
	if err != nil {
		t.Fatal(err)
	}
	jwk, _ := PublicJWK(&f.key.PublicKey)
	jkt, _ := token.Thumbprint(jwk)
	if got.JKT != jkt || got.JTI != "jti-1" || got.HTM != "POST" || got.HTU != tokenURL || !got.IAT.Equal(t0) || got.JWK["crv"] != "P-256" {
		t.Fatalf("proof: %+v", got)
	}
	// The guard got the jti under the key's thumbprint, until the proof
	// stops being acceptable.
	if len(f.guard.calls) != 1 || f.guard.calls[0] != "dpop "+jkt+":jti-1" || !f.guard.until[0].Equal(t0.Add(time.Minute)) {
		t.Fatalf("guard saw %v until %v", f.guard.calls, f.guard.until)
	}
	// RFC 9449 §11.1: the same proof a second time is a replay.
	_, err = f.v.Verify(context.Background(), p, "POST", tokenURL, "")
	wantCode(t, err, oauth.InvalidDPoPProof, "already used")
}

func TestValidProofOtherAlgs(t *testing.T) {
	f := newFixture(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for name, key := range map[string]crypto.Signer{"ES384": p384, "EdDSA": ed} {
		p, err := Sign(key, Claims{HTM: "POST", HTU: tokenURL, IAT: t0})
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.v.Verify(context.Background(), p, "POST", tokenURL, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		jwk, _ := PublicJWK(key.Public())
		if jkt, _ := token.Thumbprint(jwk); got.JKT != jkt {
			t.Fatalf("%s: jkt %s, want %s", name, got.JKT, jkt)
		}
	}
	// An alg outside Algs is refused even when the signature is fine.
	only := &Verifier{Algs: []string{"ES256"}, Now: f.v.Now, Replay: &guard{}}
	p, _ := Sign(ed, Claims{HTM: "POST", HTU: tokenURL, IAT: t0})
	_, err := only.Verify(context.Background(), p, "POST", tokenURL, "")
	wantCode(t, err, oauth.InvalidDPoPProof, "alg EdDSA")
	if got := only.SupportedAlgs(); len(got) != 1 || got[0] != "ES256" {
		t.Fatalf("SupportedAlgs %v", got)
	}
}

func TestRefusedProofs(t *testing.T) {
	f := newFixture(t)
	jwk, _ := PublicJWK(&f.key.PublicKey)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwk384, _ := PublicJWK(&p384.PublicKey)
	withD := map[string]any{"d": "c2VjcmV0"}
	for k, v := range jwk {
		withD[k] = v
	}
	good := jwt.MapClaims{"jti": "x", "htm": "POST", "htu": tokenURL, "iat": t0.Unix()}
	hdr := func(kv ...any) map[string]any {
		h := map[string]any{"typ": "dpop+jwt", "jwk": jwk}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(h, kv[i].(string))
			} else {
				h[kv[i].(string)] = kv[i+1]
			}
		}
		return h
	}
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	es := jwt.SigningMethodES256
	cases := []struct {
		name, proof, method, url, why string
	}{
		{"missing", "", "POST", tokenURL, "missing"},
		{"not a JWT", "abc.def", "POST", tokenURL, "not a JWT"},
		{"typ JWT", forge(t, es, f.key, hdr("typ", "JWT"), good), "POST", tokenURL, "typ"},
		{"no typ", forge(t, es, f.key, hdr("typ", nil), good), "POST", tokenURL, "typ"},
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr(), good), "POST", tokenURL, "alg none"},
		{"alg HS256", forge(t, jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef"), hdr(), good), "POST", tokenURL, "alg HS256"},
		{"crit header", forge(t, es, f.key, hdr("crit", []string{"exp"}), good), "POST", tokenURL, "crit"},
		{"no jwk", forge(t, es, f.key, hdr("jwk", nil), good), "POST", tokenURL, "no jwk"},
		{"private key in jwk", forge(t, es, f.key, hdr("jwk", withD), good), "POST", tokenURL, "private key"},
		{"symmetric jwk", forge(t, es, f.key, hdr("jwk", map[string]any{"kty": "oct", "k": "c2VjcmV0"}), good), "POST", tokenURL, "private key"},
		{"signed by another key", forge(t, es, other, hdr(), good), "POST", tokenURL, "signature"},
		{"P-384 jwk with ES256", forge(t, es, f.key, hdr("jwk", jwk384), good), "POST", tokenURL, "does not fit"},
		{"wrong htm", f.proof(t, Claims{HTM: "GET"}), "POST", tokenURL, "htm"},
		{"htm case", f.proof(t, Claims{HTM: "post"}), "POST", tokenURL, "htm"},
		{"wrong htu path", f.proof(t, Claims{HTU: "https://as.example.com/bc-authorize"}), "POST", tokenURL, "htu"},
		{"wrong htu host", f.proof(t, Claims{HTU: "https://evil.example.com/token"}), "POST", tokenURL, "htu"},
		{"wrong htu scheme", f.proof(t, Claims{HTU: "http://as.example.com/token"}), "POST", tokenURL, "htu"},
		{"relative htu", f.proof(t, Claims{HTU: "/token"}), "POST", tokenURL, "htu"},
		{"stale iat", f.proof(t, Claims{IAT: t0.Add(-61 * time.Second)}), "POST", tokenURL, "too old"},
		{"future iat", f.proof(t, Claims{IAT: t0.Add(61 * time.Second)}), "POST", tokenURL, "future"},
		{"no iat", forge(t, es, f.key, hdr(), claims("iat", nil)), "POST", tokenURL, "iat"},
		{"string iat", forge(t, es, f.key, hdr(), claims("iat", "now")), "POST", tokenURL, "claims"},
		{"no jti", forge(t, es, f.key, hdr(), claims("jti", nil)), "POST", tokenURL, "jti"},
		{"huge jti", forge(t, es, f.key, hdr(), claims("jti", strings.Repeat("j", 300))), "POST", tokenURL, "jti"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.v.Verify(context.Background(), c.proof, c.method, c.url, "")
			wantCode(t, err, oauth.InvalidDPoPProof, c.why)
		})
	}
	// A refused proof never reaches the replay store.
	if len(f.guard.calls) != 0 {
		t.Fatalf("guard called for refused proofs: %v", f.guard.calls)
	}
}

func TestIATWindowEdges(t *testing.T) {
	f := newFixture(t)
	for _, d := range []time.Duration{-time.Minute, time.Minute} {
		if _, err := f.v.Verify(context.Background(), f.proof(t, Claims{IAT: t0.Add(d)}), "POST", tokenURL, ""); err != nil {
			t.Fatalf("iat %v: %v", d, err)
		}
	}
}

func TestHTUNormalisedWithoutQueryAndFragment(t *testing.T) {
	f := newFixture(t)
	for _, htu := range []string{
		"https://as.example.com/token?x=1#frag",
		"HTTPS://AS.Example.COM:443/token",
		"https://as.example.com/%74oken",
	} {
		if _, err := f.v.Verify(context.Background(), f.proof(t, Claims{HTU: htu}), "POST", tokenURL, ""); err != nil {
			t.Fatalf("htu %s: %v", htu, err)
		}
	}
	// The request URL is normalised the same way.
	if _, err := f.v.Verify(context.Background(), f.proof(t, Claims{HTU: "http://127.0.0.1:8080/token"}), "POST", "http://127.0.0.1:8080/token?q", ""); err != nil {
		t.Fatal(err)
	}
}

func TestNormalURL(t *testing.T) {
	cases := map[string]string{
		"https://a.example/":          "https://a.example/",
		"https://a.example":           "https://a.example/",
		"http://a.example:80/x":       "http://a.example/x",
		"http://a.example:8080/x":     "http://a.example:8080/x",
		"https://a.example:80/x":      "https://a.example:80/x",
		"https://[::1]:443/x":         "https://[::1]/x",
		"https://a.example/a%2fb%7e":  "https://a.example/a%2Fb~",
		"https://a.example/r?q=1#f":   "https://a.example/r",
		"HtTp://A.EXAMPLE/Case/Kept":  "http://a.example/Case/Kept",
		"https://a.example/%e2%9c%88": "https://a.example/%E2%9C%88",
	}
	for in, want := range cases {
		if got, err := normalURL(in); err != nil || got != want {
			t.Errorf("normalURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://a.example/", "https:///x", "https://u:p@a.example/", "::"} {
		if got, err := normalURL(bad); err == nil {
			t.Errorf("normalURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestAccessTokenHash(t *testing.T) {
	f := newFixture(t)
	const at = "eyJ.access.token"
	if _, err := f.v.Verify(context.Background(), f.proof(t, Claims{HTM: "GET", HTU: "https://rs.example/x", AccessToken: at}), "GET", "https://rs.example/x", at); err != nil {
		t.Fatal(err)
	}
	_, err := f.v.Verify(context.Background(), f.proof(t, Claims{HTM: "GET", HTU: "https://rs.example/x", AccessToken: "another"}), "GET", "https://rs.example/x", at)
	wantCode(t, err, oauth.InvalidDPoPProof, "ath")
	_, err = f.v.Verify(context.Background(), f.proof(t, Claims{HTM: "GET", HTU: "https://rs.example/x"}), "GET", "https://rs.example/x", at)
	wantCode(t, err, oauth.InvalidDPoPProof, "ath")
	// RFC 9449 §4.2 example value.
	if got := TokenHash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"); got != "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo" {
		t.Fatalf("TokenHash = %s", got)
	}
}

func TestNonceRequiredAndRotating(t *testing.T) {
	f := newFixture(t)
	f.v.Nonces = &Nonces{Key: func() []byte { return []byte("0123456789abcdef0123456789abcdef") }, Period: time.Minute, Now: f.v.Now}
	// No nonce: use_dpop_nonce with a fresh one in DPoP-Nonce.
	_, err := f.v.Verify(context.Background(), f.proof(t, Claims{}), "POST", tokenURL, "")
	oe := wantCode(t, err, oauth.UseDPoPNonce, "nonce")
	nonce := oe.Header.Get("DPoP-Nonce")
	if nonce == "" || nonce != f.v.Nonces.Issue() {
		t.Fatalf("DPoP-Nonce %q, want %q", nonce, f.v.Nonces.Issue())
	}
	if _, err := f.v.Verify(context.Background(), f.proof(t, Claims{Nonce: nonce}), "POST", tokenURL, ""); err != nil {
		t.Fatal(err)
	}
	// A nonce of the previous bucket is still good.
	f.now = f.now.Add(time.Minute)
	if _, err := f.v.Verify(context.Background(), f.proof(t, Claims{Nonce: nonce}), "POST", tokenURL, ""); err != nil {
		t.Fatalf("previous-bucket nonce: %v", err)
	}
	// Two buckets old: refused, and the new nonce differs.
	f.now = f.now.Add(time.Minute)
	_, err = f.v.Verify(context.Background(), f.proof(t, Claims{Nonce: nonce}), "POST", tokenURL, "")
	oe = wantCode(t, err, oauth.UseDPoPNonce, "nonce")
	if fresh := oe.Header.Get("DPoP-Nonce"); fresh == nonce || !f.v.Nonces.Valid(fresh) {
		t.Fatalf("rotated nonce %q (old %q)", fresh, nonce)
	}
	// A nonce made with another key is not ours.
	other := &Nonces{Key: func() []byte { return []byte("another key, another deployment") }, Period: time.Minute, Now: f.v.Now}
	_, err = f.v.Verify(context.Background(), f.proof(t, Claims{Nonce: other.Issue()}), "POST", tokenURL, "")
	wantCode(t, err, oauth.UseDPoPNonce, "nonce")
	// Nodes sharing the key agree.
	twin := &Nonces{Key: f.v.Nonces.Key, Period: time.Minute, Now: f.v.Now}
	if twin.Issue() != f.v.Nonces.Issue() {
		t.Fatal("two nodes with one key issue different nonces")
	}
}

func TestReplayGuardFailureIsNotAProtocolError(t *testing.T) {
	f := newFixture(t)
	f.guard.err = errors.New("redis down")
	_, err := f.v.Verify(context.Background(), f.proof(t, Claims{}), "POST", tokenURL, "")
	var oe *oauth.Error
	if err == nil || errors.As(err, &oe) {
		t.Fatalf("want a server error, got %v", err)
	}
}

func TestFromHeader(t *testing.T) {
	h := http.Header{}
	if v, err := FromHeader(h); v != "" || err != nil {
		t.Fatalf("none: %q %v", v, err)
	}
	h.Add("DPoP", "a.b.c")
	if v, err := FromHeader(h); v != "a.b.c" || err != nil {
		t.Fatalf("one: %q %v", v, err)
	}
	h.Add("DPoP", "d.e.f")
	_, err := FromHeader(h)
	wantCode(t, err, oauth.InvalidDPoPProof, "more than one")
	_, err = FromHeader(http.Header{"Dpop": {"a.b.c, d.e.f"}})
	wantCode(t, err, oauth.InvalidDPoPProof, "more than one")
}

func TestMemoryGuard(t *testing.T) {
	now := t0
	g := &MemoryGuard{Now: func() time.Time { return now }}
	ctx := context.Background()
	if ok, _ := g.UseOnce(ctx, "dpop", "a", now.Add(time.Minute)); !ok {
		t.Fatal("first use refused")
	}
	if ok, _ := g.UseOnce(ctx, "dpop", "a", now.Add(time.Minute)); ok {
		t.Fatal("second use accepted")
	}
	if ok, _ := g.UseOnce(ctx, "other", "a", now.Add(time.Minute)); !ok {
		t.Fatal("kinds are separate")
	}
	now = now.Add(2 * time.Minute)
	if ok, _ := g.UseOnce(ctx, "dpop", "a", now.Add(time.Minute)); !ok {
		t.Fatal("an expired entry still blocks")
	}
	for i := range 2048 {
		g.UseOnce(ctx, "dpop", fmt.Sprint(i), now.Add(time.Second))
	}
	now = now.Add(time.Hour)
	for i := range 1024 {
		g.UseOnce(ctx, "x", fmt.Sprint(i), now.Add(time.Second))
	}
	if len(g.seen) > 1024+1 {
		t.Fatalf("expired entries kept: %d", len(g.seen))
	}
}

func TestSignRefusesOtherKeys(t *testing.T) {
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if _, err := Sign(p521, Claims{HTM: "POST", HTU: tokenURL, IAT: t0}); err == nil {
		t.Fatal("P-521 accepted")
	}
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	f.v.Replay = &MemoryGuard{Now: f.v.Now}
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = f.proof(b, Claims{})
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := f.v.Verify(ctx, proofs[i], "POST", tokenURL, ""); err != nil {
			b.Fatal(err)
		}
	}
}
