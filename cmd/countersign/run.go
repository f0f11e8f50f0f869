package main

import (
	"context"
	"fmt"
	"io"
)

const usage = `countersign — an authorization server for AI agents (OpenID CIBA)

Usage:
  countersign serve [flags]          run the server (embedded store unless --redis-url)
  countersign demo [--stub]          a server, a user, an agent and a phone: a first approval in minutes
  countersign rules validate|test FILE   compile a ruleset and run its tests (offline)
  countersign rules show|versions|push|simulate|rollback   against a running server
  countersign audit verify|export|tail   the audit trail of a running server
  countersign mandates list|show|revoke  intent mandates: what agents may do without asking again
  countersign clients|users|agents   admin commands against a running server (below)
  countersign mcp-gateway [flags]    hold an MCP server's tool calls for approval (below)
  countersign help                   this text

Run "countersign serve --help" for the server's flags; every flag has a
COUNTERSIGN_* environment twin.

` + adminUsage + "\n" + rulesUsage + "\n" + auditUsage + "\n" + mandatesUsage + "\n" + mcpUsage

// run is the whole program: it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "rules":
		return rulesCommand(ctx, args[1:], getenv, stdout, stderr)
	case "demo":
		return demo(ctx, args[1:], getenv, stdout, stderr)
	case "clients", "users", "agents":
		return adminCmd(ctx, args[0], args[1:], getenv, stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], getenv, stdout, stderr)
	case "mandates":
		return mandatesCmd(ctx, args[1:], getenv, stdout, stderr)
	case "mcp-gateway":
		return mcpGatewayCmd(ctx, args[1:], getenv, stdout, stderr)
	case "mcp-example-server":
		return mcpExampleCmd(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "countersign: unknown command %q\n\n%s", args[0], usage)
	return 2
}
