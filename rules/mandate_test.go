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
