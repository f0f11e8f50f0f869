package main

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
	"github.com/countersign/countersign/mcpgateway"
	"github.com/countersign/countersign/mcpgateway/example"
)

// BenchmarkMCPGatewayLowRisk is the latency the gateway adds to a
// low-risk tools/call (read_notes: approved by policy, no phone): "direct"
// calls the example upstream over streamable HTTP, "gateway" makes the
// same call through an in-process gateway (/bc-authorize and /token on a
// node with a real Redis, then the upstream call). p50-ms and p99-ms are
// per call; the gateway's added latency is the difference.
func BenchmarkMCPGatewayLowRisk(b *testing.B) {
	tn := startNode(b, nil)
	id, secret := tn.client(map[string]any{"client_id": "mcp-gateway", "client_name": "MCP gateway",
		"agent": map[string]any{"trust_tier": "standard", "owner": "acme"}})
	tn.user(map[string]any{"id": "alice", "attributes": map[string]any{"timezone": "UTC"}})
	srv := example.NewNotes().Server()
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	b.Cleanup(up.Close)
	ctx := context.Background()

	b.Run("direct", func(b *testing.B) {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: up.URL}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		benchCalls(b, tn, cs)
	})
	b.Run("gateway", func(b *testing.B) {
		g, err := mcpgateway.New(ctx, mcpgateway.Config{
			Upstream: mcpgateway.Upstream{URL: up.URL},
			Agent:    &agent.Client{Issuer: tn.URL, ClientID: id, Secret: secret},
			User:     "alice", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		ct, st := mcp.NewInMemoryTransports()
		if _, err := g.Server().Connect(ctx, mcpgateway.StampTransport(st), nil); err != nil {
			b.Fatal(err)
		}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench"}, nil).Connect(ctx, ct, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		benchCalls(b, tn, cs)
	})
}

func benchCalls(b *testing.B, tn *testNode, cs *mcp.ClientSession) {
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		if i%150 == 149 {
			// The default rules score more than 200 calls an hour by one
			// agent for one user; the node's clock is frozen.
			b.StopTimer()
			tn.clock.Advance(time.Hour)
			b.StartTimer()
		}
		start := time.Now()
		r, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "read_notes", Arguments: map[string]any{}})
		durations = append(durations, time.Since(start))
		if err != nil || r.IsError {
			b.Fatalf("read_notes: %v %+v", err, r)
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	pct := func(p float64) float64 {
		return float64(durations[int(p*float64(len(durations)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
