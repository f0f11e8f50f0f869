// The device key and the JWTs it signs, with WebCrypto only.

const utf8 = new TextEncoder();

/** b64url encodes bytes as base64url without padding (RFC 7515 §2). */
export function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** b64urlDecode decodes base64url (padding optional) to bytes. */
export function b64urlDecode(s) {
  const std = s.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const bin = atob(std + "===".slice((std.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** sha256 returns base64url(SHA-256(UTF-8 of text)). */
export async function sha256(text) {
  return b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", utf8.encode(text))));
}

/** randomID is 128 random bits, base64url (a jti). */
export function randomID() {
  return b64url(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * newDeviceKey makes the device's P-256 key pair. The private key is
 * non-extractable: script can sign with it but never read it, and it stays
 * in this browser's IndexedDB.
 */
export function newDeviceKey() {
  return crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
}

/** publicJWK is the public key as the JWK sent at enrollment. */
export async function publicJWK(publicKey) {
  const j = await crypto.subtle.exportKey("jwk", publicKey);
  return { kty: "EC", crv: "P-256", x: j.x, y: j.y };
}

/**
 * signJWT makes an ES256 JWT. WebCrypto's ECDSA signature is the raw
 * r || s pair, exactly the JWS form (RFC 7518 §3.4), so no DER conversion.
 */
export async function signJWT(privateKey, claims) {
  const input = b64url(utf8.encode(JSON.stringify({ alg: "ES256", typ: "JWT" }))) + "." +
    b64url(utf8.encode(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, utf8.encode(input));
  return input + "." + b64url(new Uint8Array(sig));
}
