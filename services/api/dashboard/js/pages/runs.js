// Runs: newest first, filtered by workflow, schedule, status and creation time (the
// filters live in the address, so a filtered list can be shared); live while shown.

import { api, listAll } from "../api.js";
import { h, replace, throttle } from "../dom.js";
import { duration, exact, instantToWall, relative, viewerZone, wallToInstant } from "../time.js";
import { errorBox, field, statusBadge } from "../ui.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "timed_out"];
const PAGE = 50;

export function render(root, { query, events, navigate }) {
  let closed = false;
  let cursor = null;
  let pages = 1;
  let names = new Map();
  const rows = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const tableWrap = h("div.table-wrap");

  const workflowSelect = h("select", {}, h("option", { value: "" }, "All workflows"));
  const statusSelect = h("select", {}, h("option", { value: "" }, "Any status"), STATUSES.map((st) => h("option", { value: st, selected: query.status === st }, st.replace("_", " "))));
  const after = h("input", { type: "datetime-local", value: instantToWall(query.created_after, viewerZone) });
  const before = h("input", { type: "datetime-local", value: instantToWall(query.created_before, viewerZone) });
  const filters = h(
    "form.filters",
    { "aria-label": "Filter runs" },
    field({ label: "Workflow", input: workflowSelect }).wrap,
    field({ label: "Status", input: statusSelect }).wrap,
    field({ label: `Created from (${viewerZone})`, input: after }).wrap,
    field({ label: `Created before (${viewerZone})`, input: before }).wrap,
    query.schedule_id ? h("p.small", {}, "Runs of one schedule. ", h("a", { href: "#/runs" }, "Show all")) : null,
  );
  replace(root, h("div.page-header", {}, h("h1", {}, "Runs")), filters, tableWrap, more);

  function applyFilters() {
    const q = new URLSearchParams();
    if (workflowSelect.value) q.set("workflow_id", workflowSelect.value);
    if (statusSelect.value) q.set("status", statusSelect.value);
    if (query.schedule_id) q.set("schedule_id", query.schedule_id);
    const from = wallToInstant(after.value, viewerZone);
    const to = wallToInstant(before.value, viewerZone);
    if (from) q.set("created_after", from);
    if (to) q.set("created_before", to);
    const text = q.toString();
    navigate(`#/runs${text ? `?${text}` : ""}`);
  }
  for (const input of [workflowSelect, statusSelect, after, before]) input.addEventListener("change", applyFilters);
  filters.addEventListener("submit", (event) => event.preventDefault());

  function row(run) {
    const name = names.get(run.workflow_id) || run.workflow_id.slice(0, 8);
    return h(
      "tr",
      { dataset: { run: run.id, status: run.status } },
      h("td", { "data-label": "Status" }, statusBadge(run.status)),
      h("td", { "data-label": "Run" }, h("a", { href: `#/runs/${run.id}` }, name), h("div.small.muted.mono", {}, run.id.slice(0, 8))),
      h("td", { "data-label": "Trigger" }, run.trigger),
      h("td", { "data-label": "Scheduled for" }, run.scheduled_for ? h("span.small", {}, exact(run.scheduled_for)) : h("span.muted", {}, "—")),
      h("td", { "data-label": "Created" }, h("span", { dataset: { relative: run.created_at } }, relative(run.created_at)), h("div.small.muted", {}, exact(run.created_at))),
      h("td", { "data-label": "Duration" }, duration(run.duration_ms)),
      h("td", { "data-label": "Error" }, run.error ? h("span.small.bad", { title: run.error }, run.error.length > 80 ? `${run.error.slice(0, 79)}…` : run.error) : ""),
    );
  }

  function filterQuery() {
    const q = { limit: PAGE };
    for (const key of ["workflow_id", "schedule_id", "status", "created_after", "created_before"]) if (query[key]) q[key] = query[key];
    return q;
  }

  async function load({ append = false } = {}) {
    try {
      const page = await api("GET", "/api/runs", { query: { ...filterQuery(), cursor: append ? cursor : undefined, limit: append ? PAGE : Math.min(200, PAGE * pages) } });
      if (closed) return;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (!append && !page.items.length) {
        replace(tableWrap, h("div.empty", {}, h("p", {}, "No runs match."), h("p", {}, "Runs appear here as schedules fire, or when you run a workflow now.")));
        return;
      }
      if (!append || !tableWrap.querySelector("table")) {
        replace(rows);
        replace(
          tableWrap,
          h(
            "table.data.responsive.runs",
            {},
            h("caption.visually-hidden", {}, "Runs"),
            h("thead", {}, h("tr", {}, ["Status", "Workflow", "Trigger", "Scheduled for", "Created", "Duration", "Error"].map((t) => h("th", { scope: "col" }, t)))),
            rows,
          ),
        );
      }
      rows.append(...page.items.map(row));
    } catch (error) {
      if (!closed) replace(tableWrap, errorBox(error, () => load()));
    }
  }
  more.addEventListener("click", () => {
    pages += 1;
    load({ append: true });
  });

  const reload = throttle(() => load(), 1000);
  const stop = events.on((event) => {
    if (event.event === "run.started" || event.event === "run.finished") reload();
  });

  listAll("/api/workflows", { max: 1000 })
    .then(({ items }) => {
      names = new Map(items.map((w) => [w.id, w.name]));
      replace(
        workflowSelect,
        h("option", { value: "" }, "All workflows"),
        items.map((w) => h("option", { value: w.id, selected: w.id === query.workflow_id }, w.name)),
      );
    })
    .catch(() => {})
    .finally(() => load());

  return () => {
    closed = true;
    stop();
    reload.cancel();
  };
}
