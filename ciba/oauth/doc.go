// Package oauth is the leaf of Countersign's protocol packages: the OAuth,
// OIDC and CIBA error codes, the one *Error type every endpoint returns, and
// the grant and token type names.
//
// An *Error is built where a failure is found, with a description that is
// safe to show to the caller (no secrets, no internal detail), and rendered
// by the single error handler in ciba/server as
// {"error": ..., "error_description": ...} with its status and, for 401,
// a WWW-Authenticate header (RFC 6750 §3, RFC 6749 §5.2).
//
// It deliberately imports nothing of ours.
package oauth
