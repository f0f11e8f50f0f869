package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/countersign/countersign/ciba/agent"
	"github.com/countersign/countersign/ciba/resource"
	"github.com/countersign/countersign/mcpgateway"
	"github.com/countersign/countersign/mcpgateway/example"
	"github.com/countersign/countersign/mcpgateway/guard"
	"github.com/countersign/countersign/mobile-stub/phone"
)

// runMCPDemo is `countersign demo --mcp`: a server, a user with the stub
// phone, the example notebook MCP server (guarded: a tools/call needs a
// token that covers it) and the gateway in front of it; an agent host
// reads the notes (policy, at once) and deletes one (waits for the phone).
func runMCPDemo(ctx context.Context, listen string, out, stderr io.Writer) error {
	cfg, err := parseConfig(nil, func(string) string { return "" }, stderr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	local := "http://" + ln.Addr().String()
	cfg.Listen, cfg.Issuer, cfg.Dev, cfg.PollInterval, cfg.LogLevel = ln.Addr().String(), local, true, 2, "warn"
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n, err := newNode(ctx, cfg, newLogger(cfg.LogLevel, stderr), out, time.Now)
	if err != nil {
		ln.Close()
		return err
	}
	defer n.close()
	hs := &http.Server{Handler: n.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	fmt.Fprintf(out, "Countersign demo server on %s, embedded store: everything is forgotten on exit.\n\n", local)
	id, secret, err := mcpDemoSetup(ctx, local, cfg.AdminToken, out)
	if err != nil {
		return err
	}
	upURL, stopUp, err := mcpDemoUpstream(local, out)
	if err != nil {
		return err
	}
	defer stopUp()
	g, err := mcpgateway.New(ctx, mcpgateway.Config{
		Upstream: mcpgateway.Upstream{URL: upURL},
		Agent:    &agent.Client{Issuer: local, ClientID: id, Secret: secret},
		User:     demoUser, ProgressEvery: time.Second, Log: slog.New(slog.NewJSONHandler(stderr, nil)),
	})
	if err != nil {
		return err
	}
	defer g.Close()
	fmt.Fprintf(out, "4. The gateway (%s) sits in front of it, acting for %q.\n", id, demoUser)
	return mcpDemoHost(ctx, g, out)
}

// mcpDemoSetup creates the user, the gateway's client and the stub phone.
func mcpDemoSetup(ctx context.Context, local, adminToken string, out io.Writer) (string, string, error) {
	admin := &adminClient{server: local, token: adminToken, client: &http.Client{Timeout: 30 * time.Second}}
	if _, err := admin.call(ctx, "POST", "/admin/users", map[string]any{"id": demoUser, "attributes": map[string]any{"timezone": "UTC"}}); err != nil {
		return "", "", fmt.Errorf("creating the user: %w", err)
	}
	b, err := admin.call(ctx, "POST", "/admin/clients", map[string]any{"client_id": "mcp-gateway", "client_name": "Coding agent via the MCP gateway",
		"agent": map[string]any{"trust_tier": "standard", "owner": "Countersign demo"}})
	if err != nil {
		return "", "", fmt.Errorf("creating the gateway's client: %w", err)
	}
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	_ = json.Unmarshal(b, &c)
	b, err = admin.call(ctx, "POST", "/admin/users/"+demoUser+"/enrollments", nil)
	if err != nil {
		return "", "", err
	}
	var enr struct{ Code string }
	_ = json.Unmarshal(b, &enr)
	p, err := phone.New(local, phone.Options{Listen: "127.0.0.1:0", Name: "Demo stub phone"})
	if err != nil {
		return "", "", err
	}
	context.AfterFunc(ctx, func() { p.Close() })
	if err := p.Start(ctx); err != nil {
		return "", "", err
	}
	if err := p.Enroll(ctx, enr.Code); err != nil {
		return "", "", err
	}
	go p.AutoDecide(ctx, phone.Approve, func(push phone.Push, err error) {
		if err == nil {
			fmt.Fprintf(out, "   phone: notified (%s), approved %q with its device key\n", push.Summary, push.BindingMessage)
		}
	})
	fmt.Fprintf(out, "1. Created the user %q; the mobile stub enrolled as her phone (it approves everything).\n", demoUser)
	fmt.Fprintf(out, "2. Registered the gateway as the agent %q (a CIBA poll client).\n", c.ID)
	return c.ID, c.Secret, nil
}

// mcpDemoUpstream serves the example notebook over streamable HTTP.
func mcpDemoUpstream(issuer string, out io.Writer) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	u := "http://" + ln.Addr().String() + "/mcp"
	srv := example.NewNotes().Server()
	gd := &guard.Guard{Verifier: &resource.Middleware{Issuer: issuer, Audience: u}}
	mux := http.NewServeMux()
	mux.Handle("/mcp", gd.Handler(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Fprintf(out, "3. The example MCP server \"notes\" runs at %s; a tools/call needs a token that covers it.\n", u)
	return u, func() { hs.Close() }, nil
}

// mcpDemoHost is the agent host: it calls the two tools through the gateway.
func mcpDemoHost(ctx context.Context, g *mcpgateway.Gateway, out io.Writer) error {
	ct, st := mcp.NewInMemoryTransports()
	if _, err := g.Server().Connect(ctx, mcpgateway.StampTransport(st), nil); err != nil {
		return err
	}
	host := mcp.NewClient(&mcp.Implementation{Name: "demo-host", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			fmt.Fprintf(out, "   host: %s\n", r.Params.Message)
		},
	})
	cs, err := host.Connect(ctx, ct, nil)
	if err != nil {
		return err
	}
	defer cs.Close()
	for i, c := range []struct{ title, tool, args string }{
		{"The agent reads the notes (read-only tool: the rules approve it at once)", "read_notes", `{}`},
		{"The agent deletes a note (destructive tool: waits for the phone)", "delete_note", `{"id":"n1"}`},
	} {
		fmt.Fprintf(out, "\n%d. %s\n   host: tools/call %s %s\n", i+5, c.title, c.tool, c.args)
		p := &mcp.CallToolParams{Name: c.tool, Arguments: json.RawMessage(c.args)}
		p.SetProgressToken(c.tool)
		r, err := cs.CallTool(ctx, p)
		if err != nil {
			return err
		}
		var text []string
		for _, ct := range r.Content {
			if tc, ok := ct.(*mcp.TextContent); ok {
				text = append(text, tc.Text)
			}
		}
		fmt.Fprintf(out, "   ✓ result (isError %v): %s\n", r.IsError, strings.ReplaceAll(strings.Join(text, "\n"), "\n", "; "))
	}
	fmt.Fprintln(out, "\nDone: the read ran at once; the delete ran once, after the phone approved.")
	return nil
}
