// The lists: pending requests (polled), this device's decision history,
// the agents holding grants (with Revoke), and the device itself.

import * as api from "./api.js";
import * as db from "./db.js";
import * as push from "./push.js";
import { agentName, clock, focusHeading, fsi, h, iso, remaining, riskBadge, summary, summaryText, toast, when } from "./dom.js";

/** POLL_MS is how often the pending list is fetched while the page is visible. */
export const POLL_MS = 3000;

/** pushNote is the one notice that notifications are off (with the
 * browser's reason when there is one). */
export function pushNote(dev, why = true) {
  return dev.push === "on" ? null : h("p", { class: "notice", id: "poll-note" },
    "Notifications are off on this device", dev.push_problem ? " (" + dev.push_problem.replace(/[.\s]+$/, "") + ")" : "",
    ", so keep this page open: it checks for new requests every few seconds.",
    why ? [" ", h("a", { href: "#/device" }, "Why?")] : null);
}

/** showRequests renders the pending requests and polls for more. */
export function showRequests(ctx) {
  const list = h("ul", { class: "list", id: "pending", "aria-live": "polite", "aria-busy": "true" });
  const problem = h("p", { class: "error", role: "alert" });
  ctx.main.replaceChildren(h("h1", null, "Waiting for you"), pushNote(ctx.dev), problem, list);
  focusHeading(ctx.main);
  let last = "";
  const refresh = async () => {
    if (document.visibilityState === "hidden") return;
    let items;
    try {
      items = await api.pending(ctx.dev);
      problem.textContent = "";
    } catch (e) {
      if (ctx.live()) problem.textContent = e.message;
      return;
    }
    if (!ctx.live()) return;
    list.setAttribute("aria-busy", "false");
    const key = JSON.stringify(items.map((r) => [r.id, r.status]));
    if (key !== last) {
      last = key;
      list.replaceChildren(...(items.length ? items.map(item) :
        [h("li", { class: "muted", id: "no-pending" }, "Nothing is waiting for you.")]));
    }
    for (const el of list.querySelectorAll("[data-expires]")) {
      const ms = remaining(el.dataset.expires);
      el.textContent = ms > 0 ? "Expires in " + clock(ms) : "Expired";
    }
  };
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  const onMessage = () => refresh();
  ctx.events.addEventListener("refresh", onMessage);
  ctx.onLeave(() => { clearInterval(timer); ctx.events.removeEventListener("refresh", onMessage); });
}

function item(r) {
  return h("li", null, h("a", { class: "item", href: "#/requests/" + encodeURIComponent(r.id), "data-id": r.id },
    h("span", { class: "row" }, h("strong", null, iso(agentName(r.agent))), riskBadge(r.risk?.level)),
    h("span", { class: "bm-small", dir: "auto" }, r.binding_message || summary(r.authorization_details)),
    h("span", { class: "row" }, h("span", null, summary(r.authorization_details)),
      h("span", { class: "muted", "data-expires": r.expires_at }, ""))));
}

/** showHistory lists the decisions this device made (kept only here). */
export async function showHistory(ctx) {
  const entries = await db.history();
  if (!ctx.live()) return;
  ctx.main.replaceChildren(h("h1", null, "Your decisions"),
    h("p", { class: "muted" }, "Kept on this device only."),
    entries.length === 0 ? h("p", { id: "no-history" }, "You have not decided anything on this device yet.") :
      h("ul", { class: "list", id: "history" }, entries.map((e) => h("li", { class: "card", "data-id": e.id },
        h("p", { class: "row" }, h("strong", null, iso(agentName(e.agent))),
          h("span", { class: "status-" + e.status }, e.decision === "approve" ? "Approved" : "Denied")),
        e.binding_message ? h("p", { class: "bm-small", dir: "auto" }, e.binding_message) : null,
        h("p", { dir: "auto" }, e.summary),
        h("p", { class: "muted" }, when(e.decided_at))))));
  focusHeading(ctx.main);
}

/** showAgents lists the grants agents hold for this user, each with Revoke. */
export async function showAgents(ctx) {
  const problem = h("p", { class: "error", role: "alert" });
  const list = h("ul", { class: "list", id: "grants" });
  ctx.main.replaceChildren(h("h1", null, "Agents with access"),
    h("p", { class: "muted" }, "What agents may still do with your approvals. Revoking stops their tokens at once."),
    problem, list);
  focusHeading(ctx.main);
  let grants;
  try {
    grants = await api.grants(ctx.dev);
  } catch (e) {
    if (ctx.live()) problem.textContent = e.message;
    return;
  }
  if (!ctx.live()) return;
  if (grants.length === 0) {
    list.replaceChildren(h("li", { id: "no-grants" }, "No agent holds access for you."));
    return;
  }
  list.replaceChildren(...grants.map((g) => {
    const name = g.client_name || g.client_id;
    const button = h("button", { class: "secondary", type: "button", "data-grant": g.grant_id,
      "aria-label": "Revoke " + fsi(name) + ": " + summaryText(g.authorization_details) }, "Revoke");
    const li = h("li", { class: "card", "data-grant": g.grant_id },
      h("h2", { dir: "auto" }, name),
      h("p", null, summary(g.authorization_details)),
      h("p", { class: "muted" }, "Scope ", h("code", null, g.scope || "openid")),
      h("p", { class: "muted" }, "Approved ", when(g.created_at), g.expires_at ? " · until " + when(g.expires_at) : ""),
      button);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api.revokeGrant(ctx.dev, g.grant_id);
        li.replaceChildren(h("p", { class: "status-denied", role: "status" }, "Revoked: ", iso(name), " no longer has this access."));
        li.dataset.revoked = "true";
        toast("Revoked");
      } catch (e) {
        button.disabled = false;
        problem.textContent = e.message;
      }
    });
    return li;
  }));
}

/** showDevice shows this device, its notifications and removal. */
export function showDevice(ctx) {
  const dev = ctx.dev;
  const out = h("p", { role: "status", id: "device-status" });
  const enable = h("button", { class: "primary", type: "button", id: "enable-push" }, "Turn on notifications");
  enable.addEventListener("click", async () => {
    enable.disabled = true;
    out.textContent = "Asking the browser…";
    try {
      const sub = await push.subscribe(dev.vapid_public_key);
      await api.setPushSubscription(dev, sub);
      dev.push = "on";
      dev.push_problem = "";
      dev.push_endpoint = sub.endpoint;
      out.textContent = "Notifications are on.";
    } catch (e) {
      dev.push = "polling";
      dev.push_problem = e.message;
      out.textContent = e.message + " This page keeps polling instead.";
    }
    await db.saveDevice(dev);
    enable.disabled = false;
  });
  const remove = h("button", { class: "deny", type: "button", id: "remove-device" }, "Remove this device");
  remove.addEventListener("click", async () => {
    remove.disabled = true;
    try {
      await api.removeDevice(dev);
    } catch (e) {
      if (e.status !== 401) {
        out.textContent = e.message;
        remove.disabled = false;
        return;
      }
    }
    await db.forget();
    location.replace(api.root + "/app/");
  });
  ctx.main.replaceChildren(h("h1", null, "This device"),
    h("dl", { class: "details" },
      h("dt", null, "Name"), h("dd", { id: "device-name", dir: "auto" }, dev.name),
      h("dt", null, "For"), h("dd", null, dev.user_id),
      h("dt", null, "Device id"), h("dd", null, h("code", null, dev.device_id)),
      h("dt", null, "Enrolled"), h("dd", null, when(dev.enrolled_at)),
      h("dt", null, "Notifications"), h("dd", { id: "push-state" }, dev.push === "on" ? "On" : "Off: this page polls")),
    pushNote(dev, false),
    h("p", { class: "muted" }, "The signing key of this device cannot leave this browser. Requests are checked every few seconds while the page is open."),
    h("div", { class: "actions" }, enable), out,
    h("h2", null, "Remove"),
    h("p", null, "Removing the device deletes its key; an administrator has to send a new enrollment link."),
    remove);
  focusHeading(ctx.main);
}
