package rules

import (
	"reflect"
	"testing"
)

const simActive = `format: countersign/v1
name: active
rules:
  - id: big
    when: action.amount > 100.0
    decision: require_device
    reason: big
  - id: reads
    when: "'read' in action.actions"
    decision: allow
    reason: reads
`

// The candidate lowers the limit to 10 and denies deletes.
const simCandidate = `format: countersign/v1
name: candidate
rules:
  - id: big
    when: action.amount > 10.0
    decision: require_device
    reason: big
  - id: reads
    when: "'read' in action.actions"
    decision: allow
    reason: reads
  - id: no-delete
    when: "'delete' in action.actions"
    decision: deny
    reason: no deletes
`

func simIn(id string, amount float64, action string) SimInput {
	in := SimInput{RequestID: id}
	d := map[string]any{"type": "x", "action": action}
	if amount > 0 {
		d["amount"] = amount
	}
	in.Input.Action.Details = []map[string]any{d}
	in.Input.Action.Derive()
	in.Input.Request.Time = DefaultTestTime
	return in
}

func TestSimulateMovesAndTopRules(t *testing.T) {
	active, candidate := mustLoad(t, simActive), mustLoad(t, simCandidate)
	inputs := []SimInput{
		simIn("r1", 50, "pay"),   // policy -> device
		simIn("r2", 500, "pay"),  // device -> device
		simIn("r3", 0, "read"),   // policy -> policy
		simIn("r4", 0, "delete"), // policy -> deny
		simIn("r5", 20, "pay"),   // policy -> device
	}
	before := inputs[0].Input
	rep := Simulate(active, candidate, inputs)
	if rep.Summary.Total != 5 || rep.Summary.Changed != 3 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	if want := map[string]int{"policy->device": 2, "policy->deny": 1}; !reflect.DeepEqual(rep.Summary.Moves, want) {
		t.Fatalf("moves %v, want %v", rep.Summary.Moves, want)
	}
	changed := []bool{true, false, false, true, true}
	for i, r := range rep.Results {
		if r.RequestID != inputs[i].RequestID || r.Changed != changed[i] {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if r := rep.Results[3]; r.Active.Path != PathPolicy || r.Candidate.Path != PathDeny || r.Candidate.Rules[0].ID != "no-delete" {
		t.Fatalf("r4: %+v", r)
	}
	wantA := []RuleHits{{"big", 1}, {"reads", 1}}
	wantC := []RuleHits{{"big", 3}, {"no-delete", 1}, {"reads", 1}}
	if !reflect.DeepEqual(rep.TopRules.Active, wantA) || !reflect.DeepEqual(rep.TopRules.Candidate, wantC) {
		t.Fatalf("top rules %+v / %+v", rep.TopRules.Active, rep.TopRules.Candidate)
	}
	if !reflect.DeepEqual(inputs[0].Input, before) {
		t.Fatal("Simulate modified its input")
	}
}

func TestSimulateEmpty(t *testing.T) {
	rep := Simulate(Default(), Default(), nil)
	if rep.Summary.Total != 0 || rep.Summary.Changed != 0 || rep.Summary.Moves == nil || rep.Results == nil {
		t.Fatalf("%+v", rep)
	}
}

// A candidate whose rule fails at run time sends the request to the
// device: simulation shows that move, like live traffic would get it.
func TestSimulateRuntimeErrorFailsClosed(t *testing.T) {
	candidate := mustLoad(t, `format: countersign/v1
name: broken-at-runtime
rules:
  - id: limit
    when: action.amount > double(user.attributes.limit)
    score: 10
    reason: over
`)
	rep := Simulate(mustLoad(t, simActive), candidate, []SimInput{simIn("r1", 5, "pay")})
	r := rep.Results[0]
	if r.Candidate.Path != PathDevice || r.Candidate.Rules[0].Error == "" || rep.Summary.Moves["policy->device"] != 1 {
		t.Fatalf("%+v", r)
	}
}

// BenchmarkLoadDefault is the compile time of the default ruleset (parse,
// type-check, cost estimate, compile, load its tests).
func BenchmarkLoadDefault(b *testing.B) {
	for b.Loop() {
		if _, err := Load(DefaultSource); err != nil {
			b.Fatal(err)
		}
	}
}
