package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/store"
)

func jwkToECDSA(x, y string) (*ecdsa.PublicKey, error) {
	xb, err := base64.RawURLEncoding.DecodeString(x)
	if err != nil {
		return nil, err
	}
	yb, err := base64.RawURLEncoding.DecodeString(y)
	if err != nil {
		return nil, err
	}
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
}

// agentKey is an agent's own P-256 key for private_key_jwt, request
// objects and login_hint_tokens.
type agentKey struct {
	priv *ecdsa.PrivateKey
	kid  string
}

func newAgentKey(t *testing.T) *agentKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &agentKey{priv: k, kid: store.NewID()}
}

func (k *agentKey) jwks() map[string]any {
	raw, _ := k.priv.PublicKey.Bytes() // 0x04 || X || Y
	enc := base64.RawURLEncoding.EncodeToString
	return map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "kid": k.kid, "alg": "ES256",
		"x": enc(raw[1:33]), "y": enc(raw[33:])}}}
}

func (k *agentKey) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
