package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxPrevious is how many rotated-out keys a KeySet keeps for verification.
const MaxPrevious = 2

// Key is one ES256 signing key.
type Key struct {
	ID      string
	Private *ecdsa.PrivateKey
	Created time.Time
}

// GenerateKey returns a fresh P-256 key whose ID is its RFC 7638 thumbprint.
func GenerateKey(now time.Time) (Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, err
	}
	return newKey(priv, now)
}

func newKey(priv *ecdsa.PrivateKey, created time.Time) (Key, error) {
	jwk, err := publicJWK(&priv.PublicKey, "")
	if err != nil {
		return Key{}, err
	}
	kid, err := Thumbprint(map[string]any{"kty": jwk.Kty, "crv": jwk.Crv, "x": jwk.X, "y": jwk.Y})
	if err != nil {
		return Key{}, err
	}
	return Key{ID: kid, Private: priv, Created: created.UTC()}, nil
}

type storedKey struct {
	ID      string    `json:"kid"`
	Created time.Time `json:"created"`
	PKCS8   []byte    `json:"pkcs8"`
}

// MarshalBinary returns the key as JSON with its PKCS #8 private key.
// The bytes are a secret: store them, never log them.
func (k Key) MarshalBinary() ([]byte, error) {
	if k.Private == nil {
		return nil, errors.New("token: no private key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, err
	}
	return json.Marshal(storedKey{ID: k.ID, Created: k.Created, PKCS8: der})
}

// ParseKey reads what MarshalBinary wrote. It refuses anything but a P-256
// key and a kid that is not the key's thumbprint.
func ParseKey(b []byte) (Key, error) {
	var s storedKey
	if err := json.Unmarshal(b, &s); err != nil {
		return Key{}, fmt.Errorf("token: stored key: %w", err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(s.PKCS8)
	if err != nil {
		return Key{}, fmt.Errorf("token: stored key: %w", err)
	}
	priv, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return Key{}, errors.New("token: stored key is not a P-256 ECDSA key")
	}
	k, err := newKey(priv, s.Created)
	if err != nil {
		return Key{}, err
	}
	if k.ID != s.ID {
		return Key{}, errors.New("token: stored key's kid does not match its thumbprint")
	}
	return k, nil
}

// KeySet is the current signing key and the previous ones, newest first.
type KeySet struct {
	Current  Key
	Previous []Key
}

// Rotate returns the set with next as the current key and the old current
// key first among the previous ones, keeping at most MaxPrevious.
func (ks KeySet) Rotate(next Key) KeySet {
	prev := slices.Clone(ks.Previous)
	if ks.Current.Private != nil {
		prev = append([]Key{ks.Current}, prev...)
	}
	if len(prev) > MaxPrevious {
		prev = prev[:MaxPrevious]
	}
	return KeySet{Current: next, Previous: prev}
}

// find returns the key with this kid among the current and previous keys.
func (ks KeySet) find(kid string) (Key, bool) {
	if kid == "" {
		return Key{}, false
	}
	for _, k := range append([]Key{ks.Current}, ks.Previous...) {
		if k.ID == kid && k.Private != nil {
			return k, true
		}
	}
	return Key{}, false
}

// JWK is a public EC key as published (RFC 7517 §4, RFC 7518 §6.2.1).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS is a JWK Set (RFC 7517 §5), served at /jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the public halves of the current and previous keys.
func (ks KeySet) JWKS() JWKS {
	out := JWKS{Keys: []JWK{}}
	for _, k := range append([]Key{ks.Current}, ks.Previous...) {
		if k.Private == nil {
			continue
		}
		if jwk, err := publicJWK(&k.Private.PublicKey, k.ID); err == nil {
			out.Keys = append(out.Keys, jwk)
		}
	}
	return out
}

func publicJWK(pub *ecdsa.PublicKey, kid string) (JWK, error) {
	b, err := pub.Bytes() // SEC 1 §2.3.3 uncompressed: 0x04 || X || Y
	if err != nil || len(b) != 65 || pub.Curve != elliptic.P256() {
		return JWK{}, errors.New("token: not a P-256 public key")
	}
	enc := base64.RawURLEncoding
	// RFC 7518 §6.2.1.2: x and y are the full-length 32-byte coordinates.
	return JWK{Kty: "EC", Crv: "P-256", X: enc.EncodeToString(b[1:33]), Y: enc.EncodeToString(b[33:]),
		Kid: kid, Use: "sig", Alg: "ES256"}, nil
}

// RFC 7638 §3.2: the required members of each key type, in lexicographic order.
var thumbprintMembers = map[string][]string{
	"EC":  {"crv", "kty", "x", "y"},
	"OKP": {"crv", "kty", "x"}, // RFC 8037 §2
	"RSA": {"e", "kty", "n"},
}

var knownCurves = map[string][]string{
	"EC":  {"P-256", "P-384", "P-521"},
	"OKP": {"Ed25519", "Ed448", "X25519", "X448"},
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint, base64url without
// padding, of an EC, OKP or RSA public JWK. Members other than the
// required ones are ignored (RFC 7638 §3.2).
func Thumbprint(jwk map[string]any) (string, error) {
	kty, _ := jwk["kty"].(string)
	members, ok := thumbprintMembers[kty]
	if !ok {
		return "", fmt.Errorf("token: unsupported key type %q", kty)
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, name := range members {
		v, ok := jwk[name].(string)
		if !ok || v == "" {
			return "", fmt.Errorf("token: JWK member %s is missing or not a string", name)
		}
		switch name {
		case "kty":
		case "crv":
			if !slices.Contains(knownCurves[kty], v) {
				return "", fmt.Errorf("token: unsupported curve %q", v)
			}
		default:
			// Base64url values need no JSON escaping (RFC 7638 §3.3).
			if _, err := base64.RawURLEncoding.DecodeString(v); err != nil {
				return "", fmt.Errorf("token: JWK member %s is not base64url", name)
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		// RFC 7638 §3.3: no whitespace, members in order.
		fmt.Fprintf(&b, "%q:%q", name, v)
	}
	b.WriteByte('}')
	sum := sha256.Sum256([]byte(b.String()))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
