package clientauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
)

// AsymmetricAlgs are the JWS algorithms accepted for client assertions,
// request objects and login_hint_tokens. "none" and HMAC never are.
var AsymmetricAlgs = []string{"ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"}

// JWK is a public JSON Web Key (RFC 7517) of the kinds we accept.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	D   string `json:"d,omitempty"`
}

// Key is a parsed public key.
type Key struct {
	ID     string
	Alg    string
	Public crypto.PublicKey
}

// Keys is a parsed key set.
type Keys []Key

// ParseJWKS parses {"keys": [...]}.
func ParseJWKS(raw json.RawMessage) (Keys, error) {
	var set struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	out := make(Keys, 0, len(set.Keys))
	for _, k := range set.Keys {
		pk, err := k.PublicKey()
		if err != nil {
			return nil, err
		}
		out = append(out, Key{ID: k.Kid, Alg: k.Alg, Public: pk})
	}
	return out, nil
}

// PublicKey returns the public key of a JWK; a JWK carrying private
// material is refused.
func (k JWK) PublicKey() (crypto.PublicKey, error) {
	if k.D != "" {
		return nil, errors.New("jwk: private key material")
	}
	b := func(s string) (*big.Int, error) {
		v, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(v) == 0 {
			return nil, errors.New("jwk: bad base64url member")
		}
		return new(big.Int).SetBytes(v), nil
	}
	switch k.Kty {
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("jwk: unsupported curve %q", k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("jwk: bad EC coordinates")
		}
		// ParseUncompressedPublicKey checks that the point is on the curve.
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, errors.New("jwk: point not on curve")
		}
		return pub, nil
	case "RSA":
		n, err := b(k.N)
		if err != nil {
			return nil, err
		}
		e, err := b(k.E)
		if err != nil {
			return nil, err
		}
		if n.BitLen() < 2048 || !e.IsInt64() {
			return nil, errors.New("jwk: RSA key too small")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("jwk: unsupported curve %q", k.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("jwk: bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("jwk: unsupported kty %q", k.Kty)
}

// Keyfunc returns a jwt.Keyfunc choosing the key by kid (or the only key
// that fits the token's alg when there is no kid).
func (ks Keys) Keyfunc() jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		alg := t.Method.Alg()
		var match []Key
		for _, k := range ks {
			if kid != "" && k.ID != kid {
				continue
			}
			if k.Alg != "" && k.Alg != alg {
				continue
			}
			if !fits(alg, k.Public) {
				continue
			}
			match = append(match, k)
		}
		if len(match) != 1 {
			return nil, errors.New("no unique key for the token")
		}
		return match[0].Public, nil
	}
}

func fits(alg string, pub crypto.PublicKey) bool {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return alg[:2] == "ES"
	case *rsa.PublicKey:
		return alg[:2] == "RS" || alg[:2] == "PS"
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}
