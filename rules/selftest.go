package rules

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultTestTime is request.time in a test input that does not set it
// (docs/rules.md "Tests in a ruleset").
var DefaultTestTime = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

// TestResult is the result of one test of a ruleset (docs/api.md
// `/admin/rules/test`).
type TestResult struct {
	Name     string      `json:"name"`
	Passed   bool        `json:"passed"`
	Expected Expectation `json:"expected"`
	Got      Expectation `json:"got"`
}

// Expectation is what a test expects, or what it got: the path, and
// optionally the level and the exact set of matched rule ids (any order).
type Expectation struct {
	Path  string   `json:"path"`
	Level string   `json:"level,omitempty"`
	Rules []string `json:"rules,omitempty"`
}

type testCase struct {
	name     string
	input    Input
	expect   Expectation
	hasRules bool // expect.rules was given (possibly empty)
}

// RunTests runs the `tests:` of the ruleset, in file order.
func (rs *Ruleset) RunTests() []TestResult {
	out := make([]TestResult, 0, len(rs.tests))
	for _, t := range rs.tests {
		in := t.input
		o := rs.Evaluate(&in)
		got := Expectation{Path: o.Path, Level: o.Level, Rules: o.RuleIDs()}
		sort.Strings(got.Rules)
		want := t.expect
		passed := got.Path == want.Path &&
			(want.Level == "" || want.Level == got.Level) &&
			(!t.hasRules || sameSet(want.Rules, got.Rules))
		out = append(out, TestResult{Name: t.name, Passed: passed, Expected: want, Got: got})
	}
	return out
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

func (l *loader) test(n *yaml.Node) *testCase {
	f := l.fields("", "a test", n, "name", "input", "expect")
	if n.Kind != yaml.MappingNode {
		return nil
	}
	t := &testCase{}
	if e, ok := f["name"]; !ok {
		l.at("", n, "a test needs a name")
	} else {
		t.name, _ = l.str("", "test name", e.val)
	}
	owner := testOwner(t.name)
	if e, ok := f["input"]; ok && !isNull(e.val) {
		l.decode(owner, "input", e.val, reflect.ValueOf(&t.input).Elem())
		if e.val.Kind == yaml.MappingNode {
			l.refuseDerived(owner, e.val.Content)
		}
	}
	t.input.Action.Derive()
	if t.input.Request.Time.IsZero() {
		t.input.Request.Time = DefaultTestTime
	}
	e, ok := f["expect"]
	if !ok {
		l.at(owner, n, "a test needs expect: {path: ...}")
		return t
	}
	x := l.fields(owner, "expect", e.val, "path", "level", "rules")
	if p, ok := x["path"]; !ok {
		l.at(owner, e.val, "expect needs a path")
	} else if v, ok := l.str(owner, "expect.path", p.val); ok {
		if !slices.Contains([]string{PathPolicy, PathContext, PathDevice, PathDeny, PathMandate}, v) {
			l.at(owner, p.val, "expect.path must be policy, context, device, deny or mandate, not %q", v)
		}
		t.expect.Path = v
	}
	if p, ok := x["level"]; ok {
		if v, ok := l.str(owner, "expect.level", p.val); ok {
			if !slices.Contains([]string{LevelLow, LevelMedium, LevelHigh}, v) {
				l.at(owner, p.val, "expect.level must be low, medium or high, not %q", v)
			}
			t.expect.Level = v
		}
	}
	if p, ok := x["rules"]; ok {
		t.hasRules = true
		t.expect.Rules = []string{}
		if p.val.Kind != yaml.SequenceNode {
			l.at(owner, p.val, "expect.rules must be a list of rule ids")
		}
		for _, r := range p.val.Content {
			id, ok := l.str(owner, "expect.rules entry", r)
			if !ok {
				continue
			}
			if !l.ruleIDs[id] && id != MatchACRDevice {
				l.at(owner, r, "expect.rules names %q, which is not a rule of this ruleset", id)
			}
			t.expect.Rules = append(t.expect.Rules, id)
		}
		sort.Strings(t.expect.Rules)
	}
	return t
}

// refuseDerived refuses action.types/actions/amount/currency in a test
// input: they are derived from action.details (docs/rules.md "Tests in a
// ruleset"), and a test that set them would not show what a live request
// does.
func (l *loader) refuseDerived(owner string, input []*yaml.Node) {
	for i := 0; i+1 < len(input); i += 2 {
		if input[i].Value != "action" || input[i+1].Kind != yaml.MappingNode {
			continue
		}
		a := input[i+1].Content
		for j := 0; j+1 < len(a); j += 2 {
			switch a[j].Value {
			case "types", "actions", "amount", "currency":
				l.at(owner, a[j], "action.%s is derived from action.details; set the details instead", a[j].Value)
			}
		}
	}
}

var timeType = reflect.TypeFor[time.Time]()

// decode fills v (a field of Input) from a YAML node by the `json` names,
// refusing unknown keys with their position.
func (l *loader) decode(owner, path string, n *yaml.Node, v reflect.Value) {
	if isNull(n) {
		return
	}
	t := v.Type()
	switch {
	case t == timeType:
		ts, err := time.Parse(time.RFC3339, n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			l.at(owner, n, "%s must be an RFC 3339 time like 2026-01-15T12:00:00Z", path)
			return
		}
		v.Set(reflect.ValueOf(ts))
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			l.at(owner, n, "%s must be a mapping", path)
			return
		}
		byName := map[string]int{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			byName[name] = i
			names = append(names, name)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			idx, ok := byName[k.Value]
			switch {
			case !ok:
				l.at(owner, k, "unknown key %q in %s (allowed: %s)", k.Value, path, strings.Join(names, ", "))
			case seen[k.Value]:
				l.at(owner, k, "duplicate key %q in %s", k.Value, path)
			default:
				seen[k.Value] = true
				l.decode(owner, path+"."+k.Value, n.Content[i+1], v.Field(idx))
			}
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			l.at(owner, n, "%s must be a string", path)
			return
		}
		v.SetString(n.Value)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		if n.Kind != yaml.SequenceNode {
			l.at(owner, n, "%s must be a list of strings", path)
			return
		}
		out := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				l.at(owner, e, "%s must be a list of strings", path)
				return
			}
			out = append(out, e.Value)
		}
		v.Set(reflect.ValueOf(out))
	default: // numbers, bools, attributes, details
		p := reflect.New(t)
		if err := n.Decode(p.Interface()); err != nil {
			l.at(owner, n, "%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
			return
		}
		v.Set(p.Elem())
	}
}
