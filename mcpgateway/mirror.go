package mcpgateway

import (
	"context"
	"fmt"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serverInfo presents the upstream's name and version downstream, so the
// host sees the server it configured (initialize passes through).
func serverInfo(init *mcp.InitializeResult) *mcp.Implementation {
	if init.ServerInfo == nil {
		return &mcp.Implementation{Name: "mcp", Version: "0"}
	}
	impl := *init.ServerInfo
	return &impl
}

// serverOptions mirror the upstream's capabilities and instructions; the
// handlers forward to the upstream session.
func (g *Gateway) serverOptions(init *mcp.InitializeResult) *mcp.ServerOptions {
	caps := &mcp.ServerCapabilities{}
	if init.Capabilities != nil {
		c := *init.Capabilities
		caps = &c
	}
	opts := &mcp.ServerOptions{Instructions: init.Instructions, Capabilities: caps}
	if caps.Completions != nil {
		opts.CompletionHandler = func(ctx context.Context, r *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			return g.up.Complete(ctx, r.Params)
		}
	}
	if caps.Resources != nil && caps.Resources.Subscribe {
		opts.SubscribeHandler = func(ctx context.Context, r *mcp.SubscribeRequest) error { return g.up.Subscribe(ctx, r.Params) }
		opts.UnsubscribeHandler = func(ctx context.Context, r *mcp.UnsubscribeRequest) error { return g.up.Unsubscribe(ctx, r.Params) }
	}
	return opts
}

// clientOptions pass the upstream's notifications down: list changes
// re-mirror the list (the server then notifies its clients), resource
// updates, log messages and progress go to the clients concerned.
func (g *Gateway) clientOptions() *mcp.ClientOptions {
	bg := context.Background()
	return &mcp.ClientOptions{
		ToolListChangedHandler:     func(ctx context.Context, _ *mcp.ToolListChangedRequest) { g.logErr(g.syncTools(bg)) },
		PromptListChangedHandler:   func(ctx context.Context, _ *mcp.PromptListChangedRequest) { g.logErr(g.syncPrompts(bg)) },
		ResourceListChangedHandler: func(ctx context.Context, _ *mcp.ResourceListChangedRequest) { g.logErr(g.syncResources(bg)) },
		ResourceUpdatedHandler: func(ctx context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
			g.logErr(g.server.ResourceUpdated(ctx, r.Params))
		},
		// Logging is deprecated from MCP 2026-07-28 but older servers and
		// hosts use it: pass it through while they do.
		//lint:ignore SA1019 passed through for servers of earlier protocol versions
		LoggingMessageHandler: func(ctx context.Context, r *mcp.LoggingMessageRequest) {
			for ss := range g.server.Sessions() {
				//lint:ignore SA1019 passed through for servers of earlier protocol versions
				_ = ss.Log(ctx, r.Params)
			}
		},
		ProgressNotificationHandler: func(ctx context.Context, r *mcp.ProgressNotificationClientRequest) {
			g.prog.forward(ctx, r.Params)
		},
	}
}

func (g *Gateway) logErr(err error) {
	if err != nil {
		g.cfg.Log.Warn("mcp gateway: mirroring the upstream", "err", err.Error())
	}
}

// mirror copies what the upstream offers.
func (g *Gateway) mirror(ctx context.Context, caps *mcp.ServerCapabilities) error {
	if caps == nil {
		return nil
	}
	if caps.Tools != nil {
		if err := g.syncTools(ctx); err != nil {
			return err
		}
	}
	if caps.Prompts != nil {
		if err := g.syncPrompts(ctx); err != nil {
			return err
		}
	}
	if caps.Resources != nil {
		return g.syncResources(ctx)
	}
	return nil
}

// syncTools mirrors the upstream's tools with their schemas and
// annotations as sent; every call goes through the gate.
func (g *Gateway) syncTools(ctx context.Context) error {
	seen := map[string]*mcp.Tool{}
	for t, err := range g.up.Tools(ctx, nil) {
		if err != nil {
			return fmt.Errorf("mcpgateway: tools/list: %w", err)
		}
		seen[t.Name] = t
	}
	g.mu.Lock()
	var gone []string
	for name := range g.tools {
		if seen[name] == nil {
			gone = append(gone, name)
		}
	}
	g.tools = seen
	g.mu.Unlock()
	if len(gone) > 0 {
		g.server.RemoveTools(gone...)
	}
	for _, t := range seen {
		safely(g, "tool "+t.Name, func() { g.server.AddTool(t, g.callTool) })
	}
	return nil
}

func (g *Gateway) syncPrompts(ctx context.Context) error {
	var ps []*mcp.Prompt
	var names []string
	for p, err := range g.up.Prompts(ctx, nil) {
		if err != nil {
			return fmt.Errorf("mcpgateway: prompts/list: %w", err)
		}
		ps, names = append(ps, p), append(names, p.Name)
	}
	g.mu.Lock()
	old := g.prompts
	g.prompts = names
	g.mu.Unlock()
	g.server.RemovePrompts(old...)
	for _, p := range ps {
		safely(g, "prompt "+p.Name, func() {
			g.server.AddPrompt(p, func(ctx context.Context, r *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
				return g.up.GetPrompt(ctx, r.Params)
			})
		})
	}
	return nil
}

func (g *Gateway) syncResources(ctx context.Context) error {
	read := func(ctx context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return g.up.ReadResource(ctx, r.Params)
	}
	var rs []*mcp.Resource
	var ts []*mcp.ResourceTemplate
	for r, err := range g.up.Resources(ctx, nil) {
		if err != nil {
			return fmt.Errorf("mcpgateway: resources/list: %w", err)
		}
		rs = append(rs, r)
	}
	for t, err := range g.up.ResourceTemplates(ctx, nil) {
		if err != nil {
			return fmt.Errorf("mcpgateway: resources/templates/list: %w", err)
		}
		ts = append(ts, t)
	}
	g.mu.Lock()
	oldR, oldT := g.resources, g.templates
	g.resources, g.templates = nil, nil
	for _, r := range rs {
		g.resources = append(g.resources, r.URI)
	}
	for _, t := range ts {
		g.templates = append(g.templates, t.URITemplate)
	}
	g.mu.Unlock()
	g.server.RemoveResources(oldR...)
	g.server.RemoveResourceTemplates(oldT...)
	for _, r := range rs {
		safely(g, "resource "+r.URI, func() { g.server.AddResource(r, read) })
	}
	for _, t := range ts {
		safely(g, "resource template "+t.URITemplate, func() { g.server.AddResourceTemplate(t, read) })
	}
	return nil
}

// safely adds one feature: the SDK panics on a malformed one (a tool
// schema that is not an object), which leaves that feature out rather
// than the whole server.
func safely(g *Gateway, what string, add func()) {
	defer func() {
		if r := recover(); r != nil {
			g.cfg.Log.Warn("mcp gateway: left out a malformed upstream feature", "feature", what, "err", fmt.Sprint(r))
		}
	}()
	add()
}

func (g *Gateway) tool(name string) *mcp.Tool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tools[name]
}

// progressRoutes maps the progress tokens the gateway sends upstream to
// the downstream session and token they stand for.
type progressRoutes struct {
	mu   sync.Mutex
	next int
	m    map[string]progressRoute
}

type progressRoute struct {
	ss    *mcp.ServerSession
	token any
}

// add returns the token to send upstream and a func that drops it.
func (p *progressRoutes) add(ss *mcp.ServerSession, token any) (string, func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]progressRoute{}
	}
	p.next++
	up := fmt.Sprintf("gw-%d", p.next)
	p.m[up] = progressRoute{ss, token}
	return up, func() { p.mu.Lock(); delete(p.m, up); p.mu.Unlock() }
}

func (p *progressRoutes) forward(ctx context.Context, n *mcp.ProgressNotificationParams) {
	key, _ := n.ProgressToken.(string)
	p.mu.Lock()
	r, ok := p.m[key]
	p.mu.Unlock()
	if !ok {
		return
	}
	out := *n
	out.ProgressToken = r.token
	_ = r.ss.NotifyProgress(ctx, &out)
}
