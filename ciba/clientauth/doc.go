// Package clientauth authenticates OAuth clients at the token,
// backchannel authentication, introspection and revocation endpoints:
// client_secret_basic and client_secret_post (RFC 6749 §2.3.1) and
// private_key_jwt (RFC 7523 §2.2, OIDC Core §9). It also parses the
// public JWKs that clients and devices register.
//
// Authentication is split in two so that the caller can fetch the client
// record in the same Redis round trip as the rest of its reads: Parse
// finds the claimed client id in the HTTP request without trusting it,
// Verify checks the credential against the registered client.
//
// Secrets are random 256-bit values, stored as SHA-256 and compared in
// constant time; a slow password hash buys nothing for random secrets.
// It does not know Redis: the single-use jti check goes through the
// one-method ReplayGuard.
package clientauth
