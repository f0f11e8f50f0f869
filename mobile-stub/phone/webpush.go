package phone

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxVAPIDLifetime is RFC 8292 §2's limit on a VAPID JWT: "exp" no more than
// 24 hours after the request.
const maxVAPIDLifetime = 24 * time.Hour

// DecryptPush decrypts the body of a Web Push message encrypted with
// aes128gcm (RFC 8291 §3.4 over RFC 8188) for the receiver's ECDH key priv
// and its 16-byte authentication secret, and returns the plaintext.
func DecryptPush(body []byte, priv *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	if priv == nil || priv.Curve() != ecdh.P256() {
		return nil, errors.New("phone: push key must be a P-256 ECDH key")
	}
	// RFC 8291 §3.2: the authentication secret is 16 octets.
	if len(authSecret) != 16 {
		return nil, errors.New("phone: auth secret must be 16 bytes")
	}
	// RFC 8188 §2.1: salt (16) | rs (4) | idlen (1) | keyid (idlen).
	const fixed = 16 + 4 + 1
	if len(body) < fixed {
		return nil, errors.New("phone: push body shorter than the aes128gcm header")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idlen := int(body[20])
	if rs < 18 { // RFC 8188 §2.1: smaller records cannot hold a tag and a delimiter
		return nil, fmt.Errorf("phone: record size %d below 18", rs)
	}
	// RFC 8291 §4: keyid is the application server's uncompressed P-256 key.
	if idlen != 65 || len(body) < fixed+idlen {
		return nil, errors.New("phone: keyid is not a 65-byte P-256 public key")
	}
	asPublic, err := ecdh.P256().NewPublicKey(body[fixed : fixed+idlen])
	if err != nil {
		return nil, fmt.Errorf("phone: sender key: %w", err)
	}
	ciphertext := body[fixed+idlen:]
	// RFC 8291 §4: a push message is a single record.
	if len(ciphertext) > int(rs) {
		return nil, errors.New("phone: push message has more than one record")
	}
	if len(ciphertext) < 16+1 {
		return nil, errors.New("phone: record shorter than tag and delimiter")
	}

	// RFC 8291 §3.3: ecdh_secret = ECDH(ua_private, as_public).
	secret, err := priv.ECDH(asPublic)
	if err != nil {
		return nil, fmt.Errorf("phone: ECDH: %w", err)
	}
	// RFC 8291 §3.4: key_info = "WebPush: info" || 0x00 || ua_public || as_public;
	// IKM = HKDF(salt=auth_secret, ikm=ecdh_secret, info=key_info, L=32).
	keyInfo := "WebPush: info\x00" + string(priv.PublicKey().Bytes()) + string(asPublic.Bytes())
	ikm, err := hkdf.Key(sha256.New, secret, authSecret, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	// RFC 8188 §2.2 and §2.3: CEK and NONCE from the record salt.
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// RFC 8188 §2.3: the nonce of record SEQ is NONCE XOR SEQ; the only
	// record is SEQ 0.
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, errors.New("phone: push message does not decrypt (wrong keys or tampered)")
	}
	// RFC 8188 §2: data || delimiter || zero padding; the last record's
	// delimiter is 0x02.
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 || plain[i] != 2 {
		return nil, errors.New("phone: record has no final-record delimiter")
	}
	return plain[:i], nil
}

// VerifyVAPID checks a push request's "Authorization: vapid t=<JWT>, k=<key>"
// header (RFC 8292 §3) for a message sent to endpoint at time now: the JWT is
// ES256 and verifies with k, its "aud" is the endpoint's origin, "exp" is in
// the future and at most 24 hours away, and "sub" is a mailto: or https:
// contact (RFC 8292 §2). It returns k, base64url without padding, for the
// caller to compare with the key it expects (RFC 8292 §4).
func VerifyVAPID(authHeader, endpoint string, now time.Time) (string, error) {
	scheme, params, ok := strings.Cut(strings.TrimSpace(authHeader), " ")
	if !ok || !strings.EqualFold(scheme, "vapid") {
		return "", errors.New("phone: Authorization is not the vapid scheme (RFC 8292 §3)")
	}
	var token, key string
	for _, param := range strings.Split(params, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(param), "=")
		if !ok {
			return "", errors.New("phone: malformed vapid parameter")
		}
		value = strings.Trim(strings.TrimSpace(value), `"`)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "t":
			token = value
		case "k":
			key = value
		}
	}
	if token == "" || key == "" {
		return "", errors.New("phone: vapid needs both t and k (RFC 8292 §3)")
	}
	rawKey, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(key, "="))
	if err != nil {
		return "", errors.New("phone: vapid k is not base64url")
	}
	// RFC 8292 §3.2: k is the uncompressed P-256 point.
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), rawKey)
	if err != nil {
		return "", errors.New("phone: vapid k is not a P-256 public key")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", errors.New("phone: endpoint is not an absolute URL")
	}
	// RFC 8292 §2: aud is the origin of the push resource.
	origin := strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)

	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}), // RFC 8292 §2
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(origin),
	)
	if err != nil {
		return "", fmt.Errorf("phone: vapid JWT: %w", err)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return "", errors.New("phone: vapid JWT has no exp")
	}
	// RFC 8292 §2: exp MUST NOT be more than 24 hours from the request.
	if exp.Sub(now) > maxVAPIDLifetime {
		return "", errors.New("phone: vapid JWT expires more than 24 h ahead")
	}
	sub, _ := claims.GetSubject()
	if !strings.HasPrefix(sub, "mailto:") && !strings.HasPrefix(sub, "https:") {
		return "", errors.New("phone: vapid sub is not a mailto: or https: contact")
	}
	return base64.RawURLEncoding.EncodeToString(rawKey), nil
}
