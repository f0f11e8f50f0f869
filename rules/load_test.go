package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// ruleset builds a ruleset file: the header, then body (already indented).
func ruleset(body string) string {
	return "format: countersign/v1\nname: t\n" + body
}

func problemsOf(t *testing.T, src string) []Problem {
	t.Helper()
	rs, err := Load([]byte(src))
	if err == nil {
		t.Fatalf("Load accepted an invalid ruleset (%d rules):\n%s", len(rs.rules), src)
	}
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load error is %T (%v), want *Problems", err, err)
	}
	return ps.List
}

func TestLoadRefusesWithPosition(t *testing.T) {
	long := strings.Repeat("agent.name == 'x' || ", 100) + "true"
	var many strings.Builder
	many.WriteString("rules:\n")
	for i := range MaxRules + 1 {
		fmt.Fprintf(&many, "  - {id: r%d, when: 'true', score: 1, reason: r}\n", i)
	}
	cases := []struct {
		name string
		src  string
		want Problem // Message is a substring
	}{
		{"format missing", "name: t\n", Problem{Line: 1, Column: 1, Message: "format is required"}},
		{"format wrong", "format: countersign/v2\nname: t\n", Problem{Line: 1, Column: 9, Message: "format must be countersign/v1"}},
		{"name missing", "format: countersign/v1\n", Problem{Line: 1, Column: 1, Message: "name is required"}},
		{"unknown top-level key", ruleset("rulez: []\n"), Problem{Line: 3, Column: 1, Message: `unknown key "rulez"`}},
		{"unknown rule key", ruleset("rules:\n  - id: a\n    when: 'true'\n    score: 1\n    reason: r\n    weight: 3\n"),
			Problem{Rule: "a", Line: 8, Column: 5, Message: `unknown key "weight"`}},
		{"unknown thresholds key", ruleset("thresholds: {medium: 1, high: 2, low: 0}\n"),
			Problem{Line: 3, Column: 34, Message: `unknown key "low"`}},
		{"unknown context check key", ruleset("context_checks:\n  - {id: c, require: 'true', reason: r, score: 3}\n"),
			Problem{Rule: "c", Line: 4, Column: 41, Message: `unknown key "score"`}},
		{"unknown test input field", ruleset("tests:\n  - name: t1\n    input: {agent: {nmae: x}}\n    expect: {path: policy}\n"),
			Problem{Line: 5, Column: 21, Message: `test "t1": unknown key "nmae" in input.agent`}},
		{"unknown expect key", ruleset("tests:\n  - name: t1\n    expect: {path: policy, score: 3}\n"),
			Problem{Line: 5, Column: 28, Message: `unknown key "score" in expect`}},
		{"duplicate id", ruleset("rules:\n  - {id: a, when: 'true', score: 1, reason: r}\n  - {id: a, when: 'true', score: 1, reason: r}\n"),
			Problem{Rule: "a", Line: 5, Column: 10, Message: `duplicate id "a"`}},
		{"bad id", ruleset("rules:\n  - {id: Big_Rule, when: 'true', score: 1, reason: r}\n"),
			Problem{Rule: "Big_Rule", Line: 4, Column: 10, Message: "must match"}},
		{"score and decision", ruleset("rules:\n  - {id: a, when: 'true', score: 1, decision: deny, reason: r}\n"),
			Problem{Rule: "a", Line: 4, Column: 37, Message: "either score or decision"}},
		{"neither score nor decision", ruleset("rules:\n  - {id: a, when: 'true', reason: r}\n"),
			Problem{Rule: "a", Line: 4, Column: 5, Message: "needs a score or a decision"}},
		{"bad decision", ruleset("rules:\n  - {id: a, when: 'true', decision: block, reason: r}\n"),
			Problem{Rule: "a", Line: 4, Column: 37, Message: "decision must be allow, deny or require_device"}},
		{"medium not below high", ruleset("thresholds:\n  medium: 60\n  high: 60\n"),
			Problem{Line: 4, Column: 3, Message: "medium (60) must be below high (60)"}},
		{"too many rules", ruleset(many.String()), Problem{Line: 3, Column: 1, Message: "201 rules: at most 200"}},
		{"expression over 2 KiB", ruleset("rules:\n  - id: a\n    when: \"" + long + "\"\n    score: 1\n    reason: r\n"),
			Problem{Rule: "a", Line: 5, Column: 11, Message: "at most 2048"}},
		{"when not bool", ruleset("rules:\n  - id: a\n    when: action.amount * 2.0\n    score: 1\n    reason: r\n"),
			Problem{Rule: "a", Line: 5, Column: 11, Message: "when must be a bool expression, not double"}},
		{"when is dyn", ruleset("rules:\n  - id: a\n    when: user.attributes.vip\n    score: 1\n    reason: r\n"),
			Problem{Rule: "a", Line: 5, Column: 11, Message: "when must be a bool expression, not dyn"}},
		{"reason_expr not string", ruleset("rules:\n  - id: a\n    when: 'true'\n    score: 1\n    reason_expr: action.amount\n"),
			Problem{Rule: "a", Line: 7, Column: 18, Message: "reason_expr must be a string expression"}},
		{"misspelt field", ruleset("rules:\n  - id: a\n    when: agent.nmae == 'x'\n    score: 1\n    reason: r\n"),
			Problem{Rule: "a", Line: 5, Column: 16, Message: "undefined field 'nmae'"}},
		{"misspelt field in double-quoted scalar", ruleset("rules:\n  - id: a\n    when: \"agent.name == 'x' && user.emial == ''\"\n    score: 1\n    reason: r\n"),
			Problem{Rule: "a", Line: 5, Column: 37, Message: "undefined field 'emial'"}},
		{"type error in literal block", ruleset("rules:\n  - id: a\n    when: |\n      agent.name == 'x' &&\n        action.amount > 'y'\n    score: 1\n    reason: r\n"),
			Problem{Rule: "a", Line: 7, Column: 23, Message: "no matching overload for '_>_'"}},
		{"field on a list in single-quoted scalar", ruleset("rules:\n  - id: a\n    when: 'agent.name == ''x'' && agent.chain.nope'\n    score: 1\n    reason: r\n"),
			Problem{Rule: "a", Line: 5, Column: 46, Message: "does not support field selection"}},
		{"misspelt field in a plain scalar over two lines", ruleset("rules:\n  - id: a\n    when: agent.name == 'x' &&\n      agent.nmae == 'y'\n    score: 1\n    reason: r\n"),
			Problem{Rule: "a", Line: 6, Column: 12, Message: "undefined field 'nmae'"}},
		{"constant bad CIDR", ruleset("context_checks:\n  - id: net\n    require: >-\n      request.ip != '' &&\n      in_networks(request.ip, ['10.0.0.0/8', '300.1.2.3/8'])\n    reason: r\n"),
			Problem{Rule: "net", Line: 7, Column: 46, Message: `bad CIDR "300.1.2.3/8"`}},
		{"estimated cost over the limit", ruleset("rules:\n  - id: a\n    when: action.scopes.all(x, action.scopes.all(y, action.scopes.all(z, x + y + z != '')))\n    score: 1\n    reason: r\n"),
			Problem{Rule: "a", Line: 5, Column: 11, Message: "estimated worst-case cost"}},
		{"YAML syntax error", ruleset("rules:\n  - id: a\n   when: x\n"), Problem{Line: 3, Message: "YAML: did not find expected '-' indicator"}},
		{"derived action field in a test", ruleset("tests:\n  - name: t1\n    input: {action: {amount: 5}}\n    expect: {path: policy}\n"),
			Problem{Line: 5, Column: 22, Message: `test "t1": action.amount is derived from action.details`}},
		{"expect names an unknown rule", ruleset("tests:\n  - name: t1\n    expect: {path: policy, rules: [nope]}\n"),
			Problem{Line: 5, Column: 36, Message: `"nope", which is not a rule`}},
		{"bad expect path", ruleset("tests:\n  - name: t1\n    expect: {path: phone}\n"),
			Problem{Line: 5, Column: 20, Message: "expect.path must be"}},
		{"bad request time in a test", ruleset("tests:\n  - name: t1\n    input: {request: {time: yesterday}}\n    expect: {path: policy}\n"),
			Problem{Line: 5, Column: 29, Message: "RFC 3339"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := problemsOf(t, c.src)
			for _, p := range ps {
				if p.Line == c.want.Line && (c.want.Column == 0 || p.Column == c.want.Column) &&
					p.Rule == c.want.Rule && strings.Contains(p.Message, c.want.Message) {
					return
				}
			}
			t.Errorf("want a problem %+v, got %+v", c.want, ps)
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	src := ruleset(`rules:
  - id: a
    when: agent.nmae == 'x'
    score: 1
    reason: r
  - id: b
    when: 'true'
    decision: maybe
    reason: r
  - id: a
    when: 'true'
    score: 1
    reason: r
`)
	ps := problemsOf(t, src)
	want := []Problem{
		{Rule: "a", Line: 5, Column: 16, Message: "when: undefined field 'nmae'"},
		{Rule: "b", Line: 10, Column: 15, Message: `decision must be allow, deny or require_device, not "maybe"`},
		{Rule: "a", Line: 12, Column: 9, Message: `duplicate id "a"`},
	}
	if fmt.Sprint(ps) != fmt.Sprint(want) {
		t.Errorf("problems:\n got %+v\nwant %+v", ps, want)
	}
	err := &Problems{List: ps}
	if !strings.Contains(err.Error(), "3 problems") || !strings.Contains(err.Error(), "5:16: a: when: undefined field 'nmae'") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestLoadAcceptsAndDigests(t *testing.T) {
	src := []byte(ruleset("description: d\nrules:\n  - {id: a, when: 'true', score: 1, reason: r}\n"))
	rs, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Name != "t" || rs.Description != "d" || string(rs.Source) != string(src) {
		t.Errorf("Name %q Description %q Source %q", rs.Name, rs.Description, rs.Source)
	}
	if rs.Thresholds != (Thresholds{Medium: DefaultMedium, High: DefaultHigh}) {
		t.Errorf("Thresholds = %+v, want the defaults", rs.Thresholds)
	}
	if got := rs.RuleIDs(); len(got) != 1 || got[0] != "a" {
		t.Errorf("RuleIDs = %v", got)
	}
}

func TestDigestIsSHA256OfSource(t *testing.T) {
	rs, err := Load([]byte("format: countersign/v1\nname: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	// printf 'format: countersign/v1\nname: x\n' | sha256sum
	const want = "98323c0a221f288e798c825eb3c7c8ebddf8926b32932281ab8f8b9785a82840"
	if rs.Digest != want {
		t.Errorf("Digest = %s, want %s", rs.Digest, want)
	}
}
