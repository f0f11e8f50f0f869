// Package guard is the upstream's side of the MCP gateway, for Go MCP
// servers served over streamable HTTP: it lets initialize, tools/list and
// every other method through, and lets a tools/call through only with a
// Countersign access token (verified by ciba/resource: bearer or DPoP,
// signature, issuer, audience, expiry) whose authorization_details hold an
// mcp_tool_call entry for this tool with these exact arguments (RFC 8785
// canonical JSON compared), and only once per token (its jti).
//
// It holds used token ids in memory until they expire: one instance. It
// refuses JSON-RPC batches that hold a tools/call (MCP 2025-06-18 dropped
// batching).
package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gowebpki/jcs"

	"github.com/countersign/countersign/ciba/resource"
)

// maxBody bounds the request bodies the guard reads.
const maxBody = 4 << 20

// Guard wraps an MCP streamable-HTTP handler.
type Guard struct {
	// Verifier checks the token; its Audience is this server's URL (the
	// gateway names it in the entry's locations).
	Verifier *resource.Middleware
	Now      func() time.Time

	mu   sync.Mutex
	used map[string]time.Time // jti -> expiry
}

type call struct {
	Name      string
	Arguments json.RawMessage
}

// parse finds a tools/call in a POST body. Member names are matched
// exactly (encoding/json would match them case-insensitively, and the
// SDK might read another member than the guard) and a body with a
// duplicate member name is refused (RFC 8785 §3.1 has no form for it).
func parse(body []byte) (call, bool, error) {
	if _, err := jcs.Transform(body); err != nil {
		return call{}, false, errors.New("the body is not one JSON value without duplicate member names")
	}
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		var batch []map[string]json.RawMessage
		_ = json.Unmarshal(body, &batch)
		for _, m := range batch {
			if method(m) == "tools/call" {
				return call{}, false, errors.New("a tools/call may not be batched")
			}
		}
		return call{}, false, nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || method(m) != "tools/call" {
		return call{}, false, nil
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(m["params"], &p) != nil {
		return call{}, false, errors.New("tools/call params must be an object")
	}
	var c call
	if json.Unmarshal(p["name"], &c.Name) != nil {
		return call{}, false, errors.New("tools/call needs a name")
	}
	c.Arguments = p["arguments"]
	return c, true, nil
}

func method(m map[string]json.RawMessage) string {
	var s string
	_ = json.Unmarshal(m["method"], &s)
	return s
}

// Handler returns next guarded by g.
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Body == nil {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		r.Body.Close()
		if err != nil || len(body) > maxBody {
			refuse(w, http.StatusRequestEntityTooLarge, "invalid_request", "request too large or unreadable")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		c, isCall, err := parse(body)
		if err != nil {
			refuse(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		if isCall {
			g.Verifier.Handler(g.check(c, next)).ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// check runs after the token was verified.
func (g *Guard) check(c call, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := resource.FromContext(r.Context())
		if !ok || !Covers(claims.AuthorizationDetails, c.Name, c.Arguments) {
			// RFC 6750 §3.1: the token is valid but does not allow this call.
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", error_description="the token does not cover this tool call"`)
			refuse(w, http.StatusForbidden, "insufficient_scope", "the token does not cover this tool call")
			return
		}
		if !g.once(claims.ID, claims.Expiry) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the token was already used for a tool call"`)
			refuse(w, http.StatusUnauthorized, "invalid_token", "the token was already used for a tool call")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// once records jti and reports whether it was new.
func (g *Guard) once(jti string, exp time.Time) bool {
	if jti == "" {
		return false
	}
	now := time.Now()
	if g.Now != nil {
		now = g.Now()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.used == nil {
		g.used = map[string]time.Time{}
	}
	for k, e := range g.used {
		if now.After(e) {
			delete(g.used, k)
		}
	}
	if _, seen := g.used[jti]; seen {
		return false
	}
	g.used[jti] = exp
	return true
}

// Covers reports whether authorization_details (a JSON array) holds an
// mcp_tool_call entry for tool with exactly these arguments (absent or
// null arguments are {}).
func Covers(details json.RawMessage, tool string, arguments json.RawMessage) bool {
	want, ok := canonical(arguments)
	if !ok {
		return false
	}
	var entries []struct {
		Type      string          `json:"type"`
		Tool      string          `json:"tool"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if json.Unmarshal(details, &entries) != nil {
		return false
	}
	for _, e := range entries {
		if e.Type != "mcp_tool_call" || e.Tool != tool {
			continue
		}
		if got, ok := canonical(e.Arguments); ok && bytes.Equal(got, want) {
			return true
		}
	}
	return false
}

func canonical(raw json.RawMessage) ([]byte, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return nil, false
	}
	c, err := jcs.Transform(raw) // RFC 8785: one byte string per JSON value
	return c, err == nil
}

func refuse(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
