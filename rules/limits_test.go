package rules

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// issuePattern is the pattern of issue 13 item 5: 28 characters that
// compile to about 3,000 instructions.
const issuePattern = `(\pL|\pN|\pP|\pS|\pM){1000}$`

// TestRegexPricedByCompiledSize is the issue's ruleset: 20 rules of 30
// matches() terms with a short pattern that compiles to a huge program.
// Priced by its length it was accepted; it must be refused, each rule with
// its id and the pattern's line and column.
func TestRegexPricedByCompiledSize(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range 20 {
		terms := make([]string, 30)
		for j := range terms {
			terms[j] = fmt.Sprintf("action.binding_message.matches(r'%s')", issuePattern)
		}
		fmt.Fprintf(&b, "  - id: slow-%d\n    when: %s\n    score: 1\n    reason: r\n", i, strings.Join(terms, " || "))
	}
	ps := problemsOf(t, ruleset(b.String()))
	if len(ps) != 20*30 {
		t.Fatalf("%d problems, want one per term (600); first: %v", len(ps), ps[0])
	}
	termLen := len("action.binding_message.matches(r'" + issuePattern + "') || ")
	for i, p := range ps {
		rule, term := i/30, i%30
		// Line 3 is "rules:"; each rule takes four lines, its when the second.
		wantLine, wantCol := 5+4*rule, 11+term*termLen+len("action.binding_message.matches(")
		if p.Rule != fmt.Sprintf("slow-%d", rule) || p.Line != wantLine || p.Column != wantCol ||
			!strings.Contains(p.Message, "instructions: at most 256 are allowed") {
			t.Fatalf("problem %d: %+v, want rule slow-%d at %d:%d", i, p, rule, wantLine, wantCol)
		}
	}
}

func TestRegexPatternsMustBeConstant(t *testing.T) {
	cases := []struct {
		name, when string
		col        int
		msg        string
	}{
		{"pattern from an attribute", "agent.name.matches(string(user.attributes.re))", 36, "needs a constant pattern"},
		// CEL places a call at its parenthesis, an operator at the operator.
		{"global form, computed", "matches(agent.name, agent.name + 'x')", 42, "needs a constant pattern"},
		{"global form, too large", "matches(agent.name, '[a-z]{300}')", 31, "compiles to 302 instructions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := problemsOf(t, ruleset("rules:\n  - id: re\n    when: "+c.when+"\n    score: 1\n    reason: r\n"))
			if len(ps) != 1 || ps[0].Rule != "re" || ps[0].Line != 5 || ps[0].Column != c.col ||
				!strings.Contains(ps[0].Message, c.msg) {
				t.Fatalf("problems %+v, want one for rule re at 5:%d containing %q", ps, c.col, c.msg)
			}
		})
	}
	// A small constant pattern is fine and works.
	rs := mustLoad(t, ruleset("rules:\n  - id: re\n    when: action.binding_message.matches('^Pay [0-9]+ EUR$')\n    score: 40\n    reason: r\n"))
	in := &Input{Action: Action{BindingMessage: "Pay 12 EUR"}}
	if out := rs.Evaluate(in); out.Score != 40 {
		t.Fatalf("outcome %+v", out)
	}
}

// Floating-point division by zero, NaN and infinities are evaluation
// errors, like integer division by zero: the request goes to the device
// with the rule named, whichever way the comparison was written.
func TestNonFiniteDoublesFailClosed(t *testing.T) {
	in := &Input{User: User{Attributes: map[string]any{"limit": 0.0, "zero": 0.0}},
		Action: Action{Details: []map[string]any{{"type": "payment_initiation", "amount": 50.0}}}}
	in.Action.Derive()
	for _, when := range []string{
		"!(action.amount / 0.0 > 100.0)",                         // +Inf
		"!(0.0 / 0.0 > 100.0)",                                   // NaN
		"!(action.amount / double(user.attributes.limit) > 1.0)", // Inf through a dyn member
		"!(user.attributes.zero / user.attributes.zero > 1.0)",   // NaN, dyn / dyn
		"action.amount * 1e308 * 10.0 > 0.0",                     // overflow to +Inf
		"-(action.amount / 0.0) < 0.0",
		"action.amount / 0.0 - action.amount / 0.0 != 1.0",
		"int(action.amount) / 0 > 1", // integer division: already an error
	} {
		t.Run(when, func(t *testing.T) {
			rs := mustLoad(t, ruleset("rules:\n  - id: ratio\n    when: "+fmt.Sprintf("%q", when)+"\n    decision: allow\n    reason: r\n"))
			out := rs.Evaluate(in)
			if out.Path != PathDevice || len(out.Rules) != 1 || out.Rules[0].ID != "ratio" || out.Rules[0].Error == "" ||
				!strings.Contains(out.Rules[0].Reason, "Rule ratio could not be evaluated") {
				t.Fatalf("outcome %+v", out)
			}
		})
	}
	// A constant that is not finite is found when the ruleset is loaded.
	for _, when := range []string{"!(double('NaN') < 1.0)", "double('-inf') < 0.0"} {
		ps := problemsOf(t, ruleset("rules:\n  - id: nan\n    when: "+fmt.Sprintf("%q", when)+"\n    decision: allow\n    reason: r\n"))
		if len(ps) != 1 || ps[0].Rule != "nan" || ps[0].Line != 5 || !strings.Contains(ps[0].Message, "not a finite number") {
			t.Errorf("%s: problems %+v", when, ps)
		}
	}
	// Finite arithmetic is untouched.
	rs := mustLoad(t, ruleset("rules:\n  - id: half\n    when: action.amount / 2.0 == 25.0 && -action.amount < 0.0 && double('1.5') > 1.0\n    decision: allow\n    reason: r\n"))
	if out := rs.Evaluate(in); out.Path != PathPolicy {
		t.Fatalf("finite arithmetic: %+v", out)
	}
}

// The deadline covers the whole evaluation: once it has passed, the rule
// running fails (named in the reason), later rules are not evaluated, and
// the request goes to the device even if a later rule would allow it.
func TestDeadlineFailsClosed(t *testing.T) {
	rs := mustLoad(t, ruleset(`rules:
  - id: first
    when: action.scopes.exists(s, s == 'x')
    score: 1
    reason: r
  - id: second
    when: "true"
    decision: allow
    reason: r
`))
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	out := rs.EvaluateContext(ctx, &Input{})
	if out.Path != PathDevice || len(out.Rules) != 1 || out.Rules[0].ID != "first" ||
		out.Rules[0].Error != "the rules ran past their time limit" ||
		out.Rules[0].Reason != "Rule first could not be evaluated, so this request needs your approval." {
		t.Fatalf("outcome %+v", out)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if out := rs.EvaluateContext(ctx, &Input{}); out.Path != PathDevice ||
		!strings.Contains(out.Rules[0].Error, "cancelled") {
		t.Fatalf("cancelled: %+v", out)
	}
	if out := rs.Evaluate(&Input{}); out.Path != PathPolicy {
		t.Fatalf("within the default deadline: %+v", out)
	}
}

// slowRules has one rule within the cost model but slow on a long binding
// message (a 243-instruction pattern over 1,024 characters: about 350 µs
// on a loaded CI machine, ten times the limit the test sets), one fast rule
// and one fast context check (well under a microsecond).
const slowRules = `rules:
  - id: fast
    when: agent.delegation_depth > 1
    score: 1
    reason: r
  - id: slow
    when: action.binding_message.matches(r'(\pL|\pN|\pP|\pS|\pM){80}$')
    score: 1
    reason: r
context_checks:
  - id: quick
    require: size(action.scopes) < 3
    reason: r
`

// Validation runs every rule on sample inputs at the bounds and refuses one
// slower than the limit, naming it at its expression; fast rules pass.
func TestCheckSpeedRefusesSlowRules(t *testing.T) {
	rs := mustLoad(t, ruleset(slowRules))
	ps := rs.CheckSpeed(30 * time.Microsecond)
	if len(ps) != 1 || ps[0].Rule != "slow" || ps[0].Line != 9 || ps[0].Column != 11 ||
		!strings.Contains(ps[0].Message, "at most 30µs is allowed") {
		t.Fatalf("problems %+v, want one for rule slow at 9:11", ps)
	}
	if ps := Default().CheckSpeed(0); len(ps) != 0 {
		t.Fatalf("the default ruleset is too slow: %+v", ps)
	}
}

// The synthetic inputs set the keys the rules name, so a rule that is slow
// only on a user attribute it reads is found too.
func TestCheckSpeedUsesTheNamedKeys(t *testing.T) {
	rs := mustLoad(t, ruleset(`rules:
  - id: nets
    when: in_networks(request.ip, user.attributes.?office_networks.orValue([]))
    score: 1
    reason: r
`))
	var found bool
	for _, in := range rs.sampleInputs() {
		if nets, ok := in.User.Attributes["office_networks"].([]any); ok && len(nets) == MaxNested {
			found = true
		}
		if in.boundsViolation() != "" {
			t.Errorf("a sample input is out of bounds: %s", in.boundsViolation())
		}
	}
	if !found {
		t.Fatal("no sample input sets user.attributes.office_networks to a full CIDR list")
	}
}

// An alias bomb (each level ten aliases of the one before) is refused at
// once, before the loader walks the expanded tree; moderate aliasing works.
func TestAliasBombRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("tests:\n  - name: t\n    expect: {path: policy}\n    input:\n      user:\n        attributes:\n")
	b.WriteString("          l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "          l%d: &l%d [%s]\n", i, i, strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9)+fmt.Sprintf("*l%d", i-1))
	}
	ps := problemsOf(t, ruleset(b.String()))
	if len(ps) != 1 || ps[0].Line != 1 || !strings.Contains(ps[0].Message, "at most 100000 are allowed") {
		t.Fatalf("problems %+v", ps)
	}
	mustLoad(t, ruleset(`rules:
  - &r {id: a, when: 'true', score: 1, reason: r}
tests:
  - name: t
    input: &in {action: {details: [{type: x}]}}
    expect: {path: policy}
  - name: u
    input: *in
    expect: {path: policy}
`))
}
