package phone

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gowebpki/jcs"
)

const (
	// deviceJWTLifetime is exp - iat of a device authentication JWT
	// (the server accepts at most 60 s).
	deviceJWTLifetime = 30 * time.Second
	// decisionJWTLifetime is exp - iat of a decision JWT (the server accepts at most
	// 5 minutes).
	decisionJWTLifetime = 120 * time.Second
)

// The two decisions a device can sign.
const (
	Approve = "approve"
	Deny    = "deny"
)

// BindingMessageHash is the decision's bm_hash: base64url(SHA-256(the
// binding message as UTF-8)), of the empty string when there is none.
func BindingMessageHash(bindingMessage string) string {
	sum := sha256.Sum256([]byte(bindingMessage))
	return b64.EncodeToString(sum[:])
}

// AuthorizationDetailsHash is the decision's ad_hash: base64url(SHA-256(the
// RFC 8785 canonical JSON of the authorization_details array)), of "[]" when
// there are none (raw empty or null).
func AuthorizationDetailsHash(raw json.RawMessage) (string, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		trimmed = []byte("[]")
	}
	if trimmed[0] != '[' {
		return "", errors.New("phone: authorization_details is not a JSON array")
	}
	canonical, err := jcs.Transform(trimmed) // RFC 8785
	if err != nil {
		return "", fmt.Errorf("phone: canonicalising authorization_details: %w", err)
	}
	sum := sha256.Sum256(canonical)
	return b64.EncodeToString(sum[:]), nil
}

// DeviceJWT returns the credential of one device call, sent as
// "Authorization: Device <jwt>": ES256 by the device key, typ JWT, iss the
// device id, aud the issuer, iat now, exp now+30 s, and a fresh 128-bit jti.
func (p *Phone) DeviceJWT(now time.Time) (string, error) {
	deviceID, issuer := p.identity()
	if deviceID == "" || issuer == "" {
		return "", errors.New("phone: not enrolled")
	}
	return p.sign(jwt.MapClaims{
		"iss": deviceID,
		"aud": issuer,
		"iat": now.Unix(),
		"exp": now.Add(deviceJWTLifetime).Unix(),
		"jti": randomID(),
	})
}

// DecisionJWT signs decision ("approve" or "deny") over the request r as it
// was shown: iss the device id, aud the issuer, req r.ID, bm_hash of
// r.BindingMessage, ad_hash of r.AuthorizationDetails, iat now, exp
// now+120 s, and a fresh jti. Tests that tamper may pass a modified r.
func (p *Phone) DecisionJWT(r *Request, decision string, now time.Time) (string, error) {
	if r == nil || r.ID == "" {
		return "", errors.New("phone: no request to decide")
	}
	if decision != Approve && decision != Deny {
		return "", fmt.Errorf("phone: decision %q is neither approve nor deny", decision)
	}
	deviceID, issuer := p.identity()
	if deviceID == "" || issuer == "" {
		return "", errors.New("phone: not enrolled")
	}
	adHash, err := AuthorizationDetailsHash(r.AuthorizationDetails)
	if err != nil {
		return "", err
	}
	return p.sign(jwt.MapClaims{
		"iss":      deviceID,
		"aud":      issuer,
		"req":      r.ID,
		"decision": decision,
		"bm_hash":  BindingMessageHash(r.BindingMessage),
		"ad_hash":  adHash,
		"iat":      now.Unix(),
		"exp":      now.Add(decisionJWTLifetime).Unix(),
		"jti":      randomID(),
	})
}

// sign makes an ES256 JWT with typ JWT signed by the device key.
func (p *Phone) sign(claims jwt.MapClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["typ"] = "JWT"
	return t.SignedString(p.keys.device)
}

// PublicJWK is the device public key as a JWK (RFC 7517, RFC 7518 §6.2.1),
// as sent at enrollment.
func (p *Phone) PublicJWK() map[string]string {
	pub, _ := p.keys.device.PublicKey.Bytes() // 0x04 || X || Y for P-256
	return map[string]string{
		"kty": "EC",
		"crv": "P-256",
		"x":   b64.EncodeToString(pub[1:33]),
		"y":   b64.EncodeToString(pub[33:65]),
	}
}
