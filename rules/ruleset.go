package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// Format is the only ruleset format this package reads (docs/rules.md "A
// ruleset": `format: countersign/v1`).
const Format = "countersign/v1"

// Decisions a rule may take (docs/rules.md "A ruleset").
const (
	DecisionAllow         = "allow"
	DecisionDeny          = "deny"
	DecisionRequireDevice = "require_device"
)

// Default thresholds when a ruleset has no `thresholds:`.
const (
	DefaultMedium = 30
	DefaultHigh   = 60
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Ruleset is a loaded, validated and compiled ruleset; it is immutable and
// safe for concurrent use.
type Ruleset struct {
	Name        string
	Description string
	Source      []byte // the YAML as loaded
	Digest      string // hex SHA-256 of Source
	Thresholds  Thresholds

	rules   []*rule
	checks  []*check
	tests   []*testCase
	signals []string
}

// Thresholds map a score to a level: below Medium is low, below High is
// medium, else high.
type Thresholds struct {
	Medium int64 `json:"medium"`
	High   int64 `json:"high"`
}

type rule struct {
	id         string
	decision   string // "" for a scored rule
	score      int64
	reason     string
	when       *program
	reasonExpr *program // nil when the reason is static
	asts       []*cel.Ast
	line, col  int // where its when expression starts
}

type check struct {
	id        string
	reason    string
	require   *program
	asts      []*cel.Ast
	line, col int // where its require expression starts
}

// RuleIDs returns the ids of the rules, in file order.
func (rs *Ruleset) RuleIDs() []string {
	ids := make([]string, len(rs.rules))
	for i, r := range rs.rules {
		ids[i] = r.id
	}
	return ids
}

// CheckIDs returns the ids of the context checks, in file order.
func (rs *Ruleset) CheckIDs() []string {
	ids := make([]string, len(rs.checks))
	for i, c := range rs.checks {
		ids[i] = c.id
	}
	return ids
}

// Signals returns the names of the signals (SignalAgentRequests1h, ...)
// that any rule, reason or context check reads, in SignalNames order; the
// risk engine fetches only these (docs/rules.md "The CEL environment").
func (rs *Ruleset) Signals() []string { return append([]string(nil), rs.signals...) }

// Load parses, validates and compiles a ruleset. When the ruleset is
// invalid the error is a *Problems holding every problem found.
func Load(src []byte) (*Ruleset, error) {
	env, err := environment()
	if err != nil {
		return nil, fmt.Errorf("rules: CEL environment: %w", err)
	}
	l := &loader{env: env, lines: sourceLines(src), ids: map[string]bool{}}
	rs := &Ruleset{Source: append([]byte(nil), src...)}
	sum := sha256.Sum256(src)
	rs.Digest = hex.EncodeToString(sum[:])

	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, &Problems{List: yamlProblems(err)}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &Problems{List: []Problem{{Line: 1, Column: 1, Message: "the ruleset is empty"}}}
	}
	resolveAliases(&doc, map[*yaml.Node]bool{})
	// Aliases share nodes, and the loader walks the expanded tree: refuse
	// a file whose tree is far larger than any real ruleset (an alias bomb).
	if n := expandedSize(&doc, map[*yaml.Node]int{}); n > MaxYAMLNodes {
		return nil, &Problems{List: []Problem{{Line: 1, Column: 1, Message: fmt.Sprintf(
			"the ruleset expands to more than %d YAML nodes (through aliases): at most %d are allowed", n, MaxYAMLNodes)}}}
	}
	l.load(rs, doc.Content[0])
	if len(l.problems.List) > 0 {
		l.problems.sort()
		return nil, &l.problems
	}
	return rs, nil
}

type loader struct {
	env      *cel.Env
	lines    [][]rune
	problems Problems
	ids      map[string]bool
	ruleIDs  map[string]bool
}

type entry struct{ key, val *yaml.Node }

// at records a problem at n. owner is a rule or context check id, or a
// test's owner from testOwner.
func (l *loader) at(owner string, n *yaml.Node, format string, args ...any) {
	if name, ok := strings.CutPrefix(owner, testMark); ok {
		l.problems.add("", n.Line, n.Column, "test %q: "+format, append([]any{name}, args...)...)
		return
	}
	l.problems.add(owner, n.Line, n.Column, format, args...)
}

// testMark prefixes the owner of a test's problems: they name the test in
// the message, not in Problem.Rule.
const testMark = "\x00test:"

func testOwner(name string) string { return testMark + name }

// peekID returns the id a rule or check mapping declares, if any, so that
// problems found before the id is validated still name it.
func peekID(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// fields reads a mapping, refusing unknown and duplicate keys (docs/rules.md:
// unknown keys are refused, at every level).
func (l *loader) fields(owner, what string, n *yaml.Node, allowed ...string) map[string]entry {
	out := map[string]entry{}
	if n.Kind != yaml.MappingNode {
		l.at(owner, n, "%s must be a mapping", what)
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		switch {
		case !slices.Contains(allowed, name):
			l.at(owner, k, "unknown key %q in %s (allowed: %s)", name, what, strings.Join(allowed, ", "))
		case out[name].key != nil:
			l.at(owner, k, "duplicate key %q in %s", name, what)
		default:
			out[name] = entry{k, v}
		}
	}
	return out
}

// resolveAliases replaces every alias (*name) by the node it names, so the
// rest of the loader sees plain trees. Shared nodes are visited once, which
// keeps alias bombs linear.
func resolveAliases(n *yaml.Node, seen map[*yaml.Node]bool) {
	if seen[n] {
		return
	}
	seen[n] = true
	for i, c := range n.Content {
		for depth := 0; c.Kind == yaml.AliasNode && c.Alias != nil && depth < 100; depth++ {
			c = c.Alias
		}
		n.Content[i] = c
		resolveAliases(c, seen)
	}
}

// expandedSize is the number of nodes of the tree below n with every alias
// expanded, counted in time linear in the distinct nodes (memo), and capped
// past MaxYAMLNodes so the sum cannot overflow.
func expandedSize(n *yaml.Node, memo map[*yaml.Node]int) int {
	if v, ok := memo[n]; ok {
		return v
	}
	memo[n] = MaxYAMLNodes + 1 // a cycle counts as too large
	size := 1
	for _, c := range n.Content {
		size = min(size+expandedSize(c, memo), MaxYAMLNodes+1)
	}
	memo[n] = size
	return size
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// str reads a string scalar; ok is false (and a problem recorded) otherwise.
func (l *loader) str(owner, what string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		l.at(owner, n, "%s must be a string", what)
		return "", false
	}
	return n.Value, true
}

func (l *loader) integer(owner, what string, n *yaml.Node) (int64, bool) {
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		l.at(owner, n, "%s must be an integer", what)
		return 0, false
	}
	if v > MaxScore || v < -MaxScore {
		l.at(owner, n, "%s must be between %d and %d", what, -MaxScore, MaxScore)
		return 0, false
	}
	return v, true
}

func (l *loader) load(rs *Ruleset, root *yaml.Node) {
	top := l.fields("", "the ruleset", root, "format", "name", "description", "thresholds", "rules", "context_checks", "tests")
	if root.Kind != yaml.MappingNode {
		return
	}
	// docs/rules.md "A ruleset": format is required, exactly countersign/v1.
	if e, ok := top["format"]; !ok {
		l.at("", root, "format is required (format: %s)", Format)
	} else if v, ok := l.str("", "format", e.val); ok && v != Format {
		l.at("", e.val, "format must be %s, not %q", Format, v)
	}
	if e, ok := top["name"]; !ok {
		l.at("", root, "name is required")
	} else if v, ok := l.str("", "name", e.val); ok {
		if strings.TrimSpace(v) == "" {
			l.at("", e.val, "name must not be empty")
		}
		rs.Name = v
	}
	if e, ok := top["description"]; ok {
		rs.Description, _ = l.str("", "description", e.val)
	}
	rs.Thresholds = Thresholds{Medium: DefaultMedium, High: DefaultHigh}
	if e, ok := top["thresholds"]; ok {
		l.thresholds(&rs.Thresholds, e.val)
	}
	l.ruleIDs = map[string]bool{}
	// docs/rules.md "A ruleset": more than 200 rules are refused.
	l.list(top, "rules", "rules", MaxRules, func(n *yaml.Node) {
		if r := l.rule(n); r != nil {
			rs.rules = append(rs.rules, r)
		}
	})
	l.list(top, "context_checks", "context checks", MaxChecks, func(n *yaml.Node) {
		if c := l.check(n); c != nil {
			rs.checks = append(rs.checks, c)
		}
	})
	l.list(top, "tests", "tests", MaxTests, func(n *yaml.Node) {
		if t := l.test(n); t != nil {
			rs.tests = append(rs.tests, t)
		}
	})

	var asts []*cel.Ast
	for _, r := range rs.rules {
		asts = append(asts, r.asts...)
	}
	for _, c := range rs.checks {
		asts = append(asts, c.asts...)
	}
	rs.signals = referencedSignals(asts)
}

func (l *loader) thresholds(t *Thresholds, n *yaml.Node) {
	f := l.fields("", "thresholds", n, "medium", "high")
	okM, okH := true, true
	if e, ok := f["medium"]; ok {
		t.Medium, okM = l.integer("", "thresholds.medium", e.val)
	}
	if e, ok := f["high"]; ok {
		t.High, okH = l.integer("", "thresholds.high", e.val)
	}
	// docs/rules.md "A ruleset": medium >= high is refused.
	if okM && okH && t.Medium >= t.High {
		l.at("", n, "thresholds: medium (%d) must be below high (%d)", t.Medium, t.High)
	}
}

// id reads and checks a rule or context check id; owner is "" when it is
// unusable.
func (l *loader) id(what string, f map[string]entry, n *yaml.Node) string {
	e, ok := f["id"]
	if !ok {
		l.at("", n, "%s without an id", what)
		return ""
	}
	id, ok := l.str("", what+" id", e.val)
	if !ok {
		return ""
	}
	switch {
	case !idPattern.MatchString(id):
		l.at(id, e.val, "id %q must match [a-z0-9][a-z0-9-]{0,62}", id)
	case l.ids[id]:
		l.at(id, e.val, "duplicate id %q", id)
	}
	l.ids[id] = true
	return id
}

func (l *loader) rule(n *yaml.Node) *rule {
	f := l.fields(peekID(n), "a rule", n, "id", "description", "when", "score", "decision", "reason", "reason_expr")
	if n.Kind != yaml.MappingNode {
		return nil
	}
	r := &rule{id: l.id("rule", f, n), line: n.Line, col: n.Column}
	l.ruleIDs[r.id] = true
	if e, ok := f["description"]; ok {
		l.str(r.id, "description", e.val)
	}
	if e, ok := f["when"]; !ok {
		l.at(r.id, n, "when is required")
	} else if ast, prg := l.expr(r.id, "when", e.val, cel.BoolType); prg != nil {
		r.when, r.asts = prg, append(r.asts, ast)
		r.line, r.col = e.val.Line, e.val.Column
	}
	score, hasScore := f["score"]
	decision, hasDecision := f["decision"]
	// docs/rules.md "A ruleset": exactly one of score / decision.
	switch {
	case hasScore && hasDecision:
		l.at(r.id, decision.key, "a rule has either score or decision, not both")
	case !hasScore && !hasDecision:
		l.at(r.id, n, "a rule needs a score or a decision")
	case hasScore:
		r.score, _ = l.integer(r.id, "score", score.val)
	default:
		if v, ok := l.str(r.id, "decision", decision.val); ok {
			switch v {
			case DecisionAllow, DecisionDeny, DecisionRequireDevice:
				r.decision = v
			default:
				l.at(r.id, decision.val, "decision must be allow, deny or require_device, not %q", v)
			}
		}
	}
	reason, hasReason := f["reason"]
	reasonExpr, hasReasonExpr := f["reason_expr"]
	switch {
	case hasReason && hasReasonExpr:
		l.at(r.id, reasonExpr.key, "a rule has either reason or reason_expr, not both")
	case !hasReason && !hasReasonExpr:
		l.at(r.id, n, "a rule needs a reason or a reason_expr: the user sees it on the phone")
	case hasReason:
		r.reason, _ = l.str(r.id, "reason", reason.val)
	default:
		if ast, prg := l.expr(r.id, "reason_expr", reasonExpr.val, cel.StringType); prg != nil {
			r.reasonExpr, r.asts = prg, append(r.asts, ast)
		}
	}
	return r
}

func (l *loader) check(n *yaml.Node) *check {
	f := l.fields(peekID(n), "a context check", n, "id", "description", "require", "reason")
	if n.Kind != yaml.MappingNode {
		return nil
	}
	c := &check{id: l.id("context check", f, n), line: n.Line, col: n.Column}
	if e, ok := f["description"]; ok {
		l.str(c.id, "description", e.val)
	}
	if e, ok := f["require"]; !ok {
		l.at(c.id, n, "require is required")
	} else if ast, prg := l.expr(c.id, "require", e.val, cel.BoolType); prg != nil {
		c.require, c.asts = prg, append(c.asts, ast)
		c.line, c.col = e.val.Line, e.val.Column
	}
	if e, ok := f["reason"]; !ok {
		l.at(c.id, n, "a context check needs a reason: the user sees it when the check fails")
	} else {
		c.reason, _ = l.str(c.id, "reason", e.val)
	}
	return c
}

// list reads the YAML list under key (absent or null: nothing), refusing
// a non-list and more than max entries, and hands each entry to each.
func (l *loader) list(top map[string]entry, key, noun string, max int, each func(*yaml.Node)) {
	e, ok := top[key]
	if !ok || isNull(e.val) {
		return
	}
	if e.val.Kind != yaml.SequenceNode {
		l.at("", e.val, "%s must be a list", key)
		return
	}
	if len(e.val.Content) > max {
		l.at("", e.key, "%d %s: at most %d are allowed", len(e.val.Content), noun, max)
	}
	for _, n := range e.val.Content {
		each(n)
	}
}
