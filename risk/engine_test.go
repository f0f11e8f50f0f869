package risk

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/countersign/countersign/rules"
)

// recordingReader stands in for the store at the SignalReader boundary: it
// records every query and answers with fixed signals or an error.
type recordingReader struct {
	mu      sync.Mutex
	queries []SignalQuery
	answer  rules.Signals
	err     error
}

func (r *recordingReader) ReadSignals(ctx context.Context, q SignalQuery) (rules.Signals, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, q)
	if err := ctx.Err(); err != nil {
		return rules.Signals{}, err
	}
	return r.answer, r.err
}

var noon = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

// payment is the docs/rules.md table's 50 EUR payment by a standard agent from
// a known network at noon.
func payment() *rules.Input {
	in := &rules.Input{
		Agent: rules.Agent{ClientID: "assistant", TrustTier: rules.TrustStandard},
		User: rules.User{ID: "u1", Timezone: "UTC", Attributes: map[string]any{
			"spending_limit": 1000.0, "known_networks": []any{"203.0.113.0/24"}}},
		Action: rules.Action{Details: []map[string]any{
			{"type": "payment_initiation", "action": "transfer", "amount": 50.0, "currency": "EUR"}}},
		Request: rules.Request{Kind: rules.KindCIBA, IP: "203.0.113.7", Time: noon},
	}
	in.Action.Derive()
	return in
}

func load(t testing.TB, src string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Load([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestAssessReadsOnlyReferencedSignals(t *testing.T) {
	r := &recordingReader{answer: rules.Signals{FirstTime: true}}
	e := NewEngine(r, nil)
	d := e.Assess(context.Background(), payment())
	if len(r.queries) != 1 {
		t.Fatalf("%d reads, want 1", len(r.queries))
	}
	want := SignalQuery{ClientID: "assistant", UserID: "u1", Now: noon, Names: []string{
		rules.SignalAgentUserRequests1h, rules.SignalAgentUserDenials24h, rules.SignalUserSpend24h, rules.SignalFirstTime}}
	q := r.queries[0]
	if q.ClientID != want.ClientID || q.UserID != want.UserID || !q.Now.Equal(want.Now) || !slices.Equal(q.Names, want.Names) {
		t.Errorf("query %+v, want %+v", q, want)
	}
	// The signals read decide: a first payment from a known network is
	// medium risk that passes the context check.
	if d.Path != rules.PathContext || d.Level != rules.LevelMedium ||
		!slices.Equal(d.RuleIDs(), []string{"first-payment-by-agent"}) {
		t.Errorf("decision %+v", d)
	}
	if d.Ruleset != rules.Default().Digest || d.RulesetName != "default" {
		t.Errorf("ruleset %q %q", d.Ruleset, d.RulesetName)
	}
}

func TestAssessSkipsReaderWithoutSignals(t *testing.T) {
	r := &recordingReader{err: errors.New("must not be called")}
	e := NewEngine(r, load(t, `format: countersign/v1
name: no-signals
rules:
  - {id: big, when: 'action.amount > 10.0', decision: require_device, reason: big}
`))
	d := e.Assess(context.Background(), payment())
	if len(r.queries) != 0 {
		t.Errorf("reader called %d times", len(r.queries))
	}
	if d.Path != rules.PathDevice || !slices.Equal(d.RuleIDs(), []string{"big"}) {
		t.Errorf("decision %+v", d)
	}
	// Without a reader at all, too.
	if d := NewEngine(nil, e.Active()).Assess(context.Background(), payment()); d.Path != rules.PathDevice {
		t.Errorf("nil reader: %+v", d)
	}
}

func TestAssessFailsClosedWhenSignalsFail(t *testing.T) {
	for name, e := range map[string]*Engine{
		"reader error": NewEngine(&recordingReader{err: errors.New("redis: connection refused")}, nil),
		"no reader":    NewEngine(nil, nil),
	} {
		d := e.Assess(context.Background(), payment())
		if d.Path != rules.PathDevice || d.Level != rules.LevelHigh || len(d.Rules) != 1 ||
			d.Rules[0].ID != MatchSignalsUnavailable || d.Rules[0].Reason != "Risk signals were unavailable, so this request needs your approval." {
			t.Errorf("%s: decision %+v", name, d)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := NewEngine(&recordingReader{}, nil).Assess(ctx, payment())
	if d.Path != rules.PathDevice || d.Rules[0].Error != context.Canceled.Error() {
		t.Errorf("cancelled: %+v", d)
	}
}

func TestAssessDefaultsRequestTime(t *testing.T) {
	r := &recordingReader{}
	e := NewEngine(r, nil)
	at := time.Date(2026, 1, 15, 2, 0, 0, 0, time.UTC)
	e.Now = func() time.Time { return at }
	in := payment()
	in.Request.Time = time.Time{}
	r.answer = rules.Signals{FirstTime: true}
	d := e.Assess(context.Background(), in)
	if !in.Request.Time.Equal(at) || !r.queries[0].Now.Equal(at) {
		t.Errorf("request time %v, query time %v", in.Request.Time, r.queries[0].Now)
	}
	// 02:00 UTC: the night-time rule adds up with the first payment.
	if d.Path != rules.PathDevice || !slices.Equal(d.RuleIDs(), []string{"first-payment-by-agent", "night-time-payment"}) {
		t.Errorf("decision %+v", d)
	}
}

func TestSwapAndShadow(t *testing.T) {
	r := &recordingReader{}
	e := NewEngine(r, nil)
	strict := load(t, `format: countersign/v1
name: strict
rules:
  - {id: everything, when: 'signals.user_pending >= 0', decision: require_device, reason: always}
`)
	e.SetShadow(strict)
	d := e.Assess(context.Background(), payment())
	if d.Path != rules.PathPolicy || d.Shadow == nil || d.Shadow.Path != rules.PathDevice ||
		d.ShadowRuleset != strict.Digest || d.Ruleset != rules.Default().Digest {
		t.Errorf("shadow: decision %+v shadow %+v", d, d.Shadow)
	}
	if got := r.queries[0].Names; !slices.Contains(got, rules.SignalUserPending) || !slices.Contains(got, rules.SignalFirstTime) {
		t.Errorf("names %v: want the union of both rulesets' signals", got)
	}
	e.SetShadow(nil)
	e.Swap(strict)
	if e.Active() != strict || e.Shadow() != nil {
		t.Error("Swap/SetShadow not reflected")
	}
	d = e.Assess(context.Background(), payment())
	if d.Path != rules.PathDevice || d.Shadow != nil || d.RulesetName != "strict" {
		t.Errorf("after swap: %+v", d)
	}
	e.Swap(nil)
	if e.Active() != rules.Default() {
		t.Error("Swap(nil) is not the default")
	}
}

func TestSwapWhileAssessing(t *testing.T) {
	e := NewEngine(&recordingReader{}, nil)
	strict := load(t, `format: countersign/v1
name: strict
rules:
  - {id: everything, when: 'true', decision: require_device, reason: always}
`)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g == 0 && i%10 == 0 {
					if i%20 == 0 {
						e.Swap(strict)
					} else {
						e.Swap(nil)
					}
				}
				d := e.Assess(context.Background(), payment())
				if (d.RulesetName == "strict") != (d.Path == rules.PathDevice) {
					t.Errorf("ruleset %s gave path %s", d.RulesetName, d.Path)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// memoryReader is a trivial in-memory SignalReader for the benchmark.
type memoryReader struct{ s rules.Signals }

func (m memoryReader) ReadSignals(context.Context, SignalQuery) (rules.Signals, error) {
	return m.s, nil
}

func BenchmarkAssess(b *testing.B) {
	e := NewEngine(memoryReader{rules.Signals{UserSpend24h: 120}}, nil)
	in := payment()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.Assess(ctx, in)
	}
}

// The engine's Deadline bounds each evaluation (active and shadow): a
// deadline that has passed before the first rule fails that rule, and the
// request goes to the device naming it; the default deadline lets the
// same request through.
func TestAssessDeadline(t *testing.T) {
	rs := load(t, `format: countersign/v1
name: d
rules:
  - id: reads-pass
    when: "'agent_action' in action.types"
    decision: allow
    reason: Reads are fine.
`)
	in := func() *rules.Input {
		in := &rules.Input{Action: rules.Action{Details: []map[string]any{{"type": "agent_action", "action": "read"}}}}
		in.Action.Derive()
		return in
	}
	e := NewEngine(nil, rs)
	e.SetShadow(rs)
	if d := e.Assess(context.Background(), in()); d.Path != rules.PathPolicy || d.Shadow.Path != rules.PathPolicy {
		t.Fatalf("default deadline: %+v", d)
	}
	e.Deadline = time.Nanosecond
	d := e.Assess(context.Background(), in())
	for _, o := range []rules.Outcome{d.Outcome, *d.Shadow} {
		if o.Path != rules.PathDevice || len(o.Rules) != 1 || o.Rules[0].ID != "reads-pass" ||
			o.Rules[0].Error != "the rules ran past their time limit" {
			t.Errorf("outcome past the deadline: %+v", o)
		}
	}
}
