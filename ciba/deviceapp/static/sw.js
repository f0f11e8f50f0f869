// Countersign service worker: the app shell offline, and notifications for
// approval requests. The browser decrypts pushes (RFC 8291); this only
// shows them.
"use strict";

const VERSION = "__COUNTERSIGN_APP_VERSION__";
const CACHE = "countersign-app-" + VERSION;
const SCOPE = new URL("./", self.location.href).pathname; // ".../app/"
// Every embedded file (a Go test keeps this list complete).
const ASSETS = [
  "",
  "app.css",
  "manifest.webmanifest",
  "icons/icon.svg",
  "icons/icon-192.png",
  "icons/icon-512.png",
  "icons/maskable-512.png",
  "js/api.js",
  "js/app.js",
  "js/crypto.js",
  "js/db.js",
  "js/dom.js",
  "js/enroll.js",
  "js/jcs.js",
  "js/lists.js",
  "js/mandates.js",
  "js/push.js",
  "js/request.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE)
    .then((c) => c.addAll(ASSETS.map((a) => new Request(SCOPE + a, { cache: "no-cache" }))))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith("countersign-app-") && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

// Only the app's own files are served from the cache; the device API is
// never cached (its answers are no-store and signed per call).
self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin || !url.pathname.startsWith(SCOPE)) return;
  const rel = url.pathname.slice(SCOPE.length);
  const shell = req.mode === "navigate" || rel === "" || rel === "enroll";
  const key = shell ? SCOPE : url.pathname;
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    if (shell) {
      // Network first for the page itself, so a new version shows at once.
      try {
        const res = await fetch(req);
        if (res.ok) return res;
      } catch { /* offline */ }
      return (await cache.match(key)) ?? Response.error();
    }
    return (await cache.match(key)) ?? fetch(req);
  }));
});

function agentName(a) {
  return (a && (a.client_name || a.client_id)) || "An agent";
}

// fsi isolates an agent-supplied string in plain text (a notification has
// no markup): U+2068 FIRST STRONG ISOLATE ... U+2069 POP DIRECTIONAL ISOLATE.
const fsi = (v) => "\u2068" + String(v) + "\u2069";

self.addEventListener("push", (event) => {
  let msg = {};
  try {
    msg = event.data ? event.data.json() : {};
  } catch {
    msg = {};
  }
  if (msg.type !== "approval_request" || !msg.id) {
    event.waitUntil(self.registration.showNotification("Countersign", { body: "Open Countersign to see what changed.", tag: "countersign" }));
    return;
  }
  const level = typeof msg.risk === "string" ? msg.risk : (msg.risk && msg.risk.level) || "";
  const lines = [msg.summary ? fsi(msg.summary) : "", msg.binding_message ? "Message: " + fsi(msg.binding_message) : "",
    level ? level + " risk" : ""];
  event.waitUntil(Promise.all([
    self.registration.showNotification(fsi(agentName(msg.agent)) + " asks for approval", {
      body: lines.filter(Boolean).join("\n"),
      tag: "request-" + msg.id,
      data: { id: msg.id },
      icon: SCOPE + "icons/icon-192.png",
      badge: SCOPE + "icons/icon-192.png",
      requireInteraction: true,
      renotify: true,
    }),
    self.clients.matchAll({ type: "window", includeUncontrolled: true })
      .then((list) => list.forEach((c) => c.postMessage({ type: "approval_request", id: msg.id }))),
  ]));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = event.notification.data && event.notification.data.id;
  const target = SCOPE + (id ? "#/requests/" + encodeURIComponent(id) : "");
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((list) => {
    const open = list.find((c) => new URL(c.url).pathname.startsWith(SCOPE));
    if (open) {
      open.postMessage({ type: "open", id });
      return open.focus();
    }
    return self.clients.openWindow(target);
  }));
});
