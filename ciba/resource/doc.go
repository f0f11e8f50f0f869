// Package resource is net/http middleware for resource servers that accept
// Countersign access tokens, bearer (RFC 6750) or DPoP-bound (RFC 9449).
//
// It owns:
//
//   - token verification, either locally against the authorization
//     server's JWKS (fetched through discovery, cached, refetched on an
//     unknown kid; ES256, typ at+jwt, iss, aud, exp: RFC 9068 §4), or by
//     introspection (RFC 7662) with the resource server's own client
//     credentials, which also sees revocation at once;
//   - sender constraint: a token with cnf.jkt is accepted only as
//     "Authorization: DPoP <token>" with a DPoP proof (ciba/dpop) over the
//     request's method and URL, carrying the token's hash (ath) and signed
//     by the key whose RFC 7638 thumbprint is cnf.jkt (RFC 9449 §7.1);
//     such a token sent as Bearer is refused, and so is an unbound token
//     sent as DPoP (§7.2);
//   - the refusals: 401 with WWW-Authenticate per RFC 6750 §3 and RFC 9449
//     §7.1 (error invalid_token, invalid_dpop_proof or use_dpop_nonce);
//   - Claims in the request context for the handler (FromContext).
//
// It does not decide what a token allows: handlers look at Claims (scope,
// authorization_details, the act chain) themselves. It imports no echo and
// no server package.
package resource
