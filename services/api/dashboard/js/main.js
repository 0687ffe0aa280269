// The dashboard's shell: sign-in gate, navigation, hash routes, the organization's
// live event stream shared by the pages, and a once-a-second refresh of relative times.

import { forgetKey, onUnauthorized, storedKey } from "./api.js";
import { h, replace } from "./dom.js";
import { follow } from "./sse.js";
import { relative } from "./time.js";
import { toast } from "./ui.js";
import * as signin from "./pages/signin.js";
import * as schedules from "./pages/schedules.js";
import * as workflows from "./pages/workflows.js";
import * as runs from "./pages/runs.js";
import * as run from "./pages/run.js";
import * as queues from "./pages/queues.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const live = document.getElementById("live");
const signOut = document.getElementById("sign-out");

const PAGES = [
  { name: "schedules", title: "Schedules", module: schedules },
  { name: "workflows", title: "Workflows", module: workflows },
  { name: "runs", title: "Runs", module: runs },
  { name: "queues", title: "Queues", module: queues },
];

// --- the organization's events, one stream for every page ---------------------------

const listeners = new Set();
let stream = null;

const events = {
  /** Call `fn(event)` for each live event; answers the function that stops it. */
  on(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
};

function setLive(state, detail) {
  live.dataset.state = state;
  const text = { live: "Live", connecting: "Connecting…", closed: "Offline" }[state] || state;
  live.textContent = text;
  live.title = detail ? `${text} (${detail})` : text;
}

function startEvents() {
  if (stream) return;
  stream = follow("/api/events", {
    onEvent: (event) => listeners.forEach((fn) => fn(event)),
    onStatus: setLive,
  });
}

function stopEvents() {
  if (stream) stream.close();
  stream = null;
  setLive("closed");
}

// --- routes ---------------------------------------------------------------------------

let cleanup = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: Object.fromEntries(new URLSearchParams(search)) };
}

async function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  window.scrollTo(0, 0);
  if (!storedKey()) {
    document.body.classList.add("signed-out");
    stopEvents();
    document.title = "Sign in · Flowcron";
    cleanup = signin.render(main, { onSignedIn });
    return;
  }
  document.body.classList.remove("signed-out");
  startEvents();
  const { parts, query } = parseHash();
  const name = parts[0] || "schedules";
  let page = PAGES.find((p) => p.name === name);
  let module = page && page.module;
  let params = {};
  if (name === "runs" && parts[1]) {
    module = run;
    params = { id: parts[1] };
  }
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!module) {
    document.title = "Not found · Flowcron";
    replace(main, h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/schedules" }, "Go to the schedules")));
    return;
  }
  document.title = `${page ? page.title : "Run"} · Flowcron`;
  replace(main);
  cleanup = module.render(main, { params, query, events, navigate }) || null;
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function onSignedIn() {
  if (!location.hash || location.hash === "#/signin") location.hash = "#/schedules";
  else route();
  // Send focus to the page for keyboard and screen-reader users.
  main.focus();
}

function doSignOut(message) {
  forgetKey();
  stopEvents();
  if (message) toast(message, "error");
  route();
}

// --- boot ---------------------------------------------------------------------------

replace(
  nav,
  PAGES.map((p) => h("a", { href: `#/${p.name}`, dataset: { page: p.name } }, p.title)),
);
signOut.addEventListener("click", () => doSignOut());
onUnauthorized((problem) => doSignOut(`Signed out: the API refused the key (${problem.detail}).`));
window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});

// Relative times ("in 5 seconds") tick without re-rendering the page.
setInterval(() => {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-relative]")) {
    el.textContent = relative(el.dataset.relative, now);
  }
}, 1000);

setLive("closed");
route();
