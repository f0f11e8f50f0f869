package ciba

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

// DefaultMaxDelegationDepth applies to clients that set none.
const DefaultMaxDelegationDepth = 2

// exchangeRequest is a token exchange as it goes through the steps.
type exchangeRequest struct {
	caller      *store.Client
	in          TokenInput
	jkt         string
	sub         token.AccessClaims
	chain       []string // the subject token's actors, the caller appended
	scopes      []string
	details     []rar.Detail
	detailsJSON json.RawMessage
	aud         []string
	user        *store.User
}

// exchange runs RFC 8693 token exchange for a sub-agent: the caller
// becomes the actor, the previous actor nests inside act, and only
// attenuation is allowed (docs/api.md, RFC 8693 §2.2.2 refusals).
func (s *Service) exchange(ctx context.Context, caller *store.Client, in TokenInput, jkt string, who *refusal) (*TokenResponse, error) {
	r, err := s.decodeExchange(caller, in, jkt)
	if err != nil {
		return nil, err
	}
	who.user, who.actors = r.sub.Subject, r.chain
	if err := s.checkSubjectActive(ctx, r); err != nil {
		return nil, err
	}
	if err := s.checkDelegation(ctx, r); err != nil {
		return nil, err
	}
	if err := r.narrow(in.Form); err != nil {
		return nil, err
	}
	if err := s.exchangeUser(ctx, r); err != nil {
		return nil, err
	}
	x := s.exchangeInput(caller, r.user, r.scopes, r.details, r.chain, in)
	if x.Mandate, err = s.exchangeMandate(ctx, &r.sub, r.details); err != nil {
		return nil, err
	}
	d := s.engine.Assess(ctx, x)
	if s.Observer != nil {
		s.Observer.Decision(d)
	}
	if d.Path == rules.PathDeny || d.Path == rules.PathDevice {
		return nil, oauth.New(oauth.InvalidRequest, "this exchange is high risk (%s): start a CIBA request at the backchannel authentication endpoint instead", reasonOf(d.Outcome))
	}
	return s.issueExchanged(ctx, r, x, d)
}

// decodeExchange checks the request's form (RFC 8693 §2.1) and verifies
// the subject token.
func (s *Service) decodeExchange(caller *store.Client, in TokenInput, jkt string) (*exchangeRequest, error) {
	if !hasGrant(caller, oauth.GrantTokenExchange) {
		return nil, oauth.New(oauth.UnauthorizedClient, "client is not registered for token exchange")
	}
	if err := checkExchangeForm(in.Form); err != nil {
		return nil, err
	}
	sub, err := s.tokens.Verify(in.Form.Get("subject_token"))
	if err != nil {
		return nil, oauth.New(oauth.InvalidRequest, "subject_token is forged, expired or not issued by this server")
	}
	// A DPoP-bound subject token is exchanged only with a proof: from the
	// same key, or the sub-agent's own; the new token is bound to the key
	// that proved possession at this exchange.
	if sub.Cnf != nil && jkt == "" {
		return nil, oauth.New(oauth.InvalidDPoPProof, "the subject token is DPoP-bound: send a DPoP proof with the exchange")
	}
	chain := append(append([]string{}, sub.Act.Chain()...), caller.ID)
	return &exchangeRequest{caller: caller, in: in, jkt: jkt, sub: sub, chain: chain}, nil
}

// checkExchangeForm: RFC 8693 §2.1, subject_token and subject_token_type
// are required; we issue access tokens only, and the caller is the actor
// (no actor_token).
func checkExchangeForm(f url.Values) error {
	if f.Get("subject_token") == "" {
		return oauth.New(oauth.InvalidRequest, "subject_token is required")
	}
	switch f.Get("subject_token_type") {
	case oauth.TokenTypeAccessToken, oauth.TokenTypeJWT:
	case "":
		return oauth.New(oauth.InvalidRequest, "subject_token_type is required")
	default:
		return oauth.New(oauth.InvalidRequest, "subject_token_type must be %s", oauth.TokenTypeAccessToken)
	}
	if rt := f.Get("requested_token_type"); rt != "" && rt != oauth.TokenTypeAccessToken {
		return oauth.New(oauth.InvalidRequest, "only access tokens can be requested")
	}
	if f.Get("actor_token") != "" {
		return oauth.New(oauth.InvalidRequest, "actor_token is not supported: the caller authenticates as the actor")
	}
	return nil
}

// checkSubjectActive: RFC 8693 §2.2.2 invalid_request for a revoked
// subject token. The caller counts too: an agent revoked (for this user)
// may derive nothing from tokens that predate its revocation.
func (s *Service) checkSubjectActive(ctx context.Context, r *exchangeRequest) error {
	ref := tokenRef(&r.sub)
	ref.Actors = append(ref.Actors, r.caller.ID)
	revoked, why, err := s.db.Revoked(ctx, ref)
	if err != nil {
		return err
	}
	if revoked {
		return oauth.New(oauth.InvalidRequest, "subject_token is no longer active: %s", why)
	}
	return nil
}

// checkDelegation: the current actor lists the caller in delegates_to, and
// the chain stays within the smallest max_delegation_depth of its clients
// (the caller included); depth counts exchanges below the approved agent.
func (s *Service) checkDelegation(ctx context.Context, r *exchangeRequest) error {
	current, err := s.db.Client(ctx, r.sub.Act.Sub)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if current == nil || !contains(current.DelegatesTo, r.caller.ID) {
		return oauth.New(oauth.InvalidRequest, "the subject token's actor does not delegate to this client (delegates_to)")
	}
	depth := len(r.chain) - 1
	limit, err := s.chainLimit(ctx, r.chain)
	if err != nil {
		return err
	}
	if depth > limit {
		return oauth.New(oauth.InvalidRequest, "delegation chain would be %d deep; the limit is %d (max_delegation_depth)", depth, limit)
	}
	return nil
}

// narrow applies the requested attenuation: RFC 8693 §2.1 scope (a subset,
// else invalid_scope), authorization_details (RFC 9396, narrower) and
// RFC 8693 §2.1 audience (one of the subject's, else §2.2.2 invalid_target).
func (r *exchangeRequest) narrow(f url.Values) error {
	r.scopes = strings.Fields(r.sub.Scope)
	if req := f.Get("scope"); req != "" {
		for _, sc := range strings.Fields(req) {
			if !contains(r.scopes, sc) {
				return oauth.New(oauth.InvalidScope, "scope %q is wider than the subject token's", sc)
			}
		}
		r.scopes = strings.Fields(req)
	}
	if err := r.narrowDetails(f.Get("authorization_details")); err != nil {
		return err
	}
	r.aud = r.sub.Audience
	if a := f.Get("audience"); a != "" {
		if !contains(r.sub.Audience, a) {
			return oauth.New(oauth.InvalidTarget, "audience %q is not among the subject token's", a)
		}
		r.aud = []string{a}
	}
	return nil
}

// narrowDetails: requested authorization_details no wider than the
// subject token's; none requested keeps the subject's.
func (r *exchangeRequest) narrowDetails(raw string) error {
	var wide []rar.Detail
	if len(r.sub.AuthorizationDetails) > 0 {
		if err := json.Unmarshal(r.sub.AuthorizationDetails, &wide); err != nil {
			return err
		}
	}
	r.details, r.detailsJSON = wide, r.sub.AuthorizationDetails
	// A mandate is the user's approval of an intent, asked for by the
	// agent they approved: a sub-agent may neither carry one on nor ask for
	// one; it acts within one only by its concrete entries.
	if raw == "" && rar.IsMandate(wide) {
		return errSubAgentMandate()
	}
	if raw == "" {
		return nil
	}
	details, err := rar.Parse(raw)
	if err != nil {
		return err
	}
	if rar.IsMandate(details) || rar.IsMandate(wide) {
		return errSubAgentMandate()
	}
	if err := rar.Narrower(details, wide); err != nil {
		return err
	}
	r.details, r.detailsJSON = details, nil
	if len(details) > 0 {
		r.detailsJSON, _ = json.Marshal(details)
	}
	return nil
}

// exchangeUser reads the subject's user; the user's may_act limits hold
// at every hop.
func (s *Service) exchangeUser(ctx context.Context, r *exchangeRequest) error {
	user, err := s.db.UserByHint(ctx, r.sub.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return oauth.New(oauth.InvalidRequest, "the subject token's user no longer exists")
	}
	if err != nil {
		return err
	}
	if err := checkMayAct(user, r.caller.ID, r.scopes, rar.Amount(r.details)); err != nil {
		return oauth.New(oauth.InvalidRequest, "may_act: %s", err.(*oauth.Error).Description)
	}
	r.user = user
	return nil
}

// issueExchanged mints the exchanged token (RFC 8693 §2.2.1) and audits it.
func (s *Service) issueExchanged(ctx context.Context, r *exchangeRequest, x *rules.Input, d risk.Decision) (*TokenResponse, error) {
	sub := r.sub
	var cnf *token.Cnf
	typ := "Bearer"
	if r.jkt != "" {
		cnf, typ = &token.Cnf{JKT: r.jkt}, "DPoP"
	}
	at, claims, err := s.tokens.Access(token.AccessClaims{Cnf: cnf,
		Subject: sub.Subject, ClientID: r.caller.ID, Audience: r.aud, Act: &token.Act{Sub: r.caller.ID, Act: sub.Act},
		Scope: strings.Join(r.scopes, " "), GrantID: sub.GrantID, AuthorizationDetails: r.detailsJSON, ACR: sub.ACR,
		AuthTime: sub.AuthTime, Approval: sub.Approval, Expiry: sub.Expiry,
	})
	if err != nil {
		return nil, err
	}
	riskJSON, _ := json.Marshal(d.Outcome)
	decided := x.Request.Time
	inputJSON, _ := json.Marshal(x.Recorded(rules.Recording{Agent: r.caller.ID, User: sub.Subject, IP: r.in.IP, At: decided, Action: r.detailsJSON}))
	if err := s.db.Audit(ctx, sub.Subject, store.Event{At: decided, Type: "token.exchanged", GrantID: sub.GrantID,
		User: sub.Subject, Agent: r.caller.ID, Actors: r.chain, Action: r.detailsJSON, Risk: riskJSON, Input: inputJSON,
		Path: d.Path, TokenJTI: claims.ID, IP: r.in.IP}); err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: at, TokenType: typ, ExpiresIn: expiresIn(claims),
		Scope: claims.Scope, AuthorizationDetails: r.detailsJSON, IssuedTokenType: oauth.TokenTypeAccessToken}, nil
}

func reasonOf(o rules.Outcome) string {
	for _, m := range o.Rules {
		if m.Reason != "" {
			return m.ID + ": " + m.Reason
		}
	}
	return "level " + o.Level
}

// chainLimit is the smallest max_delegation_depth among the clients.
func (s *Service) chainLimit(ctx context.Context, ids []string) (int, error) {
	limit := -1
	for _, id := range ids {
		c, err := s.db.Client(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return 0, oauth.New(oauth.InvalidRequest, "client %q of the delegation chain no longer exists", id)
		}
		if err != nil {
			return 0, err
		}
		if c.Disabled {
			return 0, oauth.New(oauth.InvalidRequest, "client %q of the delegation chain is disabled", id)
		}
		l := c.MaxDelegationDepth
		if limit < 0 || l < limit {
			limit = l
		}
	}
	return limit, nil
}

func (s *Service) exchangeInput(caller *store.Client, u *store.User, scopes []string, details []rar.Detail, chain []string, in TokenInput) *rules.Input {
	ds := make([]map[string]any, len(details))
	for i, d := range details {
		ds[i] = map[string]any(d)
	}
	tz, _ := u.Attributes["timezone"].(string)
	x := &rules.Input{
		Agent: rules.Agent{ClientID: caller.ID, Name: caller.Name, Owner: caller.Agent.Owner, TrustTier: tierOr(caller.Agent.TrustTier),
			Model: caller.Agent.Model, Version: caller.Agent.Version, DelegationDepth: int64(len(chain) - 1), Chain: chain},
		User:    rules.User{ID: u.ID, Email: u.Email, Timezone: tz, Attributes: u.Attributes, Devices: u.Devices},
		Action:  rules.Action{Scopes: scopes, Details: ds},
		Request: rules.Request{Kind: "token_exchange", IP: in.IP, Time: s.Now()},
	}
	x.Action.Derive()
	return x
}

func tokenRef(c *token.AccessClaims) store.TokenRef {
	return store.TokenRef{User: c.Subject, JTI: c.ID, GrantID: c.GrantID, MandateID: c.Approval.MandateID,
		Actors: c.Act.Chain(), IssuedAt: c.IssuedAt}
}
