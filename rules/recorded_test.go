package rules

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// A recorded input, restored with its event's members, is the input
// evaluated; members that differ from the event's are kept as they were.
func TestRecordedInputRestores(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 17, 20, 996964283, time.UTC)
	full := Input{
		Agent: Agent{ClientID: "bench-poll", Name: "Bench", TrustTier: TrustStandard, Chain: []string{"bench-poll"}},
		User:  User{ID: "user-1", Timezone: "UTC", Attributes: map[string]any{"spending_limit": float64(1000)}},
		Action: Action{Scopes: []string{"openid"}, Details: []map[string]any{
			{"type": "payment_initiation", "amount": "412.50", "currency": "EUR"}, {"type": "agent_action", "action": "read"}},
			RequestedExpiry: 300},
		Request: Request{Kind: KindCIBA, IP: "127.0.0.1", UserAgent: "Go-http-client/1.1", Time: at},
		Signals: Signals{AgentUserRequests1h: 15},
	}
	full.Action.Derive()
	// The event's action is the details as sent; a recorded input read
	// back has JSON numbers and strings, as the details had here.
	sent, _ := json.Marshal(full.Action.Details)
	cases := map[string]struct {
		in                Input
		ev                Recording
		wantAgent, wantIP string
		wantDetails       bool
	}{
		"the event's own members": {full, Recording{"bench-poll", "user-1", "127.0.0.1", at, sent}, "", "", false},
		"members that differ": {full, Recording{"other", "user-1", "10.0.0.1", at.Add(time.Second), json.RawMessage(`[{"type":"x"}]`)},
			"bench-poll", "127.0.0.1", true},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			rec := c.in.Recorded(c.ev)
			if rec.Agent.ClientID != c.wantAgent || rec.Request.IP != c.wantIP || rec.Action.Types != nil || (rec.Action.Details != nil) != c.wantDetails {
				t.Fatalf("recorded: %+v", rec)
			}
			b, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			var back Input
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			back.Restore(c.ev)
			if !reflect.DeepEqual(back, c.in) {
				t.Fatalf("restored\n%+v\nwant\n%+v\nfrom %s", back, c.in, b)
			}
			full, _ := json.Marshal(c.in)
			if !c.wantDetails && len(b) >= len(full)*3/4 {
				t.Fatalf("recorded %d bytes, the input %d: %s", len(b), len(full), b)
			}
		})
	}
}
