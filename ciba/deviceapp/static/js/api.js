// The device API (docs/api.md, "The user's phone"). Every call but
// enrollment carries "Authorization: Device <jwt>", a fresh single-use ES256
// JWT signed by the device key.

import { canonicalize } from "./jcs.js";
import { randomID, sha256, signJWT } from "./crypto.js";

/** root is the server's base path: the app lives at root + "/app/". */
export const root = location.pathname.slice(0, Math.max(0, location.pathname.indexOf("/app/")));

/** APIError is an error answer: status and the RFC 6749 §5.2 members. */
export class APIError extends Error {
  constructor(status, body) {
    super(body?.error_description || (status ? `The server answered ${status}.` : "The server cannot be reached."));
    this.status = status;
    this.code = body?.error || "";
  }
}

const now = () => Math.floor(Date.now() / 1000);

/** deviceJWT: iss device id, aud issuer, exp 30 s after iat (the server allows ≤ 60 s), fresh jti. */
export function deviceJWT(dev) {
  const iat = now();
  return signJWT(dev.key, { iss: dev.device_id, aud: dev.issuer, iat, exp: iat + 30, jti: randomID() });
}

async function call(method, path, body, dev) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (dev) headers.Authorization = "Device " + (await deviceJWT(dev));
  let res;
  try {
    res = await fetch(root + path, {
      method, headers, cache: "no-store", credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new APIError(0, null);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw new APIError(res.status, data);
  return data;
}

/** issuer reads the issuer from discovery (the aud of every device JWT). */
export async function issuer() {
  const meta = await call("GET", "/.well-known/openid-configuration");
  if (!meta?.issuer) throw new APIError(500, { error_description: "The server's discovery document has no issuer." });
  return meta.issuer;
}

/** enroll redeems a one-time code: {device_id, user_id, vapid_public_key}. */
export const enroll = (body) => call("POST", "/device/enroll", body);
/** pending lists the user's pending requests, newest first. */
export const pending = (dev) => call("GET", "/device/requests", undefined, dev).then((r) => r?.requests ?? []);
/** request fetches one request view. */
export const request = (dev, id) => call("GET", "/device/requests/" + encodeURIComponent(id), undefined, dev);
/** grants lists what agents hold for this user. */
export const grants = (dev) => call("GET", "/device/grants", undefined, dev).then((r) => r?.grants ?? []);
/** revokeGrant revokes one grant. */
export const revokeGrant = (dev, id) => call("POST", "/device/grants/" + encodeURIComponent(id) + "/revoke", {}, dev);
/** mandates lists the user's intent mandates, newest first. */
export const mandates = (dev) => call("GET", "/device/mandates", undefined, dev).then((r) => r?.mandates ?? []);
/** revokeMandate revokes one mandate: later requests under it go the ordinary way, its tokens stop. */
export const revokeMandate = (dev, id) => call("POST", "/device/mandates/" + encodeURIComponent(id) + "/revoke", {}, dev);
/** setPushSubscription replaces the device's push subscription. */
export const setPushSubscription = (dev, sub) => call("PUT", "/device/push-subscription", { push_subscription: sub }, dev);
/** removeDevice unenrolls this device. */
export const removeDevice = (dev) => call("DELETE", "/device", undefined, dev);

/**
 * decisionJWT signs decision ("approve" | "deny") over the request exactly
 * as shown: bm_hash = b64url(SHA-256(binding message)), ad_hash =
 * b64url(SHA-256(RFC 8785 JSON of authorization_details)), exp 120 s after iat.
 */
export async function decisionJWT(dev, view, decision) {
  const iat = now();
  return signJWT(dev.key, {
    iss: dev.device_id, aud: dev.issuer, req: view.id, decision,
    bm_hash: await sha256(view.binding_message ?? ""),
    ad_hash: await sha256(canonicalize(view.authorization_details ?? [])),
    iat, exp: iat + 120, jti: randomID(),
  });
}

/** decide sends a signed decision; the answer is the decided request view. */
export async function decide(dev, view, decision) {
  const jwt = await decisionJWT(dev, view, decision);
  return call("POST", "/device/requests/" + encodeURIComponent(view.id) + "/decision", { decision_jwt: jwt }, dev);
}
