// Package agent is a small client for AI agents that talk to Countersign
// (or any CIBA server) over HTTP only: it reads discovery, calls
// /bc-authorize, and waits for the token by polling (honouring interval
// and slow_down, CIBA Core §7.3 and §11) or, in ping mode, by waiting for
// the server's notification (CIBA Core §10.2) on a PingReceiver before
// calling /token. It also does RFC 8693 token exchange for sub-agents.
//
// With a DPoPKey every /token call carries a DPoP proof (RFC 9449 §5), the
// server nonce is remembered and a use_dpop_nonce answer is retried once
// with the nonce it brings (RFC 9449 §8); Proof signs proofs for resource
// calls (ath, RFC 9449 §7).
//
// It authenticates with client_secret_basic only, does not do push mode
// (the token arrives at the agent's own endpoint then), and imports nothing
// of the server but the proof format (ciba/dpop).
package agent
