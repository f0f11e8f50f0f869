package rules

import (
	"testing"
	"time"
)

// benchInput is a typical request: a 50 EUR payment by a known agent from a
// known network at noon (policy path, every rule evaluated).
func benchInput() *Input {
	in := &Input{
		Agent: Agent{ClientID: "assistant", Name: "Assistant", TrustTier: TrustStandard},
		User: User{ID: "u1", Timezone: "UTC", Attributes: map[string]any{
			"spending_limit": 1000.0, "known_networks": []any{"203.0.113.0/24"}}},
		Action: Action{Details: []map[string]any{
			{"type": "payment_initiation", "action": "transfer", "amount": 50.0, "currency": "EUR"}}},
		Request: Request{Kind: KindCIBA, IP: "203.0.113.7", Time: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)},
		Signals: Signals{UserSpend24h: 120, AgentUserSpend24h: 120},
	}
	in.Action.Derive()
	return in
}

func BenchmarkEvaluateDefault(b *testing.B) {
	rs := Default()
	in := benchInput()
	b.ReportAllocs()
	for b.Loop() {
		rs.Evaluate(in)
	}
}

// BenchmarkEvaluateDefaultTimezone is the same payment for a user in
// Europe/Berlin: the night-time rule resolves the time zone.
func BenchmarkEvaluateDefaultTimezone(b *testing.B) {
	rs := Default()
	in := benchInput()
	in.User.Timezone = "Europe/Berlin"
	b.ReportAllocs()
	for b.Loop() {
		rs.Evaluate(in)
	}
}
