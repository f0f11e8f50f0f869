package mcpgateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gowebpki/jcs"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/countersign/countersign/ciba/agent"
	"github.com/countersign/countersign/ciba/oauth"
	"github.com/countersign/countersign/ciba/rar"
)

// outcome is what became of one tools/call, as logged.
type outcome struct {
	what      string // forwarded | refused | denied | expired | failed | cancelled | upstream_error | replayed
	authReqID string
	approval  string // policy | context | device, from the token
	detail    string // the refusal's description
}

// callTool is the handler of every mirrored tool.
func (g *Gateway) callTool(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	start := time.Now()
	id := takeRequestID(req.Params)
	name := req.Params.Name
	args, err := canonicalArguments(req.Params.Arguments)
	if err != nil {
		g.logCall(start, id, name, outcome{what: "refused", detail: err.Error()})
		return toolError("The gateway refused the call: %v.", err), nil
	}
	key := ""
	if id != "" {
		key = sessionID(req.Session) + "\x00" + id
	}
	fp := name + "\x00" + string(args)
	e, owner := g.results.start(key, fp)
	if !owner {
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		g.logCall(start, id, name, outcome{what: "replayed", authReqID: e.out.authReqID})
		return e.res, e.err
	}
	res, out, err := g.gateAndForward(ctx, req, name, args)
	// A call that was never forwarded and never decided may be asked
	// again; everything else answers retries as it answered this one.
	keep := out.what != "cancelled" && out.what != "failed"
	g.results.finish(key, e, res, err, out, keep)
	g.logCall(start, id, name, out)
	return res, err
}

func sessionID(ss *mcp.ServerSession) string {
	if ss == nil {
		return ""
	}
	return ss.ID()
}

// gateAndForward asks Countersign and, once a token is released, calls
// the upstream exactly once.
func (g *Gateway) gateAndForward(ctx context.Context, req *mcp.CallToolRequest, name string, args json.RawMessage) (*mcp.CallToolResult, outcome, error) {
	detail, err := g.detail(name, args)
	if err != nil {
		return toolError("The gateway refused the call: %v.", err), outcome{what: "refused", detail: err.Error()}, nil
	}
	bm := bindingMessage(name, g.name)
	stop := g.progress(ctx, req, bm)
	tok, err := g.authorize(ctx, detail, bm)
	stop()
	if err != nil {
		return g.refusal(ctx, err)
	}
	out := outcome{what: "forwarded", authReqID: tok.AuthReqID, approval: approvalOf(tok)}
	params := &mcp.CallToolParams{Name: name, Arguments: args}
	if pt := req.Params.GetProgressToken(); pt != nil {
		up, drop := g.prog.add(req.Session, pt)
		defer drop()
		params.SetProgressToken(up)
	}
	res, err := g.up.CallTool(withBearer(ctx, tok.AccessToken), params)
	if err != nil {
		out.what, out.detail = "upstream_error", err.Error()
	}
	return res, out, err
}

func (g *Gateway) authorize(ctx context.Context, detail []byte, bm string) (*agent.Token, error) {
	r := agent.Request{
		Scope: g.cfg.Scope, LoginHint: g.cfg.User, BindingMessage: bm,
		AuthorizationDetails: json.RawMessage(detail),
		RequestedExpiry:      int(g.cfg.Expiry / time.Second),
	}
	if g.cfg.Agent.Pings != nil {
		r.NotificationToken = rand.Text() // CIBA Core §7.1: client_notification_token, one per request
	}
	return g.cfg.Agent.Authorize(ctx, r)
}

// refusal turns a failed authorization into the client's answer; none of
// these paths calls the upstream.
func (g *Gateway) refusal(ctx context.Context, err error) (*mcp.CallToolResult, outcome, error) {
	var ae *agent.Error
	switch {
	case ctx.Err() != nil:
		return nil, outcome{what: "cancelled"}, ctx.Err()
	case errors.As(err, &ae) && ae.Code == "access_denied" && ae.Status == 403:
		// CIBA Core §13: refused by policy at /bc-authorize; the description names the rule.
		return toolError("Refused by Countersign (%s); the tool did not run.", strings.TrimSuffix(ae.Description, ".")),
			outcome{what: "refused", detail: ae.Description}, nil
	case errors.As(err, &ae) && ae.Code == "access_denied":
		return toolError("The call was denied on the user's phone; the tool did not run."), outcome{what: "denied"}, nil
	case errors.As(err, &ae) && ae.Code == "expired_token":
		return toolError("No decision in %s; the tool did not run.", minutes(g.cfg.Expiry)), outcome{what: "expired"}, nil
	case errors.As(err, &ae):
		// Rate limits, an unavailable server, a refused request: nothing
		// was decided, so a retry may ask again ("failed" is not kept).
		return toolError("Countersign refused the call (%s: %s); the tool did not run.", ae.Code, ae.Description),
			outcome{what: "failed", detail: ae.Code}, nil
	}
	return toolError("Countersign could not be asked (%v); the tool did not run.", err), outcome{what: "failed", detail: err.Error()}, nil
}

func minutes(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return d.String()
}

func toolError(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// approvalOf reads how the token was approved (its approval claim) for
// the log; the token itself is never logged.
func approvalOf(t *agent.Token) string {
	parts := strings.Split(t.AccessToken, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64URL(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Approval struct {
			By string `json:"by"`
		} `json:"approval"`
	}
	_ = json.Unmarshal(b, &c)
	return c.Approval.By
}

// canonicalArguments is the call's arguments as RFC 8785 JSON: an object
// (MCP: tools/call arguments), {} when absent.
func canonicalArguments(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	if raw[0] != '{' {
		return nil, errors.New("arguments must be a JSON object")
	}
	c, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %v", err)
	}
	return c, nil
}

// detail is the authorization_details array of one call, checked against
// the registered type so a call that cannot be shown is refused here.
func (g *Gateway) detail(name string, args json.RawMessage) ([]byte, error) {
	d := map[string]any{
		"type": rar.TypeMCPToolCall, "server": g.serverDescription(), "tool": name,
		"arguments": args, "annotations": annotations(g.tool(name)),
	}
	if g.cfg.Upstream.URL != "" {
		d["locations"] = []string{g.cfg.Upstream.URL} // RFC 9396 §2.2: the token's audience is the upstream
	}
	b, err := json.Marshal([]any{d})
	if err != nil {
		return nil, err
	}
	if _, err := rar.Parse(string(b)); err != nil {
		var oe *oauth.Error
		if errors.As(err, &oe) {
			return nil, errors.New(oe.Description)
		}
		return nil, err
	}
	return b, nil
}

// annotations are the tool's hints with the MCP defaults made explicit
// (destructiveHint and openWorldHint default to true, the others to false).
func annotations(t *mcp.Tool) map[string]any {
	a := &mcp.ToolAnnotations{}
	if t != nil && t.Annotations != nil {
		a = t.Annotations
	}
	out := map[string]any{"readOnlyHint": a.ReadOnlyHint, "idempotentHint": a.IdempotentHint,
		"destructiveHint": !a.ReadOnlyHint, "openWorldHint": true}
	if a.DestructiveHint != nil {
		out["destructiveHint"] = *a.DestructiveHint
	}
	if a.OpenWorldHint != nil {
		out["openWorldHint"] = *a.OpenWorldHint
	}
	title := a.Title
	if title == "" && t != nil {
		title = t.Title
	}
	if title = truncate(strings.TrimSpace(title), 128); title != "" {
		out["title"] = title
	}
	return out
}

// bindingMessage says what will happen, within CIBA's 64 characters
// (CIBA Core §7.1: short, shown on both devices); names are reduced to
// printable ASCII so no control or bidi character reaches it.
func bindingMessage(tool, server string) string {
	m := "Run " + printable(tool) + " on " + printable(server)
	return truncate(m, 64)
}

func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x21 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// truncate cuts s to n code points, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (g *Gateway) logCall(start time.Time, id, tool string, out outcome) {
	attrs := []slog.Attr{
		slog.String("outcome", out.what), slog.String("tool", tool), slog.String("server", g.name),
		slog.String("request_id", id), slog.Int64("duration_ms", time.Since(start).Milliseconds()),
	}
	for k, v := range map[string]string{"auth_req_id": out.authReqID, "approval": out.approval, "detail": out.detail} {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	g.cfg.Log.LogAttrs(context.Background(), slog.LevelInfo, "mcp tool call", attrs...)
}
