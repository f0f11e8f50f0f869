package dpop

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/oauth"
)

// forgeTB is forge for fuzz seeds.
func forgeTB(tb testing.TB, m jwt.SigningMethod, key any, hdr map[string]any, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range hdr {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzVerify feeds proofs (and access tokens for ath) to Verify: every
// input gives a proof that fits the request or invalid_dpop_proof, never
// a panic or another error.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	fx.v.Algs = nil // every algorithm, RSA keys included
	f.Add(fx.proof(f, Claims{JTI: "seed-1"}), "")
	f.Add(fx.proof(f, Claims{JTI: "seed-2", AccessToken: "at-1"}), "at-1")
	f.Add(fx.proof(f, Claims{JTI: "seed-3", AccessToken: "at-1"}), "at-2")
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p, _ := Sign(ed, Claims{HTM: "POST", HTU: tokenURL, IAT: t0, JTI: "seed-4"})
	f.Add(p, "")
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	rjwk := map[string]any{"kty": "RSA", "n": enc(rk.N.Bytes()), "e": enc(big.NewInt(int64(rk.E)).Bytes())}
	good := jwt.MapClaims{"jti": "seed-5", "htm": "POST", "htu": tokenURL, "iat": t0.Unix()}
	f.Add(forgeTB(f, jwt.SigningMethodRS256, rk, map[string]any{"typ": "dpop+jwt", "jwk": rjwk}, good), "")
	f.Add(forgeTB(f, jwt.SigningMethodPS256, rk, map[string]any{"typ": "dpop+jwt", "jwk": rjwk}, good), "")
	for _, jwk := range []map[string]any{
		{"kty": "RSA", "n": "AQ", "e": "AQAB"},
		{"kty": "RSA", "n": enc(rk.N.Bytes()), "e": enc(make([]byte, 64))},
		{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
		{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
		{"kty": "OKP", "crv": "Ed25519", "x": ""},
		{"kty": 7},
	} {
		f.Add(forgeTB(f, jwt.SigningMethodES256, fx.key, map[string]any{"typ": "dpop+jwt", "jwk": jwk}, good), "")
	}
	for _, s := range []string{"", ".", "..", "a.b.c", "e30.e30.e30", "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2In0.e30.", strings.Repeat(".", 9000)} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, proof, accessToken string) {
		p, err := fx.v.Verify(context.Background(), proof, "POST", tokenURL, accessToken)
		if err != nil {
			var oe *oauth.Error
			if !errors.As(err, &oe) || oe.Code != oauth.InvalidDPoPProof || oe.Status != 400 {
				t.Fatalf("want 400 invalid_dpop_proof, got %v", err)
			}
			return
		}
		// Accepted: it fits this request, now, and names its key.
		if p.JKT == "" || p.HTM != "POST" || p.IAT.Before(t0.Add(-time.Minute)) || p.IAT.After(t0.Add(time.Minute)) ||
			(accessToken != "" && p.ATH != TokenHash(accessToken)) {
			t.Fatalf("accepted a proof that does not fit: %+v", p)
		}
	})
}
