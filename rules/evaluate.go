package rules

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"
)

// Paths a request can take (docs/rules.md "How a decision is reached").
const (
	PathPolicy  = "policy"  // approved by the rules, low risk
	PathContext = "context" // medium risk, every context check passed
	PathDevice  = "device"  // the user approves on a phone
	PathDeny    = "deny"    // refused: 403 access_denied naming the rule
	// PathMandate: approved by the intent mandate the request names, which
	// covers it, when no rule denies it or asks for the device.
	PathMandate = "mandate"
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
	// path (docs/rules.md step 3).
	MatchACRDevice = "acr_values"
	// MatchInternal names an evaluation that failed outside any one rule.
	MatchInternal = "internal_error"
)

// Outcome is the decision for one request: it goes into the phone's request
// view, the token's approval claim and the audit event (docs/rules.md "How a
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
	// request then goes to the device, docs/rules.md step 6).
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

// activation resolves the six variables straight to the input structs;
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
	case "mandate":
		return &a.in.Mandate, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Evaluate decides one request within DefaultDeadline; see EvaluateContext.
func (rs *Ruleset) Evaluate(in *Input) Outcome {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultDeadline)
	defer cancel()
	return rs.EvaluateContext(ctx, in)
}

// EvaluateContext decides one request. It evaluates every rule, never
// panics and never approves on an error: an expression that fails sends
// the request to the device with a reason naming the rule (docs/rules.md
// step 6). ctx bounds the whole evaluation: once it is done the expression
// running is interrupted (between comprehension iterations) or, if it
// finishes, counted as overrun; it fails and the remaining rules are not
// evaluated. It does not modify in.
func (rs *Ruleset) EvaluateContext(ctx context.Context, in *Input) (out Outcome) {
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
	act := newActivation(in)
	var f flags
	out.Rules = make([]Match, 0, 4)
	// Step 1: every rule is evaluated; the outcome lists every match.
	for _, r := range rs.rules {
		if !rs.evalRule(ctx, act, r, &out, &f) {
			break
		}
	}
	rs.decide(ctx, act, in, &out, f)
	return out
}

// flags are the kinds of rule that matched.
type flags struct{ deny, device, allow, failed bool }

// evalRule evaluates one rule into out and f; it reports false once the
// deadline has passed (the rule then counts as failed).
func (rs *Ruleset) evalRule(ctx context.Context, act *activation, r *rule, out *Outcome, f *flags) bool {
	v, err := r.when.eval(ctx, act)
	if err != nil {
		f.failed = true
		out.Rules = append(out.Rules, failedMatch(r.id, err))
		return ctx.Err() == nil
	}
	if v != types.True {
		return overrun(ctx, r.id, out, f)
	}
	m := Match{ID: r.id, Reason: r.reason, Decision: r.decision, Score: r.score}
	if r.reasonExpr != nil {
		rv, err := r.reasonExpr.eval(ctx, act)
		if s, ok := rv.(types.String); ok && err == nil {
			m.Reason = string(s)
		} else {
			f.failed = true
			out.Rules = append(out.Rules, failedMatch(r.id, err))
			return ctx.Err() == nil
		}
	}
	switch r.decision {
	case DecisionDeny:
		f.deny = true
	case DecisionRequireDevice:
		f.device = true
	case DecisionAllow:
		f.allow = true
	default:
		out.Score += r.score
	}
	out.Rules = append(out.Rules, m)
	return overrun(ctx, r.id, out, f)
}

// overrun reports whether the evaluation may go on after rule id finished:
// if the deadline passed while it ran, it failed (it overran the deadline,
// which cannot interrupt a single function call such as matches()).
func overrun(ctx context.Context, id string, out *Outcome, f *flags) bool {
	if ctx.Err() == nil {
		return true
	}
	f.failed = true
	out.Rules = append(out.Rules, failedMatch(id, deadlineError(ctx)))
	return false
}

// decide applies steps 2 to 6 of the decision procedure.
func (rs *Ruleset) decide(ctx context.Context, act *activation, in *Input, out *Outcome, f flags) {
	switch {
	case f.deny: // Step 2: any deny.
		out.Level, out.Path = LevelHigh, PathDeny
	case f.failed: // Step 6: a failed expression never approves.
		out.Level, out.Path = LevelHigh, PathDevice
	case f.device || slices.Contains(in.Action.ACRValues, ACRDevice): // Step 3.
		if !f.device {
			out.Rules = append(out.Rules, Match{ID: MatchACRDevice,
				Reason: "The agent asked for your approval on your device."})
		}
		out.Level, out.Path = LevelHigh, PathDevice
	case in.Mandate.Covers: // A mandate covers it: the user approved it already.
		out.Level, out.Path = LevelLow, PathMandate
	case f.allow: // Step 4: allow overrides the score.
		out.Level, out.Path = LevelLow, PathPolicy
	case out.Score < rs.Thresholds.Medium: // Step 5: the score, by the thresholds.
		out.Level, out.Path = LevelLow, PathPolicy
	case out.Score < rs.Thresholds.High:
		out.Level, out.Path = LevelMedium, PathContext
		if !rs.runChecks(ctx, act, out) {
			out.Level, out.Path = LevelHigh, PathDevice
		}
	default:
		out.Level, out.Path = LevelHigh, PathDevice
	}
}

// runChecks runs every context check (all of them, so the outcome shows
// each) and reports whether all passed; a check that fails to evaluate has
// not passed.
func (rs *Ruleset) runChecks(ctx context.Context, act *activation, out *Outcome) bool {
	all := true
	out.Checks = make([]Check, 0, len(rs.checks))
	for _, c := range rs.checks {
		v, err := c.require.eval(ctx, act)
		if err == nil && ctx.Err() != nil {
			err = deadlineError(ctx)
		}
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
