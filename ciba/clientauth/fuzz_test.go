package clientauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
)

// FuzzClientAssertion drives private_key_jwt from the form to Verify
// (RFC 7523): every input authenticates the client whose key signed it or
// is refused with invalid_client (invalid_request for two methods), never
// a panic or another error.
func FuzzClientAssertion(f *testing.F) {
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	v := &clientauth.Verifier{Issuer: "https://as.example", Now: func() time.Time { return now }, Replay: replay{}}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "x": enc(raw[1:33]), "y": enc(raw[33:])}}})
	sign := func(m jwt.SigningMethod, k any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(k)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": "k", "sub": "k", "aud": "https://as.example/token", "exp": now.Add(time.Minute).Unix(), "jti": "1"}
	}
	f.Add(sign(jwt.SigningMethodES256, key, good()), "")
	for _, mod := range []func(jwt.MapClaims){
		func(c jwt.MapClaims) { c["aud"] = []any{"x", 1} },
		func(c jwt.MapClaims) { c["exp"] = 1e300 },
		func(c jwt.MapClaims) { c["sub"] = "other" },
		func(c jwt.MapClaims) { delete(c, "jti") },
		func(c jwt.MapClaims) { c["exp"] = now.Add(time.Hour).Unix() },
	} {
		c := good()
		c["jti"] = "2"
		mod(c)
		f.Add(sign(jwt.SigningMethodES256, key, c), "k")
	}
	f.Add(sign(jwt.SigningMethodHS256, []byte(jwks), good()), "")
	f.Add(sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good()), "")
	for _, s := range []string{"", "a.b.c", "e30.e30.", "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJrIn0.AAAA", strings.Repeat("A.", 3)} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, assertion, clientID string) {
		form := url.Values{"client_assertion": {assertion}, "client_assertion_type": {clientauth.AssertionType}}
		if clientID != "" {
			form.Set("client_id", clientID)
		}
		c, err := clientauth.Parse("", "", false, form)
		if err == nil {
			// Every client the caller may name has the key; only a
			// signature by it, for that client, may pass.
			reg := &clientauth.Registered{ID: c.ClientID, Method: clientauth.PrivateKeyJWT, JWKS: jwks}
			err = v.Verify(context.Background(), c, reg, "https://as.example/token")
		}
		if err != nil {
			var oe *oauth.Error
			if !errors.As(err, &oe) || !(oe.Code == oauth.InvalidClient && oe.Status == 401 || oe.Code == oauth.InvalidRequest && oe.Status == 400) {
				t.Fatalf("want invalid_client, got %v", err)
			}
			return
		}
		var claims jwt.RegisteredClaims
		if _, err := jwt.ParseWithClaims(assertion, &claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation()); err != nil ||
			claims.Issuer != c.ClientID || claims.Subject != c.ClientID {
			t.Fatalf("accepted an assertion that does not verify for %q: %v %+v", c.ClientID, err, claims)
		}
	})
}

// FuzzParseJWKS feeds registered key sets (client jwks, device keys) to
// the JWK parser: a key set or an error, never a panic.
func FuzzParseJWKS(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	good, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "x": enc(raw[1:33]), "y": enc(raw[33:]), "kid": "a", "alg": "ES256"}}})
	f.Add(string(good))
	for _, s := range []string{`{"keys":[]}`, `{"keys":[{"kty":"RSA","n":"AQ","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","n":"` + strings.Repeat("_", 700) + `","e":"////////////"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]}`, `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}`, `{"keys":[{"kty":"oct","k":"AA"}]}`, `[]`, `null`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, set string) {
		keys, err := clientauth.ParseJWKS(json.RawMessage(set))
		if err != nil {
			return
		}
		for _, k := range keys {
			if k.Public == nil {
				t.Fatalf("a key without a public key: %+v", k)
			}
		}
		// A parsed set must be usable to check a signature without panicking.
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "x"})
		s, _ := tok.SignedString(key)
		_, _ = jwt.Parse(s, keys.Keyfunc(), jwt.WithValidMethods(clientauth.AsymmetricAlgs))
	})
}
