// The request view: who asks, what exactly, how risky, until when; and the
// device-signed Approve / Deny.

import * as api from "./api.js";
import * as db from "./db.js";
import { isMandate, mandateCard } from "./mandates.js";
import { agentName, clock, focusHeading, h, iso, remaining, riskBadge, riskCause, rows, summary, summaryText, toast } from "./dom.js";

const outcomes = {
  approved: "Approved. The agent receives the access it asked for.",
  denied: "Denied. The agent was refused.",
  expired: "This request expired. The agent was not given access.",
  pending: "",
};

/** showRequest renders request id into ctx.main. */
export async function showRequest(ctx, id) {
  let view;
  try {
    view = await api.request(ctx.dev, id);
  } catch (e) {
    if (!ctx.live()) return;
    ctx.main.replaceChildren(h("h1", null, "Request not found"),
      h("p", { class: "error" }, e.status === 404 ? "This request does not exist or is not for you." : e.message),
      h("p", null, h("a", { href: "#/" }, "Back to the requests")));
    focusHeading(ctx.main);
    return;
  }
  if (!ctx.live()) return;
  render(ctx, view);
  focusHeading(ctx.main);
}

function render(ctx, view) {
  const details = Array.isArray(view.authorization_details) ? view.authorization_details : [];
  const agent = view.agent ?? {};
  const status = h("p", { id: "request-status", class: "status-" + view.status, "data-status": view.status },
    outcomes[view.status] ?? "");
  const countdown = h("p", { id: "countdown", class: "countdown", role: "timer", "aria-live": "off" });
  const approve = h("button", { id: "approve", class: "approve", type: "button" }, "Approve");
  const deny = h("button", { id: "deny", class: "deny", type: "button" }, "Deny");
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Your decision" }, deny, approve);
  let decided = view.status !== "pending";

  const settle = (st, message) => {
    decided = true;
    approve.disabled = deny.disabled = true;
    status.className = "status-" + st;
    status.dataset.status = st;
    status.textContent = message ?? outcomes[st] ?? st;
    if (st !== "pending") countdown.hidden = st !== "expired";
  };

  // The server's word on expiry is final (its expires_at is rounded down
  // to the second, so this phone stops first): ask until it agrees.
  const confirm = (tries) => {
    api.request(ctx.dev, view.id).then((v) => {
      if (!ctx.live()) return;
      if (v.status !== "pending") settle(v.status);
      else if (tries < 10) setTimeout(() => confirm(tries + 1), 1000);
    }).catch(() => {
      if (ctx.live() && tries < 10) setTimeout(() => confirm(tries + 1), 1000);
    });
  };

  const tick = () => {
    const ms = remaining(view.expires_at);
    if (ms > 0 && !decided) {
      countdown.textContent = "Expires in " + clock(ms);
      countdown.setAttribute("aria-label", "Expires in " + Math.ceil(ms / 1000) + " seconds");
      return;
    }
    if (ms <= 0 && (!decided || view.status === "expired")) {
      countdown.textContent = "Expired";
      countdown.removeAttribute("aria-label");
      countdown.classList.add("expired");
      if (!decided) {
        decided = true;
        approve.disabled = deny.disabled = true;
        status.textContent = outcomes.expired;
        confirm(0);
      }
    }
  };

  const send = async (decision) => {
    approve.disabled = deny.disabled = true;
    status.textContent = decision === "approve" ? "Signing your approval…" : "Signing your denial…";
    try {
      const result = await api.decide(ctx.dev, view, decision);
      await db.remember({
        id: view.id, decision, decided_at: new Date().toISOString(), agent,
        binding_message: view.binding_message ?? "", summary: summaryText(details), status: result.status,
      });
      if (!ctx.live()) return;
      settle(result.status);
      toast(decision === "approve" ? "Approved" : "Denied");
    } catch (e) {
      if (!ctx.live()) return;
      if (e.status === 409) {
        const v = await api.request(ctx.dev, view.id).catch(() => null);
        settle(v?.status ?? "expired", "Already decided: " + (v?.status ?? "no longer pending") + ".");
        return;
      }
      status.textContent = e.message;
      status.className = "error";
      if (remaining(view.expires_at) > 0) approve.disabled = deny.disabled = false;
    }
    status.focus();
  };
  approve.addEventListener("click", () => send("approve"));
  deny.addEventListener("click", () => send("deny"));
  status.setAttribute("tabindex", "-1");
  status.setAttribute("aria-live", "polite");

  const reasons = view.risk?.reasons ?? [];
  ctx.main.replaceChildren(h("article", { class: "request", "aria-labelledby": "request-title" },
    h("p", { class: "eyebrow" }, "Approval request"),
    h("h1", { id: "request-title" }, iso(agentName(agent)), " asks: ", summary(details)),
    h("p", { class: "muted", id: "agent-owner" },
      agent.owner ? ["Agent run by ", iso(agent.owner)] : "Agent", " · ", h("code", { dir: "auto" }, agent.client_id ?? "")),
    h("section", { class: "binding", "aria-labelledby": "bm-label" },
      h("h2", { id: "bm-label" }, "Message on the agent's screen"),
      h("p", { class: "bm", id: "binding-message", dir: "auto" }, view.binding_message || "(none)"),
      h("p", { class: "hint" }, "Approve only if this matches what the agent shows you.")),
    h("section", { "aria-labelledby": "what-label" },
      h("h2", { id: "what-label" }, "What it may do"),
      details.length === 0 ? h("p", null, "Sign in on your behalf.") : null,
      isMandate(details) ? mandateCard(details[0], agent) : details.map((d) => h("div", { class: "card" },
        h("dl", { class: "details" }, rows(d).map(([k, v, cls]) => [h("dt", null, k), h("dd", { class: cls, dir: "auto" }, v)])))),
      h("details", null, h("summary", null, "Exact request"),
        h("pre", { dir: "auto" }, JSON.stringify(details, null, 2)))),
    h("section", { class: "card", "aria-labelledby": "risk-label", id: "risk" },
      h("h2", { id: "risk-label" }, riskBadge(view.risk?.level), " · ", riskCause(view.risk)),
      reasons.length ? h("ul", { class: "reasons" }, reasons.map((r) => h("li", { "data-rule": r.rule, dir: "auto" }, r.reason || r.rule)))
        : h("p", { class: "muted" }, "No rule gave a reason.")),
    countdown, actions, status,
    h("p", null, h("a", { href: "#/" }, "All requests"))));
  if (decided) settle(view.status);
  tick();
  const timer = setInterval(tick, 500);
  ctx.onLeave(() => clearInterval(timer));
}
