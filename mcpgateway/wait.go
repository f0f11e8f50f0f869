package mcpgateway

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// progress sends progress notifications with the time left while a call
// waits, when the client asked for them with a progressToken (MCP
// basic/utilities/progress); the returned func stops them. A call decided
// by policy returns before the first one.
func (g *Gateway) progress(ctx context.Context, req *mcp.CallToolRequest, bm string) func() {
	token := req.Params.GetProgressToken()
	if token == nil || req.Session == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := g.cfg.Now()
	total := g.cfg.Expiry.Seconds()
	go func() {
		defer close(done)
		t := time.NewTicker(g.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			waited := g.cfg.Now().Sub(start)
			left := max(g.cfg.Expiry-waited, 0).Round(time.Second)
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: token, Progress: waited.Seconds(), Total: total,
				Message: fmt.Sprintf("Waiting for the user to approve %q on their phone: %s left", bm, left),
			})
		}
	}()
	return func() { cancel(); <-done }
}

// results keeps each call's answer per (session, JSON-RPC id) for a
// while, so that a retry of the same request gets the same answer instead
// of a second upstream call.
type results struct {
	mu  sync.Mutex
	ttl time.Duration
	now func() time.Time
	m   map[string]*entry
}

type entry struct {
	fp   string // tool and canonical arguments
	done chan struct{}
	at   time.Time // when it finished
	res  *mcp.CallToolResult
	err  error
	out  outcome
}

// start returns the entry for key and whether the caller owns it (must
// run the call and finish it). An empty key is never shared. A key that
// comes back with another tool or other arguments is another call.
func (r *results) start(key, fp string) (*entry, bool) {
	e := &entry{fp: fp, done: make(chan struct{})}
	if key == "" {
		return e, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for k, old := range r.m {
		if !old.at.IsZero() && now.Sub(old.at) > r.ttl {
			delete(r.m, k)
		}
	}
	if old, ok := r.m[key]; ok && old.fp == fp {
		return old, false
	}
	r.m[key] = e
	return e, true
}

func (r *results) finish(key string, e *entry, res *mcp.CallToolResult, err error, out outcome, keep bool) {
	r.mu.Lock()
	e.res, e.err, e.out, e.at = res, err, out, r.now()
	if !keep && key != "" && r.m[key] == e {
		delete(r.m, key)
	}
	r.mu.Unlock()
	close(e.done)
}

type tokenKey struct{}

func withBearer(ctx context.Context, tok string) context.Context {
	return context.WithValue(ctx, tokenKey{}, tok)
}

// bearer adds the released access token to the upstream request that
// carries the tool call (RFC 6750 §2.1), and to no other.
type bearer struct{ next http.RoundTripper }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if tok, ok := r.Context().Value(tokenKey{}).(string); ok && tok != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return b.next.RoundTrip(r)
}

func base64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
