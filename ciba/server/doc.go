// Package server is the only importer of echo: the route table, thin
// handlers (decode, call one method, encode), the one error renderer and
// the middleware (request id, body limit, recovery, logging, metrics).
//
// Every error leaves as {"error","error_description"} with the RFC's
// status; 401 invalid_client carries WWW-Authenticate; unknown errors
// become 500 server_error, logged with the request id and never shown.
// OAuth endpoints take application/x-www-form-urlencoded bodies only and
// refuse repeated parameters (RFC 6749 §3.1). Bodies over 64 KiB are 413.
// Responses carrying tokens or secrets set Cache-Control: no-store.
//
// Every request has a deadline (Deps.RequestTimeout) that the Redis client
// honours for dialling, pool waits, writes and reads. An error that
// oauth.IsUnavailable classifies as an outage, or any error once the
// deadline has passed, leaves as 503 temporarily_unavailable with
// Retry-After, never as 500 nor as a protocol answer. A 503 means "outcome
// unknown": each state transition is one Lua script, which Redis applies whole
// or not at all, but a script already sent to a stalled Redis runs when it
// resumes, so the change may be in place after its request answered 503
// (a retried /bc-authorize then makes a second request; a /token whose
// redemption ran answers invalid_grant afterwards, never a second token).
// /readyz has its own shorter deadline and tells no internal detail.
package server
