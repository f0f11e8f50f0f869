package mcpgateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/countersign/countersign/ciba/agent"
	"github.com/countersign/countersign/mcpgateway/example"
)

// The upstream's tool list changes reach the gateway's clients: the
// gateway re-mirrors the list and its server tells its clients.
func TestToolListChangesPassThrough(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	up := example.NewNotes().Server()
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil))
	defer hs.Close()
	// No tools/call is made: Countersign is never asked.
	g, err := New(ctx, Config{Upstream: Upstream{URL: hs.URL}, Agent: &agent.Client{Issuer: "http://127.0.0.1:1"},
		User: "alice", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ct, st := mcp.NewInMemoryTransports()
	if _, err := g.Server().Connect(ctx, StampTransport(st), nil); err != nil {
		t.Fatal(err)
	}
	changed := make(chan struct{}, 8)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "host"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	}).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	names := func() []string {
		var out []string
		for tl, err := range cs.Tools(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, tl.Name)
		}
		slices.Sort(out)
		return out
	}
	if got := names(); !slices.Equal(got, []string{"delete_note", "read_notes"}) {
		t.Fatalf("tools = %v", got)
	}
	up.AddTool(&mcp.Tool{Name: "archive_note", InputSchema: map[string]any{"type": "object"}},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	up.RemoveTools("delete_note")
	for want := []string{"archive_note", "read_notes"}; !slices.Equal(names(), want); {
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("tools = %v, want %v", names(), want)
		}
	}
	if g.tool("archive_note") == nil || g.tool("delete_note") != nil {
		t.Fatal("the gate's view of the tools did not follow")
	}
}
