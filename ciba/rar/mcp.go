package rar

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"unicode/utf8"
)

// TypeMCPToolCall is one Model Context Protocol tools/call that a gateway
// holds until it is approved: which server, which tool, with which
// arguments, and the tool's annotations as the server declared them.
const TypeMCPToolCall = "mcp_tool_call"

// Bounds of an mcp_tool_call entry. The arguments stay within the rules'
// input bounds (strings, entries per map or list, nesting), so a rule over
// them is cost-estimated like any other input.
const (
	MaxToolName      = 128  // code points in tool and server.name
	MaxArgumentBytes = 4096 // the arguments' canonical JSON
	MaxArgumentDepth = 8    // nesting levels, the arguments object being 1
	maxArgumentItems = 64   // members of one object or elements of one list
	maxArgumentText  = 1024 // code points in one string
)

var mcpToolCall = schema{
	members: map[string]check{
		"server":      mcpServer,
		"tool":        shortName,
		"arguments":   mcpArguments,
		"annotations": mcpAnnotations,
	},
	required: []string{"server", "tool", "arguments"},
}

func shortName(v any) string {
	s, ok := v.(string)
	if !ok || s == "" || utf8.RuneCountInString(s) > MaxToolName {
		return fmt.Sprintf("must be a non-empty string of at most %d characters", MaxToolName)
	}
	return ""
}

// mcpServer is {name, url} for a streamable-HTTP server or {name, command}
// for a server run as a local process: exactly one of the two.
func mcpServer(v any) string {
	obj, ok := v.(map[string]any)
	if !ok {
		return "must be an object with name and url or command"
	}
	for name := range obj {
		if !slices.Contains([]string{"name", "url", "command"}, name) {
			return "has unknown member " + name
		}
	}
	if msg := shortName(obj["name"]); msg != "" {
		return "name " + msg
	}
	u, hasURL := obj["url"]
	c, hasCmd := obj["command"]
	switch {
	case hasURL == hasCmd:
		return "must have exactly one of url and command"
	case hasURL:
		s, _ := u.(string)
		p, err := url.Parse(s)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil {
			return "url must be an absolute http or https URL"
		}
	case hasCmd:
		if s, ok := c.(string); !ok || s == "" || utf8.RuneCountInString(s) > maxArgumentText {
			return fmt.Sprintf("command must be a non-empty string of at most %d characters", maxArgumentText)
		}
	}
	return ""
}

// mcpArguments is the tools/call arguments object (MCP: "arguments" is an
// object), bounded so that the phone can show it and the rules read it.
func mcpArguments(v any) string {
	if _, ok := v.(map[string]any); !ok {
		return "must be a JSON object"
	}
	if msg := withinArguments(v, 1); msg != "" {
		return msg
	}
	b, err := json.Marshal(v)
	if err != nil || len(b) > MaxArgumentBytes {
		return fmt.Sprintf("must be at most %d bytes of JSON", MaxArgumentBytes)
	}
	return ""
}

func withinArguments(v any, depth int) string {
	if depth > MaxArgumentDepth {
		return fmt.Sprintf("nest deeper than %d levels", MaxArgumentDepth)
	}
	switch x := v.(type) {
	case string:
		if utf8.RuneCountInString(x) > maxArgumentText {
			return fmt.Sprintf("hold a string longer than %d characters", maxArgumentText)
		}
	case []any:
		if len(x) > maxArgumentItems {
			return fmt.Sprintf("hold a list of more than %d elements", maxArgumentItems)
		}
		for _, e := range x {
			if msg := withinArguments(e, depth+1); msg != "" {
				return msg
			}
		}
	case map[string]any:
		if len(x) > maxArgumentItems {
			return fmt.Sprintf("hold an object of more than %d members", maxArgumentItems)
		}
		for k, e := range x {
			if utf8.RuneCountInString(k) > maxArgumentText {
				return fmt.Sprintf("hold a member name longer than %d characters", maxArgumentText)
			}
			if msg := withinArguments(e, depth+1); msg != "" {
				return msg
			}
		}
	}
	return ""
}

var mcpHints = []string{"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}

// mcpAnnotations are the MCP ToolAnnotations: four booleans and a title.
func mcpAnnotations(v any) string {
	obj, ok := v.(map[string]any)
	if !ok {
		return "must be an object"
	}
	for name, m := range obj {
		switch {
		case slices.Contains(mcpHints, name):
			if _, ok := m.(bool); !ok {
				return name + " must be a boolean"
			}
		case name == "title":
			if msg := shortName(m); msg != "" {
				return "title " + msg
			}
		default:
			return "has unknown member " + name
		}
	}
	return ""
}
