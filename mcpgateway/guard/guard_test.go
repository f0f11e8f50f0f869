package guard

import (
	"encoding/json"
	"testing"
	"time"
)

func TestCovers(t *testing.T) {
	details := json.RawMessage(`[{"type":"agent_action","action":"delete_note","resource":"x"},
		{"type":"mcp_tool_call","server":{"name":"notes","url":"https://n.example/mcp"},"tool":"delete_note","arguments":{"id":"n1","opts":{"b":2,"a":1}}}]`)
	tests := []struct {
		tool, args string
		want       bool
	}{
		{"delete_note", `{"opts":{"a":1,"b":2},"id":"n1"}`, true},
		{"delete_note", `{"id":"n1","opts":{"a":1.0,"b":2}}`, true}, // RFC 8785: 1.0 is 1
		{"delete_note", `{"id":"n2","opts":{"a":1,"b":2}}`, false},
		{"delete_note", `{"id":"n1"}`, false},
		{"read_notes", `{"id":"n1","opts":{"a":1,"b":2}}`, false},
		{"delete_note", `[1]`, false},
	}
	for _, tc := range tests {
		if got := Covers(details, tc.tool, json.RawMessage(tc.args)); got != tc.want {
			t.Errorf("Covers(%s %s) = %v, want %v", tc.tool, tc.args, got, tc.want)
		}
	}
	empty := json.RawMessage(`[{"type":"mcp_tool_call","tool":"read_notes","arguments":{}}]`)
	if !Covers(empty, "read_notes", nil) || !Covers(empty, "read_notes", json.RawMessage("null")) {
		t.Error("absent arguments are {}")
	}
	if Covers(json.RawMessage(`{}`), "read_notes", nil) {
		t.Error("details that are not an array cover a call")
	}
}

func TestParseFindsEveryToolsCall(t *testing.T) {
	tests := []struct {
		name, body string
		call       bool
		refused    bool
	}{
		{"call", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{}}}`, true, false},
		{"list", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, false, false},
		// encoding/json would read Method as method; the SDK does not.
		{"case smuggling", `{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"tools/list","params":{"name":"t"}}`, true, false},
		{"duplicate member", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"t"}}`, false, true},
		{"batched call", `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}]`, false, true},
		{"escaped batched call", `[{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"t"}}]`, false, true},
		{"batched list", `[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`, false, false},
		{"call without name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}`, false, true},
	}
	for _, tc := range tests {
		c, isCall, err := parse([]byte(tc.body))
		if isCall != tc.call || (err != nil) != tc.refused {
			t.Errorf("%s: call %v err %v, want call %v refused %v", tc.name, isCall, err, tc.call, tc.refused)
		}
		if isCall && c.Name != "t" {
			t.Errorf("%s: name %q", tc.name, c.Name)
		}
	}
}

func TestOncePerToken(t *testing.T) {
	var g Guard
	if !g.once("j1", farFuture) || g.once("j1", farFuture) {
		t.Fatal("a token id was accepted twice")
	}
	if g.once("", farFuture) {
		t.Fatal("a token without jti was accepted")
	}
}

var farFuture = time.Now().Add(time.Hour)
