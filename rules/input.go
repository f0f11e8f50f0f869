package rules

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Input is what every rule sees: the six CEL variables of docs/rules.md "The CEL
// environment". The `cel` tags are the names rules use; the `json` tags are
// the same names, so a recorded input reads like a rule.
type Input struct {
	Agent   Agent   `cel:"agent" json:"agent,omitzero"`
	User    User    `cel:"user" json:"user,omitzero"`
	Action  Action  `cel:"action" json:"action,omitzero"`
	Request Request `cel:"request" json:"request,omitzero"`
	Signals Signals `cel:"signals" json:"signals,omitzero"`
	Mandate Mandate `cel:"mandate" json:"mandate,omitzero"`
}

// Mandate is the CEL variable `mandate`: the intent mandate a request
// names with mandate_id, as read when the request arrived. A request that
// names none sees the zero value: id "" and covers false.
type Mandate struct {
	ID       string `cel:"id" json:"id,omitzero"`
	Intent   string `cel:"intent" json:"intent,omitzero"`
	Currency string `cel:"currency" json:"currency,omitzero"` // the budget's, "" without one
	// RemainingBudget is what is left of the budget; -1 without a budget.
	RemainingBudget float64 `cel:"remaining_budget" json:"remaining_budget,omitzero"`
	// RemainingUses is how many requests it still allows; -1 unlimited.
	RemainingUses int64     `cel:"remaining_uses" json:"remaining_uses,omitzero"`
	EndsAt        time.Time `cel:"ends_at" json:"ends_at,omitzero"`
	// Templates are its actions, each a map of dyn.
	Templates []map[string]any `cel:"templates" json:"templates,omitzero"`
	// Covers is true when the mandate is active, the request's client and
	// user are its own, every entry is covered by a template of its own,
	// and the budget and uses left suffice. Only then can the request take
	// the mandate path.
	Covers bool `cel:"covers" json:"covers,omitzero"`
}

// Agent is the CEL variable `agent`: the client acting for the user.
type Agent struct {
	ClientID  string `cel:"client_id" json:"client_id,omitzero"`
	Name      string `cel:"name" json:"name,omitzero"`
	Owner     string `cel:"owner" json:"owner,omitzero"`
	TrustTier string `cel:"trust_tier" json:"trust_tier,omitzero"` // TrustFirstParty, TrustStandard or TrustUntrusted
	Model     string `cel:"model" json:"model,omitzero"`
	Version   string `cel:"version" json:"version,omitzero"`
	// DelegationDepth is 0 for a CIBA request, the number of token exchange
	// hops otherwise.
	DelegationDepth int64 `cel:"delegation_depth" json:"delegation_depth,omitzero"`
	// Chain lists client ids, the approved agent first, the caller last.
	Chain []string `cel:"chain" json:"chain,omitzero"`
}

// Agent trust tiers (docs/rules.md).
const (
	TrustFirstParty = "first_party"
	TrustStandard   = "standard"
	TrustUntrusted  = "untrusted"
)

// User is the CEL variable `user`: the person the agent acts for.
type User struct {
	ID    string `cel:"id" json:"id,omitzero"`
	Email string `cel:"email" json:"email,omitzero"`
	// Timezone is an IANA name; Evaluate uses "UTC" when it is empty.
	Timezone string `cel:"timezone" json:"timezone,omitzero"`
	// Attributes are the admin-set, free-form attributes (a map of dyn).
	Attributes map[string]any `cel:"attributes" json:"attributes,omitzero"`
	// Devices is the number of enrolled devices.
	Devices int64 `cel:"devices" json:"devices,omitzero"`
}

// Action is the CEL variable `action`: what the agent asks to do.
type Action struct {
	Scopes []string `cel:"scopes" json:"scopes,omitzero"`
	// Details are the authorization_details (RFC 9396) as sent, each a map
	// of dyn.
	Details []map[string]any `cel:"details" json:"details,omitzero"`
	// Types, Actions, Amount and Currency are derived from Details by Derive.
	Types           []string `cel:"types" json:"types,omitzero"`
	Actions         []string `cel:"actions" json:"actions,omitzero"`
	Amount          float64  `cel:"amount" json:"amount,omitzero"`
	Currency        string   `cel:"currency" json:"currency,omitzero"`
	BindingMessage  string   `cel:"binding_message" json:"binding_message,omitzero"`
	RequestedExpiry int64    `cel:"requested_expiry" json:"requested_expiry,omitzero"` // seconds
	ACRValues       []string `cel:"acr_values" json:"acr_values,omitzero"`
}

// Request is the CEL variable `request`: the transport context.
type Request struct {
	Kind      string    `cel:"kind" json:"kind,omitzero"` // KindCIBA, KindTokenExchange or KindAuthZEN
	IP        string    `cel:"ip" json:"ip,omitzero"`
	UserAgent string    `cel:"user_agent" json:"user_agent,omitzero"`
	Time      time.Time `cel:"time" json:"time,omitzero"`
	// AuthZEN holds an AuthZEN evaluation's "subject", "action",
	// "resource" and "context" objects exactly as the PEP sent them (a map
	// of dyn; empty for other kinds).
	AuthZEN map[string]any `cel:"authzen" json:"authzen,omitzero"`
}

// Request kinds (docs/rules.md).
const (
	KindCIBA          = "ciba"
	KindTokenExchange = "token_exchange"
	KindAuthZEN       = "authzen"
)

// Signals is the CEL variable `signals`: counters read from the store. Only
// the ones a ruleset references (Ruleset.Signals) need to be filled in.
type Signals struct {
	AgentRequests1h     int64   `cel:"agent_requests_1h" json:"agent_requests_1h,omitzero"`
	AgentUserRequests1h int64   `cel:"agent_user_requests_1h" json:"agent_user_requests_1h,omitzero"`
	UserPending         int64   `cel:"user_pending" json:"user_pending,omitzero"`
	AgentUserDenials24h int64   `cel:"agent_user_denials_24h" json:"agent_user_denials_24h,omitzero"`
	UserSpend24h        float64 `cel:"user_spend_24h" json:"user_spend_24h,omitzero"`
	AgentUserSpend24h   float64 `cel:"agent_user_spend_24h" json:"agent_user_spend_24h,omitzero"`
	FirstTime           bool    `cel:"first_time" json:"first_time,omitzero"`
}

// Signal names as rules spell them (`signals.agent_requests_1h`), one per
// Signals field.
const (
	// SignalAgentRequests1h: requests by this agent in the last hour, all users.
	SignalAgentRequests1h = "agent_requests_1h"
	// SignalAgentUserRequests1h: requests by this agent for this user in the last hour.
	SignalAgentUserRequests1h = "agent_user_requests_1h"
	// SignalUserPending: the user's pending device requests.
	SignalUserPending = "user_pending"
	// SignalAgentUserDenials24h: denials of this agent by this user in 24 h.
	SignalAgentUserDenials24h = "agent_user_denials_24h"
	// SignalUserSpend24h: approved amounts for this user in 24 h, all agents.
	SignalUserSpend24h = "user_spend_24h"
	// SignalAgentUserSpend24h: approved amounts by this agent for this user in 24 h.
	SignalAgentUserSpend24h = "agent_user_spend_24h"
	// SignalFirstTime: this agent has no approved request for this user yet.
	SignalFirstTime = "first_time"
)

// SignalNames lists every signal name, in declaration order.
func SignalNames() []string {
	return []string{SignalAgentRequests1h, SignalAgentUserRequests1h, SignalUserPending,
		SignalAgentUserDenials24h, SignalUserSpend24h, SignalAgentUserSpend24h, SignalFirstTime}
}

// ACRDevice is the acr_values entry by which a client asks for the device
// path (docs/rules.md "How a decision is reached", step 3).
const ACRDevice = "urn:countersign:acr:device"

// Derive fills Types, Actions, Amount and Currency from Details, the same
// way for live requests and for the tests in a ruleset:
//
//   - Types / Actions: the string `type` / `action` of every detail, each
//     value once, in order of first appearance;
//   - Amount: the sum of every detail's `amount` (or, when absent, its RFC
//     9396 style `instructedAmount.amount`), as a JSON number, a Go number or
//     a numeric string. Negative amounts count by their absolute value, and
//     an amount that is present but not a finite number counts as
//     math.MaxFloat64, so that a malformed amount can never look small;
//   - Currency: the first detail's `currency` (or `instructedAmount.currency`).
func (a *Action) Derive() {
	a.Types, a.Actions, a.Amount, a.Currency = nil, nil, 0, ""
	for i, d := range a.Details {
		if s, ok := d["type"].(string); ok && s != "" && !slices.Contains(a.Types, s) {
			a.Types = append(a.Types, s)
		}
		if s, ok := d["action"].(string); ok && s != "" && !slices.Contains(a.Actions, s) {
			a.Actions = append(a.Actions, s)
		}
		amount, currency, present := detailAmount(d)
		if present {
			a.Amount = addAmount(a.Amount, amount)
		}
		if i == 0 {
			a.Currency = currency
		}
	}
}

func detailAmount(d map[string]any) (amount float64, currency string, present bool) {
	currency, _ = d["currency"].(string)
	raw, present := d["amount"]
	if !present {
		if ia, ok := d["instructedAmount"].(map[string]any); ok {
			raw, present = ia["amount"]
			if currency == "" {
				currency, _ = ia["currency"].(string)
			}
		}
	}
	if !present {
		return 0, currency, false
	}
	return toAmount(raw), currency, true
}

// toAmount reads one amount; anything that is not a finite number is
// math.MaxFloat64 (fail closed: it exceeds every limit).
func toAmount(v any) float64 {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case float32:
		f = float64(n)
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case int32:
		f = float64(n)
	case uint64:
		f = float64(n)
	case uint:
		f = float64(n)
	case json.Number:
		p, err := strconv.ParseFloat(n.String(), 64)
		if err != nil {
			return math.MaxFloat64
		}
		f = p
	case string:
		p, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		if err != nil {
			return math.MaxFloat64
		}
		f = p
	default:
		return math.MaxFloat64
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return math.MaxFloat64
	}
	return math.Abs(f)
}

func addAmount(sum, v float64) float64 {
	s := sum + v
	if math.IsInf(s, 0) || s > math.MaxFloat64 {
		return math.MaxFloat64
	}
	return s
}

// Recording is what an audit event records beside a decision's input:
// Recorded leaves out of the input the members equal to these.
type Recording struct {
	Agent, User, IP string
	At              time.Time
	// Action is the event's action: the authorization_details as sent.
	Action json.RawMessage
}

// Recorded is in as an audit event keeps it: the members equal to the
// event's own (agent id, user id, IP, time, the details as sent), and the
// action members Derive computes from the details, are left out (Restore
// puts them back), and, through the omitzero tags, so is every zero
// member. A decision's input is the largest part of its audit event; this
// halves it.
func (in Input) Recorded(ev Recording) Input {
	if in.Agent.ClientID == ev.Agent {
		in.Agent.ClientID = ""
	}
	if in.User.ID == ev.User {
		in.User.ID = ""
	}
	if in.Request.IP == ev.IP {
		in.Request.IP = ""
	}
	if in.Request.Time.Equal(ev.At) {
		in.Request.Time = time.Time{}
	}
	d := Action{Details: in.Action.Details}
	d.Derive()
	a := in.Action
	if slices.Equal(d.Types, a.Types) && slices.Equal(d.Actions, a.Actions) && d.Amount == a.Amount && d.Currency == a.Currency {
		in.Action.Types, in.Action.Actions, in.Action.Amount, in.Action.Currency = nil, nil, 0, ""
	}
	if len(in.Action.Details) > 0 && len(ev.Action) > 0 {
		if b, err := json.Marshal(in.Action.Details); err == nil && string(b) == string(ev.Action) {
			in.Action.Details = nil
		}
	}
	return in
}

// Restore undoes Recorded, given the same event members.
func (in *Input) Restore(ev Recording) {
	if in.Agent.ClientID == "" {
		in.Agent.ClientID = ev.Agent
	}
	if in.User.ID == "" {
		in.User.ID = ev.User
	}
	if in.Request.IP == "" {
		in.Request.IP = ev.IP
	}
	if in.Request.Time.IsZero() {
		in.Request.Time = ev.At
	}
	if in.Action.Details == nil && len(ev.Action) > 0 {
		var ds []map[string]any
		if json.Unmarshal(ev.Action, &ds) == nil {
			in.Action.Details = ds
		}
	}
	if a := in.Action; a.Types == nil && a.Actions == nil && a.Amount == 0 && a.Currency == "" {
		in.Action.Derive()
	}
}
