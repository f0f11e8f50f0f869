package clientauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/oauth"
)

// Methods of client authentication.
const (
	SecretBasic   = "client_secret_basic"
	SecretPost    = "client_secret_post"
	PrivateKeyJWT = "private_key_jwt"
	None          = "none"
)

// AssertionType is RFC 7523 §2.2's client_assertion_type.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Secret is a client secret or other credential; it never prints.
type Secret string

// String redacts the secret.
func (Secret) String() string { return "[redacted]" }

// LogValue redacts the secret in slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Credentials is what a request claims, not yet verified.
type Credentials struct {
	ClientID  string
	Method    string
	Secret    Secret
	Assertion Secret
}

// Parse reads the client's credentials from HTTP Basic authentication
// (already split by the caller) and the form. Exactly one method may be
// used (RFC 6749 §2.3: a client MUST NOT use more than one).
func Parse(user, pass string, hasBasic bool, form url.Values) (Credentials, error) {
	var c Credentials
	n := 0
	if hasBasic {
		n++
		// RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic.
		id, err1 := url.QueryUnescape(user)
		sec, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil || id == "" {
			return c, oauth.Client("malformed HTTP Basic credentials")
		}
		c = Credentials{ClientID: id, Method: SecretBasic, Secret: Secret(sec)}
	}
	if form.Get("client_secret") != "" {
		n++
		c = Credentials{ClientID: form.Get("client_id"), Method: SecretPost, Secret: Secret(form.Get("client_secret"))}
	}
	if a := form.Get("client_assertion"); a != "" {
		n++
		if form.Get("client_assertion_type") != AssertionType {
			return c, oauth.Client("client_assertion_type must be %s", AssertionType)
		}
		iss, err := unverifiedIssuer(a)
		if err != nil {
			return c, oauth.Client("client_assertion is not a JWT")
		}
		if id := form.Get("client_id"); id != "" && id != iss {
			return c, oauth.Client("client_id does not match the client assertion")
		}
		c = Credentials{ClientID: iss, Method: PrivateKeyJWT, Assertion: Secret(a)}
	}
	if n == 0 {
		return c, oauth.Client("client authentication required")
	}
	if n > 1 {
		return c, oauth.New(oauth.InvalidRequest, "more than one client authentication method used")
	}
	if c.ClientID == "" {
		return c, oauth.Client("client_id missing")
	}
	if hasBasic && form.Get("client_id") != "" && form.Get("client_id") != c.ClientID {
		return c, oauth.Client("client_id does not match the authenticated client")
	}
	return c, nil
}

func unverifiedIssuer(assertion string) (string, error) {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &claims); err != nil {
		return "", err
	}
	if claims.Issuer == "" {
		return "", errors.New("no iss")
	}
	return claims.Issuer, nil
}

// Registered is the part of a registered client that authentication needs.
type Registered struct {
	ID         string
	Method     string
	SecretHash []byte
	JWKS       json.RawMessage
	Disabled   bool
}

// ReplayGuard records single-use identifiers.
type ReplayGuard interface {
	UseOnce(ctx context.Context, kind, id string, until time.Time) (bool, error)
}

// Verifier checks credentials against registered clients.
type Verifier struct {
	Issuer string
	Now    func() time.Time
	Replay ReplayGuard
}

// MaxAssertionLifetime bounds exp - now for client assertions so that the
// replay cache stays small.
const MaxAssertionLifetime = 10 * time.Minute

// Verify authenticates c as reg at endpoint (the full URL of the endpoint,
// an acceptable audience besides the issuer). reg is nil for an unknown
// client.
func (v *Verifier) Verify(ctx context.Context, c Credentials, reg *Registered, endpoint string) error {
	// An unknown, disabled or differently registered client gets the
	// answer a wrong secret or a forged assertion gets: the answer must
	// not tell which client ids exist (the reason is logged and counted).
	if reg == nil || reg.Disabled || c.Method != reg.Method {
		return failed(c.Method)
	}
	switch c.Method {
	case SecretBasic, SecretPost:
		sum := sha256.Sum256([]byte(c.Secret))
		if len(reg.SecretHash) != sha256.Size || subtle.ConstantTimeCompare(sum[:], reg.SecretHash) != 1 {
			return failed(c.Method)
		}
		return nil
	case PrivateKeyJWT:
		return v.verifyAssertion(ctx, c, reg, endpoint)
	}
	return oauth.Client("unsupported client authentication method")
}

func (v *Verifier) verifyAssertion(ctx context.Context, c Credentials, reg *Registered, endpoint string) error {
	keys, err := ParseJWKS(reg.JWKS)
	if err != nil || len(keys) == 0 {
		return failed(c.Method)
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(string(c.Assertion), &claims, keys.Keyfunc(),
		jwt.WithValidMethods(AsymmetricAlgs), jwt.WithTimeFunc(v.Now), jwt.WithExpirationRequired(),
		jwt.WithIssuer(reg.ID), jwt.WithSubject(reg.ID), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return failed(c.Method)
	}
	// RFC 7523 §3 item 3: aud identifies the authorization server; we take
	// the issuer or the endpoint's URL.
	if !audienceOK(claims.Audience, v.Issuer, endpoint) {
		return oauth.Client("client assertion audience must be the issuer or the endpoint")
	}
	if claims.ID == "" {
		return oauth.Client("client assertion needs a jti")
	}
	exp := claims.ExpiresAt.Time
	if exp.Sub(v.Now()) > MaxAssertionLifetime {
		return oauth.Client("client assertion lives too long (max %s)", MaxAssertionLifetime)
	}
	// RFC 7523 §3 item 7: a jti is used once until the assertion expires.
	fresh, err := v.Replay.UseOnce(ctx, "assertion:"+reg.ID, claims.ID, exp)
	if err != nil {
		return err
	}
	if !fresh {
		return oauth.Client("client assertion replayed")
	}
	return nil
}

// failed is the one answer to credentials that do not authenticate a
// client, whatever the reason: it depends only on the method used.
func failed(method string) *oauth.Error {
	if method == PrivateKeyJWT {
		return oauth.Client("client assertion invalid")
	}
	return oauth.Client("client authentication failed")
}

func audienceOK(aud jwt.ClaimStrings, accepted ...string) bool {
	for _, a := range aud {
		for _, ok := range accepted {
			if ok != "" && a == ok {
				return true
			}
		}
	}
	return false
}

// NewSecret returns a random client secret of 256 bits.
func NewSecret() Secret {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return Secret(base64.RawURLEncoding.EncodeToString(b[:]))
}

// HashSecret returns what is stored for a secret.
func HashSecret(s Secret) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
