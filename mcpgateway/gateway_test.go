package mcpgateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestStampOverwritesTheClientsValue(t *testing.T) {
	id, _ := jsonrpc.MakeID(float64(7))
	req := &jsonrpc.Request{ID: id, Method: "tools/call",
		Params: json.RawMessage(`{"name":"t","arguments":{"a":1},"_meta":{"progressToken":"p","io.countersign/jsonrpc-id":"int64:1"}}`)}
	stamp(req)
	var p mcp.CallToolParamsRaw
	if err := json.Unmarshal(req.Params, &p); err != nil {
		t.Fatal(err)
	}
	if p.GetProgressToken() != "p" || string(p.Arguments) != `{"a":1}` {
		t.Fatalf("stamp changed the call: %s", req.Params)
	}
	if got := takeRequestID(&p); got != "int64:7" {
		t.Fatalf("request id = %q, want int64:7", got)
	}
	if _, ok := p.Meta[metaRequestID]; ok {
		t.Fatal("the stamp would be forwarded upstream")
	}
	// Other methods and notifications are left alone.
	n := &jsonrpc.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"t"}`)}
	stamp(n)
	if string(n.Params) != `{"name":"t"}` {
		t.Fatalf("a notification was stamped: %s", n.Params)
	}
}

func TestBindingMessage(t *testing.T) {
	if got := bindingMessage("delete_note", "notes"); got != "Run delete_note on notes" {
		t.Fatalf("binding message = %q", got)
	}
	// CIBA Core §7.1 via the server's rule: at most 64 characters, no
	// control or bidi characters, whatever the upstream calls things.
	got := bindingMessage(strings.Repeat("x", 100), "evil\u202e\nserver")
	if utf8.RuneCountInString(got) != 64 || !strings.HasSuffix(got, "…") {
		t.Fatalf("long binding message = %q (%d)", got, utf8.RuneCountInString(got))
	}
	if got := bindingMessage("t", "a\u202eb\nc"); got != "Run t on a_b_c" {
		t.Fatalf("binding message = %q", got)
	}
}

func TestAnnotationsMakeTheMCPDefaultsExplicit(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name string
		tool *mcp.Tool
		want string
	}{
		{"unknown tool", nil, `{"destructiveHint":true,"idempotentHint":false,"openWorldHint":true,"readOnlyHint":false}`},
		{"no annotations", &mcp.Tool{Name: "t"}, `{"destructiveHint":true,"idempotentHint":false,"openWorldHint":true,"readOnlyHint":false}`},
		{"read-only", &mcp.Tool{Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, Title: " Read "}},
			`{"destructiveHint":false,"idempotentHint":false,"openWorldHint":true,"readOnlyHint":true,"title":"Read"}`},
		{"explicit", &mcp.Tool{Title: "T", Annotations: &mcp.ToolAnnotations{DestructiveHint: &no, OpenWorldHint: &no, IdempotentHint: true}},
			`{"destructiveHint":false,"idempotentHint":true,"openWorldHint":false,"readOnlyHint":false,"title":"T"}`},
		{"read-only but destructive", &mcp.Tool{Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, DestructiveHint: &yes}},
			`{"destructiveHint":true,"idempotentHint":false,"openWorldHint":true,"readOnlyHint":true}`},
	}
	for _, tc := range tests {
		b, _ := json.Marshal(annotations(tc.tool))
		if string(b) != tc.want {
			t.Errorf("%s: annotations = %s, want %s", tc.name, b, tc.want)
		}
	}
}

func TestDetailIsBoundedAndCanonical(t *testing.T) {
	g := &Gateway{name: "notes", cfg: Config{Upstream: Upstream{Command: []string{"notes", "--db", "x"}}}, tools: map[string]*mcp.Tool{}}
	args, err := canonicalArguments(json.RawMessage(` {"b":1, "a":"x"} `))
	if err != nil || string(args) != `{"a":"x","b":1}` {
		t.Fatalf("canonical arguments = %s, %v", args, err)
	}
	b, err := g.detail("delete_note", args)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"server":{"command":"notes --db x","name":"notes"}`) || !strings.Contains(string(b), `"arguments":{"a":"x","b":1}`) {
		t.Fatalf("detail = %s", b)
	}
	for _, raw := range []string{`[1]`, `"x"`, `{"a":`} {
		if _, err := canonicalArguments(json.RawMessage(raw)); err == nil {
			t.Errorf("arguments %s accepted", raw)
		}
	}
	if a, _ := canonicalArguments(nil); string(a) != "{}" {
		t.Fatalf("absent arguments = %s", a)
	}
	big, _ := json.Marshal(map[string]string{"text": strings.Repeat("x", 1000), "more": strings.Repeat("y", 1000),
		"again": strings.Repeat("z", 1000), "last": strings.Repeat("w", 1000), "end": strings.Repeat("v", 500)})
	if _, err := g.detail("t", big); err == nil || !strings.Contains(err.Error(), "at most 4096 bytes") {
		t.Fatalf("oversized arguments: %v", err)
	}
}

func TestResultsKeepAnswersPerRequest(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &results{ttl: time.Minute, now: func() time.Time { return now }, m: map[string]*entry{}}
	e, owner := r.start("s\x007", "delete\x00{}")
	if !owner {
		t.Fatal("first call does not own its entry")
	}
	res := &mcp.CallToolResult{}
	r.finish("s\x007", e, res, nil, outcome{what: "forwarded"}, true)
	if again, owner := r.start("s\x007", "delete\x00{}"); owner || again.res != res {
		t.Fatal("a retry of the same request would run again")
	}
	if _, owner := r.start("s\x007", "delete\x00{\"id\":1}"); !owner {
		t.Fatal("the same id with other arguments is another call")
	}
	// Not kept: a cancelled call may be asked again.
	e, _ = r.start("s\x008", "x")
	r.finish("s\x008", e, nil, nil, outcome{what: "cancelled"}, false)
	if _, owner := r.start("s\x008", "x"); !owner {
		t.Fatal("a cancelled call's id is still taken")
	}
	// Past the TTL a request id is forgotten.
	e, _ = r.start("s\x009", "y")
	r.finish("s\x009", e, res, nil, outcome{}, true)
	now = now.Add(2 * time.Minute)
	if _, owner := r.start("s\x009", "y"); !owner {
		t.Fatal("an answer outlived the TTL")
	}
	// No id: never shared.
	if _, owner := r.start("", "y"); !owner {
		t.Fatal("a call without an id joined another")
	}
}
