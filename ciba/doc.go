// Package ciba is the protocol of Countersign in plain Go: backchannel
// authentication (CIBA Core §7), the CIBA grant at the token endpoint
// (§10.1, §11), the request lifecycle, and the device decisions that
// complete high-risk requests. HTTP lives in ciba/server; every method
// here takes decoded input and returns a result or an *oauth.Error.
//
// The lifecycle of a request (state in ciba/store, expiry checked on
// every read):
//
//	/bc-authorize ─ risk.Assess ─┬─ deny    → 403 access_denied, nothing stored but counters and audit
//	                             ├─ policy  → approved   (interval 1 s)
//	                             ├─ context → approved   (interval 1 s)
//	                             └─ device  → pending    (interval 5 s, configurable) ─ device decision ─→ approved | denied
//	approved ─ /token ─→ redeemed (one token response per auth_req_id, ever)
//	pending | approved ─ time ─→ expired
//
// interval is never 0: CIBA Core §7.3 makes it a positive number and strict
// clients (openid-client) refuse 0. Push clients get none (they never poll).
//
// What it deliberately does not do: parse HTTP, talk to Redis directly
// (ciba/store does), evaluate CEL (risk and rules do).
package ciba
