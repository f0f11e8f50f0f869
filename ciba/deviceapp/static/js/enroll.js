// Enrollment: a one-time code from an administrator's link or QR code, a
// device name, a fresh non-extractable key, then Web Push where possible.

import * as api from "./api.js";
import * as db from "./db.js";
import * as push from "./push.js";
import { focusHeading, h } from "./dom.js";
import { newDeviceKey, publicJWK } from "./crypto.js";

function guessName() {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return "iPhone";
  if (/iPad/.test(ua)) return "iPad";
  if (/Android/.test(ua)) return "Android phone";
  return "This browser";
}

/** showEnroll renders the enrollment form; done(dev) runs once enrolled. */
export function showEnroll(ctx, done) {
  const code = new URLSearchParams(location.search).get("code") ?? "";
  const codeInput = h("input", { id: "code", name: "code", type: "text", required: true, autocomplete: "one-time-code",
    autocapitalize: "characters", spellcheck: "false", value: code, "aria-describedby": "code-hint" });
  const nameInput = h("input", { id: "name", name: "name", type: "text", required: true, maxlength: 64,
    autocomplete: "off", value: guessName(), "aria-describedby": "name-hint" });
  const submit = h("button", { class: "primary", type: "submit", id: "enroll" }, "Enroll this device");
  const status = h("p", { id: "enroll-status", role: "status", "aria-live": "polite" });
  const form = h("form", { id: "enroll-form", novalidate: true },
    h("label", { for: "code" }, "Enrollment code"),
    codeInput,
    h("p", { class: "field-hint", id: "code-hint" }, code ? "From your enrollment link." : "From your administrator's link or QR code."),
    h("label", { for: "name" }, "Device name"),
    nameInput,
    h("p", { class: "field-hint", id: "name-hint" }, "Shown to you and your administrator. 1 to 64 characters."),
    h("div", { class: "actions" }, submit),
    status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const c = codeInput.value.trim(), name = nameInput.value.trim();
    if (!c || !name) {
      status.className = "error";
      status.textContent = !c ? "Enter the enrollment code." : "Enter a name for this device.";
      (!c ? codeInput : nameInput).focus();
      return;
    }
    submit.disabled = true;
    status.className = "";
    try {
      status.textContent = "Creating this device's key…";
      const keys = await newDeviceKey();
      const issuer = await api.issuer();
      status.textContent = "Enrolling…";
      const r = await api.enroll({ code: c, name, public_key: await publicJWK(keys.publicKey) });
      const dev = {
        device_id: r.device_id, user_id: r.user_id, vapid_public_key: r.vapid_public_key, issuer, name,
        key: keys.privateKey, enrolled_at: new Date().toISOString(), push: "polling", push_problem: "",
      };
      await db.saveDevice(dev);
      status.textContent = "Enrolled. Turning on notifications…";
      try {
        const sub = await push.subscribe(dev.vapid_public_key);
        await api.setPushSubscription(dev, sub);
        dev.push = "on";
        dev.push_endpoint = sub.endpoint;
      } catch (e) {
        dev.push_problem = e.message;
      }
      await db.saveDevice(dev);
      history.replaceState(null, "", api.root + "/app/#/");
      // When notifications are off, the requests page says so itself
      // (one notice, not two).
      done(dev, dev.push === "on" ? "Enrolled. Notifications are on." : "Enrolled.");
    } catch (e) {
      status.className = "error";
      status.textContent = e.message;
      submit.disabled = false;
    }
  });
  ctx.main.replaceChildren(h("h1", null, "Enroll this device"),
    h("p", null, "Approve what AI agents do for you, here on your phone. This creates a signing key that never leaves this browser."),
    form);
  focusHeading(ctx.main);
}
