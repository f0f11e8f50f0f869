package rules

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load: it must never panic, and it
// either returns a usable ruleset or *Problems, each with a message and a
// position inside the file: line 1 or more, and column 1 or more except for
// YAML syntax errors, for which the parser gives only the line. An accepted
// ruleset must evaluate an empty request without panicking. Seeds: the
// default ruleset, the examples and a few broken files.
func FuzzLoad(f *testing.F) {
	f.Add(DefaultSource)
	examples, _ := filepath.Glob("examples/*.yaml")
	for _, p := range examples {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"",
		"format: countersign/v1\nname: x\nrules:\n  - id: a\n    when: action.amount > 1.0\n    score: 1\n    reason: r\n",
		"format: countersign/v1\nname: x\nrules: [{id: a, when: 'user.nme == 1', score: 1, reason: r}]\n",
		"format: countersign/v1\nname: x\nrules:\n  - &a {id: a, when: 'true', decision: deny, reason: r}\n  - *a\n",
		"format: countersign/v1\nname: x\nthresholds: {medium: 9, high: 3}\ntests:\n  - name: t\n    input: {action: {details: [{type: x, amount: 1}]}}\n    expect: {path: policy}\n",
		"format: countersign/v1\nname: x\nrules:\n  - id: r\n    when: action.binding_message.matches(r'(a|b){200}')\n    score: 1\n    reason: r\n",
		"format: countersign/v1\nname: x\ncontext_checks:\n  - {id: c, require: \"in_networks(request.ip, ['10.0.0.0/33'])\", reason: r}\n",
		"a: [b\n",
		"\t- x",
		"format: countersign/v1\nname: x\nrules:\n  - id: a\n    when: |\n      1.0 / 0.0 > 1.0\n    score: 1\n    reason: r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		rs, err := Load(src)
		if err == nil {
			if rs == nil {
				t.Fatal("Load returned neither a ruleset nor an error")
			}
			rs.Evaluate(&Input{})
			return
		}
		var ps *Problems
		if !errors.As(err, &ps) {
			t.Fatalf("Load error is %T (%v), want *Problems", err, err)
		}
		if len(ps.List) == 0 {
			t.Fatal("Load returned *Problems without a problem")
		}
		lines := bytes.Count(src, []byte("\n")) + 1
		for _, p := range ps.List {
			yamlErr := strings.HasPrefix(p.Message, "YAML: ")
			if p.Message == "" || p.Line < 1 || p.Line > lines+1 || (p.Column < 1 && !yamlErr) {
				t.Fatalf("problem without a usable position or message: %+v (file of %d lines)", p, lines)
			}
		}
	})
}
