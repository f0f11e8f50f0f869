// Package example is a tiny MCP server to put behind the gateway: a
// notebook with a read-only tool (read_notes) and a destructive one
// (delete_note). It counts the calls that ran, so tests and the demo can
// show which calls reached it.
package example

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Notes is the notebook.
type Notes struct {
	mu    sync.Mutex
	notes map[string]string
	calls map[string]int
	// OnCall, when set, is told of every tool call that ran.
	OnCall func(tool string, args map[string]any)
}

// NewNotes returns a notebook with a few notes.
func NewNotes() *Notes {
	return &Notes{notes: map[string]string{
		"n1": "Buy milk", "n2": "Call the dentist", "n3": "Quarterly report due Friday",
	}, calls: map[string]int{}}
}

// Calls returns how many times tool ran.
func (n *Notes) Calls(tool string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[tool]
}

func (n *Notes) ran(tool string, args map[string]any) {
	n.mu.Lock()
	n.calls[tool]++
	n.mu.Unlock()
	if n.OnCall != nil {
		n.OnCall(tool, args)
	}
}

type readArgs struct{}

type deleteArgs struct {
	ID string `json:"id" jsonschema:"the id of the note to delete"`
}

// Server returns an MCP server over n.
func (n *Notes) Server() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	no, yes := false, true
	mcp.AddTool(s, &mcp.Tool{
		Name: "read_notes", Description: "List every note.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &no, Title: "Read notes"},
	}, func(ctx context.Context, _ *mcp.CallToolRequest, _ readArgs) (*mcp.CallToolResult, any, error) {
		n.ran("read_notes", nil)
		return text(n.list()), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{
		Name: "delete_note", Description: "Delete a note for good.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: &yes, IdempotentHint: true, OpenWorldHint: &no, Title: "Delete a note"},
	}, func(ctx context.Context, _ *mcp.CallToolRequest, a deleteArgs) (*mcp.CallToolResult, any, error) {
		n.ran("delete_note", map[string]any{"id": a.ID})
		n.mu.Lock()
		_, ok := n.notes[a.ID]
		delete(n.notes, a.ID)
		n.mu.Unlock()
		if !ok {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "no note " + a.ID}}}, nil, nil
		}
		return text(fmt.Sprintf("deleted %s", a.ID)), nil, nil
	})
	// A resource and a prompt, which the gateway passes through ungated.
	s.AddResource(&mcp.Resource{URI: "notes://all", Name: "all-notes", MIMEType: "text/plain"},
		func(ctx context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, MIMEType: "text/plain", Text: n.list()}}}, nil
		})
	s.AddPrompt(&mcp.Prompt{Name: "summarize_notes", Description: "Summarize the notes."},
		func(ctx context.Context, r *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user",
				Content: &mcp.TextContent{Text: "Summarize these notes:\n" + n.list()}}}}, nil
		})
	return s
}

// list is every note, one "id: text" line each, by id.
func (n *Notes) list() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := make([]string, 0, len(n.notes))
	for id := range n.notes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	lines := make([]string, 0, len(ids))
	for _, id := range ids {
		lines = append(lines, id+": "+n.notes[id])
	}
	return strings.Join(lines, "\n")
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}
