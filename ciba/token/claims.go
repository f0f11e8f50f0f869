package token

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Act is an RFC 8693 §4.1 actor: the current actor, with the actor it
// acts for nested inside.
type Act struct {
	Sub string `json:"sub"`
	Act *Act   `json:"act,omitempty"`
}

// Chain returns the actors' subjects, the approved agent (innermost) first
// and the current actor (outermost) last, the order of agent.chain in
// docs/rules.md. A nil Act has no chain.
func (a *Act) Chain() []string {
	var out []string
	for ; a != nil; a = a.Act {
		out = append(out, a.Sub)
	}
	slices.Reverse(out)
	return out
}

// Approval says how the request behind a token was approved.
type Approval struct {
	By          string   `json:"by"` // "policy", "context", "device" or "mandate"
	Rules       []string `json:"rules"`
	MandateID   string   `json:"mandate_id,omitempty"`
	DeviceID    string   `json:"device_id,omitempty"`
	DecisionJTI string   `json:"decision_jti,omitempty"`
}

// Cnf is the RFC 7800 confirmation claim; JKT is the RFC 9449 §6.1
// thumbprint of the DPoP key the token is bound to.
type Cnf struct {
	JKT string `json:"jkt"`
}

// AccessClaims are an access token's claims: what Access mints and what
// Verify returns. AuthorizationDetails is the JSON array as given (see the
// package doc); nil or empty leaves the claim out.
type AccessClaims struct {
	Issuer               string
	Subject              string
	Audience             []string
	ClientID             string
	Act                  *Act
	Scope                string
	AuthorizationDetails json.RawMessage
	ID                   string // jti
	GrantID              string
	Approval             Approval
	Cnf                  *Cnf
	IssuedAt             time.Time
	Expiry               time.Time
	AuthTime             time.Time
	ACR                  string
}

// IDClaims are the inputs of an ID token.
type IDClaims struct {
	Subject  string
	Audience string // the client id
	ACR      string
	AuthTime time.Time
	// AccessToken, when set, yields at_hash (OIDC Core §3.3.2.11).
	AccessToken string
	// AuthReqID, when set, yields the CIBA Core §10.3.1 auth_req_id claim.
	AuthReqID string
	Nonce     string
}

// accessWire is the access token payload (RFC 9068 §2.2).
type accessWire struct {
	Iss                  string          `json:"iss"`
	Sub                  string          `json:"sub"`
	Aud                  audience        `json:"aud"`
	ClientID             string          `json:"client_id"`
	Act                  *Act            `json:"act,omitempty"`
	Scope                string          `json:"scope,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	JTI                  string          `json:"jti"`
	Iat                  int64           `json:"iat"`
	Exp                  int64           `json:"exp"`
	GrantID              string          `json:"grant_id,omitempty"`
	Approval             *Approval       `json:"approval,omitempty"`
	Cnf                  *Cnf            `json:"cnf,omitempty"`
	AuthTime             int64           `json:"auth_time,omitempty"`
	ACR                  string          `json:"acr,omitempty"`
}

// idWire is the ID token payload (OIDC Core §2, CIBA Core §10.3.1).
type idWire struct {
	Iss       string `json:"iss"`
	Sub       string `json:"sub"`
	Aud       string `json:"aud"`
	Iat       int64  `json:"iat"`
	Exp       int64  `json:"exp"`
	AuthTime  int64  `json:"auth_time,omitempty"`
	ACR       string `json:"acr,omitempty"`
	Nonce     string `json:"nonce,omitempty"`
	AtHash    string `json:"at_hash,omitempty"`
	AuthReqID string `json:"urn:openid:params:jwt:claim:auth_req_id,omitempty"` // oauth.ClaimAuthReqID
}

// audience is aud: a single string when there is one, else an array
// (RFC 7519 §4.1.3 allows both).
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = many
	return nil
}

// jwt.Claims for the parser's validator.

func (w *accessWire) GetExpirationTime() (*jwt.NumericDate, error) { return date(w.Exp), nil }
func (w *accessWire) GetIssuedAt() (*jwt.NumericDate, error)       { return date(w.Iat), nil }
func (w *accessWire) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (w *accessWire) GetIssuer() (string, error)                   { return w.Iss, nil }
func (w *accessWire) GetSubject() (string, error)                  { return w.Sub, nil }
func (w *accessWire) GetAudience() (jwt.ClaimStrings, error)       { return jwt.ClaimStrings(w.Aud), nil }

func (w *idWire) GetExpirationTime() (*jwt.NumericDate, error) { return date(w.Exp), nil }
func (w *idWire) GetIssuedAt() (*jwt.NumericDate, error)       { return date(w.Iat), nil }
func (w *idWire) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (w *idWire) GetIssuer() (string, error)                   { return w.Iss, nil }
func (w *idWire) GetSubject() (string, error)                  { return w.Sub, nil }
func (w *idWire) GetAudience() (jwt.ClaimStrings, error)       { return jwt.ClaimStrings{w.Aud}, nil }

func date(s int64) *jwt.NumericDate {
	if s == 0 {
		return nil
	}
	return jwt.NewNumericDate(time.Unix(s, 0))
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}
