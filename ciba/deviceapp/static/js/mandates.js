// Intent mandates: a mandate request as the user must read it before
// signing (the intent, each permitted action in plain words, the budget,
// the end, the agent), and the Mandates list with what was spent and used,
// the actions taken under each, and Revoke. Every string the agent chose
// is isolated (iso() inline, dir="auto" as a block; see dom.js).

import * as api from "./api.js";
import { focusHeading, fsi, h, iso, money, summary, toast, when } from "./dom.js";

/** isMandate: the request asks for an intent mandate (its only entry). */
export const isMandate = (details) => Array.isArray(details) && details.length === 1 && details[0]?.type === "intent_mandate";

const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const str = (v) => (v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));

/** permitted is one action template in plain words, agent text isolated. */
export function permitted(t) {
  switch (t?.type) {
    case "agent_action":
      return [iso(cap(str(t.action) || "act")), t.resource ? [" ", iso(str(t.resource))] : null];
    case "payment_initiation": {
      const to = t.creditor?.name ?? t.creditor?.iban ?? t.creditor?.account;
      return ["Pay up to ", money(t.max_amount, t.currency), " per payment",
        to ? [" to ", iso(str(to))] : " to anyone", t.action ? [" (", iso(str(t.action)), ")"] : null];
    }
    case "mcp_tool_call":
      return ["Run the tool ", iso(str(t.tool) || "any"), " on ", iso(str(t.server?.name ?? t.server?.url ?? t.server?.command))];
  }
  return [iso(str(t?.type)), " ", iso(str(t))];
}

/** budgetText is a mandate's budget, or that it has none. */
const budgetText = (b) => (b ? ["Up to ", money(b.amount, b.currency), " in all"] : "No budget: only each action's own limit");

/** mandateCard shows a mandate request (or a mandate) for approval. */
export function mandateCard(m, agent) {
  const actions = Array.isArray(m.actions) ? m.actions : [];
  return h("section", { class: "card mandate", id: "mandate", "aria-labelledby": "mandate-intent" },
    h("p", { class: "eyebrow" }, "Approve once for all of this"),
    h("p", { class: "bm", id: "mandate-intent", dir: "auto" }, m.intent ?? ""),
    h("h2", null, "It may, without asking you again"),
    h("ul", { id: "mandate-actions" }, actions.map((t) => h("li", { "data-type": str(t?.type) }, permitted(t)))),
    h("dl", { class: "details" },
      h("dt", null, "Budget"), h("dd", { id: "mandate-budget", class: "amount" }, budgetText(m.budget)),
      h("dt", null, "Uses"), h("dd", { id: "mandate-uses" }, m.max_uses ? "At most " + m.max_uses + " requests" : "No limit"),
      h("dt", null, "Until"), h("dd", { id: "mandate-until" }, when(m.valid_until)),
      h("dt", null, "Agent"), h("dd", { id: "mandate-agent" }, iso(agent?.client_name || agent?.client_id || "An agent"))),
    h("p", { class: "hint" }, "Anything else, or over the budget, still comes to this phone. You can revoke it any time under Mandates."));
}

const statusText = { active: "Active", expired: "Ended", revoked: "Revoked", exhausted: "Used up" };

/** spentText is what was spent and used against the limits. */
function spentText(m) {
  const spent = m.budget ? ["Spent ", money(m.spent ?? "0", m.budget.currency), " of ", money(m.budget.amount, m.budget.currency)] : [];
  const uses = ["Used ", String(m.uses ?? 0), m.max_uses ? " of " + m.max_uses : "", " times"];
  return m.budget ? [...spent, " · ", ...uses] : uses;
}

function mandateItem(ctx, m, problem) {
  const name = m.client_name || m.client_id;
  const taken = Array.isArray(m.taken) ? m.taken : [];
  const button = m.status === "active" ? h("button", { class: "secondary", type: "button", "data-mandate": m.mandate_id,
    "aria-label": "Revoke the mandate " + fsi(m.intent) + " of " + fsi(name) }, "Revoke") : null;
  const state = h("p", { class: "status-" + (m.status === "active" ? "approved" : "denied"), "data-status": m.status },
    statusText[m.status] ?? m.status, m.status === "active" ? " until " + when(m.valid_until) : "");
  const li = h("li", { class: "card", "data-mandate": m.mandate_id },
    h("h2", { dir: "auto" }, m.intent),
    h("p", null, iso(name)), state,
    h("p", { class: "spent" }, spentText(m)),
    h("details", null, h("summary", null, "What it allows"), h("ul", null, (m.actions ?? []).map((t) => h("li", null, permitted(t))))),
    h("h3", null, "Actions taken (" + taken.length + ")"),
    taken.length === 0 ? h("p", { class: "muted" }, "None yet.") :
      h("ul", { class: "taken" }, taken.map((a) => h("li", { "data-request": a.request_id },
        summary(a.authorization_details), " · ", when(a.at)))),
    button);
  button?.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api.revokeMandate(ctx.dev, m.mandate_id);
      state.textContent = "Revoked: the agent can no longer act on it.";
      state.className = "status-denied";
      state.dataset.status = "revoked";
      state.setAttribute("role", "status");
      button.remove();
      li.dataset.revoked = "true";
      toast("Mandate revoked");
    } catch (e) {
      button.disabled = false;
      problem.textContent = e.message;
    }
  });
  return li;
}

/** showMandates lists the user's mandates, newest first, each with Revoke. */
export async function showMandates(ctx) {
  const problem = h("p", { class: "error", role: "alert" });
  const list = h("ul", { class: "list", id: "mandates" });
  ctx.main.replaceChildren(h("h1", null, "Mandates"),
    h("p", { class: "muted" }, "Intents you approved once: agents act within them without asking again. Revoking stops them and their tokens at once."),
    problem, list);
  focusHeading(ctx.main);
  let ms;
  try {
    ms = await api.mandates(ctx.dev);
  } catch (e) {
    if (ctx.live()) problem.textContent = e.message;
    return;
  }
  if (!ctx.live()) return;
  list.replaceChildren(...(ms.length ? ms.map((m) => mandateItem(ctx, m, problem)) :
    [h("li", { id: "no-mandates" }, "You have approved no mandate.")]));
}
