package clientauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
)

func code(err error) string {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return fmt.Sprintf("%d %s", oe.Status, oe.Code)
	}
	return fmt.Sprint(err)
}

func TestParseTakesExactlyOneMethod(t *testing.T) {
	assertion := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "a"})
	a, _ := assertion.SignedString([]byte("k"))
	cases := []struct {
		name     string
		basic    bool
		user     string
		form     url.Values
		want     string
		wantID   string
		wantMeth string
	}{
		{"basic", true, "agent%201", url.Values{}, "", "agent 1", clientauth.SecretBasic},
		{"post", false, "", url.Values{"client_id": {"a"}, "client_secret": {"s"}}, "", "a", clientauth.SecretPost},
		{"assertion", false, "", url.Values{"client_assertion": {a}, "client_assertion_type": {clientauth.AssertionType}}, "", "a", clientauth.PrivateKeyJWT},
		{"none", false, "", url.Values{}, "401 invalid_client", "", ""},
		{"basic and post", true, "a", url.Values{"client_id": {"a"}, "client_secret": {"s"}}, "400 invalid_request", "", ""},
		{"assertion of the wrong type", false, "", url.Values{"client_assertion": {a}, "client_assertion_type": {"x"}}, "401 invalid_client", "", ""},
		{"assertion for another client_id", false, "", url.Values{"client_id": {"b"}, "client_assertion": {a}, "client_assertion_type": {clientauth.AssertionType}}, "401 invalid_client", "", ""},
		{"basic with another client_id", true, "a", url.Values{"client_id": {"b"}}, "401 invalid_client", "", ""},
		{"post without client_id", false, "", url.Values{"client_secret": {"s"}}, "401 invalid_client", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := clientauth.Parse(c.user, "pw", c.basic, c.form)
			if c.want != "" {
				if code(err) != c.want {
					t.Fatalf("got %v, want %s", err, c.want)
				}
				return
			}
			if err != nil || got.ClientID != c.wantID || got.Method != c.wantMeth {
				t.Fatalf("got %+v %v", got, err)
			}
		})
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	s := clientauth.NewSecret()
	if len(s) < 43 || fmt.Sprint(s) != "[redacted]" || fmt.Sprintf("%v", clientauth.Credentials{Secret: s}) == string(s) {
		t.Fatal("a secret printed")
	}
	if b, _ := json.Marshal(map[string]any{"s": s.String()}); string(b) != `{"s":"[redacted]"}` {
		t.Fatalf("%s", b)
	}
}

type replay map[string]bool

func (r replay) UseOnce(_ context.Context, kind, id string, _ time.Time) (bool, error) {
	if r[kind+id] {
		return false, nil
	}
	r[kind+id] = true
	return true, nil
}

func TestVerifySecretsAndAssertions(t *testing.T) {
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	v := &clientauth.Verifier{Issuer: "https://as.example", Now: func() time.Time { return now }, Replay: replay{}}
	ctx := context.Background()
	sec := clientauth.NewSecret()
	reg := &clientauth.Registered{ID: "a", Method: clientauth.SecretBasic, SecretHash: clientauth.HashSecret(sec)}
	if err := v.Verify(ctx, clientauth.Credentials{ClientID: "a", Method: clientauth.SecretBasic, Secret: sec}, reg, ""); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]clientauth.Credentials{
		"wrong secret": {ClientID: "a", Method: clientauth.SecretBasic, Secret: "nope"},
		"wrong method": {ClientID: "a", Method: clientauth.SecretPost, Secret: sec},
	} {
		if err := v.Verify(ctx, c, reg, ""); code(err) != "401 invalid_client" {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := v.Verify(ctx, clientauth.Credentials{ClientID: "a", Method: clientauth.SecretBasic, Secret: sec}, nil, ""); code(err) != "401 invalid_client" {
		t.Errorf("unknown client: %v", err)
	}
	// private_key_jwt: a key, an assertion, its replay.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "x": enc(raw[1:33]), "y": enc(raw[33:])}}})
	kreg := &clientauth.Registered{ID: "k", Method: clientauth.PrivateKeyJWT, JWKS: jwks}
	sign := func(c jwt.MapClaims) clientauth.Credentials {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(key)
		return clientauth.Credentials{ClientID: "k", Method: clientauth.PrivateKeyJWT, Assertion: clientauth.Secret(s)}
	}
	good := sign(jwt.MapClaims{"iss": "k", "sub": "k", "aud": "https://as.example/token", "exp": now.Add(time.Minute).Unix(), "jti": "1"})
	if err := v.Verify(ctx, good, kreg, "https://as.example/token"); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(ctx, good, kreg, "https://as.example/token"); code(err) != "401 invalid_client" {
		t.Fatalf("replay: %v", err)
	}
}

func TestJWKRefusesPrivateAndOffCurveKeys(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	good := clientauth.JWK{Kty: "EC", Crv: "P-256", X: enc(raw[1:33]), Y: enc(raw[33:])}
	if _, err := good.PublicKey(); err != nil {
		t.Fatal(err)
	}
	priv := good
	priv.D = "AAAA"
	off := good
	off.Y = enc(make([]byte, 32))
	short := good
	short.X = enc(raw[1:20])
	for name, k := range map[string]clientauth.JWK{"private": priv, "off the curve": off, "short coordinate": short,
		"unknown curve": {Kty: "EC", Crv: "P-192", X: good.X, Y: good.Y}, "unknown kty": {Kty: "oct"}} {
		if _, err := k.PublicKey(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
