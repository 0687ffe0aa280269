// Sign in with an API key: checked against the API, then kept in localStorage.

import { api, storeKey } from "../api.js";
import { h, replace } from "../dom.js";
import { field } from "../ui.js";

export function render(root, { onSignedIn }) {
  const key = field({
    label: "API key",
    name: "api-key",
    input: h("input", { type: "password", autocomplete: "current-password", spellcheck: "false", required: true, autofocus: true }),
    hint: "Create one with: flowcron apikey create --org NAME (flowcron dev prints one). It is kept in this browser only.",
  });
  const submit = h("button.primary", { type: "submit" }, "Sign in");
  const form = h(
    "form.signin-card",
    { "aria-labelledby": "signin-title", novalidate: true },
    h("h1", { id: "signin-title" }, "Sign in to Flowcron"),
    key.wrap,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = key.input.value.trim();
    if (!value) {
      key.setError("Enter an API key.");
      key.input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Checking…";
    try {
      await api("GET", "/api/workflows", { query: { limit: 1 }, key: value });
      key.setError(null);
      storeKey(value);
      onSignedIn();
    } catch (error) {
      const message =
        error.status === 401
          ? `This key was refused: ${error.detail}. Check that you copied all of it, and that it has not been revoked.`
          : `Could not check the key: ${error.message}`;
      key.setError(message);
      key.input.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });
  replace(root, h("div.signin", {}, form));
  key.input.focus();
  return null;
}
