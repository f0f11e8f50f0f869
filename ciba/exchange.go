package ciba

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/ciba/token"
	"github.com/countersign/countersign/rules"
)

// DefaultMaxDelegationDepth applies to clients that set none.
const DefaultMaxDelegationDepth = 2

// exchange runs RFC 8693 token exchange for a sub-agent: the caller
// becomes the actor, the previous actor nests inside act, and only
// attenuation is allowed (docs/api.md, RFC 8693 §2.2.2 refusals).
func (s *Service) exchange(ctx context.Context, caller *store.Client, in TokenInput, jkt string, who *refusal) (*TokenResponse, error) {
	if !hasGrant(caller, oauth.GrantTokenExchange) {
		return nil, oauth.New(oauth.UnauthorizedClient, "client is not registered for token exchange")
	}
	f := in.Form
	subjectToken := f.Get("subject_token")
	if subjectToken == "" {
		return nil, oauth.New(oauth.InvalidRequest, "subject_token is required")
	}
	switch f.Get("subject_token_type") {
	case oauth.TokenTypeAccessToken, oauth.TokenTypeJWT:
	case "":
		return nil, oauth.New(oauth.InvalidRequest, "subject_token_type is required")
	default:
		return nil, oauth.New(oauth.InvalidRequest, "subject_token_type must be %s", oauth.TokenTypeAccessToken)
	}
	if rt := f.Get("requested_token_type"); rt != "" && rt != oauth.TokenTypeAccessToken {
		return nil, oauth.New(oauth.InvalidRequest, "only access tokens can be requested")
	}
	if f.Get("actor_token") != "" {
		return nil, oauth.New(oauth.InvalidRequest, "actor_token is not supported: the caller authenticates as the actor")
	}
	sub, err := s.tokens.Verify(subjectToken)
	if err != nil {
		return nil, oauth.New(oauth.InvalidRequest, "subject_token is forged, expired or not issued by this server")
	}
	// A DPoP-bound subject token is exchanged only with a proof: from the
	// same key, or the sub-agent's own; the new token is bound to the key
	// that proved possession at this exchange.
	if sub.Cnf != nil && jkt == "" {
		return nil, oauth.New(oauth.InvalidDPoPProof, "the subject token is DPoP-bound: send a DPoP proof with the exchange")
	}
	chain := sub.Act.Chain()
	who.user, who.actors = sub.Subject, append(append([]string{}, chain...), caller.ID)
	// The caller counts too: an agent revoked (for this user) may derive
	// nothing from tokens that predate its revocation.
	ref := tokenRef(&sub)
	ref.Actors = append(ref.Actors, caller.ID)
	if revoked, why, err := s.db.Revoked(ctx, ref); err != nil {
		return nil, err
	} else if revoked {
		return nil, oauth.New(oauth.InvalidRequest, "subject_token is no longer active: %s", why)
	}
	// The current actor must list the caller in delegates_to.
	current, err := s.db.Client(ctx, sub.Act.Sub)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if current == nil || !contains(current.DelegatesTo, caller.ID) {
		return nil, oauth.New(oauth.InvalidRequest, "the subject token's actor does not delegate to this client (delegates_to)")
	}
	// Depth: exchanges below the approved agent; the smallest limit of the
	// chain's clients (the caller included) applies.
	depth := len(chain)
	limit, err := s.chainLimit(ctx, append(append([]string{}, chain...), caller.ID))
	if err != nil {
		return nil, err
	}
	if depth > limit {
		return nil, oauth.New(oauth.InvalidRequest, "delegation chain would be %d deep; the limit is %d (max_delegation_depth)", depth, limit)
	}
	// Scope: a subset of the subject's.
	scopes := strings.Fields(sub.Scope)
	if req := f.Get("scope"); req != "" {
		for _, sc := range strings.Fields(req) {
			if !contains(scopes, sc) {
				return nil, oauth.New(oauth.InvalidScope, "scope %q is wider than the subject token's", sc)
			}
		}
		scopes = strings.Fields(req)
	}
	var wide []rar.Detail
	if len(sub.AuthorizationDetails) > 0 {
		if err := json.Unmarshal(sub.AuthorizationDetails, &wide); err != nil {
			return nil, err
		}
	}
	details, detailsJSON := wide, sub.AuthorizationDetails
	if raw := f.Get("authorization_details"); raw != "" {
		if details, err = rar.Parse(raw); err != nil {
			return nil, err
		}
		if rar.IsMandate(details) {
			return nil, errSubAgentMandate()
		}
		if err := rar.Narrower(details, wide); err != nil {
			return nil, err
		}
		detailsJSON, _ = json.Marshal(details)
		if len(details) == 0 {
			detailsJSON = nil
		}
	}
	// A mandate is the user's approval of an intent, asked for by the
	// agent they approved: a sub-agent may neither ask for one (above) nor
	// carry one on; it acts within one only by its concrete entries.
	if rar.IsMandate(details) {
		return nil, errSubAgentMandate()
	}
	aud := sub.Audience
	if a := f.Get("audience"); a != "" {
		if !contains(sub.Audience, a) {
			return nil, oauth.New(oauth.InvalidTarget, "audience %q is not among the subject token's", a)
		}
		aud = []string{a}
	}
	user, err := s.db.UserByHint(ctx, sub.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.InvalidRequest, "the subject token's user no longer exists")
	}
	if err != nil {
		return nil, err
	}
	// The user's may_act limits hold at every hop.
	if err := checkMayAct(user, caller.ID, scopes, rar.Amount(details)); err != nil {
		return nil, oauth.New(oauth.InvalidRequest, "may_act: %s", err.(*oauth.Error).Description)
	}
	newChain := append(append([]string{}, chain...), caller.ID)
	x := s.exchangeInput(caller, user, scopes, details, newChain, in)
	if x.Mandate, err = s.exchangeMandate(ctx, &sub, details); err != nil {
		return nil, err
	}
	d := s.engine.Assess(ctx, x)
	if s.Observer != nil {
		s.Observer.Decision(d)
	}
	if d.Path == rules.PathDeny || d.Path == rules.PathDevice {
		return nil, oauth.New(oauth.InvalidRequest, "this exchange is high risk (%s): start a CIBA request at the backchannel authentication endpoint instead", reasonOf(d.Outcome))
	}
	var cnf *token.Cnf
	typ := "Bearer"
	if jkt != "" {
		cnf, typ = &token.Cnf{JKT: jkt}, "DPoP"
	}
	at, claims, err := s.tokens.Access(token.AccessClaims{Cnf: cnf,
		Subject: sub.Subject, ClientID: caller.ID, Audience: aud, Act: &token.Act{Sub: caller.ID, Act: sub.Act},
		Scope: strings.Join(scopes, " "), GrantID: sub.GrantID, AuthorizationDetails: detailsJSON, ACR: sub.ACR,
		AuthTime: sub.AuthTime, Approval: sub.Approval, Expiry: sub.Expiry,
	})
	if err != nil {
		return nil, err
	}
	riskJSON, _ := json.Marshal(d.Outcome)
	inputJSON, _ := json.Marshal(x)
	if err := s.db.Audit(ctx, sub.Subject, store.Event{At: s.Now(), Type: "token.exchanged", GrantID: sub.GrantID,
		User: sub.Subject, Agent: caller.ID, Actors: newChain, Action: detailsJSON, Risk: riskJSON, Input: inputJSON,
		Path: d.Path, TokenJTI: claims.ID, IP: in.IP}); err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: at, TokenType: typ, ExpiresIn: expiresIn(claims),
		Scope: claims.Scope, AuthorizationDetails: detailsJSON, IssuedTokenType: oauth.TokenTypeAccessToken}, nil
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
