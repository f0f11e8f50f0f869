// Package dpop creates and verifies DPoP proofs (RFC 9449): the JWTs an
// agent signs with its own key so that a token bound to that key is useless
// to anyone who only steals the token.
//
// It owns:
//
//   - Verifier: every check of RFC 9449 §4.3 on one proof (typ, an
//     asymmetric alg from Algs, a public jwk, the signature, htm, htu
//     without query and fragment, iat within IATWindow, single-use jti,
//     nonce, ath). Failures are *oauth.Error invalid_dpop_proof naming the
//     check, or use_dpop_nonce with a fresh DPoP-Nonce header.
//   - Nonces: stateless server nonces (RFC 9449 §8), HMAC-SHA256 of a time
//     bucket under a key shared by every node; the current and the previous
//     bucket are accepted, so nonces rotate every Period and nothing is
//     stored per client.
//   - Sign: proof creation for agents (ES256, ES384, EdDSA).
//   - MemoryGuard: a per-process jti replay guard for single-node resource
//     servers.
//
// Replay state lives behind ReplayGuard, the one boundary to Redis
// (ciba/store.DB implements it); this package imports neither Redis nor
// echo, and does not decide whether a client must use DPoP or how a token
// is bound (ciba does, with Proof.JKT as cnf.jkt, RFC 9449 §6.1).
package dpop
