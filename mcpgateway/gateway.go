package mcpgateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/countersign/countersign/ciba/agent"
)

// Upstream is the MCP server behind the gateway: a command run as a child
// process speaking stdio, or a streamable-HTTP URL.
type Upstream struct {
	// Name is how the phone names the server; empty: the name the server
	// gives in initialize.
	Name    string
	Command []string
	URL     string
	// HTTP is the client for a URL upstream; nil: http.DefaultClient's
	// transport.
	HTTP *http.Client
	// Stderr receives a command upstream's stderr; nil discards it.
	Stderr io.Writer
}

// Config is what a Gateway needs.
type Config struct {
	Upstream Upstream
	// Agent is the gateway's client at Countersign; with Agent.Pings set
	// it waits for pings (the client is registered in ping mode).
	Agent *agent.Client
	// User is the login_hint: the user the gateway acts for.
	User string
	// Scope of every request; empty: "openid".
	Scope string
	// Expiry is the requested_expiry of every request; 0: 5 minutes.
	Expiry time.Duration
	// ProgressEvery is the interval of progress notifications while a
	// call waits; 0: 2 s.
	ProgressEvery time.Duration
	// ResultTTL is how long a call's result answers a retry; 0: 10 minutes.
	ResultTTL time.Duration
	// Log receives one line per tool call; nil: slog.Default().
	Log *slog.Logger
	Now func() time.Time
}

// Gateway is one upstream session mirrored as an MCP server.
type Gateway struct {
	cfg     Config
	name    string
	server  *mcp.Server
	up      *mcp.ClientSession
	results *results
	prog    progressRoutes

	mu                            sync.Mutex
	tools                         map[string]*mcp.Tool
	prompts, resources, templates []string // what is mirrored, to remove on a change
}

// New connects to the upstream and mirrors its tools, prompts and
// resources. Close ends the upstream session.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	g := &Gateway{cfg: cfg, tools: map[string]*mcp.Tool{}}
	g.results = &results{ttl: cfg.ResultTTL, now: cfg.Now, m: map[string]*entry{}}
	t, err := cfg.Upstream.transport()
	if err != nil {
		return nil, err
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "countersign-mcp-gateway", Version: "1"}, g.clientOptions())
	up, err := client.Connect(ctx, t, nil)
	if err != nil {
		return nil, fmt.Errorf("mcpgateway: connecting to the upstream: %w", err)
	}
	g.up = up
	init := up.InitializeResult()
	g.name = cfg.Upstream.Name
	if g.name == "" && init.ServerInfo != nil {
		g.name = init.ServerInfo.Name
	}
	if g.name == "" {
		g.name = "mcp"
	}
	g.server = mcp.NewServer(serverInfo(init), g.serverOptions(init))
	if err := g.mirror(ctx, init.Capabilities); err != nil {
		up.Close()
		return nil, err
	}
	return g, nil
}

func (c *Config) validate() error {
	u := c.Upstream
	switch {
	case (len(u.Command) == 0) == (u.URL == ""):
		return errors.New("mcpgateway: exactly one of an upstream command and an upstream URL")
	case c.Agent == nil:
		return errors.New("mcpgateway: no Countersign client")
	case c.User == "":
		return errors.New("mcpgateway: no user to act for")
	}
	return nil
}

func (c *Config) defaults() {
	if c.Scope == "" {
		c.Scope = "openid"
	}
	if c.Expiry <= 0 {
		c.Expiry = 5 * time.Minute
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 2 * time.Second
	}
	if c.ResultTTL <= 0 {
		c.ResultTTL = 10 * time.Minute
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (u Upstream) transport() (mcp.Transport, error) {
	if len(u.Command) > 0 {
		cmd := exec.Command(u.Command[0], u.Command[1:]...)
		cmd.Stderr = u.Stderr
		return &mcp.CommandTransport{Command: cmd}, nil
	}
	base := http.DefaultTransport
	if u.HTTP != nil && u.HTTP.Transport != nil {
		base = u.HTTP.Transport
	}
	hc := &http.Client{Transport: bearer{next: base}}
	if u.HTTP != nil {
		hc.Timeout = u.HTTP.Timeout
	}
	return &mcp.StreamableClientTransport{Endpoint: u.URL, HTTPClient: hc}, nil
}

// serverDescription is the server member of every mcp_tool_call entry.
func (g *Gateway) serverDescription() map[string]any {
	s := map[string]any{"name": truncate(g.name, 128)}
	if g.cfg.Upstream.URL != "" {
		s["url"] = g.cfg.Upstream.URL
	} else {
		s["command"] = truncate(strings.Join(g.cfg.Upstream.Command, " "), 1024)
	}
	return s
}

// Server is the downstream MCP server; serve it with ServeStdio, Handler
// or any mcp.Transport wrapped by StampTransport.
func (g *Gateway) Server() *mcp.Server { return g.server }

// ServeStdio serves one client on this process's stdin and stdout until
// it disconnects or ctx ends.
func (g *Gateway) ServeStdio(ctx context.Context) error {
	return g.server.Run(ctx, StampTransport(&mcp.StdioTransport{}))
}

// Handler serves clients over streamable HTTP.
func (g *Gateway) Handler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return g.server }, nil)
	return StampHTTP(h)
}

// Close ends the upstream session (and stops an upstream process).
func (g *Gateway) Close() error { return g.up.Close() }
