package agent

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/countersign/countersign/ciba/dpop"
)

// Grant and token type names (CIBA Core §10.1, RFC 8693 §2.1 and §3).
const (
	grantCIBA          = "urn:openid:params:grant-type:ciba"
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessTokenType    = "urn:ietf:params:oauth:token-type:access_token"
)

// maxBody bounds what the client reads from the server.
const maxBody = 1 << 20

// Client talks to one authorization server as one OAuth client.
type Client struct {
	Issuer   string
	ClientID string
	Secret   string // client_secret_basic
	HTTP     *http.Client
	// DPoPKey, when set (an ECDSA P-256 key, or P-384 / Ed25519), makes
	// every /token call carry a DPoP proof.
	DPoPKey crypto.Signer
	Now     func() time.Time
	// Pings, when set, receives ping notifications; Authorize then waits
	// for one when the request has a NotificationToken.
	Pings *PingReceiver
	// Sleep waits between polls; nil uses a timer. Tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error

	mu    sync.Mutex
	meta  *metadata
	nonce string // the last DPoP-Nonce the server sent (RFC 9449 §8.2)
}

// Request is a backchannel authentication request (CIBA Core §7.1).
type Request struct {
	Scope, LoginHint, BindingMessage string
	// AuthorizationDetails is the RFC 9396 array: a value to marshal, or
	// its JSON as json.RawMessage, []byte or string.
	AuthorizationDetails any
	RequestedExpiry      int // seconds; 0 leaves it to the server
	ACRValues            string
	NotificationToken    string // client_notification_token (ping mode)
	// MandateID acts within an intent mandate the user approved before
	// (see AskMandate): inside it the request needs no new approval.
	MandateID string
}

// Token is a token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
type Token struct {
	AccessToken          string          `json:"access_token"`
	TokenType            string          `json:"token_type"`
	IDToken              string          `json:"id_token,omitempty"`
	Scope                string          `json:"scope,omitempty"`
	ExpiresIn            int             `json:"expires_in,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	IssuedTokenType      string          `json:"issued_token_type,omitempty"`
	AuthReqID            string          `json:"auth_req_id,omitempty"`
}

// Error is an OAuth error answered by the server (RFC 6749 §5.2).
type Error struct {
	Code        string
	Description string
	Status      int
}

func (e *Error) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("agent: %s (HTTP %d)", e.Code, e.Status)
	}
	return fmt.Sprintf("agent: %s: %s (HTTP %d)", e.Code, e.Description, e.Status)
}

// metadata is the part of discovery the client needs (RFC 8414 §2).
type metadata struct {
	Issuer                            string `json:"issuer"`
	TokenEndpoint                     string `json:"token_endpoint"`
	BackchannelAuthenticationEndpoint string `json:"backchannel_authentication_endpoint"`
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// discover reads and caches the server metadata.
func (c *Client) discover(ctx context.Context) (*metadata, error) {
	c.mu.Lock()
	m := c.meta
	c.mu.Unlock()
	if m != nil {
		return m, nil
	}
	iss := strings.TrimSuffix(c.Issuer, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, iss+"/.well-known/openid-configuration", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent: discovery answered %d", resp.StatusCode)
	}
	m = &metadata{}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(m); err != nil {
		return nil, fmt.Errorf("agent: discovery: %w", err)
	}
	// RFC 8414 §3.3: the issuer must be the one we asked.
	if m.Issuer != c.Issuer {
		return nil, fmt.Errorf("agent: discovery issuer %q is not %q", m.Issuer, c.Issuer)
	}
	if m.TokenEndpoint == "" || m.BackchannelAuthenticationEndpoint == "" {
		return nil, errors.New("agent: discovery lacks the token or backchannel endpoint")
	}
	c.mu.Lock()
	c.meta = m
	c.mu.Unlock()
	return m, nil
}

// post sends a client-authenticated form and decodes a 200 into out. With
// proof set (and a DPoPKey) it adds a DPoP proof and retries once on
// use_dpop_nonce.
func (c *Client) post(ctx context.Context, endpoint string, form url.Values, proof bool, out any) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		// RFC 6749 §2.3.1: id and secret are form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.Secret))
		if proof && c.DPoPKey != nil {
			c.mu.Lock()
			nonce := c.nonce
			c.mu.Unlock()
			p, err := dpop.Sign(c.DPoPKey, dpop.Claims{HTM: http.MethodPost, HTU: endpoint, IAT: c.now(), Nonce: nonce})
			if err != nil {
				return err
			}
			req.Header.Set("DPoP", p)
		}
		resp, err := c.http().Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil {
			return err
		}
		// RFC 9449 §8.2: the server may hand out the next nonce with any answer.
		if n := resp.Header.Get("DPoP-Nonce"); n != "" && proof {
			c.mu.Lock()
			c.nonce = n
			c.mu.Unlock()
		}
		if resp.StatusCode == http.StatusOK {
			return json.Unmarshal(body, out)
		}
		e := &Error{Status: resp.StatusCode}
		var wire struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &wire) == nil && wire.Error != "" {
			e.Code, e.Description = wire.Error, wire.Description
		} else {
			e.Code, e.Description = "server_error", "unexpected answer "+strconv.Itoa(resp.StatusCode)
		}
		// RFC 9449 §8: retry once with the nonce the server demands.
		if e.Code == "use_dpop_nonce" && proof && c.DPoPKey != nil && attempt == 0 && resp.Header.Get("DPoP-Nonce") != "" {
			continue
		}
		return e
	}
}

// Exchange trades subjectToken (an access token) for a narrower one for
// this client (RFC 8693 §2.1); scope and details may be empty to keep the
// subject token's. With a DPoPKey the new token is bound to it.
func (c *Client) Exchange(ctx context.Context, subjectToken, scope string, details any) (*Token, error) {
	m, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subjectToken},
		"subject_token_type": {accessTokenType}, "requested_token_type": {accessTokenType}}
	if scope != "" {
		form.Set("scope", scope)
	}
	if details != nil {
		d, err := detailsJSON(details)
		if err != nil {
			return nil, err
		}
		form.Set("authorization_details", d)
	}
	var t Token
	if err := c.post(ctx, m.TokenEndpoint, form, true, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Proof returns a DPoP proof for a call to a resource server with the
// access token (ath, RFC 9449 §7.1): send it as the DPoP header with
// Authorization: DPoP <access token>.
func (c *Client) Proof(method, url, accessToken string) (string, error) {
	if c.DPoPKey == nil {
		return "", errors.New("agent: no DPoPKey")
	}
	return dpop.Sign(c.DPoPKey, dpop.Claims{HTM: method, HTU: url, IAT: c.now(), AccessToken: accessToken})
}

func detailsJSON(d any) (string, error) {
	switch v := d.(type) {
	case string:
		return v, nil
	case json.RawMessage:
		return string(v), nil
	case []byte:
		return string(v), nil
	}
	b, err := json.Marshal(d)
	return string(b), err
}
