// The service worker and Web Push subscription. Where the browser cannot
// subscribe, the app says so and polls instead.

import { root } from "./api.js";
import { b64urlDecode } from "./crypto.js";

/** register installs the service worker (offline shell and notifications). */
export async function register() {
  if (!("serviceWorker" in navigator)) return null;
  try {
    return await navigator.serviceWorker.register(root + "/app/sw.js", { scope: root + "/app/" });
  } catch {
    return null;
  }
}

function within(ms, p, what) {
  return Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(what)), ms))]);
}

/**
 * subscribe asks for notification permission and subscribes with the
 * server's VAPID key (RFC 8292). It resolves to the subscription's JSON
 * ({endpoint, keys}) or rejects with a reason a person can read.
 */
export async function subscribe(vapidKey) {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    throw new Error("This browser cannot receive push messages here (on iPhone and iPad: add Countersign to the Home Screen and open it from there).");
  }
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error("Notifications are not allowed for this page.");
  const reg = await within(10000, navigator.serviceWorker.ready, "The service worker did not start.");
  const key = b64urlDecode(vapidKey);
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameKey(sub.options?.applicationServerKey, key)) {
    await sub.unsubscribe();
    sub = null;
  }
  sub ??= await within(15000, reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
    "The browser's push service did not answer.");
  const j = sub.toJSON();
  return { endpoint: j.endpoint, keys: { p256dh: j.keys.p256dh, auth: j.keys.auth } };
}

/** current is the existing subscription's endpoint, or "". */
export async function current() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return "";
  const reg = await navigator.serviceWorker.getRegistration(root + "/app/");
  const sub = await reg?.pushManager.getSubscription();
  return sub?.endpoint ?? "";
}

function sameKey(buf, key) {
  if (!buf) return false;
  const a = new Uint8Array(buf);
  return a.length === key.length && a.every((b, i) => b === key[i]);
}
