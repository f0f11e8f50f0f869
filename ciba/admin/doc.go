// Package admin holds the administrator's use cases: registering clients
// (agents and resource servers) and users, enrollment codes, the agent
// kill switch and audit queries. ciba/server maps them to /admin/...
//
// Client secrets are generated here (256 bits), returned once and stored
// as SHA-256. Client metadata errors are RFC 7591 §3.2.2
// invalid_client_metadata; unknown JSON members are invalid_request.
// Notification endpoints pass notify.EndpointPolicy: https only and no
// loopback, link-local or private address (an agent could otherwise make
// the server call into its own network: SSRF), unless the server runs in
// development mode or the client is registered with
// allow_private_notification_endpoint by an administrator.
package admin
