// Schedules: totals, and every schedule with its next run, counters and switch;
// refreshed from the live event stream (and every 30 s, for edits made elsewhere).

import { api, listAll } from "../api.js";
import { h, replace, throttle } from "../dom.js";
import { exact, relative, viewerZone } from "../time.js";
import { confirmDialog, errorBox, switchButton, toast } from "../ui.js";
import { openScheduleDialog } from "./schedule-dialog.js";

const POLL_MS = 30000;

function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(rate === 1 ? 0 : 1)}%`;
}

function card(label, value, sub) {
  return h("section.card", { "aria-label": label }, h("h2.card-label", {}, label), h("p.card-value", {}, value), sub ? h("p.card-sub", {}, sub) : null);
}

function when(iso, zone) {
  if (!iso) return h("span.muted", {}, "—");
  const lines = [h("span.when-rel", { dataset: { relative: iso } }, relative(iso)), h("span.when-exact", {}, exact(iso))];
  if (zone !== viewerZone) lines.push(h("span.when-exact.muted", { title: `In the schedule's zone, ${zone}` }, `${exact(iso, zone)} (${zone})`));
  return h("div.when", {}, lines);
}

export function render(root, { events, navigate }) {
  let closed = false;
  const cards = h("div.cards", { "aria-live": "polite" });
  const body = h("div.table-wrap");
  const note = h("p.muted.small");
  const newButton = h("button.primary", { type: "button", onclick: () => openScheduleDialog({ onSaved: load }) }, "New schedule");
  replace(
    root,
    h("div.page-header", {}, h("h1", {}, "Schedules"), newButton),
    cards,
    body,
    note,
  );

  function toggle(s) {
    const button = switchButton({
      checked: s.enabled,
      label: `Enabled: ${s.workflow_name} ${s.cron}`,
      onchange: async (next) => {
        await api("PATCH", `/api/schedules/${s.id}`, { body: { enabled: next } });
        toast(`${s.workflow_name}: schedule ${next ? "enabled" : "disabled"}`);
        load();
      },
    });
    button.dataset.focusKey = `${s.id}:toggle`;
    return button;
  }

  function rowFor(s) {
    const focusKey = (what) => ({ focusKey: `${s.id}:${what}` });
    const rate = s.success_rate;
    const state = !s.enabled ? "disabled" : s.paused ? "paused" : "enabled";
    return h(
      "tr",
      { dataset: { schedule: s.id, state } },
      h(
        "td",
        { "data-label": "Workflow" },
        h("a", { href: `#/runs?workflow_id=${s.workflow_id}` }, s.workflow_name),
        s.name ? h("div.muted.small", {}, s.name) : null,
      ),
      h(
        "td",
        { "data-label": "Schedule" },
        h("code.cron", {}, s.cron),
        h("div.small", {}, s.description),
      ),
      h("td", { "data-label": "Time zone" }, s.timezone),
      h(
        "td.next-run",
        { "data-label": "Next run" },
        !s.enabled
          ? h("span.muted", {}, "off")
          : s.paused
            ? h("div", {}, h("span.badge.status-paused", {}, "paused"), s.pause_note ? h("div.small", {}, s.pause_note) : null, s.paused_until && s.paused_until < "9999" ? h("div.small", {}, `until ${exact(s.paused_until)}`) : null)
            : s.next_run_at
              ? when(s.next_run_at, s.timezone)
              : h("span.muted", {}, "no more fires"),
      ),
      h("td", { "data-label": "Last run" }, when(s.last_run_at, s.timezone)),
      h(
        "td.counts",
        { "data-label": "Runs" },
        h("span", { title: "total" }, String(s.total_runs)),
        " / ",
        h("span.ok", { title: "succeeded" }, `✓ ${s.successful_runs}`),
        " / ",
        h("span.bad", { title: "failed" }, `✗ ${s.failed_runs}`),
      ),
      h(
        "td",
        { "data-label": "Success" },
        h("span.rate", {}, percent(rate)),
        rate !== null && rate !== undefined ? h("span.rate-bar", { "aria-hidden": "true" }, h("span", { style: { width: `${rate * 100}%` } })) : null,
      ),
      h(
        "td",
        { "data-label": "Enabled" },
        toggle(s),
      ),
      h(
        "td.actions",
        { "data-label": "Actions" },
        h("button", { type: "button", dataset: focusKey("edit"), onclick: () => openScheduleDialog({ schedule: s, onSaved: load }), "aria-label": `Edit schedule of ${s.workflow_name}` }, "Edit"),
        h(
          "button",
          {
            type: "button",
            dataset: focusKey("run"),
            "aria-label": `Run ${s.workflow_name} now`,
            onclick: async () => {
              try {
                const out = await api("POST", `/api/schedules/${s.id}/trigger`);
                toast(`Run started for ${s.workflow_name}`);
                navigate(`#/runs/${out.run_id}`);
              } catch (error) {
                toast(error.message, "error");
              }
            },
          },
          "Run now",
        ),
        h(
          "button.danger-outline",
          {
            type: "button",
            dataset: focusKey("delete"),
            "aria-label": `Delete schedule of ${s.workflow_name}`,
            onclick: async () => {
              const yes = await confirmDialog({
                title: "Delete this schedule?",
                message: `${s.workflow_name} — ${s.cron} (${s.timezone}) will stop firing. Its past runs stay.`,
              });
              if (!yes) return;
              try {
                await api("DELETE", `/api/schedules/${s.id}`);
                toast("Schedule deleted");
                load();
              } catch (error) {
                toast(error.message, "error");
              }
            },
          },
          "Delete",
        ),
      ),
    );
  }

  function table(items) {
    if (!items.length) {
      return h(
        "div.empty",
        {},
        h("p", {}, "No schedules yet."),
        h("p", {}, "Create a workflow first on the ", h("a", { href: "#/workflows" }, "Workflows"), " page, then schedule it here."),
      );
    }
    return h(
      "table.data.responsive.schedules",
      {},
      h("caption.visually-hidden", {}, "Schedules"),
      h(
        "thead",
        {},
        h("tr", {}, ["Workflow", "Schedule", "Time zone", "Next run", "Last run", "Runs (total / ok / failed)", "Success", "Enabled", ""].map((t) => h("th", { scope: "col" }, t))),
      ),
      h("tbody", {}, items.map(rowFor)),
    );
  }

  async function load() {
    if (closed) return;
    try {
      const [{ items, more }, stats] = await Promise.all([
        listAll("/api/schedules"),
        api("GET", "/api/stats", { query: { hours: 24 } }).catch(() => null),
      ]);
      if (closed) return;
      const enabled = items.filter((s) => s.enabled).length;
      const total = items.reduce((sum, s) => sum + s.total_runs, 0);
      const ok = items.reduce((sum, s) => sum + s.successful_runs, 0);
      const failed = items.reduce((sum, s) => sum + s.failed_runs, 0);
      const plus = more ? "+" : "";
      replace(
        cards,
        card("Schedules", `${items.length}${plus}`, `${items.length - enabled} disabled`),
        card("Enabled", `${enabled}${plus}`, `${items.filter((s) => s.paused).length} paused`),
        card("Runs", `${total}${plus}`, stats ? `${stats.total} in the last 24 h` : null),
        card("Success rate", percent(ok + failed ? ok / (ok + failed) : null), stats ? `${percent(stats.success_rate)} in the last 24 h` : null),
      );
      const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.focusKey : null;
      replace(body, table(items));
      if (focused) {
        const again = body.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
        if (again) again.focus();
      }
      replace(note, `Times in your zone (${viewerZone}), and in the schedule's own zone when it differs.${more ? " Showing the newest 1000 schedules." : ""}`);
    } catch (error) {
      if (!closed) replace(body, errorBox(error, load));
    }
  }

  const reload = throttle(load, 1000);
  const stop = events.on((event) => {
    if (event.event === "run.started" || event.event === "run.finished") reload();
  });
  const timer = setInterval(load, POLL_MS);
  load();
  return () => {
    closed = true;
    stop();
    reload.cancel();
    clearInterval(timer);
  };
}
