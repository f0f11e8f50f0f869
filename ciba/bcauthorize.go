package ciba

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

// AuthorizeInput is a decoded /bc-authorize request.
type AuthorizeInput struct {
	Credentials clientauth.Credentials
	Form        url.Values
	Endpoint    string
	IP          string
	UserAgent   string
}

// AuthorizeResponse is CIBA Core §7.3's successful acknowledgement.
type AuthorizeResponse struct {
	AuthReqID string `json:"auth_req_id"`
	ExpiresIn int    `json:"expires_in"`
	Interval  *int   `json:"interval,omitempty"`
}

// DeliveryMode is a client's token delivery mode (CIBA Core §5); its
// values are the registration metadata's backchannel_token_delivery_mode.
type DeliveryMode string

// Delivery modes (CIBA Core §5).
const (
	ModePoll DeliveryMode = "poll"
	ModePing DeliveryMode = "ping"
	ModePush DeliveryMode = "push"
)

// deliveryMode is the client's registered mode; poll when it registered none.
func deliveryMode(cl *store.Client) DeliveryMode {
	if cl.DeliveryMode == "" {
		return ModePoll
	}
	return DeliveryMode(cl.DeliveryMode)
}

// params are the authentication request parameters after a signed
// request object, if any, has been unpacked.
type params struct {
	scope, loginHint, idTokenHint, loginHintToken string
	bindingMessage, userCode, notificationToken   string
	acrValues                                     []string
	requestedExpiry                               string
	details                                       string
	mandateID                                     string // an intent mandate to act within
	has                                           map[string]bool
}

// authorizeRequest is a /bc-authorize request as it goes through the
// steps: decoded, then validated, then resolved to its user.
type authorizeRequest struct {
	in      AuthorizeInput
	client  *store.Client
	lookup  store.Lookup
	hint    string // the normalised form login_hint the lookup used
	p       params
	scopes  []string
	expiry  time.Duration
	details []rar.Detail
	mode    DeliveryMode
	user    *store.User
	mandate *mandateUse // the mandate it names, and whether it covers it
}

// BackchannelAuthorize runs CIBA Core §7: authenticate, validate, resolve
// the user, assess the risk, and store the request.
//
// In the common case (a form with a login_hint) the client, the user and
// the user's signals come back in one pipelined round trip and the request
// is stored in a second one.
func (s *Service) BackchannelAuthorize(ctx context.Context, in AuthorizeInput) (_ *AuthorizeResponse, err error) {
	who := &refusal{typ: "request.refused", endpoint: "bc_authorize", ip: in.IP}
	defer func() { err = s.refused(ctx, who, err) }()
	r, ctx, err := s.decodeAuthorize(ctx, in, who)
	if err != nil {
		return nil, err
	}
	if err := s.validateAuthorize(r); err != nil {
		return nil, err
	}
	if err := s.resolveAuthorizeUser(ctx, r, who); err != nil {
		return nil, err
	}
	if err := s.resolveMandate(ctx, r); err != nil {
		return nil, err
	}
	resp, err := s.assessAuthorize(ctx, r, who)
	if errors.Is(err, store.ErrMandateSpent) {
		// A concurrent request spent what this one counted on (or the
		// mandate was revoked in between): decide it again as if it named
		// no mandate. Only this race costs a round trip more.
		r.mandate = &mandateUse{}
		resp, err = s.assessAuthorize(ctx, r, who)
	}
	return resp, err
}

// assessAuthorize runs the rules on the request, with the mandate it names,
// and stores it with its outcome.
func (s *Service) assessAuthorize(ctx context.Context, r *authorizeRequest, who *refusal) (*AuthorizeResponse, error) {
	now := s.Now()
	x := s.ruleInput(r.client, r.user, r.scopes, r.details, r.p, r.expiry, r.in, now)
	x.Mandate = r.mandate.input
	d := s.engine.Assess(ctx, x)
	mandateToPhone(&d, r.details)
	return s.persistAuthorize(ctx, r, x, d, now, who)
}

// decodeAuthorize authenticates the client, with the user and signals of
// a form login_hint read in the same round trip, and reads the parameters.
func (s *Service) decodeAuthorize(ctx context.Context, in AuthorizeInput, who *refusal) (*authorizeRequest, context.Context, error) {
	r := &authorizeRequest{in: in}
	if in.Form.Get("request") == "" {
		r.hint = normalizeHint(in.Form.Get("login_hint"))
	}
	names := s.engine.Active().Signals()
	mandateID := ""
	if r.hint != "" {
		mandateID = in.Form.Get("mandate_id")
	}
	// The mandate an agent acts within is read in the same round trip; the
	// client too, unless this node has it cached.
	cached, haveClient := s.clients.get(in.Credentials.ClientID)
	lk, err := s.db.LookupAuthorizeMandate(ctx, in.Credentials.ClientID, r.hint, mandateID, names, s.Now(), !haveClient)
	if err != nil {
		return nil, ctx, err
	}
	if haveClient {
		lk.Client = cached
	} else if lk.Client != nil {
		s.clients.put(lk.Client)
	}
	r.lookup = lk
	if r.client, err = s.verifyClient(ctx, in.Credentials, lk.Client, in.Endpoint); err != nil {
		return nil, ctx, err
	}
	who.agent = r.client.ID
	if lk.SignalsFor != "" {
		ctx = withPrefetched(ctx, &prefetched{client: r.client.ID, user: lk.SignalsFor, names: names, signals: lk.Signals})
	}
	if err := subAgentMandate(r.client, in.Form); err != nil {
		return nil, ctx, err
	}
	if err := checkCIBAGrant(r.client); err != nil {
		return nil, ctx, err
	}
	if r.p, err = s.readParams(ctx, r.client, in.Form); err != nil {
		return nil, ctx, err
	}
	r.scopes = strings.Fields(r.p.scope)
	r.mode = deliveryMode(r.client)
	return r, ctx, nil
}

// validateAuthorize runs the stateless rules of CIBA Core §7.1, in order.
func (s *Service) validateAuthorize(r *authorizeRequest) error {
	if err := checkScope(r.scopes, r.client); err != nil {
		return err
	}
	if err := checkOneHint(r.p); err != nil {
		return err
	}
	if r.p.has["binding_message"] {
		if err := checkBindingMessage(r.p.bindingMessage); err != nil {
			return err
		}
	}
	var err error
	if r.expiry, err = s.requestedExpiry(r.p); err != nil {
		return err
	}
	if r.p.has["authorization_details"] {
		if r.details, err = rar.Parse(r.p.details); err != nil {
			return err
		}
	}
	if err := s.checkMandateRequest(r.details, r.p.mandateID); err != nil {
		return err
	}
	return checkNotificationToken(r.mode, r.p.notificationToken)
}

// checkCIBAGrant: CIBA Core §13, unauthorized_client for a client not
// registered for the CIBA grant.
func checkCIBAGrant(cl *store.Client) error {
	if !hasGrant(cl, oauth.GrantCIBA) {
		return oauth.New(oauth.UnauthorizedClient, "client is not registered for the CIBA grant")
	}
	return nil
}

// checkScope: CIBA Core §7.1, scope is required and must contain openid;
// RFC 6749 §3.3, invalid_scope for a scope the client may not ask for.
func checkScope(scopes []string, cl *store.Client) error {
	if !contains(scopes, "openid") {
		return oauth.New(oauth.InvalidRequest, "scope must contain openid")
	}
	if bad := outside(scopes, cl.Scope); bad != "" {
		return oauth.New(oauth.InvalidScope, "scope %q is not allowed for this client", bad)
	}
	return nil
}

// checkOneHint: CIBA Core §7.1, exactly one of the hints.
func checkOneHint(p params) error {
	n := 0
	for _, h := range []string{p.loginHint, p.idTokenHint, p.loginHintToken} {
		if h != "" {
			n++
		}
	}
	if n != 1 {
		return oauth.New(oauth.InvalidRequest, "exactly one of login_hint, id_token_hint and login_hint_token is required")
	}
	return nil
}

// requestedExpiry: CIBA Core §7.1, a positive integer of seconds; we clamp
// to the maximum.
func (s *Service) requestedExpiry(p params) (time.Duration, error) {
	if !p.has["requested_expiry"] {
		return s.cfg.DefaultExpiry, nil
	}
	n, err := strconv.Atoi(p.requestedExpiry)
	if err != nil || n <= 0 {
		return 0, oauth.New(oauth.InvalidRequest, "requested_expiry must be a positive integer of seconds")
	}
	return min(time.Duration(n)*time.Second, s.cfg.MaxExpiry), nil
}

// checkNotificationToken: CIBA Core §7.1, client_notification_token is
// required for ping and push clients; RFC 6750 §2.1 token characters.
func checkNotificationToken(mode DeliveryMode, tok string) error {
	if mode == ModePoll {
		return nil
	}
	if tok == "" {
		return oauth.New(oauth.InvalidRequest, "client_notification_token is required for %s clients", mode)
	}
	if len(tok) > 1024 || !isTokenChars(tok) {
		return oauth.New(oauth.InvalidRequest, "client_notification_token must be at most 1024 token characters (RFC 6750 §2.1)")
	}
	return nil
}

// resolveAuthorizeUser finds the hinted user (the one the lookup read when
// the form's login_hint named it), then checks user_code and may_act.
func (s *Service) resolveAuthorizeUser(ctx context.Context, r *authorizeRequest, who *refusal) error {
	var known *store.User
	if r.hint != "" && r.p.loginHint != "" && normalizeHint(r.p.loginHint) == r.hint {
		known = r.lookup.User
	}
	user, err := s.resolveUser(ctx, r.client, r.p, known)
	if err != nil {
		return err
	}
	r.user, who.user = user, user.ID
	if err := checkUserCode(r.client, user, r.p.userCode); err != nil {
		return err
	}
	return checkMayAct(user, r.client.ID, r.scopes, rar.Amount(r.details))
}

// checkUserCode: CIBA Core §7.1, user_code when the client registered for
// it (§13 missing_user_code, invalid_user_code); compared in constant time.
func checkUserCode(cl *store.Client, u *store.User, code string) error {
	if !cl.UserCodeParameter {
		return nil
	}
	if code == "" {
		return oauth.New(oauth.MissingUserCode, "user_code is required")
	}
	want, _ := u.Attributes["user_code"].(string)
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
		return oauth.New(oauth.InvalidUserCode, "user_code is not valid")
	}
	return nil
}

// persistAuthorize stores the assessed request: refused (access_denied),
// approved by policy or context, or pending for the user's phone.
func (s *Service) persistAuthorize(ctx context.Context, r *authorizeRequest, x *rules.Input, d risk.Decision, now time.Time, who *refusal) (*AuthorizeResponse, error) {
	nr, req := s.newAuthorizeRequest(r, x, d, now)
	if d.Path == rules.PathDeny {
		nr.State = store.Denied
		nr.Events[0].Type = "request.denied"
		if err := s.db.CreateRequest(ctx, nr); err != nil {
			return nil, err
		}
		who.audited = true // request.denied
		s.observe(d)
		return nil, oauth.New(oauth.AccessDenied, "refused by policy: %s", denyReason(d))
	}
	if err := s.decideAtAuthorize(&nr, req, d, now, r.mandate); err != nil {
		return nil, err
	}
	if err := s.db.CreateRequest(ctx, nr); err != nil {
		var le *store.LimitError
		if errors.As(err, &le) {
			return nil, rateLimited(le)
		}
		return nil, err
	}
	s.observe(d)
	resp := &AuthorizeResponse{AuthReqID: req.ID, ExpiresIn: int(r.expiry / time.Second)}
	if r.mode != ModePush {
		interval := nr.Interval
		resp.Interval = &interval
	}
	return resp, nil
}

// newAuthorizeRequest is the request and its risk.decision event.
func (s *Service) newAuthorizeRequest(r *authorizeRequest, x *rules.Input, d risk.Decision, now time.Time) (store.NewRequest, *store.Request) {
	cl, user := r.client, r.user
	id := store.NewShardedID(store.ShardOf(user.ID))
	adJSON, _ := json.Marshal(r.details)
	if len(r.details) == 0 {
		adJSON = nil
	}
	riskJSON, _ := json.Marshal(d.Outcome)
	inputJSON, _ := json.Marshal(x.Recorded(rules.Recording{Agent: cl.ID, User: user.ID, IP: r.in.IP, At: now, Action: adJSON}))
	req := store.Request{
		ID: id, ClientID: cl.ID, UserID: user.ID, Scope: strings.Join(r.scopes, " "),
		BindingMessage: r.p.bindingMessage, AuthorizationDetails: adJSON, ACRValues: r.p.acrValues,
		DeliveryMode: string(r.mode), NotificationToken: r.p.notificationToken, Risk: riskJSON, Path: d.Path,
		Amount: rar.Amount(r.details), IP: r.in.IP, CreatedAt: now, ExpiresAt: now.Add(r.expiry),
	}
	ev := store.Event{At: now, Type: "risk.decision", RequestID: id, User: user.ID, Agent: cl.ID,
		Actors: []string{cl.ID}, Action: adJSON, Risk: riskJSON, Input: inputJSON, Path: d.Path, IP: r.in.IP}
	nr := store.NewRequest{Request: req, Events: []store.Event{ev}}
	return nr, &nr.Request
}

// decideAtAuthorize sets the state of a request policy did not refuse:
// approved by policy, context or the mandate mu (with its grant and
// delivery, and the mandate's charge), or pending with the push to the
// user's devices written with it.
func (s *Service) decideAtAuthorize(nr *store.NewRequest, req *store.Request, d risk.Decision, now time.Time, mu *mandateUse) error {
	// CIBA Core §7.3: interval is a positive number of seconds. A request
	// decided here asks for 1 s (the first poll gets the token); strict
	// clients (openid-client) refuse 0.
	nr.Interval = decidedInterval
	switch d.Path {
	case rules.PathPolicy, rules.PathContext, rules.PathMandate:
		nr.State = store.Approved
		grant := store.NewID()
		nr.Approval = &store.Approval{By: d.Path, Rules: ruleIDs(d), GrantID: grant, At: now}
		nr.Grant = s.grantFor(req, grant)
		// One event records the decision and the approval it makes.
		nr.Events[0].Type, nr.Events[0].GrantID = "request.approved", grant
		if d.Path == rules.PathMandate {
			mu.approve(nr)
		}
		out, issued, err := s.outboxFor(req, nr.Approval)
		if err != nil {
			return err
		}
		nr.Outbox = out
		if issued != nil {
			nr.Events = append(nr.Events, *issued)
		}
	default:
		nr.State = store.Pending
		nr.Limits = s.cfg.Limits
		nr.Interval = s.cfg.PollInterval
		nr.Outbox = s.devicePush(req.ID)
	}
	return nil
}

// devicePush is the outbox entry of a request pending on the user's
// phone: the push is written with the request, so any node's worker sends
// it, even if this node dies now. Nil without push delivery configured.
func (s *Service) devicePush(id string) *store.Outbox {
	if s.Devices == nil {
		return nil
	}
	return &store.Outbox{RequestID: id, Kind: kindDevice}
}

// decidedInterval is the interval, in seconds, of a request approved by
// policy or context at /bc-authorize.
const decidedInterval = 1

// observe counts a decision once its request is stored: a refused or
// failed store leaves the decision metrics as they were.
func (s *Service) observe(d risk.Decision) {
	if s.Observer != nil {
		s.Observer.Decision(d)
	}
}

// rateLimited is the push-bombing refusal: 429 with Retry-After.
func rateLimited(le *store.LimitError) error {
	secs := int((le.RetryAfter + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	what := map[string]string{
		"user_pending":       "too many requests are waiting for this user's approval",
		"agent_user_pending": "too many of this agent's requests are waiting for this user's approval",
		"pushes_per_minute":  "too many approval requests were sent to this user in the last minute",
	}[le.Which]
	return oauth.New(oauth.SlowDown, "%s; retry later", what).WithStatus(429).WithHeader("Retry-After", strconv.Itoa(secs))
}

func denyReason(d risk.Decision) string {
	for _, m := range d.Rules {
		if m.Decision == "deny" {
			return fmt.Sprintf("rule %s: %s", m.ID, m.Reason)
		}
	}
	return "a deny rule matched"
}

func ruleIDs(d risk.Decision) []string {
	ids := make([]string, 0, len(d.Rules))
	for _, m := range d.Rules {
		ids = append(ids, m.ID)
	}
	return ids
}

// checkBindingMessage enforces 1–64 code points with none of the
// characters that make text read differently from what it says
// (rar.HiddenRune: controls, bidirectional overrides, invisible and tag
// characters). CIBA Core §7.1 leaves the limits to us; §13
// invalid_binding_message.
func checkBindingMessage(m string) error {
	if !utf8.ValidString(m) {
		return oauth.New(oauth.InvalidBindingMessage, "binding_message must be UTF-8")
	}
	n := utf8.RuneCountInString(m)
	if n < 1 || n > 64 {
		return oauth.New(oauth.InvalidBindingMessage, "binding_message must be 1 to 64 characters")
	}
	if d := rar.DescribeHidden(m); d != "" {
		return oauth.New(oauth.InvalidBindingMessage, "binding_message must not contain %s", d)
	}
	return nil
}

// isTokenChars checks RFC 6750 §2.1's b64token characters.
func isTokenChars(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~+/=", c)) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// outside returns the first scope not in allowed (space-separated);
// "openid" is always allowed, and an empty allowed list allows anything.
func outside(scopes []string, allowed string) string {
	if allowed == "" {
		return ""
	}
	ok := strings.Fields(allowed)
	for _, sc := range scopes {
		if sc != "openid" && !contains(ok, sc) {
			return sc
		}
	}
	return ""
}

// checkMayAct enforces the user's may_act list: only listed agents,
// within their scope and amount (403 access_denied).
func checkMayAct(u *store.User, client string, scopes []string, amount float64) error {
	if len(u.MayAct) == 0 {
		return nil
	}
	for _, m := range u.MayAct {
		if m.ClientID != client {
			continue
		}
		if bad := outside(scopes, m.Scope); bad != "" {
			return oauth.New(oauth.AccessDenied, "the user does not allow this agent the scope %q", bad)
		}
		if m.MaxAmount != nil && amount > *m.MaxAmount {
			return oauth.New(oauth.AccessDenied, "the amount is over what the user allows this agent")
		}
		return nil
	}
	return oauth.New(oauth.AccessDenied, "the user does not allow this agent to act for them")
}

func (s *Service) ruleInput(cl *store.Client, u *store.User, scopes []string, details []rar.Detail, p params, expiry time.Duration, in AuthorizeInput, now time.Time) *rules.Input {
	ds := make([]map[string]any, len(details))
	for i, d := range details {
		ds[i] = map[string]any(d)
	}
	tz, _ := u.Attributes["timezone"].(string)
	x := &rules.Input{
		Agent: rules.Agent{ClientID: cl.ID, Name: cl.Name, Owner: cl.Agent.Owner, TrustTier: tierOr(cl.Agent.TrustTier),
			Model: cl.Agent.Model, Version: cl.Agent.Version, Chain: []string{cl.ID}},
		User: rules.User{ID: u.ID, Email: u.Email, Timezone: tz, Attributes: u.Attributes, Devices: u.Devices},
		Action: rules.Action{Scopes: scopes, Details: ds, BindingMessage: p.bindingMessage,
			RequestedExpiry: int64(expiry / time.Second), ACRValues: p.acrValues},
		Request: rules.Request{Kind: "ciba", IP: in.IP, UserAgent: in.UserAgent, Time: now},
	}
	x.Action.Derive()
	return x
}

func tierOr(t string) string {
	if t == "" {
		return "standard"
	}
	return t
}

// grantFor is the grant an approval creates; no token of it outlives the
// request's expiry plus one access token lifetime.
func (s *Service) grantFor(r *store.Request, id string) *store.Grant {
	return &store.Grant{ID: id, ClientID: r.ClientID, UserID: r.UserID, Scope: r.Scope,
		AuthorizationDetails: r.AuthorizationDetails, CreatedAt: s.Now().UTC(), ExpiresAt: r.ExpiresAt.Add(s.tokens.AccessTTL)}
}
