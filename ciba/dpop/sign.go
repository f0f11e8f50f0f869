package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"time"
)

// Claims are what a new proof says (RFC 9449 §4.2). Sign fills JTI when
// it is empty.
type Claims struct {
	HTM, HTU string
	IAT      time.Time
	JTI      string
	// AccessToken, when set, yields ath (a proof for a resource call).
	AccessToken string
	Nonce       string
}

// Sign returns a DPoP proof signed by key: an ECDSA P-256 (ES256) or P-384
// (ES384) key, or an Ed25519 key (EdDSA). The key is any crypto.Signer, so
// it may live in a KMS or an HSM.
func Sign(key crypto.Signer, c Claims) (string, error) {
	jwk, err := PublicJWK(key.Public())
	if err != nil {
		return "", err
	}
	alg := "EdDSA"
	var hash crypto.Hash
	size := 0
	if pub, ok := key.Public().(*ecdsa.PublicKey); ok {
		switch pub.Curve {
		case elliptic.P256():
			alg, hash, size = "ES256", crypto.SHA256, 32
		case elliptic.P384():
			alg, hash, size = "ES384", crypto.SHA384, 48
		}
	}
	if c.JTI == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		c.JTI = base64.RawURLEncoding.EncodeToString(b)
	}
	wire := map[string]any{"jti": c.JTI, "htm": c.HTM, "htu": c.HTU, "iat": c.IAT.Unix()}
	if c.AccessToken != "" {
		wire["ath"] = TokenHash(c.AccessToken)
	}
	if c.Nonce != "" {
		wire["nonce"] = c.Nonce
	}
	h, err := json.Marshal(header{Typ: "dpop+jwt", Alg: alg, JWK: jwk})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(wire)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	var sig []byte
	switch hash {
	case 0: // Ed25519 signs the message itself (RFC 8032).
		sig, err = key.Sign(rand.Reader, []byte(input), crypto.Hash(0))
	default:
		var digest []byte
		if hash == crypto.SHA256 {
			d := sha256.Sum256([]byte(input))
			digest = d[:]
		} else {
			d := sha512.Sum384([]byte(input))
			digest = d[:]
		}
		var der []byte
		if der, err = key.Sign(rand.Reader, digest, hash); err == nil {
			sig, err = rawECDSA(der, size)
		}
	}
	if err != nil {
		return "", err
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// rawECDSA turns an ASN.1 ECDSA signature into R || S (RFC 7518 §3.4).
func rawECDSA(der []byte, size int) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return nil, err
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}

// PublicJWK returns the public JWK of an ECDSA P-256 / P-384 or Ed25519
// key, the form Proof.JWK and token.Thumbprint take.
func PublicJWK(pub crypto.PublicKey) (map[string]any, error) {
	enc := base64.RawURLEncoding
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		crv := map[elliptic.Curve]string{elliptic.P256(): "P-256", elliptic.P384(): "P-384"}[k.Curve]
		b, err := k.Bytes()
		if crv == "" || err != nil {
			return nil, errors.New("dpop: ECDSA keys must be P-256 or P-384")
		}
		n := (len(b) - 1) / 2
		return map[string]any{"kty": "EC", "crv": crv, "x": enc.EncodeToString(b[1 : 1+n]), "y": enc.EncodeToString(b[1+n:])}, nil
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": enc.EncodeToString(k)}, nil
	}
	return nil, errors.New("dpop: unsupported key type (use ECDSA P-256, P-384 or Ed25519)")
}
