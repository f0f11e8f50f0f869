// Package mcpgateway is an MCP gateway that holds risky tool calls for the
// user's approval: it sits between an MCP client (an agent host) and one
// upstream MCP server, passes initialize, tools/list, resources, prompts,
// completions and notifications through, and sends every tools/call
// through Countersign first, as a CIBA request (OpenID CIBA Core §7) with
// one authorization_details entry of type mcp_tool_call (RFC 9396).
//
// It is a client of Countersign, not part of the server: it talks to it
// over HTTP only, through ciba/agent, as one registered client (poll or
// ping) acting for one configured user, and imports no server package.
//
// A tools/call, in order:
//
//  1. the JSON-RPC id of the call (stamped into _meta by the downstream
//     transport, see stamp.go) and the session name it; a call whose
//     (session, id, tool, arguments) already has a result gets that
//     result again, and the upstream is not called twice;
//  2. /bc-authorize with the mcp_tool_call entry (server, tool, arguments,
//     the tool's annotations from tools/list with the MCP defaults made
//     explicit) and a binding message saying what will happen;
//  3. while the request waits for the phone: progress notifications with
//     the time left, when the client sent a progressToken;
//  4. the outcome: a token -> the upstream call, made once, with the
//     access token as Authorization: Bearer for an HTTP upstream (see
//     mcpgateway/guard for the upstream's side); a denial on the phone,
//     a refusal by policy or an expiry -> a tool error result
//     (isError), and the upstream is never called;
//  5. one JSON log line with the outcome (never the token).
//
// A cancelled call (notifications/cancelled, or the client going away)
// stops waiting and is never forwarded, even if the user approves later:
// the token is never redeemed. Countersign has no endpoint to withdraw a
// pending request, so it stays on the phone until it expires. A gateway
// restart loses the waits the same way: nothing is forwarded after it.
//
// Results are kept per (session, JSON-RPC id) for ResultTTL in memory; a
// retry from another session or after a restart asks again.
package mcpgateway
