package rules

import (
	"fmt"
	"slices"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"
)

// Paths a request can take (RULES.md "How a decision is reached").
const (
	PathPolicy  = "policy"  // approved by the rules, low risk
	PathContext = "context" // medium risk, every context check passed
	PathDevice  = "device"  // the user approves on a phone
	PathDeny    = "deny"    // refused: 403 access_denied naming the rule
)

// Risk levels.
const (
	LevelLow    = "low"
	LevelMedium = "medium"
	LevelHigh   = "high"
)

// Pseudo rule ids that an Outcome may name besides the ruleset's own. They
// contain "_", which a rule id cannot, so they never clash.
const (
	// MatchACRDevice names the client's acr_values request for the device
	// path (RULES.md step 3).
	MatchACRDevice = "acr_values"
	// MatchInternal names an evaluation that failed outside any one rule.
	MatchInternal = "internal_error"
)

// Outcome is the decision for one request: it goes into the phone's request
// view, the token's approval claim and the audit event (RULES.md "How a
// decision is reached").
type Outcome struct {
	Level  string  `json:"level"`
	Path   string  `json:"path"`
	Score  int64   `json:"score"`
	Rules  []Match `json:"rules"`
	Checks []Check `json:"checks,omitempty"`
}

// Match is one rule that matched, or failed, for a request.
type Match struct {
	ID       string `json:"id"`
	Reason   string `json:"reason"`
	Decision string `json:"decision,omitempty"`
	Score    int64  `json:"score,omitempty"`
	// Error is set when the rule's expression failed at run time (the
	// request then goes to the device, RULES.md step 6).
	Error string `json:"error,omitempty"`
}

// Check is the result of one context check, run for medium risk only.
type Check struct {
	ID     string `json:"id"`
	Passed bool   `json:"passed"`
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

// RuleIDs returns the ids of the matched (or failed) rules, in rule order.
func (o *Outcome) RuleIDs() []string {
	ids := make([]string, len(o.Rules))
	for i, m := range o.Rules {
		ids[i] = m.ID
	}
	return ids
}

// activation resolves the five variables straight to the input structs;
// the object types read their fields without reflection.
type activation struct {
	in      *Input
	user    *User
	bounded bool // the input is within the declared bounds
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "agent":
		return &a.in.Agent, true
	case "user":
		return a.user, true
	case "action":
		return &a.in.Action, true
	case "request":
		return &a.in.Request, true
	case "signals":
		return &a.in.Signals, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Evaluate decides one request. It evaluates every rule, never panics and
// never approves on an error: an expression that fails sends the request
// to the device with a reason naming the rule (RULES.md step 6). It does
// not modify in.
func (rs *Ruleset) Evaluate(in *Input) (out Outcome) {
	defer func() {
		if r := recover(); r != nil {
			out = Outcome{Level: LevelHigh, Path: PathDevice, Rules: []Match{{
				ID:     MatchInternal,
				Reason: "The risk rules could not be evaluated, so this request needs your approval.",
				Error:  fmt.Sprint(r),
			}}}
		}
	}()
	if in == nil {
		in = &Input{}
	}
	act := &activation{in: in, user: &in.User, bounded: in.boundsViolation() == ""}
	if in.User.Timezone == "" {
		// RULES.md "The CEL environment": user.timezone defaults to UTC.
		u := in.User
		u.Timezone = "UTC"
		act.user = &u
	}

	// Step 1: every rule is evaluated; the outcome lists every match.
	var deny, device, allow, failed bool
	out.Rules = make([]Match, 0, 4)
	for _, r := range rs.rules {
		v, err := r.when.eval(act)
		if err != nil {
			failed = true
			out.Rules = append(out.Rules, failedMatch(r.id, err))
			continue
		}
		if v != types.True {
			continue
		}
		m := Match{ID: r.id, Reason: r.reason, Decision: r.decision, Score: r.score}
		if r.reasonExpr != nil {
			rv, err := r.reasonExpr.eval(act)
			if s, ok := rv.(types.String); ok && err == nil {
				m.Reason = string(s)
			} else {
				failed = true
				m = failedMatch(r.id, err)
			}
		}
		switch r.decision {
		case DecisionDeny:
			deny = true
		case DecisionRequireDevice:
			device = true
		case DecisionAllow:
			allow = true
		default:
			out.Score += r.score
		}
		out.Rules = append(out.Rules, m)
	}

	switch {
	case deny: // Step 2: any deny.
		out.Level, out.Path = LevelHigh, PathDeny
	case failed: // Step 6: a failed expression never approves.
		out.Level, out.Path = LevelHigh, PathDevice
	case device || slices.Contains(in.Action.ACRValues, ACRDevice): // Step 3.
		if !device {
			out.Rules = append(out.Rules, Match{ID: MatchACRDevice,
				Reason: "The agent asked for your approval on your device."})
		}
		out.Level, out.Path = LevelHigh, PathDevice
	case allow: // Step 4: allow overrides the score.
		out.Level, out.Path = LevelLow, PathPolicy
	default: // Step 5: the score, by the thresholds.
		switch {
		case out.Score < rs.Thresholds.Medium:
			out.Level, out.Path = LevelLow, PathPolicy
		case out.Score < rs.Thresholds.High:
			out.Level, out.Path = LevelMedium, PathContext
			if !rs.runChecks(act, &out) {
				out.Level, out.Path = LevelHigh, PathDevice
			}
		default:
			out.Level, out.Path = LevelHigh, PathDevice
		}
	}
	return out
}

// runChecks runs every context check (all of them, so the outcome shows
// each) and reports whether all passed; a check that fails to evaluate has
// not passed.
func (rs *Ruleset) runChecks(act *activation, out *Outcome) bool {
	all := true
	out.Checks = make([]Check, 0, len(rs.checks))
	for _, c := range rs.checks {
		v, err := c.require.eval(act)
		res := Check{ID: c.id, Passed: err == nil && v == types.True}
		if !res.Passed {
			all = false
			res.Reason = c.reason
			if err != nil {
				res.Error = err.Error()
			}
		}
		out.Checks = append(out.Checks, res)
	}
	return all
}

func failedMatch(id string, err error) Match {
	m := Match{ID: id, Reason: fmt.Sprintf("Rule %s could not be evaluated, so this request needs your approval.", id)}
	if err != nil {
		m.Error = err.Error()
	} else {
		m.Error = "the expression did not produce a value of the declared type"
	}
	return m
}
