package risk

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/countersign/countersign/rules"
)

// SignalQuery asks for the named signals (rules.SignalAgentRequests1h, ...)
// of one agent and user, as of Now.
type SignalQuery struct {
	ClientID string
	UserID   string
	Names    []string
	Now      time.Time
}

// SignalReader reads signals; the store implements it with one pipelined
// round trip (docs/rules.md "The CEL environment"). Fields not named in the query
// may be left zero.
type SignalReader interface {
	ReadSignals(ctx context.Context, q SignalQuery) (rules.Signals, error)
}

// MatchSignalsUnavailable is the pseudo rule id of a decision taken without
// signals because they could not be read. Like the rules package's pseudo
// ids it contains "_", which no rule id can.
const MatchSignalsUnavailable = "signals_unavailable"

// Decision is the outcome of one assessment and the ruleset that produced
// it.
type Decision struct {
	rules.Outcome
	// Ruleset is the hex SHA-256 digest of the ruleset used.
	Ruleset string `json:"ruleset"`
	// RulesetName is that ruleset's name.
	RulesetName string `json:"ruleset_name,omitempty"`
	// Shadow is the outcome of the shadow ruleset, when one is set; it never
	// changes the decision.
	Shadow *rules.Outcome `json:"shadow,omitempty"`
	// ShadowRuleset is the digest of the shadow ruleset.
	ShadowRuleset string `json:"shadow_ruleset,omitempty"`
	// Elapsed is the time the active ruleset took to evaluate (metrics).
	Elapsed time.Duration `json:"-"`
}

// Engine assesses requests against the active ruleset. It is safe for
// concurrent use; Swap and SetShadow take effect for the next Assess.
type Engine struct {
	// Now is the clock used when a request carries no time.
	Now func() time.Time
	// Deadline bounds the evaluation of the active ruleset for one request
	// (and, separately, of the shadow ruleset); past it the request goes to
	// the device with a reason naming the rule that was running. Zero means
	// rules.DefaultDeadline (50 ms).
	Deadline time.Duration

	signals SignalReader
	active  atomic.Pointer[rules.Ruleset]
	shadow  atomic.Pointer[rules.Ruleset]
}

// NewEngine returns an engine reading signals from signals and evaluating
// rs; a nil rs means rules.Default().
func NewEngine(signals SignalReader, rs *rules.Ruleset) *Engine {
	e := &Engine{Now: time.Now, signals: signals}
	e.Swap(rs)
	return e
}

// Swap makes rs the active ruleset, atomically; nil means rules.Default().
func (e *Engine) Swap(rs *rules.Ruleset) {
	if rs == nil {
		rs = rules.Default()
	}
	e.active.Store(rs)
}

// Active returns the active ruleset.
func (e *Engine) Active() *rules.Ruleset { return e.active.Load() }

// SetShadow sets a ruleset evaluated next to the active one, whose outcome
// is reported in Decision.Shadow and never used; nil turns shadow mode off.
func (e *Engine) SetShadow(rs *rules.Ruleset) { e.shadow.Store(rs) }

// Shadow returns the shadow ruleset, or nil.
func (e *Engine) Shadow() *rules.Ruleset { return e.shadow.Load() }

// Assess decides one request (a nil in is an empty request). It reads only the signals the active (and
// shadow) rules reference, fills in.Signals with them, and sets
// in.Request.Time to Now when it is zero. When the signals cannot be read
// the request goes to the device with a reason saying so: failure is
// closed.
func (e *Engine) Assess(ctx context.Context, in *rules.Input) Decision {
	rs, shadow := e.active.Load(), e.shadow.Load()
	if in == nil {
		in = &rules.Input{}
	}
	if in.Request.Time.IsZero() {
		in.Request.Time = e.Now()
	}
	names := rs.Signals()
	if shadow != nil {
		names = union(names, shadow.Signals())
	}
	d := Decision{Ruleset: rs.Digest, RulesetName: rs.Name}
	if len(names) > 0 {
		sig, err := e.read(ctx, in, names)
		if err != nil {
			d.Outcome = rules.Outcome{Level: rules.LevelHigh, Path: rules.PathDevice, Rules: []rules.Match{{
				ID:     MatchSignalsUnavailable,
				Reason: "Risk signals were unavailable, so this request needs your approval.",
				Error:  err.Error(),
			}}}
			return d
		}
		in.Signals = sig
	}
	start := time.Now()
	d.Outcome = e.evaluate(ctx, rs, in)
	d.Elapsed = time.Since(start)
	if shadow != nil {
		so := e.evaluate(ctx, shadow, in)
		d.Shadow, d.ShadowRuleset = &so, shadow.Digest
	}
	return d
}

// evaluate runs rs under the engine's deadline (issue 13 item 5: a rule
// cannot stall a node).
func (e *Engine) evaluate(ctx context.Context, rs *rules.Ruleset, in *rules.Input) rules.Outcome {
	limit := e.Deadline
	if limit <= 0 {
		limit = rules.DefaultDeadline
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return rs.EvaluateContext(ctx, in)
}

func (e *Engine) read(ctx context.Context, in *rules.Input, names []string) (rules.Signals, error) {
	if e.signals == nil {
		return rules.Signals{}, errNoReader
	}
	return e.signals.ReadSignals(ctx, SignalQuery{
		ClientID: in.Agent.ClientID,
		UserID:   in.User.ID,
		Names:    names,
		Now:      in.Request.Time,
	})
}

type errString string

func (e errString) Error() string { return string(e) }

const errNoReader = errString("risk: no signal reader configured")

// union merges two name lists in rules.SignalNames order.
func union(a, b []string) []string {
	set := map[string]bool{}
	for _, n := range a {
		set[n] = true
	}
	for _, n := range b {
		set[n] = true
	}
	var out []string
	for _, n := range rules.SignalNames() {
		if set[n] {
			out = append(out, n)
		}
	}
	return out
}
