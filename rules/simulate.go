package rules

import (
	"sort"
)

// SimInput is one request to simulate: its input as Evaluate sees it
// (signals included) and, for a recorded decision, its request id.
type SimInput struct {
	RequestID string `json:"request_id,omitempty"`
	Input     Input  `json:"input"`
}

// SimResult is what the active and the candidate ruleset decide for one
// request (docs/api.md POST /admin/rules/simulate).
type SimResult struct {
	RequestID string  `json:"request_id,omitempty"`
	Active    Outcome `json:"active"`
	Candidate Outcome `json:"candidate"`
	// Changed is true when the path differs (the level follows the path).
	Changed bool `json:"changed"`
}

// SimSummary counts the requests whose path changed, by move
// ("policy->device").
type SimSummary struct {
	Total   int            `json:"total"`
	Changed int            `json:"changed"`
	Moves   map[string]int `json:"moves"`
}

// RuleHits is how many simulated requests a rule matched (or failed on).
type RuleHits struct {
	ID   string `json:"id"`
	Hits int    `json:"hits"`
}

// SimReport is the result of Simulate: a summary, one result per input in
// input order, and the rules that fire most under each ruleset.
type SimReport struct {
	Summary  SimSummary  `json:"summary"`
	Results  []SimResult `json:"results"`
	TopRules struct {
		Active    []RuleHits `json:"active"`
		Candidate []RuleHits `json:"candidate"`
	} `json:"top_rules"`
}

// TopRulesN is how many rules SimReport.TopRules lists per ruleset.
const TopRulesN = 10

// Move names a change of path, as SimSummary.Moves counts it.
func Move(from, to string) string { return from + "->" + to }

// Simulate evaluates every input with the active and the candidate
// ruleset (issue 8 "Simulation"). Neither ruleset nor any input is
// modified; inputs are evaluated as given (the caller derives action
// fields and sets request.time).
func Simulate(active, candidate *Ruleset, inputs []SimInput) SimReport {
	var rep SimReport
	rep.Summary = SimSummary{Total: len(inputs), Moves: map[string]int{}}
	rep.Results = make([]SimResult, 0, len(inputs))
	hitsA, hitsC := map[string]int{}, map[string]int{}
	for i := range inputs {
		in := &inputs[i].Input
		r := SimResult{RequestID: inputs[i].RequestID, Active: active.Evaluate(in), Candidate: candidate.Evaluate(in)}
		if r.Active.Path != r.Candidate.Path {
			r.Changed = true
			rep.Summary.Changed++
			rep.Summary.Moves[Move(r.Active.Path, r.Candidate.Path)]++
		}
		for _, m := range r.Active.Rules {
			hitsA[m.ID]++
		}
		for _, m := range r.Candidate.Rules {
			hitsC[m.ID]++
		}
		rep.Results = append(rep.Results, r)
	}
	rep.TopRules.Active, rep.TopRules.Candidate = top(hitsA), top(hitsC)
	return rep
}

// top returns the TopRulesN most hit rules, most hits first, ties by id.
func top(hits map[string]int) []RuleHits {
	out := make([]RuleHits, 0, len(hits))
	for id, n := range hits {
		out = append(out, RuleHits{ID: id, Hits: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Hits != out[j].Hits {
			return out[i].Hits > out[j].Hits
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > TopRulesN {
		out = out[:TopRulesN]
	}
	return out
}
