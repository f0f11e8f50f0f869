package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/notify"
)

// Service runs the admin use cases.
type Service struct {
	DB  *store.DB
	Dev bool
	Now func() time.Time
	// ClientChanged, when set, is told the id of every client changed
	// (the node drops its cached copy at once; others hear it on pub/sub).
	ClientChanged func(id string)
}

func (s *Service) changed(id string) {
	if s.ClientChanged != nil {
		s.ClientChanged(id)
	}
}

// ClientView is a client as the admin API shows it.
type ClientView struct {
	ClientID                  string          `json:"client_id"`
	ClientSecret              string          `json:"client_secret,omitempty"`
	ClientName                string          `json:"client_name,omitempty"`
	TokenEndpointAuthMethod   string          `json:"token_endpoint_auth_method"`
	JWKS                      json.RawMessage `json:"jwks,omitempty"`
	DeliveryMode              string          `json:"backchannel_token_delivery_mode"`
	NotificationEndpoint      string          `json:"backchannel_client_notification_endpoint,omitempty"`
	RequestSigningAlg         string          `json:"backchannel_authentication_request_signing_alg,omitempty"`
	UserCodeParameter         bool            `json:"backchannel_user_code_parameter"`
	GrantTypes                []string        `json:"grant_types"`
	Scope                     string          `json:"scope,omitempty"`
	Agent                     store.AgentInfo `json:"agent"`
	DelegatesTo               []string        `json:"delegates_to,omitempty"`
	MaxDelegationDepth        int             `json:"max_delegation_depth"`
	ResourceServer            bool            `json:"resource_server"`
	PolicyEnforcementPoint    bool            `json:"policy_enforcement_point"`
	DPoPBoundAccessTokens     bool            `json:"dpop_bound_access_tokens"`
	AllowPrivateNotifications bool            `json:"allow_private_notification_endpoint,omitempty"`
	Disabled                  bool            `json:"disabled"`
	CreatedAt                 time.Time       `json:"created_at"`
}

// clientFields is the JSON an admin may send; pointers tell "absent"
// from "zero" for PATCH.
type clientFields struct {
	ClientID                  *string          `json:"client_id"`
	ClientName                *string          `json:"client_name"`
	TokenEndpointAuthMethod   *string          `json:"token_endpoint_auth_method"`
	JWKS                      *json.RawMessage `json:"jwks"`
	DeliveryMode              *string          `json:"backchannel_token_delivery_mode"`
	NotificationEndpoint      *string          `json:"backchannel_client_notification_endpoint"`
	RequestSigningAlg         *string          `json:"backchannel_authentication_request_signing_alg"`
	UserCodeParameter         *bool            `json:"backchannel_user_code_parameter"`
	GrantTypes                *[]string        `json:"grant_types"`
	Scope                     *string          `json:"scope"`
	Agent                     *store.AgentInfo `json:"agent"`
	DelegatesTo               *[]string        `json:"delegates_to"`
	MaxDelegationDepth        *int             `json:"max_delegation_depth"`
	ResourceServer            *bool            `json:"resource_server"`
	PolicyEnforcementPoint    *bool            `json:"policy_enforcement_point"`
	DPoPBoundAccessTokens     *bool            `json:"dpop_bound_access_tokens"`
	AllowPrivateNotifications *bool            `json:"allow_private_notification_endpoint"`
	Disabled                  *bool            `json:"disabled"`
}

// DecodeStrict decodes one JSON object, refusing unknown members and
// trailing data (400 invalid_request).
func DecodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return oauth.New(oauth.InvalidRequest, "invalid JSON body: %v", err)
	}
	if dec.More() {
		return oauth.New(oauth.InvalidRequest, "invalid JSON body: trailing data")
	}
	return nil
}

// idPattern is the form of client and user ids. The first character is a
// letter or digit so that an id never reads as a flag on the command line
// (`countersign clients get -x`); store.NewID draws letters and digits
// only, so a generated id always matches.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// validClientID reports whether id may name a client.
func validClientID(id string) bool { return idPattern.MatchString(id) }

// validUserID reports whether id may name a user: a client id that is not
// an email address (a login_hint with @ is looked up by email).
func validUserID(id string) bool { return idPattern.MatchString(id) && !strings.Contains(id, "@") }

// CreateClient registers a client from its JSON metadata and returns it
// with its secret (shown once).
func (s *Service) CreateClient(ctx context.Context, body []byte) (*ClientView, error) {
	var f clientFields
	if err := DecodeStrict(body, &f); err != nil {
		return nil, err
	}
	c := &store.Client{AuthMethod: clientauth.SecretBasic, DeliveryMode: "poll",
		GrantTypes: []string{oauth.GrantCIBA}, MaxDelegationDepth: 2, CreatedAt: s.Now().UTC()}
	if f.ClientID != nil {
		c.ID = *f.ClientID
	} else {
		c.ID = store.NewID()
	}
	if !validClientID(c.ID) {
		return nil, meta("client_id must be 1-128 characters of letters, digits and ._:-")
	}
	if f.GrantTypes == nil && (f.ResourceServer != nil && *f.ResourceServer || f.PolicyEnforcementPoint != nil && *f.PolicyEnforcementPoint) {
		// A resource server introspects and revokes, a policy enforcement
		// point asks for decisions; neither obtains a token unless
		// grant_types says so.
		c.GrantTypes = []string{}
	}
	apply(c, &f)
	if err := s.validate(c); err != nil {
		return nil, err
	}
	var secret clientauth.Secret
	if c.AuthMethod == clientauth.SecretBasic || c.AuthMethod == clientauth.SecretPost {
		secret = clientauth.NewSecret()
		c.SecretHash = clientauth.HashSecret(secret)
	}
	if err := s.DB.CreateClient(ctx, c, s.clientEvent("client.created", c)); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, oauth.New(oauth.Conflict, "client %q exists", c.ID)
		}
		return nil, err
	}
	s.changed(c.ID)
	v := view(c)
	v.ClientSecret = string(secret)
	return v, nil
}

// PatchClient changes the fields present in body.
func (s *Service) PatchClient(ctx context.Context, id string, body []byte) (*ClientView, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, err
	}
	var f clientFields
	if err := DecodeStrict(body, &f); err != nil {
		return nil, err
	}
	if f.ClientID != nil && *f.ClientID != id {
		return nil, meta("client_id cannot change")
	}
	oldMethod := c.AuthMethod
	apply(c, &f)
	if err := s.validate(c); err != nil {
		return nil, err
	}
	var secret clientauth.Secret
	if c.AuthMethod != oldMethod && (c.AuthMethod == clientauth.SecretBasic || c.AuthMethod == clientauth.SecretPost) && c.SecretHash == nil {
		secret = clientauth.NewSecret()
		c.SecretHash = clientauth.HashSecret(secret)
	}
	ev := s.clientEvent("client.updated", c)
	if c.Disabled {
		ev.Detail = "disabled"
	}
	if err := s.DB.PutClient(ctx, c, ev); err != nil {
		return nil, err
	}
	s.changed(c.ID)
	v := view(c)
	v.ClientSecret = string(secret)
	return v, nil
}

// Client returns one client.
func (s *Service) Client(ctx context.Context, id string) (*ClientView, error) {
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, err
	}
	return view(c), nil
}

func (s *Service) client(ctx context.Context, id string) (*store.Client, error) {
	c, err := s.DB.Client(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.NotFound, "no client %q", id)
	}
	return c, err
}

// Clients lists every client.
func (s *Service) Clients(ctx context.Context) ([]*ClientView, error) {
	cs, err := s.DB.Clients(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*ClientView, len(cs))
	for i, c := range cs {
		out[i] = view(c)
	}
	return out, nil
}

// DeleteClient removes a client.
func (s *Service) DeleteClient(ctx context.Context, id string) error {
	err := s.DB.DeleteClient(ctx, id, store.Event{At: s.Now(), Type: "client.deleted", Agent: id})
	s.changed(id)
	if errors.Is(err, store.ErrNotFound) {
		return oauth.New(oauth.NotFound, "no client %q", id)
	}
	return err
}

// clientEvent is the audit record of a client change: who the agent is and
// what it may do, never its secret.
func (s *Service) clientEvent(typ string, c *store.Client) store.Event {
	return store.Event{At: s.Now(), Type: typ, Agent: c.ID,
		Detail: "mode " + c.DeliveryMode + ", tier " + c.Agent.TrustTier + ", grants " + strings.Join(c.GrantTypes, " ") +
			", delegates to " + strings.Join(c.DelegatesTo, " ")}
}

func meta(format string, args ...any) error {
	return oauth.New(oauth.InvalidClientMetadata, format, args...)
}

func apply(c *store.Client, f *clientFields) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.Name, f.ClientName)
	set(&c.AuthMethod, f.TokenEndpointAuthMethod)
	if f.JWKS != nil {
		c.JWKS = *f.JWKS
	}
	set(&c.DeliveryMode, f.DeliveryMode)
	set(&c.NotificationEndpoint, f.NotificationEndpoint)
	set(&c.RequestSigningAlg, f.RequestSigningAlg)
	set(&c.Scope, f.Scope)
	if f.UserCodeParameter != nil {
		c.UserCodeParameter = *f.UserCodeParameter
	}
	if f.GrantTypes != nil {
		c.GrantTypes = *f.GrantTypes
	}
	if f.Agent != nil {
		c.Agent = *f.Agent
	}
	if f.DelegatesTo != nil {
		c.DelegatesTo = *f.DelegatesTo
	}
	if f.MaxDelegationDepth != nil {
		c.MaxDelegationDepth = *f.MaxDelegationDepth
	}
	if f.ResourceServer != nil {
		c.ResourceServer = *f.ResourceServer
	}
	if f.PolicyEnforcementPoint != nil {
		c.PolicyEnforcementPoint = *f.PolicyEnforcementPoint
	}
	if f.DPoPBoundAccessTokens != nil {
		c.DPoPBoundAccessTokens = *f.DPoPBoundAccessTokens
	}
	if f.AllowPrivateNotifications != nil {
		c.AllowPrivateNotifications = *f.AllowPrivateNotifications
	}
	if f.Disabled != nil {
		c.Disabled = *f.Disabled
	}
}

func (s *Service) validate(c *store.Client) error {
	for _, check := range []func(*store.Client) error{validateAuth, validateGrants, s.validateDelivery, validateAgent, validateScope} {
		if err := check(c); err != nil {
			return err
		}
	}
	return nil
}

// validateAuth checks how the client authenticates (RFC 7591 §2) and
// signs its requests (CIBA Core §7.1.1).
func validateAuth(c *store.Client) error {
	switch c.AuthMethod {
	case clientauth.SecretBasic, clientauth.SecretPost:
	case clientauth.PrivateKeyJWT:
		if len(c.JWKS) == 0 {
			return meta("private_key_jwt needs jwks")
		}
	default:
		return meta("token_endpoint_auth_method must be client_secret_basic, client_secret_post or private_key_jwt")
	}
	if len(c.JWKS) > 0 {
		keys, err := clientauth.ParseJWKS(c.JWKS)
		if err != nil || len(keys) == 0 {
			return meta("jwks must be a JWK Set of public keys (EC, RSA >= 2048 bits, Ed25519)")
		}
	}
	if c.RequestSigningAlg != "" {
		ok := false
		for _, a := range clientauth.AsymmetricAlgs {
			ok = ok || a == c.RequestSigningAlg
		}
		if !ok || len(c.JWKS) == 0 {
			return meta("backchannel_authentication_request_signing_alg must be an asymmetric alg and jwks must be registered")
		}
	}
	return nil
}

// validateGrants checks grant_types.
func validateGrants(c *store.Client) error {
	if len(c.GrantTypes) == 0 && !c.ResourceServer && !c.PolicyEnforcementPoint {
		return meta("grant_types must not be empty (only a resource server or a policy enforcement point may have none)")
	}
	for _, g := range c.GrantTypes {
		if g != oauth.GrantCIBA && g != oauth.GrantTokenExchange {
			return meta("grant type %q is not supported", g)
		}
	}
	return nil
}

// validateDelivery checks the token delivery mode and its notification
// endpoint (CIBA Core §4).
func (s *Service) validateDelivery(c *store.Client) error {
	switch c.DeliveryMode {
	case "poll":
	case "ping", "push":
		if c.NotificationEndpoint == "" {
			return meta("%s clients need backchannel_client_notification_endpoint", c.DeliveryMode)
		}
		pol := notify.EndpointPolicy{AllowHTTP: s.Dev, AllowPrivate: s.Dev || c.AllowPrivateNotifications}
		if err := pol.Check(c.NotificationEndpoint); err != nil {
			return meta("backchannel_client_notification_endpoint: %v", err)
		}
	default:
		return meta("backchannel_token_delivery_mode must be poll, ping or push")
	}
	if c.DPoPBoundAccessTokens && c.DeliveryMode == "push" {
		return meta("push-mode clients cannot present a DPoP proof for a pushed token: use poll or ping with dpop_bound_access_tokens")
	}
	return nil
}

// validateScope checks the scopes the client may ask for.
func validateScope(c *store.Client) error {
	for _, sc := range strings.Fields(c.Scope) {
		if strings.ContainsAny(sc, "\"\\") { // RFC 6749 §3.3: scope-token excludes " and \
			return meta("scope has an invalid character")
		}
	}
	return nil
}

// validateAgent checks the agent's trust tier and delegation depth.
func validateAgent(c *store.Client) error {
	switch c.Agent.TrustTier {
	case "", "first_party", "standard", "untrusted":
	default:
		return meta("agent.trust_tier must be first_party, standard or untrusted")
	}
	if c.MaxDelegationDepth < 0 || c.MaxDelegationDepth > 16 {
		return meta("max_delegation_depth must be 0 to 16")
	}
	return nil
}

func view(c *store.Client) *ClientView {
	if c.GrantTypes == nil {
		c.GrantTypes = []string{} // "grant_types": [], never null
	}
	return &ClientView{ClientID: c.ID, ClientName: c.Name, TokenEndpointAuthMethod: c.AuthMethod, JWKS: c.JWKS,
		DeliveryMode: c.DeliveryMode, NotificationEndpoint: c.NotificationEndpoint, RequestSigningAlg: c.RequestSigningAlg,
		UserCodeParameter: c.UserCodeParameter, GrantTypes: c.GrantTypes, Scope: c.Scope, Agent: c.Agent,
		DelegatesTo: c.DelegatesTo, MaxDelegationDepth: c.MaxDelegationDepth, ResourceServer: c.ResourceServer,
		PolicyEnforcementPoint: c.PolicyEnforcementPoint, DPoPBoundAccessTokens: c.DPoPBoundAccessTokens, AllowPrivateNotifications: c.AllowPrivateNotifications,
		Disabled: c.Disabled, CreatedAt: c.CreatedAt}
}
