package rules

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
)

// DefaultRuleTimeLimit is the longest one rule (its when and reason_expr)
// or context check may take on any sample input when a ruleset is
// validated (CheckSpeed).
const DefaultRuleTimeLimit = time.Millisecond

// speedTestInputs is how many of a ruleset's own test inputs CheckSpeed
// uses besides its synthetic ones; it keeps validation time bounded.
const speedTestInputs = 50

// speedRuns is how many times a rule that looks too slow is run again: the
// fastest run counts, so a pause of the machine (GC, another process) does
// not refuse a rule.
const speedRuns = 3

// CheckSpeed runs every rule and context check against sample inputs (the
// first test inputs of the ruleset, and synthetic inputs at the declared
// bounds: every string MaxStringLen characters, every list full, every
// user.attributes or details key the rules name set to long strings, CIDR
// lists and numbers) and reports, for each one slower than limit on some
// input, a problem naming it at its expression. limit <= 0 means
// DefaultRuleTimeLimit. Load does not call it, as its outcome depends on
// the machine: the admin API and `countersign rules validate` do, before a
// ruleset can become active.
func (rs *Ruleset) CheckSpeed(limit time.Duration) []Problem {
	if limit <= 0 {
		limit = DefaultRuleTimeLimit
	}
	inputs := rs.sampleInputs()
	var out []Problem
	for _, r := range rs.rules {
		progs := []*program{r.when, r.reasonExpr}
		if p := slowest(progs, inputs, limit); p > limit {
			out = append(out, Problem{Rule: r.id, Line: r.line, Column: r.col,
				Message: fmt.Sprintf("the rule took %v on a sample input: at most %v is allowed", p.Round(time.Microsecond), limit)})
		}
	}
	for _, c := range rs.checks {
		if p := slowest([]*program{c.require}, inputs, limit); p > limit {
			out = append(out, Problem{Rule: c.id, Line: c.line, Column: c.col,
				Message: fmt.Sprintf("the context check took %v on a sample input: at most %v is allowed", p.Round(time.Microsecond), limit)})
		}
	}
	return out
}

// slowest returns the longest time progs took together on one input; once
// an input is over limit it is retried and its fastest run kept.
func slowest(progs []*program, inputs []*Input, limit time.Duration) time.Duration {
	var worst time.Duration
	for _, in := range inputs {
		act := newActivation(in)
		best := time.Duration(-1)
		for range speedRuns {
			d := timeRun(progs, act, limit)
			if best < 0 || d < best {
				best = d
			}
			if best <= limit {
				break
			}
		}
		worst = max(worst, best)
		if worst > limit {
			return worst
		}
	}
	return worst
}

// timeRun runs progs once; the evaluation is stopped at ten times limit,
// so that a very slow rule does not hold validation up.
func timeRun(progs []*program, act *activation, limit time.Duration) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 10*limit)
	defer cancel()
	start := time.Now()
	for _, p := range progs {
		if p != nil {
			_, _ = p.eval(ctx, act)
		}
	}
	return time.Since(start)
}

// sampleInputs are the inputs CheckSpeed runs: the first test inputs and
// the synthetic worst cases.
func (rs *Ruleset) sampleInputs() []*Input {
	var out []*Input
	for i, t := range rs.tests {
		if i == speedTestInputs {
			break
		}
		in := t.input
		out = append(out, &in)
	}
	names := rs.memberNames()
	long := string([]rune(strings.Repeat("Aé 9.-_/:@%", MaxStringLen/11+1))[:MaxStringLen])
	out = append(out, &Input{Request: Request{Time: DefaultTestTime}})
	for _, v := range []func(i int) any{
		func(int) any { return long },
		func(i int) any { return float64(i) * 1000.5 },
		func(i int) any {
			nets := make([]any, MaxNested)
			for j := range nets {
				nets[j] = fmt.Sprintf("10.%d.%d.0/24", i%256, j)
			}
			return nets
		},
	} {
		out = append(out, worstInput(long, names, v))
	}
	return out
}

// worstInput fills every field to its bound; the member names the rules
// use get value(i), other keys long strings.
func worstInput(long string, names []string, value func(i int) any) *Input {
	strs := func(n int) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = string([]rune(long)[:MaxStringLen-4]) + fmt.Sprintf("%04d", i)
		}
		return l
	}
	entry := func(limit int) map[string]any {
		m := map[string]any{}
		for i, n := range names {
			if len(m) == limit {
				break
			}
			m[n] = value(i)
		}
		for i := 0; len(m) < limit; i++ {
			m[fmt.Sprintf("k%d", i)] = long
		}
		return m
	}
	details := make([]map[string]any, MaxDetails)
	for i := range details {
		details[i] = entry(MaxDetailEntries)
	}
	in := &Input{
		Agent: Agent{ClientID: long, Name: long, Owner: long, TrustTier: long, Model: long, Version: long,
			DelegationDepth: 1 << 20, Chain: strs(MaxChain)},
		User: User{ID: long, Email: long, Timezone: "America/New_York", Attributes: entry(MaxAttributes), Devices: 1 << 20},
		Action: Action{Scopes: strs(MaxScopes), Details: details, BindingMessage: long, RequestedExpiry: 1 << 30,
			ACRValues: strs(MaxACRValues)},
		Request: Request{Kind: long, IP: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", UserAgent: long, Time: DefaultTestTime},
		Signals: Signals{AgentRequests1h: 1 << 30, AgentUserRequests1h: 1 << 30, UserPending: 1 << 30,
			AgentUserDenials24h: 1 << 30, UserSpend24h: 1e12, AgentUserSpend24h: 1e12, FirstTime: true},
	}
	in.Action.Derive()
	in.Action.Types, in.Action.Actions = strs(MaxDetails), strs(MaxDetails)
	return in
}

// memberNames lists every field name the expressions select (`x.name`,
// `x.?name`) or index with a constant (`x['name']`), so that the synthetic
// inputs set those keys of user.attributes and the details entries.
func (rs *Ruleset) memberNames() []string {
	var asts []*cel.Ast
	for _, r := range rs.rules {
		asts = append(asts, r.asts...)
	}
	for _, c := range rs.checks {
		asts = append(asts, c.asts...)
	}
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, a := range asts {
		ast.PreOrderVisit(a.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
			switch e.Kind() {
			case ast.SelectKind:
				add(e.AsSelect().FieldName())
			case ast.CallKind:
				call := e.AsCall()
				if f := call.FunctionName(); (f == operators.OptSelect || f == operators.Index || f == operators.OptIndex) &&
					len(call.Args()) == 2 && call.Args()[1].Kind() == ast.LiteralKind {
					if s, ok := call.Args()[1].AsLiteral().Value().(string); ok {
						add(s)
					}
				}
			}
		}))
	}
	return out
}

// newActivation is the activation Evaluate builds for in.
func newActivation(in *Input) *activation {
	act := &activation{in: in, user: &in.User, bounded: in.boundsViolation() == ""}
	if in.User.Timezone == "" {
		// docs/rules.md "The CEL environment": user.timezone defaults to UTC.
		u := in.User
		u.Timezone = "UTC"
		act.user = &u
	}
	return act
}
