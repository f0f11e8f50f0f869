package rar

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMCPToolCallAccepted(t *testing.T) {
	for _, raw := range []string{
		`[{"type":"mcp_tool_call","server":{"name":"notes","command":"notes-server --db x"},"tool":"delete_note","arguments":{"id":"n1"},
		  "annotations":{"readOnlyHint":false,"destructiveHint":true,"idempotentHint":true,"openWorldHint":false,"title":"Delete a note"}}]`,
		`[{"type":"mcp_tool_call","server":{"name":"notes","url":"https://mcp.example/mcp"},"tool":"read_notes","arguments":{},
		  "locations":["https://mcp.example/mcp"]}]`,
	} {
		if _, err := Parse(raw); err != nil {
			t.Fatalf("Parse(%s) = %v", raw, err)
		}
	}
}

func TestMCPToolCallRefusals(t *testing.T) {
	call := func(server, tool, args, extra string) string {
		return `[{"type":"mcp_tool_call","server":` + server + `,"tool":` + tool + `,"arguments":` + args + extra + `}]`
	}
	srv := `{"name":"notes","command":"notes"}`
	nested := strings.Repeat(`{"a":`, MaxArgumentDepth) + `1` + strings.Repeat(`}`, MaxArgumentDepth)
	long := `{"a":"` + strings.Repeat("x", 1025) + `"}`
	many := make(map[string]int, 65)
	for i := range 65 {
		many[strings.Repeat("k", i+1)] = i
	}
	manyJSON, _ := json.Marshal(many)
	big := `{"a":"` + strings.Repeat("x", 1000) + `","b":"` + strings.Repeat("x", 1000) + `","c":"` + strings.Repeat("x", 1000) +
		`","d":"` + strings.Repeat("x", 1000) + `","e":"` + strings.Repeat("x", 200) + `"}`
	tests := []struct{ name, raw, want string }{
		{"no server", `[{"type":"mcp_tool_call","tool":"t","arguments":{}}]`, "mcp_tool_call requires server"},
		{"no arguments", `[{"type":"mcp_tool_call","server":` + srv + `,"tool":"t"}]`, "mcp_tool_call requires arguments"},
		{"server both", call(`{"name":"n","command":"c","url":"https://x.example"}`, `"t"`, `{}`, ""), "exactly one of url and command"},
		{"server neither", call(`{"name":"n"}`, `"t"`, `{}`, ""), "exactly one of url and command"},
		{"server no name", call(`{"command":"c"}`, `"t"`, `{}`, ""), "server name must be a non-empty string"},
		{"server bad url", call(`{"name":"n","url":"file:///etc"}`, `"t"`, `{}`, ""), "url must be an absolute http or https URL"},
		{"server unknown", call(`{"name":"n","command":"c","env":"X=1"}`, `"t"`, `{}`, ""), "server has unknown member env"},
		{"tool empty", call(srv, `""`, `{}`, ""), "tool must be a non-empty string"},
		{"tool long", call(srv, `"`+strings.Repeat("t", 129)+`"`, `{}`, ""), "tool must be a non-empty string of at most 128"},
		{"arguments array", call(srv, `"t"`, `[1]`, ""), "arguments must be a JSON object"},
		{"arguments deep", call(srv, `"t"`, `{"x":`+nested+`}`, ""), "nest deeper than 8 levels"},
		{"arguments long string", call(srv, `"t"`, long, ""), "string longer than 1024"},
		{"arguments many members", call(srv, `"t"`, string(manyJSON), ""), "more than 64 members"},
		{"arguments too big", call(srv, `"t"`, big, ""), "at most 4096 bytes"},
		{"hint not bool", call(srv, `"t"`, `{}`, `,"annotations":{"readOnlyHint":"yes"}`), "readOnlyHint must be a boolean"},
		{"annotation unknown", call(srv, `"t"`, `{}`, `,"annotations":{"safe":true}`), "annotations has unknown member safe"},
		{"unknown member", call(srv, `"t"`, `{}`, `,"result":"ok"`), "unknown member result in mcp_tool_call"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := Parse(tc.raw)
			if ds != nil {
				t.Fatalf("Parse returned entries %v with a refusal", ds)
			}
			wantRefusal(t, err, tc.want)
		})
	}
}
