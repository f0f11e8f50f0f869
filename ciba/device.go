package ciba

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/notify"
	"github.com/countersign/countersign/rules"
)

// Device JWT limits (docs/api.md).
const (
	MaxDeviceJWTLifetime   = 60 * time.Second
	MaxDecisionJWTLifetime = 5 * time.Minute
)

// EnrollInput is the body of POST /device/enroll.
type EnrollInput struct {
	Code             string               `json:"code"`
	Name             string               `json:"name"`
	PublicKey        clientauth.JWK       `json:"public_key"`
	PushSubscription *notify.Subscription `json:"push_subscription,omitempty"`
}

// EnrollResponse answers a successful enrollment.
type EnrollResponse struct {
	DeviceID       string `json:"device_id"`
	UserID         string `json:"user_id"`
	VAPIDPublicKey string `json:"vapid_public_key"`
}

// Enroll registers a device with a one-time enrollment code.
func (s *Service) Enroll(ctx context.Context, in EnrollInput, vapidPublic string) (*EnrollResponse, error) {
	if in.Code == "" {
		return nil, oauth.New(oauth.InvalidRequest, "code is required")
	}
	pub, err := in.PublicKey.PublicKey()
	if err != nil || in.PublicKey.Kty != "EC" || in.PublicKey.Crv != "P-256" {
		return nil, oauth.New(oauth.InvalidRequest, "public_key must be a public P-256 JWK")
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return nil, oauth.New(oauth.InvalidRequest, "public_key must be a public P-256 JWK")
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || len([]rune(name)) > 64 {
		return nil, oauth.New(oauth.InvalidRequest, "name must be 1 to 64 characters")
	}
	var sub json.RawMessage
	if in.PushSubscription != nil {
		if err := in.PushSubscription.Validate(); err != nil {
			return nil, oauth.New(oauth.InvalidRequest, "push_subscription: %v", err)
		}
		if err := s.pushPolicy().Check(in.PushSubscription.Endpoint); err != nil {
			return nil, oauth.New(oauth.InvalidRequest, "push_subscription endpoint: %v", err)
		}
		sub, _ = json.Marshal(in.PushSubscription)
	}
	jwk := in.PublicKey
	jwk.Kid, jwk.Alg, jwk.Use = "", "ES256", "sig"
	pk, _ := json.Marshal(jwk)
	d := store.Device{ID: store.NewID(), Name: name, PublicKey: pk, PushSubscription: sub, CreatedAt: s.Now().UTC()}
	dev, err := s.db.Enroll(ctx, in.Code, d, store.Event{At: s.Now(), Type: "device.enrolled"})
	if errors.Is(err, store.ErrBadCode) {
		return nil, oauth.New(oauth.InvalidRequest, "the enrollment code is unknown, used or expired")
	}
	if err != nil {
		return nil, err
	}
	return &EnrollResponse{DeviceID: dev.ID, UserID: dev.UserID, VAPIDPublicKey: vapidPublic}, nil
}

func (s *Service) pushPolicy() notify.EndpointPolicy {
	return notify.EndpointPolicy{AllowHTTP: s.cfg.Dev, AllowPrivate: s.cfg.Dev}
}

func deviceKey(d *store.Device) (*ecdsa.PublicKey, error) {
	var jwk clientauth.JWK
	if err := json.Unmarshal(d.PublicKey, &jwk); err != nil {
		return nil, err
	}
	pub, err := jwk.PublicKey()
	if err != nil {
		return nil, err
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("not an EC key")
	}
	return ec, nil
}

// deviceUnauthorized is a failed device authentication; reason is its
// metrics label.
func deviceUnauthorized(reason, what string) error {
	return &authFailure{reason: reason, err: oauth.New(oauth.InvalidToken, "device authentication failed: %s", what).WithStatus(401).
		WithHeader("WWW-Authenticate", `Device realm="countersign"`)}
}

// AuthenticateDevice verifies an "Authorization: Device <jwt>" value:
// ES256 by the device key, iss the device id, aud the issuer, exp at most
// 60 s ahead, jti single use. A failure is logged and counted, never
// audited: the device is not identified (the IP comes from WithClientIP).
func (s *Service) AuthenticateDevice(ctx context.Context, authorization string) (*store.Device, error) {
	dev, err := s.authenticateDevice(ctx, authorization)
	var f *authFailure
	if errors.As(err, &f) {
		s.AuthFailed("device", f.reason, clientIP(ctx))
		return nil, f.err
	}
	return dev, err
}

func (s *Service) authenticateDevice(ctx context.Context, authorization string) (*store.Device, error) {
	tok, ok := strings.CutPrefix(authorization, "Device ")
	if !ok || tok == "" {
		return nil, deviceUnauthorized("missing", "missing Device authorization")
	}
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &unverified); err != nil || unverified.Issuer == "" {
		return nil, deviceUnauthorized("malformed", "malformed JWT")
	}
	dev, err := s.db.Device(ctx, unverified.Issuer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, deviceUnauthorized("unknown_device", "unknown device")
	}
	if err != nil {
		return nil, err
	}
	pub, err := deviceKey(dev)
	if err != nil {
		return nil, err
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(s.Now), jwt.WithAudience(s.cfg.Issuer),
		jwt.WithIssuer(dev.ID), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, deviceUnauthorized("bad_jwt", jwtProblem(err))
	}
	if claims.IssuedAt == nil || claims.ExpiresAt.Sub(s.Now()) > MaxDeviceJWTLifetime || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxDeviceJWTLifetime {
		return nil, deviceUnauthorized("bad_jwt", "exp must be at most 60 s ahead")
	}
	if claims.ID == "" {
		return nil, deviceUnauthorized("bad_jwt", "jti is required")
	}
	fresh, err := s.db.UseOnce(ctx, "device:"+dev.ID, claims.ID, claims.ExpiresAt.Time)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, deviceUnauthorized("replayed", "jti replayed")
	}
	return dev, nil
}

// Agent is the agent as a device shows it.
type Agent struct {
	ClientID   string `json:"client_id"`
	ClientName string `json:"client_name,omitempty"`
	Owner      string `json:"owner,omitempty"`
}

// RequestView is a request as the device shows it (docs/api.md).
type RequestView struct {
	ID                   string          `json:"id"`
	Agent                Agent           `json:"agent"`
	BindingMessage       string          `json:"binding_message,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
	Risk                 RiskView        `json:"risk"`
	CreatedAt            string          `json:"created_at"`
	ExpiresAt            string          `json:"expires_at"`
	Status               string          `json:"status"`
}

// RiskView is the risk summary of a request view.
type RiskView struct {
	Level   string       `json:"level"`
	Score   int64        `json:"score"`
	Reasons []RuleReason `json:"reasons"`
	// RequiredBy names what sent the request to the phone whatever the
	// score: rules that require the device or failed to evaluate, and
	// "acr_values" when the agent asked for it. The phone says so instead
	// of showing a score below the threshold as the cause.
	RequiredBy []string `json:"required_by,omitempty"`
}

// RuleReason is one matched rule.
type RuleReason struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

func (s *Service) view(ctx context.Context, rs *store.RequestState) RequestView {
	r := rs.Request
	v := RequestView{ID: r.ID, BindingMessage: r.BindingMessage, AuthorizationDetails: r.AuthorizationDetails,
		CreatedAt: r.CreatedAt.UTC().Format(time.RFC3339), ExpiresAt: r.ExpiresAt.UTC().Format(time.RFC3339),
		Status: string(rs.State), Agent: Agent{ClientID: r.ClientID}}
	if rs.State == store.Redeemed {
		v.Status = string(store.Approved)
	}
	if len(v.AuthorizationDetails) == 0 {
		v.AuthorizationDetails = json.RawMessage("[]")
	}
	if cl, err := s.db.Client(ctx, r.ClientID); err == nil {
		v.Agent.ClientName, v.Agent.Owner = cl.Name, cl.Agent.Owner
	}
	v.Risk = decodeRisk(r.Risk).view()
	return v
}

// DeviceRequests lists the device user's pending requests, newest first.
func (s *Service) DeviceRequests(ctx context.Context, dev *store.Device) ([]RequestView, error) {
	list, err := s.db.PendingFor(ctx, dev.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]RequestView, 0, len(list))
	for _, rs := range list {
		out = append(out, s.view(ctx, rs))
	}
	return out, nil
}

// DeviceRequest returns one request of the device's user.
func (s *Service) DeviceRequest(ctx context.Context, dev *store.Device, id string) (_ *RequestView, err error) {
	defer func() { err = s.refused(ctx, deviceRefusal(ctx, dev), err) }()
	rs, err := s.db.RequestFor(ctx, id, dev.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.NotFound, "no such request")
	}
	if err != nil {
		return nil, err
	}
	v := s.view(ctx, rs)
	return &v, nil
}

// decisionClaims are the claims of a device-signed decision (docs/api.md).
type decisionClaims struct {
	jwt.RegisteredClaims
	Req      string `json:"req"`
	Decision string `json:"decision"`
	BMHash   string `json:"bm_hash"`
	ADHash   string `json:"ad_hash"`
}

// BMHash is base64url(SHA-256(binding message)).
func BMHash(m string) string {
	sum := sha256.Sum256([]byte(m))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Decide verifies a device-signed decision and records it: the first
// decision wins; a refused decision changes nothing.
func (s *Service) Decide(ctx context.Context, dev *store.Device, id, decisionJWT string) (err error) {
	who := deviceRefusal(ctx, dev)
	who.typ = "decision.refused"
	defer func() { err = s.refused(ctx, who, err) }()
	rs, err := s.pendingRequest(ctx, dev, id, who)
	if err != nil {
		return err
	}
	r := rs.Request
	c, err := s.decodeDecision(dev, decisionJWT)
	if err != nil {
		return err
	}
	if err := checkDecision(c, &r); err != nil {
		return err
	}
	if err := s.checkDecisionFresh(ctx, c); err != nil {
		return err
	}
	d, err := s.newDecision(&r, dev, c, decisionJWT)
	if err != nil {
		return err
	}
	switch err := s.db.Decide(ctx, &r, d); {
	case errors.Is(err, store.ErrDecided):
		return oauth.New(oauth.Conflict, "the request was already decided or has expired")
	case errors.Is(err, store.ErrNotFound):
		return oauth.New(oauth.NotFound, "no such request")
	default:
		return err
	}
}

// pendingRequest reads the device user's request id: 404 when it is not
// theirs, 409 when it is no longer pending.
func (s *Service) pendingRequest(ctx context.Context, dev *store.Device, id string, who *refusal) (*store.RequestState, error) {
	rs, err := s.db.RequestFor(ctx, id, dev.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.New(oauth.NotFound, "no such request")
	}
	if err != nil {
		return nil, err
	}
	who.agent, who.request = rs.Request.ClientID, id
	if rs.State != store.Pending {
		return nil, oauth.New(oauth.Conflict, "the request is already %s", rs.State)
	}
	return rs, nil
}

func badDecision(format string, args ...any) error {
	return oauth.New(oauth.InvalidRequest, "decision_jwt: "+format, args...)
}

// decodeDecision verifies the decision JWT (docs/api.md): ES256 by the
// device key, iss the device, aud the issuer, exp at most 5 minutes
// after iat.
func (s *Service) decodeDecision(dev *store.Device, decisionJWT string) (*decisionClaims, error) {
	pub, err := deviceKey(dev)
	if err != nil {
		return nil, err
	}
	var c decisionClaims
	_, err = jwt.ParseWithClaims(decisionJWT, &c, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(s.Now), jwt.WithAudience(s.cfg.Issuer),
		jwt.WithIssuer(dev.ID), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, badDecision("%s", jwtProblem(err))
	}
	if c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxDecisionJWTLifetime {
		return nil, badDecision("exp must be at most 5 minutes after iat")
	}
	return &c, nil
}

// checkDecision: the decision names this request, says approve or deny,
// and signs what the phone showed (bm_hash, ad_hash), so a decision made
// on other text cannot approve this one.
func checkDecision(c *decisionClaims, r *store.Request) error {
	if c.Req != r.ID {
		return badDecision("req does not name this request")
	}
	if c.Decision != "approve" && c.Decision != "deny" {
		return badDecision("decision must be approve or deny")
	}
	if c.BMHash != BMHash(r.BindingMessage) {
		return badDecision("bm_hash does not match the binding message")
	}
	var details []rar.Detail
	if len(r.AuthorizationDetails) > 0 {
		if err := json.Unmarshal(r.AuthorizationDetails, &details); err != nil {
			return err
		}
	}
	if c.ADHash != rar.Hash(details) {
		return badDecision("ad_hash does not match the authorization_details")
	}
	return nil
}

// checkDecisionFresh: a decision's jti is required and used once.
func (s *Service) checkDecisionFresh(ctx context.Context, c *decisionClaims) error {
	if c.ID == "" {
		return badDecision("jti is required")
	}
	fresh, err := s.db.UseOnce(ctx, "decision", c.ID, c.ExpiresAt.Time)
	if err != nil {
		return err
	}
	if !fresh {
		return badDecision("jti replayed")
	}
	return nil
}

// newDecision is what a verified decision writes: the approval with its
// grant and delivery, or the denial with its notification, and the audit.
func (s *Service) newDecision(r *store.Request, dev *store.Device, c *decisionClaims, decisionJWT string) (store.Decision, error) {
	now := s.Now()
	d := store.Decision{Approve: c.Decision == "approve"}
	ev := store.Event{At: now, RequestID: r.ID, User: r.UserID, Agent: r.ClientID, Actors: []string{r.ClientID},
		Action: r.AuthorizationDetails, Risk: r.Risk, Path: rules.PathDevice, DeviceID: dev.ID, DecisionJWT: decisionJWT}
	if !d.Approve {
		ev.Type = "request.denied"
		d.Outbox = s.outboxDenied(r)
		d.Events = []store.Event{ev}
		return d, nil
	}
	grant := store.NewID()
	d.Approval = &store.Approval{By: rules.PathDevice, Rules: decodeRisk(r.Risk).ruleIDs(), DeviceID: dev.ID, DecisionJTI: c.ID,
		DecisionJWT: decisionJWT, GrantID: grant, At: now}
	ev.Type, ev.GrantID = "request.approved", grant
	d.Grant = s.grantFor(r, grant)
	if err := s.mandateOfDecision(&d, &ev, r, dev, c.ID, now); err != nil {
		return d, err
	}
	out, issued, err := s.outboxFor(r, d.Approval)
	if err != nil {
		return d, err
	}
	d.Outbox, d.Events = out, []store.Event{ev}
	if issued != nil {
		d.Events = append(d.Events, *issued)
	}
	return d, nil
}

// UpdatePushSubscription replaces the device's push subscription.
func (s *Service) UpdatePushSubscription(ctx context.Context, dev *store.Device, body json.RawMessage) (err error) {
	defer func() { err = s.refused(ctx, deviceRefusal(ctx, dev), err) }()
	var in struct {
		PushSubscription *notify.Subscription `json:"push_subscription"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.PushSubscription == nil {
		return oauth.New(oauth.InvalidRequest, `body must be {"push_subscription": {"endpoint", "keys"}}`)
	}
	sub := *in.PushSubscription
	if err := sub.Validate(); err != nil {
		return oauth.New(oauth.InvalidRequest, "push subscription: %v", err)
	}
	if err := s.pushPolicy().Check(sub.Endpoint); err != nil {
		return oauth.New(oauth.InvalidRequest, "push subscription endpoint: %v", err)
	}
	b, _ := json.Marshal(sub)
	return s.db.SetPushSubscription(ctx, dev.ID, b)
}

// RemoveDevice unenrolls the device.
func (s *Service) RemoveDevice(ctx context.Context, dev *store.Device) error {
	return s.db.RemoveDevice(ctx, dev, store.Event{At: s.Now(), Type: "device.removed", User: dev.UserID, DeviceID: dev.ID})
}
