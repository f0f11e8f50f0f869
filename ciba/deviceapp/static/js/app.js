// Countersign phone app: a hash router over the views, the service worker,
// and the device record from IndexedDB.

import * as db from "./db.js";
import * as api from "./api.js";
import * as push from "./push.js";
import { clearToast, h, toast } from "./dom.js";
import { showEnroll } from "./enroll.js";
import { showRequest } from "./request.js";
import { showMandates } from "./mandates.js";
import { showAgents, showDevice, showHistory, showRequests } from "./lists.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const events = new EventTarget();
let dev = null;
let current = null;

const routes = [
  [/^#\/requests\/([^/]+)$/, "requests", (ctx, m) => showRequest(ctx, decodeURIComponent(m[1]))],
  [/^#\/history$/, "history", showHistory],
  [/^#\/agents$/, "agents", showAgents],
  [/^#\/mandates$/, "mandates", showMandates],
  [/^#\/device$/, "device", showDevice],
  [/^(#\/?)?$/, "requests", showRequests],
];

function leave() {
  clearToast(); // a toast belongs to the page that raised it
  if (!current) return;
  current.alive = false;
  for (const f of current.leaving) f();
}

function route() {
  leave();
  const ctx = { main, dev, events, alive: true, leaving: [] };
  ctx.live = () => ctx.alive;
  ctx.onLeave = (f) => ctx.leaving.push(f);
  current = ctx;
  nav.hidden = !dev;
  if (!dev) {
    showEnroll(ctx, (d, message) => {
      dev = d;
      document.getElementById("enroll-note")?.remove();
      route();
      main.prepend(h("p", { class: "notice", id: "enroll-note", role: "status" }, message));
    });
    return;
  }
  const found = routes.find(([re]) => re.test(location.hash)) ?? routes[routes.length - 1];
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.route === found[1]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  Promise.resolve(found[2](ctx, location.hash.match(found[0]))).catch((e) => {
    if (ctx.live()) main.replaceChildren(h("h1", null, "Something went wrong"), h("p", { class: "error" }, e.message));
  });
}

// Keep the server's push subscription in step with the browser's (it can
// change or vanish between visits).
async function checkSubscription() {
  if (dev?.push !== "on") return;
  const endpoint = await push.current();
  if (endpoint && endpoint === dev.push_endpoint) return;
  try {
    const sub = await push.subscribe(dev.vapid_public_key);
    await api.setPushSubscription(dev, sub);
    dev.push_endpoint = sub.endpoint;
  } catch (e) {
    dev.push = "polling";
    dev.push_problem = e.message;
  }
  await db.saveDevice(dev);
}

async function start() {
  await push.register();
  navigator.serviceWorker?.addEventListener("message", (ev) => {
    const m = ev.data ?? {};
    if (m.type === "open" && m.id) location.hash = "#/requests/" + encodeURIComponent(m.id);
    else if (m.type === "approval_request") events.dispatchEvent(new Event("refresh"));
  });
  try {
    dev = (await db.device()) ?? null;
  } catch {
    main.replaceChildren(h("h1", null, "Storage unavailable"),
      h("p", { class: "error" }, "This browser does not let the page keep its key (private browsing?)."));
    return;
  }
  const already = dev && new URLSearchParams(location.search).has("code");
  if (already) history.replaceState(null, "", api.root + "/app/#/");
  window.addEventListener("hashchange", route);
  route();
  if (already) toast("This browser is already enrolled as " + dev.name + ". Remove it under Device to enroll again.");
  checkSubscription().catch(() => {});
}

start();
