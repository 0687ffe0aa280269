// Shared pieces: modal dialogs, confirmations, toasts, labelled fields, switches,
// status badges and JSON blocks.

import { h, uid } from "./dom.js";

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * A modal dialog. `content` is a node; `actions` buttons go in its footer. Escape and
 * the close button close it; Tab stays inside; focus returns to where it was.
 * Answers {dialog, close, body}. `onClose` runs once, however it closes.
 */
export function openDialog({ title, content, actions = [], onClose, size = "" }) {
  const opener = document.activeElement;
  const titleId = uid("dialog-title");
  const close = () => dialog.open && dialog.close();
  const body = h("div.dialog-body", {}, content);
  const dialog = h(
    `dialog.dialog${size ? `.${size}` : ""}`,
    { "aria-labelledby": titleId },
    h(
      "header.dialog-header",
      {},
      h("h2", { id: titleId }, title),
      h("button.icon", { type: "button", "aria-label": "Close", onclick: close }, "✕"),
    ),
    body,
    actions.length ? h("footer.dialog-actions", {}, actions) : null,
  );
  dialog.addEventListener("keydown", (event) => {
    if (event.key !== "Tab") return;
    const items = [...dialog.querySelectorAll(FOCUSABLE)].filter((el) => el.offsetParent !== null);
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (onClose) onClose();
    if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  const autofocus = dialog.querySelector("[autofocus]") || body.querySelector(FOCUSABLE);
  if (autofocus) autofocus.focus();
  return { dialog, close, body };
}

/** Ask before doing something that cannot be undone; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel = "Delete", danger = true }) {
  return new Promise((resolve) => {
    let answer = false;
    const yes = h(
      `button.${danger ? "danger" : "primary"}`,
      {
        type: "button",
        onclick: () => {
          answer = true;
          handle.close();
        },
      },
      confirmLabel,
    );
    const no = h("button", { type: "button", onclick: () => handle.close(), autofocus: true }, "Cancel");
    const handle = openDialog({
      title,
      content: h("p", {}, message),
      actions: [no, yes],
      onClose: () => resolve(answer),
      size: "small",
    });
  });
}

let toastRegion = null;
/** A short message in a live region (read by screen readers), gone after a while. */
export function toast(message, kind = "info") {
  if (!toastRegion) {
    toastRegion = h("div.toasts", { role: "status", "aria-live": "polite" });
    document.body.append(toastRegion);
  }
  const item = h(`div.toast.${kind}`, {}, message);
  toastRegion.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

/**
 * A labelled form field: {wrap, input, setError}. The hint and the error are tied to
 * the input with aria-describedby; setError(message | null) sets aria-invalid.
 */
export function field({ label, input, hint, name, className = "" }) {
  const id = input.id || uid("field");
  input.id = id;
  if (name) input.name = name;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const error = h("p.field-error", { id: errorId, hidden: true });
  input.setAttribute("aria-describedby", hint ? `${hintId} ${errorId}` : errorId);
  const wrap = h(
    `div.field${className ? `.${className}` : ""}`,
    {},
    h("label", { for: id }, label),
    input,
    hint ? h("p.hint", { id: hintId }, hint) : null,
    error,
  );
  const setError = (message) => {
    error.hidden = !message;
    error.textContent = message || "";
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  };
  return { wrap, input, setError };
}

/** A switch: a real button with role=switch; `onchange(next)` may throw to revert. */
export function switchButton({ checked, label, onchange }) {
  const button = h(
    "button.switch",
    { type: "button", role: "switch", "aria-checked": String(Boolean(checked)), "aria-label": label },
    h("span.switch-knob", { "aria-hidden": "true" }),
  );
  button.addEventListener("click", async () => {
    const next = button.getAttribute("aria-checked") !== "true";
    button.setAttribute("aria-checked", String(next));
    button.disabled = true;
    try {
      await onchange(next);
    } catch (error) {
      button.setAttribute("aria-checked", String(!next));
      toast(error.message, "error");
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** A coloured status word (run and step statuses). */
export function statusBadge(status) {
  return h(`span.badge.status-${status}`, {}, status.replace("_", " "));
}

export function jsonBlock(value) {
  const text = value === undefined ? "—" : JSON.stringify(value, null, 2);
  return h("pre.json", { tabindex: "0" }, text);
}

/** A visible error box for a failed load, with the API's detail. */
export function errorBox(error, retry) {
  return h(
    "div.error-box",
    { role: "alert" },
    h("strong", {}, error.status ? `Error ${error.status}: ` : "Error: "),
    error.message,
    retry ? h("button", { type: "button", onclick: retry }, "Try again") : null,
  );
}

/** Parse a JSON object typed by a person; throws Error with a readable message. */
export function parseJsonObject(text, what) {
  if (!text.trim()) return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${what} is not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${what} must be a JSON object ({…})`);
  }
  return value;
}
