package ciba

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/rules"
)

// TokenInput is a decoded /token request.
type TokenInput struct {
	Credentials clientauth.Credentials
	Form        url.Values
	Endpoint    string
	IP          string
	DPoP        string // the DPoP header, "" when absent
}

// TokenResponse is RFC 6749 §5.1 with the CIBA and RFC 9396 members.
type TokenResponse struct {
	AccessToken          string          `json:"access_token"`
	TokenType            string          `json:"token_type"`
	ExpiresIn            int             `json:"expires_in"`
	IDToken              string          `json:"id_token,omitempty"`
	Scope                string          `json:"scope,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	IssuedTokenType      string          `json:"issued_token_type,omitempty"`
	// AuthReqID is set only in push-mode callbacks (CIBA Core §10.3.1).
	AuthReqID string `json:"auth_req_id,omitempty"`
}

// Token runs the token endpoint for the grants Countersign supports.
func (s *Service) Token(ctx context.Context, in TokenInput) (_ *TokenResponse, err error) {
	who := &refusal{typ: "token.refused", endpoint: "token", ip: in.IP}
	if in.Form.Get("grant_type") == oauth.GrantTokenExchange {
		who.typ = "exchange.refused"
	}
	defer func() { err = s.refused(ctx, who, err) }()
	cl, err := s.Authenticate(ctx, in.Credentials, in.Endpoint)
	if err != nil {
		return nil, err
	}
	who.agent = cl.ID
	jkt, err := s.proofKey(ctx, cl, in)
	if err != nil {
		return nil, err
	}
	switch gt := in.Form.Get("grant_type"); gt {
	case oauth.GrantCIBA:
		return s.cibaGrant(ctx, cl, in, jkt)
	case oauth.GrantTokenExchange:
		return s.exchange(ctx, cl, in, jkt, who)
	case "":
		return nil, oauth.New(oauth.InvalidRequest, "grant_type is required")
	default:
		return nil, oauth.New(oauth.UnsupportedGrantType, "grant_type %q is not supported", gt)
	}
}

// proofKey verifies the DPoP proof, before any state is read, and returns
// its key thumbprint ("" without a proof).
func (s *Service) proofKey(ctx context.Context, cl *store.Client, in TokenInput) (string, error) {
	if in.DPoP == "" {
		if cl.DPoPBoundAccessTokens {
			return "", oauth.New(oauth.InvalidDPoPProof, "this client must send a DPoP proof (dpop_bound_access_tokens)")
		}
		return "", nil
	}
	p, err := s.DPoP.Verify(ctx, in.DPoP, "POST", in.Endpoint, "")
	if err != nil {
		return "", err
	}
	return p.JKT, nil
}

// pollError is the one mapping of poll outcomes to their CIBA Core §11
// answers. It is total: nil only for approved, and an outcome it does not
// know is a server_error, never an approval.
func pollError(st store.PollStatus) *oauth.Error {
	const unknownID = "auth_req_id is unknown, already used or not yours"
	switch st {
	case store.PollApproved:
		return nil
	case store.PollUnknown, store.PollWrongClient, store.PollRedeemed:
		return oauth.New(oauth.InvalidGrant, unknownID)
	case store.PollExpired:
		return oauth.New(oauth.ExpiredToken, "the authentication request has expired")
	case store.PollSlowDown:
		return oauth.New(oauth.SlowDown, "polling too fast: the interval grew by 5 seconds")
	case store.PollPending:
		return oauth.New(oauth.AuthorizationPending, "the user has not decided yet")
	case store.PollDenied:
		// CIBA Core §11: access_denied answers 400 at the token endpoint.
		return oauth.New(oauth.AccessDenied, "the request was denied").WithStatus(400)
	}
	return oauth.New(oauth.ServerError, "the authentication request is in an unexpected state")
}

func (s *Service) cibaGrant(ctx context.Context, cl *store.Client, in TokenInput, jkt string) (*TokenResponse, error) {
	if !hasGrant(cl, oauth.GrantCIBA) {
		return nil, oauth.New(oauth.UnauthorizedClient, "client is not registered for the CIBA grant")
	}
	// CIBA Core §10.3: push clients get the token delivered, never by polling.
	if deliveryMode(cl) == ModePush {
		return nil, oauth.New(oauth.UnauthorizedClient, "push-mode clients receive tokens at their notification endpoint")
	}
	id := in.Form.Get("auth_req_id")
	if id == "" {
		return nil, oauth.New(oauth.InvalidRequest, "auth_req_id is required")
	}
	o, err := s.db.Poll(ctx, id, cl.ID)
	if err != nil {
		return nil, err
	}
	if e := pollError(o.Status); e != nil {
		return nil, e
	}
	if o.Approval == nil {
		return nil, errors.New("ciba: approved request without approval")
	}
	resp, jti, err := s.mint(o.Request, o.Approval, "", jkt)
	if err != nil {
		return nil, err
	}
	ev := store.Event{At: s.Now(), Type: "token.issued", RequestID: id, GrantID: o.Approval.GrantID, User: o.Request.UserID,
		Agent: cl.ID, Actors: []string{cl.ID}, Path: o.Approval.By, DeviceID: o.Approval.DeviceID, TokenJTI: jti, IP: in.IP,
		MandateID: o.Approval.MandateID}
	if err := s.db.Redeem(ctx, o.Request, []store.Event{ev}); err != nil {
		if errors.Is(err, store.ErrNotRedeemable) {
			// Another poll redeemed it first (or it expired in between):
			// this token is never released.
			return nil, pollError(store.PollRedeemed)
		}
		return nil, err
	}
	return resp, nil
}

// ACR of an approval path.
func acrOf(by string) string {
	switch by {
	case rules.PathDevice:
		return oauth.ACRDevice
	case rules.PathContext:
		return oauth.ACRContext
	case rules.PathMandate:
		return oauth.ACRMandate
	}
	return oauth.ACRPolicy
}

// mint issues the access and ID tokens of an approved request. authReqID
// is set for push-mode delivery (the ID token then carries it, CIBA Core
// §10.3.1).
func (s *Service) mint(r *store.Request, ap *store.Approval, authReqID, jkt string) (*TokenResponse, string, error) {
	var rd []rar.Detail
	if len(r.AuthorizationDetails) > 0 {
		if err := json.Unmarshal(r.AuthorizationDetails, &rd); err != nil {
			return nil, "", err
		}
	}
	details := r.AuthorizationDetails
	if ap.By == rules.PathDevice {
		// The approval of a mandate request: its token names the mandate.
		details = withMandateID(details, ap.MandateID)
	}
	aud := []string{s.cfg.DefaultAudience}
	if locs := rar.Locations(rd); len(locs) > 0 {
		aud = locs
	}
	acr := acrOf(ap.By)
	var cnf *token.Cnf
	typ := "Bearer"
	if jkt != "" {
		cnf, typ = &token.Cnf{JKT: jkt}, "DPoP" // RFC 9449 §5, §6.1
	}
	at, claims, err := s.tokens.Access(token.AccessClaims{Cnf: cnf,
		Subject: r.UserID, ClientID: r.ClientID, Audience: aud, Act: &token.Act{Sub: r.ClientID},
		Scope: r.Scope, GrantID: ap.GrantID, AuthorizationDetails: details, ACR: acr, AuthTime: ap.At,
		Approval: token.Approval{By: ap.By, Rules: ap.Rules, MandateID: ap.MandateID, DeviceID: ap.DeviceID, DecisionJTI: ap.DecisionJTI},
		Expiry:   r.ExpiresAt.Add(s.tokens.AccessTTL),
	})
	if err != nil {
		return nil, "", err
	}
	resp := &TokenResponse{AccessToken: at, TokenType: typ, ExpiresIn: expiresIn(claims),
		Scope: r.Scope, AuthorizationDetails: details}
	if containsScope(r.Scope, "openid") {
		resp.IDToken, err = s.tokens.ID(token.IDClaims{Subject: r.UserID, Audience: r.ClientID, ACR: acr,
			AuthTime: ap.At, AccessToken: at, AuthReqID: authReqID})
		if err != nil {
			return nil, "", err
		}
	}
	return resp, claims.ID, nil
}

func containsScope(scope, s string) bool { return contains(strings.Fields(scope), s) }

// expiresIn is the token's lifetime as the token states it (exp - iat,
// whole seconds): RFC 6749 §5.1. Reading the clock again here, after
// minting, would answer one second short (299 for 300).
func expiresIn(c token.AccessClaims) int {
	return int(c.Expiry.Unix() - c.IssuedAt.Unix())
}
