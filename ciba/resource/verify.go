package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/token"
)

// refetchAfter is how long the JWKS is kept before an unknown kid may
// make the middleware fetch it again (a rotated key is then picked up,
// and a flood of bogus kids costs at most one fetch per period).
const refetchAfter = 30 * time.Second

const maxBody = 1 << 20

// metadata is the part of discovery the middleware needs (RFC 8414 §2).
type metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// wire is an access token's payload (RFC 9068 §2.2) or an introspection
// response (RFC 7662 §2.2): the members both share.
type wire struct {
	Active               *bool            `json:"active,omitempty"`
	Iss                  string           `json:"iss"`
	Sub                  string           `json:"sub"`
	Aud                  jwt.ClaimStrings `json:"aud"`
	ClientID             string           `json:"client_id"`
	Act                  *token.Act       `json:"act"`
	Scope                string           `json:"scope"`
	AuthorizationDetails json.RawMessage  `json:"authorization_details"`
	JTI                  string           `json:"jti"`
	Exp                  *jwt.NumericDate `json:"exp"`
	Iat                  *jwt.NumericDate `json:"iat"`
	GrantID              string           `json:"grant_id"`
	Cnf                  *token.Cnf       `json:"cnf"`
}

func (w *wire) GetExpirationTime() (*jwt.NumericDate, error) { return w.Exp, nil }
func (w *wire) GetIssuedAt() (*jwt.NumericDate, error)       { return w.Iat, nil }
func (w *wire) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (w *wire) GetIssuer() (string, error)                   { return w.Iss, nil }
func (w *wire) GetSubject() (string, error)                  { return w.Sub, nil }
func (w *wire) GetAudience() (jwt.ClaimStrings, error)       { return w.Aud, nil }

func (w *wire) claims() *Claims {
	c := &Claims{Issuer: w.Iss, Subject: w.Sub, ClientID: w.ClientID, Act: w.Act, Scope: w.Scope,
		AuthorizationDetails: w.AuthorizationDetails, Audience: w.Aud, ID: w.JTI, GrantID: w.GrantID}
	if w.Exp != nil {
		c.Expiry = w.Exp.UTC()
	}
	if w.Cnf != nil {
		c.JKT = w.Cnf.JKT
	}
	return c
}

func invalidToken(desc string) *refusal { return refuse("", oauth.InvalidToken, desc) }

func (m *Middleware) verifyToken(ctx context.Context, tok string) (*Claims, error) {
	if m.IntrospectionClientID != "" {
		return m.introspect(ctx, tok)
	}
	var w wire
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256"}), // RFC 8725 §3.1: the one algorithm the server signs with
		jwt.WithIssuer(m.Issuer),
		jwt.WithAudience(m.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(m.now),
	)
	var fetchErr error
	_, err := p.ParseWithClaims(tok, &w, func(t *jwt.Token) (any, error) {
		// RFC 9068 §4: typ at+jwt, so an ID token is not an access token.
		typ, _ := t.Header["typ"].(string)
		if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
			return nil, errors.New("not an access token")
		}
		kid, _ := t.Header["kid"].(string)
		k, err := m.key(ctx, kid)
		fetchErr = err
		return k, err
	})
	if err != nil {
		var ref *refusal
		if errors.As(fetchErr, &ref) {
			return nil, ref
		}
		if fetchErr != nil {
			return nil, fetchErr
		}
		return nil, invalidToken("the access token is invalid or expired")
	}
	if w.Sub == "" || w.ClientID == "" {
		return nil, invalidToken("the access token lacks sub or client_id")
	}
	return w.claims(), nil
}

// key returns the verification key kid, fetching the JWKS when it is not
// known yet and the last fetch is older than refetchAfter.
func (m *Middleware) key(ctx context.Context, kid string) (any, error) {
	m.mu.Lock()
	k, ok := m.keys[kid]
	stale := m.keys == nil || m.now().Sub(m.fetched) >= refetchAfter
	m.mu.Unlock()
	if ok {
		return k, nil
	}
	if !stale {
		return nil, invalidToken("the access token is signed by an unknown key")
	}
	md, err := m.discover(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := m.get(ctx, md.JWKSURI)
	if err != nil {
		return nil, err
	}
	keys, err := clientauth.ParseJWKS(raw)
	if err != nil {
		return nil, fmt.Errorf("resource: JWKS: %w", err)
	}
	byKid := map[string]any{}
	for _, k := range keys {
		byKid[k.ID] = k.Public
	}
	m.mu.Lock()
	m.keys, m.fetched = byKid, m.now()
	m.mu.Unlock()
	if k, ok := byKid[kid]; ok {
		return k, nil
	}
	return nil, invalidToken("the access token is signed by an unknown key")
}

// introspect asks the authorization server (RFC 7662 §2.1).
func (m *Middleware) introspect(ctx context.Context, tok string) (*Claims, error) {
	md, err := m.discover(ctx)
	if err != nil {
		return nil, err
	}
	if md.IntrospectionEndpoint == "" {
		return nil, errors.New("resource: the authorization server has no introspection_endpoint")
	}
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, md.IntrospectionEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: the credentials are form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(m.IntrospectionClientID), url.QueryEscape(m.IntrospectionSecret))
	resp, err := m.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("resource: introspection answered %d", resp.StatusCode)
	}
	var w wire
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&w); err != nil {
		return nil, fmt.Errorf("resource: introspection: %w", err)
	}
	// RFC 7662 §2.2: active false is all an inactive token gets.
	if w.Active == nil || !*w.Active {
		return nil, invalidToken("the access token is not active")
	}
	if w.Iss != "" && w.Iss != m.Issuer {
		return nil, invalidToken("the access token is from another issuer")
	}
	if !slices.Contains(w.Aud, m.Audience) {
		return nil, invalidToken("the access token is not meant for this resource")
	}
	if w.Exp != nil && !m.now().Before(w.Exp.Time) {
		return nil, invalidToken("the access token is expired")
	}
	return w.claims(), nil
}

func (m *Middleware) client() *http.Client {
	if m.HTTP != nil {
		return m.HTTP
	}
	return http.DefaultClient
}

func (m *Middleware) discover(ctx context.Context) (*metadata, error) {
	m.mu.Lock()
	md := m.meta
	m.mu.Unlock()
	if md != nil {
		return md, nil
	}
	raw, err := m.get(ctx, strings.TrimSuffix(m.Issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return nil, err
	}
	md = &metadata{}
	if err := json.Unmarshal(raw, md); err != nil {
		return nil, fmt.Errorf("resource: discovery: %w", err)
	}
	// RFC 8414 §3.3: the metadata is the issuer's own.
	if md.Issuer != m.Issuer || md.JWKSURI == "" {
		return nil, fmt.Errorf("resource: discovery issuer %q is not %q, or no jwks_uri", md.Issuer, m.Issuer)
	}
	m.mu.Lock()
	m.meta = md
	m.mu.Unlock()
	return md, nil
}

func (m *Middleware) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("resource: GET %s answered %d", u, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxBody))
}
