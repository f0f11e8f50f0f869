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

// Delivery modes (CIBA Core §5).
const (
	ModePoll = "poll"
	ModePing = "ping"
	ModePush = "push"
)

// params are the authentication request parameters after a signed
// request object, if any, has been unpacked.
type params struct {
	scope, loginHint, idTokenHint, loginHintToken string
	bindingMessage, userCode, notificationToken   string
	acrValues                                     []string
	requestedExpiry                               string
	details                                       string
	has                                           map[string]bool
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
	hint := ""
	if in.Form.Get("request") == "" {
		hint = normalizeHint(in.Form.Get("login_hint"))
	}
	names := s.engine.Active().Signals()
	lk, err := s.db.LookupAuthorize(ctx, in.Credentials.ClientID, hint, names, s.Now())
	if err != nil {
		return nil, err
	}
	cl, err := s.verifyClient(ctx, in.Credentials, lk.Client, in.Endpoint)
	if err != nil {
		return nil, err
	}
	who.agent = cl.ID
	if lk.SignalsFor != "" {
		ctx = withPrefetched(ctx, &prefetched{client: cl.ID, user: lk.SignalsFor, names: names, signals: lk.Signals})
	}
	// CIBA Core §13: a client not registered for the CIBA grant.
	if !hasGrant(cl, oauth.GrantCIBA) {
		return nil, oauth.New(oauth.UnauthorizedClient, "client is not registered for the CIBA grant")
	}
	p, err := s.readParams(ctx, cl, in.Form)
	if err != nil {
		return nil, err
	}
	scopes := strings.Fields(p.scope)
	// CIBA Core §7.1: scope is required and must contain openid.
	if !contains(scopes, "openid") {
		return nil, oauth.New(oauth.InvalidRequest, "scope must contain openid")
	}
	if bad := outside(scopes, cl.Scope); bad != "" {
		return nil, oauth.New(oauth.InvalidScope, "scope %q is not allowed for this client", bad)
	}
	// CIBA Core §7.1: exactly one of the hints.
	n := 0
	for _, h := range []string{p.loginHint, p.idTokenHint, p.loginHintToken} {
		if h != "" {
			n++
		}
	}
	if n != 1 {
		return nil, oauth.New(oauth.InvalidRequest, "exactly one of login_hint, id_token_hint and login_hint_token is required")
	}
	if p.has["binding_message"] {
		if err := checkBindingMessage(p.bindingMessage); err != nil {
			return nil, err
		}
	}
	expiry := s.cfg.DefaultExpiry
	if p.has["requested_expiry"] {
		// CIBA Core §7.1: a positive integer of seconds; we clamp to the maximum.
		n, err := strconv.Atoi(p.requestedExpiry)
		if err != nil || n <= 0 {
			return nil, oauth.New(oauth.InvalidRequest, "requested_expiry must be a positive integer of seconds")
		}
		expiry = min(time.Duration(n)*time.Second, s.cfg.MaxExpiry)
	}
	var details []rar.Detail
	if p.has["authorization_details"] {
		if details, err = rar.Parse(p.details); err != nil {
			return nil, err
		}
	}
	mode := cl.DeliveryMode
	if mode == "" {
		mode = ModePoll
	}
	if mode != ModePoll {
		// CIBA Core §7.1: required for ping and push clients.
		if p.notificationToken == "" {
			return nil, oauth.New(oauth.InvalidRequest, "client_notification_token is required for %s clients", mode)
		}
		if len(p.notificationToken) > 1024 || !isTokenChars(p.notificationToken) {
			return nil, oauth.New(oauth.InvalidRequest, "client_notification_token must be at most 1024 token characters (RFC 6750 §2.1)")
		}
	}
	var known *store.User
	if hint != "" && p.loginHint != "" && normalizeHint(p.loginHint) == hint {
		known = lk.User
	}
	user, err := s.resolveUser(ctx, cl, p, known)
	if err != nil {
		return nil, err
	}
	who.user = user.ID
	// CIBA Core §7.1: user_code when the client registered for it.
	if cl.UserCodeParameter {
		if p.userCode == "" {
			return nil, oauth.New(oauth.MissingUserCode, "user_code is required")
		}
		want, _ := user.Attributes["user_code"].(string)
		if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(p.userCode)) != 1 {
			return nil, oauth.New(oauth.InvalidUserCode, "user_code is not valid")
		}
	}
	amount := rar.Amount(details)
	if err := checkMayAct(user, cl.ID, scopes, amount); err != nil {
		return nil, err
	}

	now := s.Now()
	id := store.NewShardedID(store.ShardOf(user.ID))
	in2 := s.ruleInput(cl, user, scopes, details, p, expiry, in, now)
	d := s.engine.Assess(ctx, in2)
	adJSON, _ := json.Marshal(details)
	if len(details) == 0 {
		adJSON = nil
	}
	riskJSON, _ := json.Marshal(d.Outcome)
	inputJSON, _ := json.Marshal(in2)
	req := store.Request{
		ID: id, ClientID: cl.ID, UserID: user.ID, Scope: strings.Join(scopes, " "),
		BindingMessage: p.bindingMessage, AuthorizationDetails: adJSON, ACRValues: p.acrValues,
		DeliveryMode: mode, NotificationToken: p.notificationToken, Risk: riskJSON, Path: d.Path,
		Amount: amount, IP: in.IP, CreatedAt: now, ExpiresAt: now.Add(expiry),
	}
	ev := store.Event{At: now, Type: "risk.decision", RequestID: id, User: user.ID, Agent: cl.ID,
		Actors: []string{cl.ID}, Action: adJSON, Risk: riskJSON, Input: inputJSON, Path: d.Path, IP: in.IP}
	nr := store.NewRequest{Request: req, Events: []store.Event{ev}}
	resp := &AuthorizeResponse{AuthReqID: id, ExpiresIn: int(expiry / time.Second)}
	// CIBA Core §7.3: interval is a positive number of seconds. A request
	// decided here asks for 1 s (the first poll gets the token); strict
	// clients (openid-client) refuse 0.
	interval := decidedInterval
	switch d.Path {
	case rules.PathDeny:
		nr.State = store.Denied
		nr.Events[0].Type = "request.denied"
		if err := s.db.CreateRequest(ctx, nr); err != nil {
			return nil, err
		}
		who.audited = true // request.denied
		s.observe(d)
		return nil, oauth.New(oauth.AccessDenied, "refused by policy: %s", denyReason(d))
	case rules.PathPolicy, rules.PathContext:
		nr.State = store.Approved
		grant := store.NewID()
		nr.Approval = &store.Approval{By: d.Path, Rules: ruleIDs(d), GrantID: grant, At: now}
		nr.Grant = s.grantFor(&req, grant)
		nr.Events = append(nr.Events, store.Event{At: now, Type: "request.approved", RequestID: id, GrantID: grant,
			User: user.ID, Agent: cl.ID, Actors: []string{cl.ID}, Path: d.Path})
		var issued *store.Event
		if nr.Outbox, issued, err = s.outboxFor(&req, nr.Approval); err != nil {
			return nil, err
		}
		if issued != nil {
			nr.Events = append(nr.Events, *issued)
		}
	default:
		nr.State = store.Pending
		nr.Limits = s.cfg.Limits
		interval = s.cfg.PollInterval
		if s.Devices != nil {
			// The push to the user's devices is written with the request:
			// any node's worker sends it, even if this node dies now.
			nr.Outbox = &store.Outbox{RequestID: id, Kind: kindDevice}
		}
	}
	nr.Interval = interval
	if err := s.db.CreateRequest(ctx, nr); err != nil {
		var le *store.LimitError
		if errors.As(err, &le) {
			return nil, rateLimited(le)
		}
		return nil, err
	}
	s.observe(d)
	if mode != ModePush {
		resp.Interval = &interval
	}
	return resp, nil
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
