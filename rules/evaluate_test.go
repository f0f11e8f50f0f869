package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// stepsRuleset has one rule per decision kind, each switched on by a
// user attribute, so a test picks exactly which rules match.
const stepsRuleset = `format: countersign/v1
name: steps
thresholds: {medium: 30, high: 60}
rules:
  - id: deny-it
    when: user.attributes.?deny.orValue(false) == true
    decision: deny
    reason: denied
  - id: phone-it
    when: user.attributes.?phone.orValue(false) == true
    decision: require_device
    reason: phone
  - id: allow-it
    when: user.attributes.?allow.orValue(false) == true
    decision: allow
    reason: allowed
  - id: score-it
    when: has(user.attributes.score)
    score: 10
    reason_expr: '"scored " + string(user.attributes.score)'
  - id: score-more
    when: has(user.attributes.score) && int(user.attributes.score) > 1
    score: 25
    reason: more
  - id: score-most
    when: has(user.attributes.score) && int(user.attributes.score) > 2
    score: 25
    reason: most
  - id: broken
    when: user.attributes.?broken.orValue(false) == true && user.attributes.missing == 1
    score: 1
    reason: never
context_checks:
  - id: office
    require: in_networks(request.ip, ['10.0.0.0/8'])
    reason: not from the office
  - id: has-device
    require: user.devices > 0
    reason: no device
`

func stepsInput(attrs map[string]any) *Input {
	return &Input{
		User:    User{ID: "u1", Attributes: attrs, Devices: 1},
		Request: Request{IP: "10.1.2.3", Time: DefaultTestTime},
	}
}

func mustLoad(t testing.TB, src string) *Ruleset {
	t.Helper()
	rs, err := Load([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestDecisionProcedure(t *testing.T) {
	rs := mustLoad(t, stepsRuleset)
	cases := []struct {
		name   string
		attrs  map[string]any
		edit   func(*Input)
		level  string
		path   string
		score  int64
		rules  []string
		checks []Check
	}{
		{name: "no match: low, policy", attrs: map[string]any{},
			level: LevelLow, path: PathPolicy, rules: []string{}},
		{name: "step 2: deny beats require_device and allow",
			attrs: map[string]any{"deny": true, "phone": true, "allow": true},
			level: LevelHigh, path: PathDeny, rules: []string{"deny-it", "phone-it", "allow-it"}},
		{name: "step 3: require_device beats allow",
			attrs: map[string]any{"phone": true, "allow": true},
			level: LevelHigh, path: PathDevice, rules: []string{"phone-it", "allow-it"}},
		{name: "step 3: acr_values device beats allow",
			attrs: map[string]any{"allow": true},
			edit:  func(in *Input) { in.Action.ACRValues = []string{"urn:other", ACRDevice} },
			level: LevelHigh, path: PathDevice, rules: []string{"allow-it", MatchACRDevice}},
		{name: "step 4: allow overrides a high score",
			attrs: map[string]any{"allow": true, "score": 3},
			level: LevelLow, path: PathPolicy, score: 60, rules: []string{"allow-it", "score-it", "score-more", "score-most"}},
		{name: "step 5: score below medium is low, policy",
			attrs: map[string]any{"score": 1},
			level: LevelLow, path: PathPolicy, score: 10, rules: []string{"score-it"}},
		{name: "step 5: medium with every check passing is context",
			attrs: map[string]any{"score": 2},
			level: LevelMedium, path: PathContext, score: 35, rules: []string{"score-it", "score-more"},
			checks: []Check{{ID: "office", Passed: true}, {ID: "has-device", Passed: true}}},
		{name: "step 5: medium with a failing check is high, device",
			attrs: map[string]any{"score": 2},
			edit:  func(in *Input) { in.Request.IP = "192.0.2.1" },
			level: LevelHigh, path: PathDevice, score: 35, rules: []string{"score-it", "score-more"},
			checks: []Check{{ID: "office", Passed: false, Reason: "not from the office"}, {ID: "has-device", Passed: true}}},
		{name: "step 5: medium with an unparsable IP fails the network check",
			attrs: map[string]any{"score": 2},
			edit:  func(in *Input) { in.Request.IP = "not-an-ip" },
			level: LevelHigh, path: PathDevice, score: 35, rules: []string{"score-it", "score-more"},
			checks: []Check{{ID: "office", Passed: false, Reason: "not from the office"}, {ID: "has-device", Passed: true}}},
		{name: "step 5: high score is device without checks",
			attrs: map[string]any{"score": 3},
			level: LevelHigh, path: PathDevice, score: 60, rules: []string{"score-it", "score-more", "score-most"}},
		{name: "step 6: a runtime error goes to the device even with allow",
			attrs: map[string]any{"broken": true, "allow": true},
			level: LevelHigh, path: PathDevice, rules: []string{"allow-it", "broken"}},
		{name: "step 6: deny still wins over a runtime error",
			attrs: map[string]any{"broken": true, "deny": true},
			level: LevelHigh, path: PathDeny, rules: []string{"deny-it", "broken"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := stepsInput(c.attrs)
			if c.edit != nil {
				c.edit(in)
			}
			out := rs.Evaluate(in)
			if out.Level != c.level || out.Path != c.path || out.Score != c.score {
				t.Errorf("level %s path %s score %d, want %s %s %d", out.Level, out.Path, out.Score, c.level, c.path, c.score)
			}
			if got := out.RuleIDs(); !slices.Equal(got, c.rules) {
				t.Errorf("rules %v, want %v", got, c.rules)
			}
			if fmt.Sprint(out.Checks) != fmt.Sprint(c.checks) {
				t.Errorf("checks %+v, want %+v", out.Checks, c.checks)
			}
		})
	}
}

func TestOutcomeDetails(t *testing.T) {
	rs := mustLoad(t, stepsRuleset)
	out := rs.Evaluate(stepsInput(map[string]any{"score": 2, "broken": true}))
	want := []Match{
		{ID: "score-it", Reason: "scored 2", Score: 10},
		{ID: "score-more", Reason: "more", Score: 25},
		{ID: "broken", Reason: "Rule broken could not be evaluated, so this request needs your approval.",
			Error: "no such key: missing"},
	}
	if fmt.Sprint(out.Rules) != fmt.Sprint(want) {
		t.Errorf("rules:\n got %+v\nwant %+v", out.Rules, want)
	}
	b, err := json.Marshal(rs.Evaluate(stepsInput(map[string]any{"phone": true})))
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"level":"high","path":"device","score":0,"rules":[{"id":"phone-it","reason":"phone","decision":"require_device"}]}`
	if string(b) != wantJSON {
		t.Errorf("JSON %s\nwant %s", b, wantJSON)
	}
}

func TestFailingContextCheckExpression(t *testing.T) {
	rs := mustLoad(t, ruleset(`rules:
  - {id: some, when: 'true', score: 40, reason: r}
context_checks:
  - id: vip
    require: user.attributes.vip == true
    reason: not a VIP
`))
	out := rs.Evaluate(stepsInput(map[string]any{}))
	if out.Path != PathDevice || out.Level != LevelHigh || len(out.Checks) != 1 ||
		out.Checks[0].Passed || out.Checks[0].Error != "no such key: vip" {
		t.Errorf("outcome %+v", out)
	}
}

func TestMediumWithoutChecksIsContext(t *testing.T) {
	rs := mustLoad(t, ruleset("rules:\n  - {id: some, when: 'true', score: 40, reason: r}\n"))
	if out := rs.Evaluate(&Input{}); out.Path != PathContext || out.Level != LevelMedium {
		t.Errorf("outcome %+v", out)
	}
}

func TestRuntimeCostLimitFailsClosed(t *testing.T) {
	// Within the bounds (at most MaxScopes scopes) the estimate is small;
	// an input far beyond them runs into RuntimeCostLimit.
	rs := mustLoad(t, ruleset(`rules:
  - id: pairs
    when: action.scopes.exists(a, action.scopes.exists(b, agent.delegation_depth > 5000))
    score: 1
    reason: r
`))
	in := &Input{}
	for i := range 2000 {
		in.Action.Scopes = append(in.Action.Scopes, fmt.Sprintf("scope-%d", i))
	}
	if in.CheckBounds() == nil {
		t.Fatal("2000 scopes are within the bounds")
	}
	// No deadline: this is about the cost limit, whatever the machine's speed.
	out := rs.EvaluateContext(context.Background(), in)
	if out.Path != PathDevice || len(out.Rules) != 1 || out.Rules[0].ID != "pairs" ||
		!strings.Contains(out.Rules[0].Error, "cost limit exceeded") {
		t.Errorf("outcome %+v", out)
	}
	in.Action.Scopes = in.Action.Scopes[:MaxScopes]
	if out := rs.Evaluate(in); out.Path != PathPolicy || len(out.Rules) != 0 {
		t.Errorf("within bounds: outcome %+v", out)
	}
}

func TestEvaluateDefaultsTimezoneWithoutChangingInput(t *testing.T) {
	rs := mustLoad(t, ruleset(`rules:
  - id: utc
    when: user.timezone == 'UTC'
    score: 1
    reason: r
  - id: local-noon
    when: request.time.getHours(user.timezone) == 12
    score: 1
    reason: r
  - id: nine-in-tokyo
    when: request.time.getHours('Asia/Tokyo') == 21 && request.time.getDayOfWeek('+09:00') == 4
    score: 1
    reason: r
`))
	in := &Input{Request: Request{Time: DefaultTestTime}} // Thursday 12:00 UTC
	out := rs.Evaluate(in)
	if got := out.RuleIDs(); !slices.Equal(got, []string{"utc", "local-noon", "nine-in-tokyo"}) {
		t.Errorf("rules %v", got)
	}
	if in.User.Timezone != "" {
		t.Errorf("Evaluate changed the input's timezone to %q", in.User.Timezone)
	}
	in.User.Timezone = "Mars/Olympus"
	if out := rs.Evaluate(in); out.Path != PathDevice || out.Rules[0].ID != "local-noon" ||
		!strings.Contains(out.Rules[0].Error, "Mars/Olympus") {
		t.Errorf("unknown zone: outcome %+v", out)
	}
}

func TestEvaluateNeverPanics(t *testing.T) {
	rs := Default()
	if out := rs.Evaluate(nil); out.Path != PathPolicy {
		t.Errorf("nil input: %+v", out)
	}
	odd := &Input{User: User{Attributes: map[string]any{
		"spending_limit": "lots", "known_networks": "10.0.0.0/8", "daily_limit": []any{1}}}}
	odd.Action.Details = []map[string]any{{"type": "payment_initiation", "amount": "12"}}
	odd.Action.Derive()
	if out := rs.Evaluate(odd); out.Path != PathDevice || out.Level != LevelHigh {
		t.Errorf("odd attributes: %+v", out)
	}
}

func TestBareVariables(t *testing.T) {
	rs := mustLoad(t, ruleset(`rules:
  - id: bound
    when: cel.bind(a, agent, a.name == 'x' && has(a.chain) && a == agent)
    score: 1
    reason: r
`))
	out := rs.Evaluate(&Input{Agent: Agent{Name: "x", Chain: []string{"x"}}})
	if got := out.RuleIDs(); !slices.Equal(got, []string{"bound"}) {
		t.Errorf("outcome %+v", out)
	}
}

func TestEvaluateConcurrently(t *testing.T) {
	rs := Default()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := benchInput()
			in.Signals.FirstTime = g%2 == 0
			want := PathPolicy
			if in.Signals.FirstTime {
				want = PathContext
			}
			// A generous deadline: this test is about sharing a ruleset
			// between goroutines, not about the time limit (-race on a
			// busy machine can pass DefaultDeadline).
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for range 100 {
				if out := rs.EvaluateContext(ctx, in); out.Path != want {
					t.Errorf("goroutine %d: path %s, want %s", g, out.Path, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestSignalsReferenced(t *testing.T) {
	cases := []struct {
		name  string
		exprs []string
		want  []string
	}{
		{"none", []string{"agent.name == 'x'"}, nil},
		{"select and optional select", []string{"signals.first_time", "signals.?user_pending.orValue(0) > 2 && has(signals.user_spend_24h)"},
			[]string{SignalUserPending, SignalUserSpend24h, SignalFirstTime}},
		{"signals used whole", []string{"cel.bind(s, signals, s.first_time)"}, SignalNames()},
		{"local variable named like a field", []string{"[1].exists(first_time, first_time > 0) && signals.agent_requests_1h > 0"},
			[]string{SignalAgentRequests1h}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("rules:\n")
			for i, e := range c.exprs {
				fmt.Fprintf(&b, "  - {id: r%d, when: %q, score: 1, reason: r}\n", i, e)
			}
			rs := mustLoad(t, ruleset(b.String()))
			if got := rs.Signals(); !slices.Equal(got, c.want) {
				t.Errorf("Signals() = %v, want %v", got, c.want)
			}
		})
	}
	// Context checks and reason expressions count too.
	rs := mustLoad(t, ruleset(`rules:
  - {id: r, when: 'true', score: 1, reason_expr: 'string(signals.agent_user_spend_24h)'}
context_checks:
  - {id: c, require: 'signals.agent_user_denials_24h == 0', reason: r}
`))
	if got, want := rs.Signals(), []string{SignalAgentUserDenials24h, SignalAgentUserSpend24h}; !slices.Equal(got, want) {
		t.Errorf("Signals() = %v, want %v", got, want)
	}
	if got, want := Default().Signals(), []string{SignalAgentUserRequests1h, SignalAgentUserDenials24h,
		SignalUserSpend24h, SignalFirstTime}; !slices.Equal(got, want) {
		t.Errorf("default Signals() = %v, want %v", got, want)
	}
}

func TestRequestTimeDefaultInTests(t *testing.T) {
	rs := mustLoad(t, ruleset(`rules:
  - {id: noon, when: "request.time == timestamp('2026-01-15T12:00:00Z')", score: 1, reason: r}
tests:
  - name: default time
    expect: {path: policy, rules: [noon]}
  - name: explicit time
    input: {request: {time: "2026-01-15T13:00:00+01:00"}}
    expect: {path: policy, rules: [noon]}
  - name: wrong expectation
    input: {request: {time: "2026-01-16T12:00:00Z"}}
    expect: {path: device, level: high, rules: [noon]}
`))
	res := rs.RunTests()
	want := []TestResult{
		{Name: "default time", Passed: true, Expected: Expectation{Path: PathPolicy, Rules: []string{"noon"}},
			Got: Expectation{Path: PathPolicy, Level: LevelLow, Rules: []string{"noon"}}},
		{Name: "explicit time", Passed: true, Expected: Expectation{Path: PathPolicy, Rules: []string{"noon"}},
			Got: Expectation{Path: PathPolicy, Level: LevelLow, Rules: []string{"noon"}}},
		{Name: "wrong expectation", Passed: false, Expected: Expectation{Path: PathDevice, Level: LevelHigh, Rules: []string{"noon"}},
			Got: Expectation{Path: PathPolicy, Level: LevelLow, Rules: []string{}}},
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("results:\n got %+v\nwant %+v", res, want)
	}
	_ = time.UTC
}
