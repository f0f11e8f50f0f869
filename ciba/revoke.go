package ciba

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
)

// Revoke runs RFC 7009 for an authenticated client: a token it holds as
// client_id or current actor is revoked until it expires; anything else
// (unknown, expired, another's) is ignored with success (§2.2).
func (s *Service) Revoke(ctx context.Context, in TokenInput) (err error) {
	who := &refusal{typ: "revocation.refused", endpoint: "revoke", ip: in.IP}
	defer func() { err = s.refused(ctx, who, err) }()
	cl, err := s.Authenticate(ctx, in.Credentials, in.Endpoint)
	if err != nil {
		return err
	}
	who.agent = cl.ID
	tok := in.Form.Get("token")
	if tok == "" {
		return oauth.New(oauth.InvalidRequest, "token is required")
	}
	c, err := s.tokens.Verify(tok)
	if err != nil {
		return nil // RFC 7009 §2.2: invalid tokens need no action
	}
	if c.ClientID != cl.ID && (c.Act == nil || c.Act.Sub != cl.ID) {
		return nil
	}
	return s.db.RevokeToken(ctx, c.Subject, c.ID, c.Expiry, store.Event{At: s.Now(), Type: "token.revoked",
		GrantID: c.GrantID, User: c.Subject, Agent: cl.ID, Actors: c.Act.Chain(), TokenJTI: c.ID, IP: in.IP})
}

// Introspection is RFC 7662's response.
type Introspection map[string]any

// Introspect runs RFC 7662 for an authenticated resource server. It
// reports active false at once for a revoked token, grant or actor.
func (s *Service) Introspect(ctx context.Context, in TokenInput) (_ Introspection, err error) {
	who := &refusal{typ: "introspection.refused", endpoint: "introspect", ip: in.IP}
	defer func() { err = s.refused(ctx, who, err) }()
	cl, err := s.Authenticate(ctx, in.Credentials, in.Endpoint)
	if err != nil {
		return nil, err
	}
	who.agent = cl.ID
	tok := in.Form.Get("token")
	if tok == "" {
		return nil, oauth.New(oauth.InvalidRequest, "token is required")
	}
	inactive := Introspection{"active": false}
	if !cl.ResourceServer {
		if err := s.db.Audit(ctx, "", store.Event{At: s.Now(), Type: "introspection.refused", Agent: cl.ID, IP: in.IP,
			Detail: "client is not registered as a resource server"}); err != nil {
			return nil, err
		}
		return inactive, nil
	}
	c, err := s.tokens.Verify(tok)
	if err != nil {
		return inactive, nil
	}
	revoked, _, err := s.db.Revoked(ctx, tokenRef(&c))
	if err != nil {
		return nil, err
	}
	if revoked {
		return inactive, nil
	}
	// RFC 7662 §2.2: a token whose client or any actor of its chain was
	// disabled or deleted is no longer active.
	if ok, err := s.clientsLive(ctx, c.ClientID, c.Act.Chain()); err != nil || !ok {
		return inactive, err
	}
	out := Introspection{"active": true, "iss": c.Issuer, "sub": c.Subject, "client_id": c.ClientID, "scope": c.Scope,
		"jti": c.ID, "iat": c.IssuedAt.Unix(), "exp": c.Expiry.Unix(), "grant_id": c.GrantID, "act": c.Act,
		"approval": c.Approval, "token_type": "Bearer"}
	if len(c.Audience) == 1 {
		out["aud"] = c.Audience[0]
	} else {
		out["aud"] = c.Audience
	}
	if len(c.AuthorizationDetails) > 0 {
		out["authorization_details"] = json.RawMessage(c.AuthorizationDetails)
	}
	if c.Cnf != nil {
		out["cnf"] = c.Cnf
		out["token_type"] = "DPoP"
	}
	if c.ACR != "" {
		out["acr"] = c.ACR
	}
	return out, nil
}

// clientsLive reports whether the client and every actor exist and are
// enabled, from the node's client cache (dropped on every announced change).
func (s *Service) clientsLive(ctx context.Context, client string, actors []string) (bool, error) {
	for _, id := range append([]string{client}, actors...) {
		cl, err := s.client(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if cl.Disabled {
			return false, nil
		}
	}
	return true, nil
}

// GrantView is a grant as the phone lists it (docs/api.md).
type GrantView struct {
	GrantID              string          `json:"grant_id"`
	ClientID             string          `json:"client_id"`
	ClientName           string          `json:"client_name,omitempty"`
	Scope                string          `json:"scope"`
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
	CreatedAt            string          `json:"created_at"`
	ExpiresAt            string          `json:"expires_at"`
}

// DeviceGrants lists what agents hold for the device's user.
func (s *Service) DeviceGrants(ctx context.Context, dev *store.Device) ([]GrantView, error) {
	gs, err := s.db.GrantsFor(ctx, dev.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]GrantView, 0, len(gs))
	for _, g := range gs {
		v := GrantView{GrantID: g.ID, ClientID: g.ClientID, Scope: g.Scope, AuthorizationDetails: g.AuthorizationDetails,
			CreatedAt: g.CreatedAt.UTC().Format(time.RFC3339), ExpiresAt: g.ExpiresAt.UTC().Format(time.RFC3339)}
		if len(v.AuthorizationDetails) == 0 {
			v.AuthorizationDetails = json.RawMessage("[]")
		}
		if cl, err := s.db.Client(ctx, g.ClientID); err == nil {
			v.ClientName = cl.Name
		}
		out = append(out, v)
	}
	return out, nil
}

// RevokeDeviceGrant revokes one of the device user's grants.
func (s *Service) RevokeDeviceGrant(ctx context.Context, dev *store.Device, grantID string) (err error) {
	defer func() { err = s.refused(ctx, deviceRefusal(ctx, dev), err) }()
	err = s.db.RevokeGrant(ctx, dev.UserID, grantID, store.Event{At: s.Now(), Type: "grant.revoked", GrantID: grantID,
		User: dev.UserID, DeviceID: dev.ID, Detail: "revoked by the user from a device"})
	if errors.Is(err, store.ErrNotFound) {
		return oauth.New(oauth.NotFound, "no such grant")
	}
	return err
}

// RevokeAgent is the admin kill switch: every grant and token where the
// agent acts (for one user when set), tokens exchanged from them included.
func (s *Service) RevokeAgent(ctx context.Context, clientID, userID string) error {
	if _, err := s.db.Client(ctx, clientID); errors.Is(err, store.ErrNotFound) {
		return oauth.New(oauth.NotFound, "no client %q", clientID)
	} else if err != nil {
		return err
	}
	if userID != "" {
		if _, err := s.db.User(ctx, userID); errors.Is(err, store.ErrNotFound) {
			return oauth.New(oauth.NotFound, "no user %q", userID)
		}
	}
	return s.db.RevokeAgent(ctx, clientID, userID, store.Event{At: s.Now(), Type: "agent.revoked", Agent: clientID,
		User: userID, Actors: []string{clientID}})
}
