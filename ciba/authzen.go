package ciba

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/countersign/countersign/ciba/clientauth"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/store"
	"github.com/countersign/countersign/risk"
	"github.com/countersign/countersign/rules"
)

// The AuthZEN decision point (OpenID AuthZEN Authorization API 1.0): a
// policy enforcement point (a gateway, a tool server) asks whether a
// subject may do an action on a resource; the same rules, signals, audit
// and phone approval as /bc-authorize answer it.
//
//	policy, context → {"decision": true}
//	deny            → {"decision": false, "context": {"reason_admin", "reason_user"}}
//	device          → {"decision": false, "context": {"approval_required": true, "acr", ...}}
//	                  and, when the PEP asks (context.request_approval), the
//	                  same pending request as /bc-authorize: context.approval
//	                  {auth_req_id, expires_in, interval}, redeemed at /token.

// AuthZEN evaluation semantics (AuthZEN 1.0 §"Evaluations semantics").
const (
	ExecuteAll          = "execute_all"
	DenyOnFirstDeny     = "deny_on_first_deny"
	PermitOnFirstPermit = "permit_on_first_permit"
)

// MaxEvaluations bounds one /access/v1/evaluations request.
const MaxEvaluations = 64

// TypeAuthZENEvaluation is the authorization_details type of a request
// that an AuthZEN evaluation started: what the phone shows and the token
// carries.
const TypeAuthZENEvaluation = "authzen_evaluation"

// EvaluationInput is one decoded call of /access/v1/evaluation or
// /access/v1/evaluations.
type EvaluationInput struct {
	Credentials clientauth.Credentials
	Body        []byte // the JSON request body
	Endpoint    string
	IP          string
	UserAgent   string
}

// AccessDecision is AuthZEN 1.0 §"Decision".
type AccessDecision struct {
	Decision bool           `json:"decision"`
	Context  map[string]any `json:"context,omitempty"`
}

// AccessDecisions is the Access Evaluations API response.
type AccessDecisions struct {
	Evaluations []AccessDecision `json:"evaluations"`
}

// evaluation is one access evaluation request: the four objects as sent.
type evaluation struct {
	Subject, Action, Resource, Context map[string]any
}

// Evaluate answers POST /access/v1/evaluation.
func (s *Service) Evaluate(ctx context.Context, in EvaluationInput) (*AccessDecision, error) {
	var body map[string]any
	if err := decodeObject(in.Body, &body); err != nil {
		return nil, err
	}
	ev, err := evaluationOf(body, nil)
	if err != nil {
		return nil, err
	}
	out, err := s.evaluateAll(ctx, in, []evaluation{ev}, ExecuteAll)
	if err != nil {
		return nil, err
	}
	return &out[0], nil
}

// EvaluateBatch answers POST /access/v1/evaluations: the top-level subject,
// action, resource and context are defaults for each entry (AuthZEN 1.0
// §"Default values").
func (s *Service) EvaluateBatch(ctx context.Context, in EvaluationInput) (*AccessDecisions, error) {
	var body struct {
		Evaluations []map[string]any `json:"evaluations"`
		Options     map[string]any   `json:"options"`
	}
	var defaults map[string]any
	if err := decodeObject(in.Body, &defaults); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(in.Body, &body); err != nil {
		return nil, badRequest("evaluations must be an array of objects and options an object")
	}
	semantic := ExecuteAll
	if v, ok := body.Options["evaluations_semantic"]; ok {
		semantic, _ = v.(string)
		if semantic != ExecuteAll && semantic != DenyOnFirstDeny && semantic != PermitOnFirstPermit {
			return nil, badRequest("options.evaluations_semantic must be execute_all, deny_on_first_deny or permit_on_first_permit")
		}
	}
	if len(body.Evaluations) > MaxEvaluations {
		return nil, badRequest("at most %d evaluations in one request", MaxEvaluations)
	}
	list := body.Evaluations
	if len(list) == 0 {
		// Without an evaluations array the request is one evaluation.
		list = []map[string]any{{}}
	}
	evs := make([]evaluation, len(list))
	for i, e := range list {
		ev, err := evaluationOf(e, defaults)
		if err != nil {
			return nil, badRequest("evaluations[%d]: %s", i, err.(*oauth.Error).Description)
		}
		evs[i] = ev
	}
	out, err := s.evaluateAll(ctx, in, evs, semantic)
	if err != nil {
		return nil, err
	}
	return &AccessDecisions{Evaluations: out}, nil
}

// decodeObject decodes a JSON object (AuthZEN 1.0 §"JSON Serialization":
// the top-level element is an object).
func decodeObject(b []byte, v *map[string]any) error {
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		return badRequest("the body must be a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("the body is not valid JSON")
	}
	return nil
}

func badRequest(format string, args ...any) *oauth.Error {
	return oauth.New(oauth.InvalidRequest, format, args...)
}

// evaluationOf takes the four objects from e, each falling back to
// defaults; subject, action and resource are required (AuthZEN 1.0
// §"Information Model"), context is optional.
func evaluationOf(e, defaults map[string]any) (evaluation, error) {
	pick := func(name string) (map[string]any, error) {
		v, ok := e[name]
		if !ok {
			v, ok = defaults[name]
		}
		if !ok || v == nil {
			return nil, nil
		}
		m, isObj := v.(map[string]any)
		if !isObj {
			return nil, badRequest("%s must be an object", name)
		}
		return m, nil
	}
	var ev evaluation
	var err error
	for _, f := range []struct {
		name string
		dst  *map[string]any
	}{{"subject", &ev.Subject}, {"action", &ev.Action}, {"resource", &ev.Resource}, {"context", &ev.Context}} {
		if *f.dst, err = pick(f.name); err != nil {
			return ev, err
		}
	}
	switch {
	case !hasString(ev.Subject, "type") || !hasString(ev.Subject, "id"):
		return ev, badRequest("subject with a string type and id is required")
	case !hasString(ev.Action, "name"):
		return ev, badRequest("action with a string name is required")
	case !hasString(ev.Resource, "type") || !hasString(ev.Resource, "id"):
		return ev, badRequest("resource with a string type and id is required")
	}
	for _, o := range []map[string]any{ev.Subject, ev.Action, ev.Resource} {
		if p, ok := o["properties"]; ok && p != nil {
			if _, isObj := p.(map[string]any); !isObj {
				return ev, badRequest("properties must be an object")
			}
		}
	}
	if ev.Context == nil {
		ev.Context = map[string]any{}
	}
	return ev, nil
}

func hasString(m map[string]any, k string) bool {
	s, ok := m[k].(string)
	return ok && s != ""
}

// pepCall is what one call's evaluations share: the authenticated PEP,
// the users and signals read so far, and the audit events to write.
type pepCall struct {
	in      EvaluationInput
	pep     *store.Client
	names   []string
	now     time.Time
	lookups map[string]store.Lookup
	events  map[string][]store.Event
}

// evaluateAll authenticates the PEP, reading the first subject's user
// and signals in the same round trip, runs the evaluations under the
// semantic, and writes their audit events, one script per user shard.
func (s *Service) evaluateAll(ctx context.Context, in EvaluationInput, evs []evaluation, semantic string) (_ []AccessDecision, err error) {
	who := &refusal{typ: "evaluation.refused", endpoint: "authzen", ip: in.IP}
	defer func() { err = s.refused(ctx, who, err) }()
	call := &pepCall{in: in, names: s.engine.Active().Signals(), now: s.Now(),
		lookups: map[string]store.Lookup{}, events: map[string][]store.Event{}}
	first := userHint(evs[0])
	lk, err := s.db.LookupAuthorize(ctx, in.Credentials.ClientID, first, call.names, call.now)
	if err != nil {
		return nil, err
	}
	if call.pep, err = s.verifyClient(ctx, in.Credentials, lk.Client, in.Endpoint); err != nil {
		return nil, err
	}
	who.agent = call.pep.ID
	if !call.pep.PolicyEnforcementPoint {
		// AuthZEN 1.0 §"Error Responses": 403 for a caller that may not ask.
		return nil, oauth.New(oauth.AccessDenied, "client is not registered as a policy enforcement point").WithStatus(http.StatusForbidden)
	}
	call.lookups[first] = lk
	out := make([]AccessDecision, 0, len(evs))
	for _, ev := range evs {
		d, err := s.evaluateOne(ctx, call, ev)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		if semantic == DenyOnFirstDeny && !d.Decision || semantic == PermitOnFirstPermit && d.Decision {
			break
		}
	}
	for user, evs := range call.events {
		if err := s.db.Audit(ctx, user, evs...); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// userHint names the user an evaluation is for: the subject, or for an
// agent subject the user it acts on behalf of.
func userHint(ev evaluation) string {
	if ev.Subject["type"] == "agent" {
		if p, ok := ev.Subject["properties"].(map[string]any); ok {
			if u, ok := p["on_behalf_of"].(string); ok && u != "" {
				return normalizeHint(u)
			}
		}
		u, _ := ev.Context["on_behalf_of"].(string)
		return normalizeHint(u)
	}
	id, _ := ev.Subject["id"].(string)
	return normalizeHint(id)
}

// evalError is a decision that could not be evaluated: false, with the
// cause in its context (AuthZEN 1.0 §"Errors": errors of one evaluation).
func evalError(status int, format string, args ...any) AccessDecision {
	return AccessDecision{Decision: false, Context: map[string]any{
		"error": map[string]any{"status": status, "message": fmt.Sprintf(format, args...)}}}
}

// evaluateOne resolves the subject, assesses the risk and maps the
// outcome to a decision.
func (s *Service) evaluateOne(ctx context.Context, call *pepCall, ev evaluation) (AccessDecision, error) {
	agent := call.pep
	if ev.Subject["type"] == "agent" {
		id, _ := ev.Subject["id"].(string)
		a, err := s.client(ctx, id)
		if errors.Is(err, store.ErrNotFound) || err == nil && a.Disabled {
			return evalError(404, "no agent is registered as %q", id), nil
		}
		if err != nil {
			return AccessDecision{}, err
		}
		agent = a
	}
	hint := userHint(ev)
	if hint == "" {
		return evalError(400, "an agent subject needs on_behalf_of in its properties or the context"), nil
	}
	ctx, user, err := s.evaluationUser(ctx, call, ev, hint)
	if err != nil || user == nil {
		return evalError(404, "no user matches the subject"), err
	}
	in := s.authzenInput(agent, user, ev, call)
	d := s.engine.Assess(ctx, in)
	s.observe(d)
	out := decisionOf(d)
	riskJSON, _ := json.Marshal(d.Outcome)
	inputJSON, _ := json.Marshal(in.Recorded(rules.Recording{Agent: agent.ID, User: user.ID, IP: call.in.IP, At: call.now, Action: evaluationJSON(ev)}))
	event := store.Event{At: call.now, Type: "authzen.decision", User: user.ID, Agent: agent.ID,
		Actors: []string{call.pep.ID}, Action: evaluationJSON(ev), Risk: riskJSON, Input: inputJSON, Path: d.Path,
		IP: call.in.IP, Detail: fmt.Sprintf("pep %s: decision %t", call.pep.ID, out.Decision)}
	if d.Path == rules.PathDevice && ev.Context["request_approval"] == true {
		approval, err := s.startApproval(ctx, call, ev, user, d, event)
		if err != nil {
			return AccessDecision{}, err
		}
		for k, v := range approval {
			out.Context[k] = v
		}
		if _, failed := approval["error"]; !failed {
			return out, nil // the request's own script audited it
		}
	}
	call.events[user.ID] = append(call.events[user.ID], event)
	return out, nil
}

// evaluationUser reads the user the hint names, with the signals of the
// PEP and that user, in one round trip per distinct user of a call.
func (s *Service) evaluationUser(ctx context.Context, call *pepCall, ev evaluation, hint string) (context.Context, *store.User, error) {
	lk, ok := call.lookups[hint]
	if !ok {
		var err error
		if lk, err = s.db.LookupAuthorize(ctx, call.pep.ID, hint, call.names, call.now); err != nil {
			return ctx, nil, err
		}
		call.lookups[hint] = lk
	}
	u := lk.User
	// By email only for a subject of type user (an agent's on_behalf_of
	// may be either).
	if u == nil || ev.Subject["type"] != "user" && ev.Subject["type"] != "agent" && u.ID != hint {
		return ctx, nil, nil
	}
	if lk.SignalsFor != "" {
		ctx = withPrefetched(ctx, &prefetched{client: call.pep.ID, user: lk.SignalsFor, names: call.names, signals: lk.Signals})
	}
	return ctx, u, nil
}

// authzenInput is the rule input of an evaluation: the agent (the agent
// subject, else the PEP), the user, an empty action and the four AuthZEN
// objects as request.authzen.
func (s *Service) authzenInput(agent *store.Client, u *store.User, ev evaluation, call *pepCall) *rules.Input {
	tz, _ := u.Attributes["timezone"].(string)
	x := &rules.Input{
		Agent: rules.Agent{ClientID: agent.ID, Name: agent.Name, Owner: agent.Agent.Owner, TrustTier: tierOr(agent.Agent.TrustTier),
			Model: agent.Agent.Model, Version: agent.Agent.Version, Chain: []string{agent.ID}},
		User: rules.User{ID: u.ID, Email: u.Email, Timezone: tz, Attributes: u.Attributes, Devices: u.Devices},
		Request: rules.Request{Kind: rules.KindAuthZEN, IP: call.in.IP, UserAgent: call.in.UserAgent, Time: call.now,
			AuthZEN: map[string]any{"subject": ev.Subject, "action": ev.Action, "resource": ev.Resource, "context": ev.Context}},
	}
	x.Action.Derive()
	return x
}

// decisionOf maps a risk decision to an AuthZEN decision.
func decisionOf(d risk.Decision) AccessDecision {
	switch d.Path {
	case rules.PathPolicy, rules.PathContext:
		return AccessDecision{Decision: true}
	case rules.PathDeny:
		reason := denyReason(d)
		user := reason
		for _, m := range d.Rules {
			if m.Decision == "deny" {
				user = m.Reason
				break
			}
		}
		return AccessDecision{Context: map[string]any{
			"reason_admin": map[string]any{"403": reason},
			"reason_user":  map[string]any{"403": user},
		}}
	}
	reasons := make([]string, 0, len(d.Rules))
	for _, m := range d.Rules {
		if m.Reason != "" {
			reasons = append(reasons, m.Reason)
		}
	}
	ctx := map[string]any{"approval_required": true, "acr": acrOf(rules.PathDevice),
		"reason_admin": map[string]any{"403": "the user must approve on their phone: " + strings.Join(ruleIDs(d), ", ")}}
	if len(reasons) > 0 {
		ctx["reason_user"] = map[string]any{"403": strings.Join(reasons, " ")}
	}
	return AccessDecision{Context: ctx}
}

// evaluationJSON is the authorization_details entry of an evaluation:
// what the phone shows and the token carries.
func evaluationJSON(ev evaluation) json.RawMessage {
	b, _ := json.Marshal([]map[string]any{{"type": TypeAuthZENEvaluation,
		"subject": ev.Subject, "action": ev.Action, "resource": ev.Resource}})
	return b
}

// approvalKey identifies "the same evaluation" for one PEP and user: the
// same subject, action, resource and context.
func approvalKey(pep, user string, ev evaluation) string {
	b, _ := json.Marshal([]any{pep, user, ev.Subject, ev.Action, ev.Resource, ev.Context})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// startApproval starts the phone approval the PEP asked for (CIBA Core
// §7 without the HTTP round: the PEP is the client and redeems the
// auth_req_id at /token). The same evaluation repeated while its request
// waits gets the same auth_req_id and no second push. It returns the
// members to add to the decision's context.
func (s *Service) startApproval(ctx context.Context, call *pepCall, ev evaluation, user *store.User, d risk.Decision, event store.Event) (map[string]any, error) {
	pep := call.pep
	if !hasGrant(pep, oauth.GrantCIBA) {
		return evalError(403, "the policy enforcement point is not registered for the CIBA grant").Context, nil
	}
	bm, _ := ev.Context["binding_message"].(string)
	if err := checkBindingMessage(bm); err != nil {
		return evalError(400, "context.binding_message: %s", err.(*oauth.Error).Description).Context, nil
	}
	mode := deliveryMode(pep)
	token, _ := ev.Context["client_notification_token"].(string)
	if mode != ModePoll && (token == "" || len(token) > 1024 || !isTokenChars(token)) {
		return evalError(400, "context.client_notification_token is required for %s clients", mode).Context, nil
	}
	expiry := s.cfg.DefaultExpiry
	key := approvalKey(pep.ID, user.ID, ev)
	id := store.NewShardedID(store.ShardOf(user.ID))
	if prev, claimed, err := s.db.ClaimApproval(ctx, user.ID, key, id, call.now.Add(expiry)); err != nil {
		return nil, err
	} else if !claimed {
		if out, ok, err := s.stillWaiting(ctx, prev, mode, call.now); err != nil || ok {
			return out, err
		}
		if err := s.db.ReplaceApproval(ctx, user.ID, key, id, call.now.Add(expiry)); err != nil {
			return nil, err
		}
	}
	riskJSON, _ := json.Marshal(d.Outcome)
	req := store.Request{ID: id, ClientID: pep.ID, UserID: user.ID, Scope: "openid", BindingMessage: bm,
		AuthorizationDetails: evaluationJSON(ev), DeliveryMode: string(mode), NotificationToken: token, Risk: riskJSON,
		Path: d.Path, IP: call.in.IP, CreatedAt: call.now, ExpiresAt: call.now.Add(expiry)}
	event.Type, event.RequestID = "risk.decision", id
	nr := store.NewRequest{Request: req, State: store.Pending, Limits: s.cfg.Limits, Interval: s.cfg.PollInterval,
		Events: []store.Event{event}, Outbox: s.devicePush(id)}
	if err := s.db.CreateRequest(ctx, nr); err != nil {
		_ = s.db.ForgetApproval(ctx, user.ID, key)
		var le *store.LimitError
		if errors.As(err, &le) {
			return evalError(429, "%s", rateLimited(le).(*oauth.Error).Description).Context, nil
		}
		return nil, err
	}
	return map[string]any{"approval": approvalOf(id, int(expiry/time.Second), mode, s.cfg.PollInterval)}, nil
}

// stillWaiting reports the approval of an earlier request for the same
// evaluation while it is pending (or still being stored by another call).
func (s *Service) stillWaiting(ctx context.Context, id string, mode DeliveryMode, now time.Time) (map[string]any, bool, error) {
	rs, err := s.db.RequestByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if rs.State != store.Pending || !now.Before(rs.Request.ExpiresAt) {
		return nil, false, nil
	}
	left := int((rs.Request.ExpiresAt.Sub(now) + time.Second - 1) / time.Second)
	return map[string]any{"approval": approvalOf(id, left, mode, s.cfg.PollInterval)}, true, nil
}

func approvalOf(id string, expiresIn int, mode DeliveryMode, interval int) map[string]any {
	a := map[string]any{"auth_req_id": id, "expires_in": expiresIn}
	if mode != ModePush {
		a["interval"] = interval
	}
	return a
}
