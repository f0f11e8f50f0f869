package rules

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Problem is one reason a ruleset is refused, with the id of the rule (or
// context check) it belongs to and its 1-based line and column in the file
// (docs/api.md `/admin/rules/validate`: problems [{rule, line, column, message}]).
type Problem struct {
	Rule    string `json:"rule,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Line > 0 && p.Column > 0:
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	case p.Line > 0:
		fmt.Fprintf(&b, "%d: ", p.Line)
	}
	if p.Rule != "" {
		fmt.Fprintf(&b, "%s: ", p.Rule)
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is the error Load returns for an invalid ruleset: every problem
// found, in file order, not only the first.
type Problems struct {
	List []Problem
}

// Error implements error.
func (p *Problems) Error() string {
	if len(p.List) == 1 {
		return "invalid ruleset: " + p.List[0].String()
	}
	parts := make([]string, len(p.List))
	for i, pr := range p.List {
		parts[i] = pr.String()
	}
	return fmt.Sprintf("invalid ruleset: %d problems: %s", len(p.List), strings.Join(parts, "; "))
}

func (p *Problems) add(rule string, line, col int, format string, args ...any) {
	p.List = append(p.List, Problem{Rule: rule, Line: line, Column: col, Message: fmt.Sprintf(format, args...)})
}

func (p *Problems) sort() {
	sort.SliceStable(p.List, func(i, j int) bool {
		a, b := p.List[i], p.List[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// yamlProblems turns a YAML syntax or structure error into problems, one
// per "line N: ..." the parser reports. The parser gives no column (Column
// stays 0) and leaves the line out for a problem on the first line.
func yamlProblems(err error) []Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var out []Problem
	for _, part := range strings.Split(msg, "\n") {
		part = strings.TrimSpace(part)
		if part == "" || strings.HasPrefix(part, "unmarshal errors:") {
			continue
		}
		pr := Problem{Line: 1, Message: "YAML: " + part}
		if m := yamlLine.FindStringSubmatchIndex(part); m != nil {
			pr.Line, _ = strconv.Atoi(part[m[2]:m[3]])
			pr.Message = "YAML: " + part[m[1]:]
		}
		out = append(out, pr)
	}
	if len(out) == 0 {
		out = append(out, Problem{Line: 1, Message: "YAML: " + msg})
	}
	return out
}
