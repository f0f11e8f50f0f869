package rules

import (
	"strings"
	"testing"
	"time"
)

// A covering mandate approves unless a rule denies, a rule asks for the
// device, a rule fails, or the agent asks for the device; rules read the
// mandate's members.
func TestMandatePath(t *testing.T) {
	rs := mustLoad(t, strings.Replace(stepsRuleset, "context_checks:", `  - id: big-spend
    when: mandate.id != "" && action.amount > 0.5 * mandate.remaining_budget && mandate.remaining_uses != 0 && mandate.ends_at > request.time && size(mandate.templates) > 0 && mandate.currency == "EUR" && mandate.intent != ""
    decision: require_device
    reason: more than half of what is left
context_checks:`, 1))
	covering := func(attrs map[string]any, amount float64) *Input {
		in := stepsInput(attrs)
		in.Action.Amount = amount
		in.Mandate = Mandate{ID: "m1", Intent: "travel", Currency: "EUR", RemainingBudget: 100, RemainingUses: -1,
			EndsAt: DefaultTestTime.Add(time.Hour), Templates: []map[string]any{{"type": "agent_action"}}, Covers: true}
		return in
	}
	cases := []struct {
		name string
		in   *Input
		path string
	}{
		{"covered", covering(map[string]any{"score": 3}, 10), PathMandate},
		{"not covered", func() *Input { in := covering(map[string]any{}, 10); in.Mandate.Covers = false; return in }(), PathPolicy},
		{"a deny rule", covering(map[string]any{"deny": true}, 10), PathDeny},
		{"a device rule", covering(map[string]any{"phone": true}, 10), PathDevice},
		{"a rule on the mandate", covering(map[string]any{}, 60), PathDevice},
		{"a failed rule", covering(map[string]any{"broken": true}, 10), PathDevice},
		{"acr_values", func() *Input {
			in := covering(map[string]any{}, 10)
			in.Action.ACRValues = []string{ACRDevice}
			return in
		}(), PathDevice},
	}
	for _, c := range cases {
		if got := rs.Evaluate(c.in); got.Path != c.path {
			t.Errorf("%s: path %s (%+v), want %s", c.name, got.Path, got.Rules, c.path)
		}
	}
	if got := rs.Evaluate(covering(map[string]any{}, 10)); got.Level != LevelLow {
		t.Errorf("mandate level %s, want low", got.Level)
	}
}

// A ruleset's own tests may set the mandate and expect path mandate.
func TestMandateInRulesetTests(t *testing.T) {
	rs := mustLoad(t, `format: countersign/v1
name: m
thresholds: {medium: 30, high: 60}
rules:
  - id: big
    when: mandate.covers && action.amount > mandate.remaining_budget / 2.0
    decision: require_device
    reason: more than half of what is left
tests:
  - name: covered
    input:
      action: {details: [{type: payment_initiation, amount: 10, currency: EUR}]}
      mandate: {id: m1, covers: true, remaining_budget: 100.0, remaining_uses: -1, ends_at: "2026-02-01T00:00:00Z"}
    expect: {path: mandate}
  - name: big
    input:
      action: {details: [{type: payment_initiation, amount: 60, currency: EUR}]}
      mandate: {id: m1, covers: true, remaining_budget: 100.0}
    expect: {path: device, rules: [big]}
`)
	for _, r := range rs.RunTests() {
		if !r.Passed {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
}
