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
package server
