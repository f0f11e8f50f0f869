package deviceapp

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// agentField matches the expressions that carry a string an agent chose
// (or a rule reason that may quote one) into the page.
var agentField = regexp.MustCompile(`binding_message|agentName\(|\.owner\b|\.reason\b|e\.summary|client_name|\bname\b[,)]|rows\(d\)|JSON\.stringify\(details|\.intent\b|\.resource\b|\.tool\b|creditor\?`)

// TestAgentStringsAreIsolated reads the app's views: every element built
// (h(...)) from an agent-supplied string isolates it, inline with iso()
// (<bdi>) or as a block with dir: "auto"; plain text (aria-labels,
// notifications) uses fsi() (U+2068 ... U+2069). Right-to-left text in a
// creditor name must not reorder the amount beside it.
func TestAgentStringsAreIsolated(t *testing.T) {
	checked := 0
	for _, name := range []string{"static/js/request.js", "static/js/lists.js", "static/js/mandates.js", "static/sw.js"} {
		b, err := fs.ReadFile(static, name)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if !agentField.MatchString(line) || !(strings.Contains(line, "h(") || strings.Contains(line, "showNotification") ||
				strings.Contains(line, "aria-label") || strings.Contains(line, "const lines")) {
				continue
			}
			checked++
			if !strings.Contains(line, "iso(") && !strings.Contains(line, `dir: "auto"`) && !strings.Contains(line, "fsi(") {
				t.Errorf("%s:%d shows an agent string without isolation: %s", name, i+1, strings.TrimSpace(line))
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d lines checked: the pattern no longer finds the views", checked)
	}
	dom, _ := fs.ReadFile(static, "static/js/dom.js")
	for _, want := range []string{`export const iso = (v) => h("bdi"`, `"\u2068" + String(v) + "\u2069"`,
		`export const summary = (details) => summaryParts(details, iso)`} {
		if !strings.Contains(string(dom), want) {
			t.Errorf("dom.js lost %s", want)
		}
	}
}
