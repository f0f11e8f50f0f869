// Package token mints and verifies Countersign's tokens and owns the
// signing keys' format: ES256 (P-256) everywhere.
//
//	what            header typ  claims
//	access token    at+jwt      RFC 9068: iss sub aud client_id iat exp jti, and
//	                            act scope authorization_details grant_id approval
//	                            cnf auth_time acr
//	ID token        JWT         OIDC Core §2: iss sub aud iat exp auth_time acr
//	                            nonce at_hash, CIBA Core §10.3.1 auth_req_id claim
//
// A key's kid is its RFC 7638 thumbprint. A KeySet holds the current key
// (which signs) and at most two previous keys (which still verify and are
// still published in the JWKS), so a token signed just before a rotation
// verifies until it expires; a key rotated out twice more no longer does.
// Keys are stored by the caller as the bytes MarshalBinary returns.
//
// authorization_details travel as json.RawMessage: Access puts the array
// into the token byte for byte (compacted), Verify hands the same bytes
// back, and ciba/rar parses them. This package never interprets them.
//
// Act.Chain lists the approved agent first and the current actor last, the
// order of the rules' agent.chain; the JSON is RFC 8693 §4.1's nesting, the
// current actor outermost.
//
// It deliberately does not check an access token's aud (a resource server
// does), revocation, or DPoP proofs (only cnf.jkt is carried), and it
// decides nothing about who may get a token: the callers do.
package token
