// Queues: the namespace's streams and their consumers with counts, and this
// organization's dead letters with retry and remove (admin keys only).

import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { confirmDialog, errorBox, jsonBlock, toast } from "../ui.js";

const COUNTS_MS = 10000;

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function queueCard(q) {
  return h(
    "section.queue-card",
    { "aria-labelledby": `queue-${q.name}`, dataset: { queue: q.name } },
    h("h2", { id: `queue-${q.name}` }, q.name, " ", h("code.small", {}, q.stream)),
    h(
      "dl.counts-grid",
      {},
      h("div", {}, h("dt", {}, "Messages"), h("dd", { dataset: { count: "messages" } }, String(q.messages))),
      h("div", {}, h("dt", {}, "Size"), h("dd", {}, bytes(q.bytes))),
      h("div", {}, h("dt", {}, "Sequence"), h("dd", {}, q.messages ? `${q.first_seq}–${q.last_seq}` : "—")),
    ),
    h("p.small.muted", {}, "Subjects: ", q.subjects.map((s) => h("code", {}, s))),
    q.consumers.length
      ? h("div.scroll-x", {}, h(
          "table.data.compact",
          {},
          h("caption", {}, `Consumers of ${q.name}`),
          h("thead", {}, h("tr", {}, ["Consumer", "Pending", "Ack pending", "Redelivered", "Waiting"].map((t) => h("th", { scope: "col" }, t)))),
          h(
            "tbody",
            {},
            q.consumers.map((c) =>
              h("tr", { dataset: { consumer: c.name } }, h("td", {}, c.name), h("td", {}, String(c.pending)), h("td", {}, String(c.ack_pending)), h("td", {}, String(c.redelivered)), h("td", {}, String(c.waiting))),
            ),
          ),
        ))
      : h("p.small.muted", {}, "No consumers."),
  );
}

export function render(root) {
  let closed = false;
  const streams = h("div.queue-grid", { "aria-live": "polite" });
  const dlq = h("div.dlq");
  const refreshButton = h("button", { type: "button", onclick: () => loadAll() }, "Refresh");
  replace(
    root,
    h("div.page-header", {}, h("h1", {}, "Queues"), refreshButton),
    h("p.small.muted", {}, "Counts are the namespace's; dead letters listed are your organization's."),
    streams,
    h("section", { "aria-labelledby": "dlq-title" }, h("h2", { id: "dlq-title" }, "Dead letters"), h("p.small.muted", {}, "Runs whose message failed delivery too many times. Retry sets the run back to queued and publishes it again (it resumes after its succeeded steps)."), dlq),
  );

  async function loadCounts() {
    try {
      const out = await api("GET", "/api/admin/queues");
      if (!closed) replace(streams, out.items.map(queueCard));
    } catch (error) {
      if (closed) return;
      if (error.status === 403) {
        replace(streams, h("div.error-box", { role: "alert" }, "Queues need an admin API key; this one is a member key. Create one with: flowcron apikey create --org NAME --role admin"));
        replace(dlq);
      } else replace(streams, errorBox(error, loadCounts));
    }
  }

  async function act(action, selection) {
    if (action === "remove") {
      const yes = await confirmDialog({
        title: "Remove dead letters?",
        message: selection.ids ? `${selection.ids.length} dead letter(s) will be deleted; their runs stay as they are.` : "Every dead letter of your organization will be deleted; their runs stay as they are.",
        confirmLabel: "Remove",
      });
      if (!yes) return;
    }
    try {
      const out = await api("POST", "/api/admin/queues/dlq", { body: { action, ...selection } });
      const failed = out.failed.length ? `, ${out.failed.length} failed (${out.failed.map((f) => `#${f.id}: ${f.error}`).join("; ")})` : "";
      toast(`${action === "retry" ? "Retried" : "Removed"} ${out.done.length}${failed}`, out.failed.length ? "error" : "info");
    } catch (error) {
      toast(error.message, "error");
    }
    loadAll();
  }

  async function loadDlq() {
    try {
      const page = await api("GET", "/api/admin/queues/dlq", { query: { limit: 200 } });
      if (closed) return;
      const items = page.messages_page;
      if (!items.length) {
        replace(dlq, h("p.empty", {}, "No dead letters."));
        return;
      }
      const boxes = [];
      const selectAll = h("input", { type: "checkbox", "aria-label": "Select every dead letter shown" });
      selectAll.addEventListener("change", () => boxes.forEach((b) => (b.checked = selectAll.checked)));
      const chosen = () => boxes.filter((b) => b.checked).map((b) => Number(b.value));
      const withChosen = (action) => () => {
        const ids = chosen();
        if (!ids.length) toast("Select dead letters first (the checkboxes).", "error");
        else act(action, { ids });
      };
      replace(
        dlq,
        h(
          "div.toolbar",
          {},
          h("button", { type: "button", onclick: withChosen("retry") }, "Retry selected"),
          h("button.danger-outline", { type: "button", onclick: withChosen("remove") }, "Remove selected"),
          h("button", { type: "button", onclick: () => act("retry", { filter: {} }) }, "Retry all"),
          h("button.danger-outline", { type: "button", onclick: () => act("remove", { filter: {} }) }, "Remove all"),
        ),
        h("div.table-wrap", {}, h(
          "table.data.responsive",
          {},
          h("caption.visually-hidden", {}, "Dead letters"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, selectAll), ["Id", "Run", "Error", "Message"].map((t) => h("th", { scope: "col" }, t)))),
          h(
            "tbody",
            {},
            items.map((m) => {
              const box = h("input", { type: "checkbox", value: String(m.id), "aria-label": `Select dead letter ${m.id}` });
              boxes.push(box);
              const runId = m.body && typeof m.body === "object" ? m.body.run_id || m.body.id : null;
              return h(
                "tr",
                { dataset: { dlq: String(m.id) } },
                h("td", { "data-label": "Select" }, box),
                h("td", { "data-label": "Id" }, String(m.id)),
                h("td", { "data-label": "Run" }, runId ? h("a", { href: `#/runs/${runId}` }, String(runId).slice(0, 8)) : "—"),
                h("td", { "data-label": "Error" }, m.error ? h("span.bad.small", {}, m.error) : "—"),
                h("td", { "data-label": "Message" }, h("details", {}, h("summary.small.mono", {}, m.subject), jsonBlock(m.body))),
              );
            }),
          ),
        )),
        page.next_cursor ? h("p.small.muted", {}, "Showing the oldest 200.") : null,
      );
    } catch (error) {
      if (!closed && error.status !== 403) replace(dlq, errorBox(error, loadDlq));
    }
  }

  function loadAll() {
    loadCounts();
    loadDlq();
  }

  loadAll();
  const timer = setInterval(loadCounts, COUNTS_MS);
  return () => {
    closed = true;
    clearInterval(timer);
  };
}
