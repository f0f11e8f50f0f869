package token

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultTTL is the lifetime of access and ID tokens when the Minter sets none.
const DefaultTTL = 5 * time.Minute

// Typ header values.
const (
	TypAccess = "at+jwt" // RFC 9068 §2.1
	TypID     = "JWT"
)

// Minter signs and verifies this server's tokens with Keys().Current and
// verifies with the current and previous keys.
type Minter struct {
	Issuer    string
	Keys      func() KeySet
	AccessTTL time.Duration // zero means DefaultTTL
	IDTTL     time.Duration // zero means DefaultTTL
	Now       func() time.Time
}

func (m *Minter) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func ttl(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTTL
	}
	return d
}

// Access mints an access token. It fills Issuer, IssuedAt, Expiry (Now +
// AccessTTL, or c.Expiry when that is earlier: a token never outlives the
// one it came from), ID when empty (128 random bits) and Audience when
// empty (the issuer), and returns the claims as signed. Times are whole
// seconds.
func (m *Minter) Access(c AccessClaims) (string, AccessClaims, error) {
	if c.Subject == "" || c.ClientID == "" {
		return "", AccessClaims{}, errors.New("token: access token needs sub and client_id") // RFC 9068 §2.2
	}
	now := m.now()
	c.Issuer = m.Issuer
	c.IssuedAt = time.Unix(now.Unix(), 0).UTC()
	c.Expiry = earliest(now.Add(ttl(m.AccessTTL)), c.Expiry)
	if !c.Expiry.After(c.IssuedAt) {
		return "", AccessClaims{}, errors.New("token: the access token would already be expired")
	}
	if c.ID == "" {
		c.ID = randomID()
	}
	if len(c.Audience) == 0 {
		c.Audience = []string{m.Issuer}
	}
	if c.Approval.Rules == nil {
		c.Approval.Rules = []string{}
	}
	if len(c.AuthorizationDetails) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, c.AuthorizationDetails); err != nil || buf.Bytes()[0] != '[' {
			return "", AccessClaims{}, errors.New("token: authorization_details must be a JSON array")
		}
		c.AuthorizationDetails = buf.Bytes()
	} else {
		c.AuthorizationDetails = nil
	}
	if !c.AuthTime.IsZero() {
		c.AuthTime = time.Unix(c.AuthTime.Unix(), 0).UTC()
	}
	approval := c.Approval
	w := accessWire{
		Iss: c.Issuer, Sub: c.Subject, Aud: c.Audience, ClientID: c.ClientID, Act: c.Act,
		Scope: c.Scope, AuthorizationDetails: c.AuthorizationDetails, JTI: c.ID,
		Iat: c.IssuedAt.Unix(), Exp: c.Expiry.Unix(), GrantID: c.GrantID, Approval: &approval,
		Cnf: c.Cnf, AuthTime: unix(c.AuthTime), ACR: c.ACR,
	}
	tok, err := m.sign(TypAccess, w)
	if err != nil {
		return "", AccessClaims{}, err
	}
	return tok, c, nil
}

// earliest returns limit floored to the second when it is set and before
// d, else d floored: a floored expiry is never later than asked.
func earliest(d, limit time.Time) time.Time {
	if !limit.IsZero() && limit.Before(d) {
		d = limit
	}
	return time.Unix(d.Unix(), 0).UTC()
}

// ID mints an ID token for the client c.Audience.
func (m *Minter) ID(c IDClaims) (string, error) {
	if c.Subject == "" || c.Audience == "" {
		return "", errors.New("token: ID token needs sub and aud") // OIDC Core §2
	}
	now := m.now()
	w := idWire{
		Iss: m.Issuer, Sub: c.Subject, Aud: c.Audience,
		Iat: now.Unix(), Exp: now.Add(ttl(m.IDTTL)).Unix(),
		AuthTime: unix(c.AuthTime), ACR: c.ACR, Nonce: c.Nonce, AuthReqID: c.AuthReqID,
	}
	if c.AccessToken != "" {
		w.AtHash = AtHash(c.AccessToken)
	}
	return m.sign(TypID, w)
}

// AtHash is OIDC Core §3.3.2.11's at_hash for ES256: base64url of the left
// half of SHA-256 of the ASCII access token.
func AtHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// sign builds the JWS compact serialisation (RFC 7515 §7.1) itself so the
// payload is encoded without HTML escaping: authorization_details come back
// from Verify exactly as they went in.
func (m *Minter) sign(typ string, claims any) (string, error) {
	if m.Keys == nil {
		return "", errors.New("token: no keys")
	}
	k := m.Keys().Current
	if k.Private == nil || k.ID == "" {
		return "", errors.New("token: no current signing key")
	}
	h, err := encode(header{Alg: "ES256", Kid: k.ID, Typ: typ})
	if err != nil {
		return "", err
	}
	p, err := encode(claims)
	if err != nil {
		return "", err
	}
	input := h + "." + p
	sig, err := jwt.SigningMethodES256.Sign(input, k.Private)
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func encode(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

func randomID() string {
	b := make([]byte, 16) // 128 bits
	_, _ = rand.Read(b)   // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Verify checks an access token of this server: ES256 only, typ at+jwt
// (RFC 9068 §4), a kid among the current and previous keys, iss, and exp
// against Now with no leeway. It does not check aud or revocation.
func (m *Minter) Verify(token string) (AccessClaims, error) {
	var w accessWire
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256"}), // RFC 8725 §3.1: one algorithm, never none
		jwt.WithIssuer(m.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(m.now),
		jwt.WithStrictDecoding(),
	)
	if _, err := p.ParseWithClaims(token, &w, m.keyfunc(isAccessTyp)); err != nil {
		return AccessClaims{}, fmt.Errorf("token: %w", err)
	}
	if w.Sub == "" || w.ClientID == "" || w.JTI == "" || len(w.Aud) == 0 || w.Iat == 0 {
		return AccessClaims{}, errors.New("token: access token lacks a required claim") // RFC 9068 §2.2
	}
	c := AccessClaims{
		Issuer: w.Iss, Subject: w.Sub, Audience: w.Aud, ClientID: w.ClientID, Act: w.Act,
		Scope: w.Scope, AuthorizationDetails: w.AuthorizationDetails, ID: w.JTI, GrantID: w.GrantID,
		Cnf: w.Cnf, IssuedAt: fromUnix(w.Iat), Expiry: fromUnix(w.Exp),
		AuthTime: fromUnix(w.AuthTime), ACR: w.ACR,
	}
	if w.Approval != nil {
		c.Approval = *w.Approval
	}
	return c, nil
}

// VerifyIDTokenHint checks an ID token this server issued and returns its
// sub. Expiry is not enforced: the hint may be expired (OIDC Core
// §3.1.2.1, CIBA Core §7.1). Only typ JWT is accepted, so an access token
// (typ at+jwt) is refused. aud must be clientID: the hint is an ID token
// previously issued to the client that sends it (CIBA Core §7.1).
func (m *Minter) VerifyIDTokenHint(token, clientID string) (string, error) {
	var w idWire
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithoutClaimsValidation(), // OIDC Core §3.1.2.1: an expired hint is still a hint
		jwt.WithStrictDecoding(),
	)
	if _, err := p.ParseWithClaims(token, &w, m.keyfunc(func(typ string) bool { return strings.EqualFold(typ, TypID) })); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	if w.Iss != m.Issuer {
		return "", errors.New("token: ID token hint from another issuer")
	}
	if w.Sub == "" {
		return "", errors.New("token: ID token hint has no sub")
	}
	// CIBA Core §7.1: an ID Token previously issued to this client.
	if w.Aud != clientID {
		return "", errors.New("token: ID token hint was issued to another client")
	}
	return w.Sub, nil
}

// isAccessTyp accepts RFC 9068 §4's typ values; media types compare
// case-insensitively (RFC 7515 §4.1.9).
func isAccessTyp(typ string) bool {
	return strings.EqualFold(typ, TypAccess) || strings.EqualFold(typ, "application/"+TypAccess)
}

func (m *Minter) keyfunc(typOK func(string) bool) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !typOK(typ) {
			return nil, fmt.Errorf("unexpected typ %q", typ)
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("unsupported crit header") // RFC 7515 §4.1.11
		}
		if m.Keys == nil {
			return nil, errors.New("no keys")
		}
		kid, _ := t.Header["kid"].(string)
		k, ok := m.Keys().find(kid)
		if !ok {
			return nil, errors.New("unknown kid")
		}
		return &k.Private.PublicKey, nil
	}
}
