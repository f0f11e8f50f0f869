package ciba

import (
	"encoding/json"

	"github.com/countersign/countersign/rules"
)

// storedRisk is the one reading of a request's stored risk decision
// (store.Request.Risk: the rules.Outcome written when the request was
// assessed). The phone's view, the device decision and, through the
// approval it records, the token's approval claim all read it here.
type storedRisk struct {
	rules.Outcome
}

// decodeRisk reads a stored risk decision. A missing or unreadable one
// reads as no level and no rules, as before: the phone still shows the
// request, and the approval names no rule.
func decodeRisk(raw json.RawMessage) storedRisk {
	var r storedRisk
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.Outcome)
	}
	return r
}

// ruleIDs are the ids of the matched (or failed) rules, for the
// approval's rules (and so the token's approval claim); nil when none.
func (r storedRisk) ruleIDs() []string {
	if len(r.Rules) == 0 {
		return nil
	}
	return r.RuleIDs()
}

// view is the risk summary the phone shows. RequiredBy names what sent
// the request to the phone whatever the score: a rule requiring the
// device, a rule that failed to evaluate, or the agent's acr_values.
func (r storedRisk) view() RiskView {
	v := RiskView{Level: r.Level, Score: r.Score, Reasons: []RuleReason{}}
	for _, m := range r.Rules {
		v.Reasons = append(v.Reasons, RuleReason{Rule: m.ID, Reason: m.Reason})
		if m.Decision == rules.DecisionRequireDevice || m.Error != "" || m.ID == rules.MatchACRDevice || m.ID == MatchIntentMandate {
			v.RequiredBy = append(v.RequiredBy, m.ID)
		}
	}
	return v
}
