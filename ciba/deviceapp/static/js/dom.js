// DOM building and formatting. Text goes in as text nodes only, never as
// HTML, so nothing a server or an agent sends can become markup. Every
// string an agent chose (its name, binding message, authorization_details
// values, rule reasons) is shown isolated: inline in a <bdi>, as a block
// with dir="auto", so right-to-left text cannot reorder what is around it
// ("Pay 250 € to ACME" must read the same whatever the name is). The server
// already refuses bidi controls and invisible characters in them.

/** h creates an element: h("p", {class: "x", onclick: f}, "text", child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** iso isolates one agent-supplied string inline (<bdi>, HTML's bidi isolate). */
export const iso = (v) => h("bdi", { class: "agent-text" }, v);

/** fsi wraps an agent-supplied string for plain text (a notification, an
 * aria-label): U+2068 FIRST STRONG ISOLATE ... U+2069 POP DIRECTIONAL ISOLATE. */
export const fsi = (v) => "\u2068" + String(v) + "\u2069";

/** isAmount: a JSON number or a decimal string (both are valid amounts). */
const isAmount = (a) => typeof a === "number" || (typeof a === "string" && /^[0-9]+(\.[0-9]+)?$/.test(a));

/** money formats an amount in a currency for this phone's locale, with
 * its grouping separators; a decimal string is formatted exactly. */
export function money(amount, currency) {
  if (!isAmount(amount)) return String(amount);
  if (typeof currency === "string" && /^[A-Za-z]{3}$/.test(currency)) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(amount);
    } catch { /* an unknown code: fall through */ }
  }
  return new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(amount) +
    (currency ? " " + currency : "");
}

function creditorOf(d) {
  const c = d.creditor ?? d.creditorName ?? d.creditor_name ?? d.payee;
  if (typeof c === "string") return c;
  if (c && typeof c === "object") return c.name ?? c.iban ?? c.id ?? JSON.stringify(c);
  return d.creditorAccount?.iban ?? "";
}

function text(v) {
  if (v === undefined || v === null || v === "") return "";
  if (Array.isArray(v)) return v.map(text).join(", ");
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/** rows is what one authorization_details entry asks, as [label, value, class] rows. */
export function rows(d) {
  if (d.type === "mcp_tool_call") return mcpRows(d);
  if (d.type === "authzen_evaluation") {
    // An AuthZEN evaluation a gateway asked the user to approve.
    const r = d.resource ?? {}, sub = d.subject ?? {};
    return [["Action", iso(text(d.action?.name))], ["Resource", [iso(text(r.type)), " ", iso(text(r.id))]],
      ["Asked for", [iso(text(sub.type)), " ", iso(text(sub.id))]], ["Type", "Decision asked by a gateway (AuthZEN)"]];
  }
  const out = [];
  if (isAmount(d.amount)) out.push(["Amount", money(d.amount, d.currency), "amount"]);
  const to = creditorOf(d);
  if (to) out.push(["To", to]);
  if (d.action) out.push(["Action", text(d.action)]);
  if (d.actions) out.push(["Actions", text(d.actions)]);
  if (d.resource) out.push(["Resource", text(d.resource)]);
  if (d.locations) out.push(["Where", text(d.locations)]);
  if (d.datatypes) out.push(["Data", text(d.datatypes)]);
  const ref = d.remittance_information ?? d.remittanceInformation ?? d.reference;
  if (ref) out.push(["Reference", text(ref)]);
  out.push(["Type", text(d.type)]);
  return out;
}

// Agent- and server-supplied text in an MCP tool call is isolated (<bdi
// dir=auto>) so right-to-left or mixed text cannot reorder what is around
// it; a long value is folded behind its first characters.
const isolate = (v, cls) => h("bdi", { dir: "auto", class: cls }, v);
const folded = (v) => {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length <= 80 ? isolate(s, "arg-value")
    : h("details", { class: "arg-folded" }, h("summary", null, isolate(s.slice(0, 60) + "…"), " (" + s.length + " characters)"),
      isolate(s, "arg-value"));
};

/** mcpRows is an mcp_tool_call entry (a tools/call held by the MCP gateway) as rows. */
function mcpRows(d) {
  const s = d.server ?? {}, a = d.annotations ?? {};
  const args = d.arguments && typeof d.arguments === "object" ? Object.entries(d.arguments) : [];
  const says = [a.readOnlyHint ? "only reads" : "changes data",
    !a.readOnlyHint && a.destructiveHint !== false ? "may delete or overwrite" : null,
    !a.readOnlyHint && a.openWorldHint !== false ? "acts outside this server" : null,
    a.idempotentHint ? "repeating it changes nothing more" : null].filter(Boolean).join(", ");
  return [
    ["Tool", [isolate(h("code", null, text(d.tool))), a.title ? [" ", isolate("(" + text(a.title) + ")")] : null], "mcp-tool"],
    ["Server", [isolate(text(s.name)), " · ", isolate(h("code", null, text(s.url ?? s.command)))], "mcp-server"],
    ["Arguments", args.length === 0 ? "none" :
      h("dl", { class: "mcp-args" }, args.map(([k, v]) => [h("dt", null, isolate(k)), h("dd", null, folded(v))])), "mcp-args"],
    ["The tool says it", says],
    ["Type", "MCP tool call"],
  ];
}

/** summaryParts is one line for a list of authorization_details, as text
 * pieces: ours as strings, the agent's wrapped by wrap. */
function summaryParts(details, wrap) {
  if (!Array.isArray(details) || details.length === 0) return ["Sign in for you"];
  return details.flatMap((d, i) => {
    const sep = i > 0 ? ["; "] : [];
    if (d.type === "mcp_tool_call") return [...sep, "Run ", wrap(text(d.tool)), " on ", wrap(text(d.server?.name))];
    if (d.type === "intent_mandate") return [...sep, "Act for you within: ", wrap(text(d.intent))];
    if (d.type === "authzen_evaluation") {
      // An AuthZEN evaluation a gateway asked the user to approve.
      const r = d.resource ?? {};
      return [...sep, wrap(text(d.action?.name)), " ", wrap(text(r.type)), " ", wrap(text(r.id))];
    }
    if (isAmount(d.amount)) {
      const to = creditorOf(d);
      return [...sep, "Pay " + money(d.amount, d.currency), ...(to ? [" to ", wrap(to)] : [])];
    }
    const verb = d.action ? String(d.action) : String(d.type ?? "act");
    return [...sep, wrap(verb.charAt(0).toUpperCase() + verb.slice(1)), ...(d.resource ? [" ", wrap(text(d.resource))] : [])];
  });
}

/** summary is one line for a list of authorization_details, as nodes with
 * every agent-supplied piece isolated. */
export const summary = (details) => summaryParts(details, iso);

/** summaryText is summary as plain text (isolates as U+2068/U+2069). */
export const summaryText = (details) => summaryParts(details, fsi).join("");

/** agentName is how an agent is named on screen. */
export const agentName = (a) => a?.client_name || a?.client_id || "An agent";

/** remaining is the time left until an RFC 3339 instant, in ms (this phone's clock). */
export const remaining = (iso) => Date.parse(iso) - Date.now();

/** clock formats a duration as m:ss (h:mm:ss past an hour). */
export function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** when formats an RFC 3339 instant for this phone's locale. */
export function when(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? "" : new Date(t).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

const levels = { low: "Low", medium: "Medium", high: "High" };
/** riskBadge shows a risk level as text, never by colour alone. */
export const riskBadge = (level) =>
  h("span", { class: "risk-level risk-" + (levels[level] ? level : "high") }, (levels[level] ?? "Unknown") + " risk");

/** riskCause says why the request came to the phone: the rule (or the
 * agent's acr_values) that required it, else the score. A score under the
 * threshold next to "High risk" would mislead. */
export function riskCause(risk) {
  const by = Array.isArray(risk?.required_by) ? risk.required_by : [];
  if (by.length === 0) return h("span", { class: "muted", id: "risk-cause" }, "score " + (risk?.score ?? 0));
  const named = by.filter((r) => r !== "acr_values");
  const parts = [];
  if (named.length) parts.push("required by rule" + (named.length > 1 ? "s " : " "), named.map((r, i) => [i ? ", " : "", iso(r)]));
  if (by.includes("acr_values")) parts.push(named.length ? "; " : "", "the agent asked for your phone");
  return h("span", { class: "muted", id: "risk-cause" }, ...parts);
}

let toastTimer = 0;
/** toast announces a short message (a polite live region) on this page;
 * clearToast takes it away when the page changes. */
export function toast(message) {
  const t = document.getElementById("toast");
  t.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(clearToast, 5000);
}

export function clearToast() {
  clearTimeout(toastTimer);
  const t = document.getElementById("toast");
  if (t) t.textContent = "";
}

/** heading puts the view's h1 in place and moves focus to it for screen readers. */
export function focusHeading(main) {
  const h1 = main.querySelector("h1");
  if (h1) {
    h1.setAttribute("tabindex", "-1");
    h1.focus({ preventScroll: true });
  }
}
