// One run: its graph with each node coloured by its step's status (click a node for
// its input, output, error, attempts and duration), its logs, cancel and retry; live
// while the run is queued or running (its event stream, and a slow poll as a backstop).

import { api } from "../api.js";
import { h, replace, throttle } from "../dom.js";
import { graphSvg } from "../graph.js";
import { follow } from "../sse.js";
import { duration, exact, relative } from "../time.js";
import { errorBox, jsonBlock, statusBadge, toast } from "../ui.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
const POLL_MS = 5000;

function row(label, value) {
  return [h("dt", {}, label), h("dd", {}, value ?? h("span.muted", {}, "—"))];
}

function when(iso) {
  return iso ? h("span", {}, exact(iso), " ", h("span.muted", { dataset: { relative: iso } }, relative(iso))) : null;
}

export function render(root, { params, navigate }) {
  const runId = params.id;
  let closed = false;
  let run = null;
  let graph = null;
  let workflow = null;
  let logs = [];
  let selected = null;
  let stream = null;
  let timer = null;

  const header = h("div.page-header");
  const liveNote = h("p.small.muted", { role: "status", "aria-live": "polite" });
  const summary = h("dl.summary");
  const graphBox = h("div.graph-box");
  const stepPanel = h("section.step-panel", { "aria-label": "Selected step", "aria-live": "polite" });
  const logBox = h("div.logs");
  replace(
    root,
    h("p.breadcrumb", {}, h("a", { href: "#/runs" }, "← Runs")),
    header,
    liveNote,
    h("div.run-layout", {}, h("section.run-graph", { "aria-labelledby": "graph-title" }, h("h2", { id: "graph-title" }, "Graph"), h("p.small.muted", {}, "Select a node to see its step."), graphBox), stepPanel),
    h("section", { "aria-labelledby": "summary-title" }, h("h2", { id: "summary-title" }, "Details"), summary),
    h("section", { "aria-labelledby": "logs-title" }, h("h2", { id: "logs-title" }, "Logs"), logBox),
  );

  async function act(method, path, body, message) {
    try {
      const out = await api(method, path, { body });
      toast(message);
      return out;
    } catch (error) {
      toast(error.message, "error");
      return null;
    }
  }

  function renderHeader() {
    const ended = TERMINAL.has(run.status);
    const actions = [];
    if (!ended) {
      actions.push(
        h("button.danger-outline", { type: "button", onclick: async () => (await act("POST", `/api/runs/${run.id}/cancel`, undefined, "Run cancelled")) && refresh() }, "Cancel run"),
      );
    } else {
      actions.push(
        h("button", { type: "button", onclick: async () => { const out = await act("POST", `/api/runs/${run.id}/retry`, {}, "Retry started"); if (out) navigate(`#/runs/${out.id}`); } }, "Retry"),
      );
      if (run.status === "failed" || run.status === "timed_out") {
        actions.push(
          h("button", { type: "button", onclick: async () => { const out = await act("POST", `/api/runs/${run.id}/retry`, { from_failed: true }, "Resumed from the failed step"); if (out) navigate(`#/runs/${out.id}`); } }, "Retry from failed step"),
        );
      }
    }
    replace(
      header,
      h("h1", {}, `Run of ${workflow ? workflow.name : "workflow"} `, statusBadge(run.status)),
      h("div.header-tools", {}, actions),
    );
  }

  function renderSummary() {
    replace(
      summary,
      row("Run id", h("code", {}, run.id)),
      row("Workflow", workflow ? h("a", { href: `#/runs?workflow_id=${run.workflow_id}` }, `${workflow.name} (version ${run.workflow_version})`) : run.workflow_id),
      row("Trigger", run.trigger),
      run.retry_of ? row("Retry of", h("a", { href: `#/runs/${run.retry_of}` }, run.retry_of)) : null,
      row("Scheduled for", when(run.scheduled_for)),
      row("Created", when(run.created_at)),
      row("Started", when(run.started_at)),
      row("Finished", when(run.finished_at)),
      row("Duration", duration(run.duration_ms)),
      row("Attempt", String(run.attempt)),
      run.wait_reason ? row("Waiting", run.wait_reason) : null,
      run.error ? row("Error", h("span.bad", {}, run.error)) : null,
      row("Input", jsonBlock(run.input)),
      row("Output", run.output === null ? null : jsonBlock(run.output)),
    );
  }

  function renderGraph() {
    if (!graph) {
      replace(graphBox, h("p.muted", {}, "The graph is not available."));
      return;
    }
    const statuses = Object.fromEntries(run.steps.map((st) => [st.node_id, st.status]));
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.node : null;
    replace(graphBox, graphSvg(graph, { statuses, selected, onSelect: (id) => { selected = id; renderGraph(); renderStep(); }, title: "Run graph: each node coloured by its step's status" }));
    const again = focused && graphBox.querySelector(`[data-node="${CSS.escape(focused)}"]`);
    if (again) again.focus();
    graphBox.append(
      h("p.legend.small", {}, ["pending", "running", "succeeded", "failed", "skipped", "cancelled"].map((st) => h(`span.legend-item.status-${st}`, {}, st))),
    );
  }

  function renderStep() {
    if (!selected) {
      replace(stepPanel, h("h2", {}, "Step"), h("p.muted", {}, "Select a node of the graph."));
      return;
    }
    const step = run.steps.find((st) => st.node_id === selected);
    const node = graph && graph.nodes.find((n) => n.id === selected);
    const lines = logs.filter((l) => l.node_id === selected);
    replace(
      stepPanel,
      h("h2", {}, `Step ${selected} `, step ? statusBadge(step.status) : h("span.badge.status-pending", {}, "not started")),
      node ? h("p.small.muted", {}, node.type === "action" ? `action: ${node.action}` : node.type) : null,
      step
        ? h(
            "dl.summary",
            {},
            row("Attempts", String(step.attempt)),
            row("Duration", duration(step.duration_ms)),
            row("Started", when(step.started_at)),
            row("Finished", when(step.finished_at)),
            step.error ? row("Error", h("span.bad", {}, step.error)) : null,
            row("Input", jsonBlock(step.input)),
            row("Output", jsonBlock(step.output)),
          )
        : h("p", {}, "This node has no step yet (it has not been reached)."),
      lines.length ? h("div", {}, h("h3.small-heading", {}, "Its log lines"), logList(lines)) : null,
    );
  }

  function logList(items) {
    return h(
      "ol.log-list",
      {},
      items.map((l) =>
        h(
          `li.log.level-${l.level}`,
          {},
          h("span.log-time", {}, exact(l.created_at, undefined, { withDate: false })),
          h("span.log-level", {}, l.level),
          l.node_id ? h("span.log-node", {}, l.node_id) : null,
          h("span.log-message", {}, l.message),
          l.data !== null && l.data !== undefined && Object.keys(l.data).length ? h("details", {}, h("summary", {}, "data"), jsonBlock(l.data)) : null,
        ),
      ),
    );
  }

  function renderLogs() {
    replace(logBox, logs.length ? logList(logs) : h("p.muted", {}, "No log lines yet."));
  }

  async function refresh() {
    try {
      const [fresh, page] = await Promise.all([api("GET", `/api/runs/${runId}`), api("GET", `/api/runs/${runId}/logs`, { query: { limit: 1000 } })]);
      if (closed) return;
      run = fresh;
      logs = page.items;
      if (!workflow) {
        workflow = await api("GET", `/api/workflows/${run.workflow_id}`).catch(() => null);
        graph = workflow ? workflow.graph : null;
        if (workflow && workflow.version !== run.workflow_version) {
          const versions = await api("GET", `/api/workflows/${run.workflow_id}/versions`).catch(() => null);
          const mine = versions && versions.items.find((v) => v.version === run.workflow_version);
          if (mine) graph = mine.graph;
        }
      }
      if (closed) return;
      document.title = `Run ${run.status} · ${workflow ? workflow.name : ""} · Flowcron`;
      renderHeader();
      renderSummary();
      renderGraph();
      renderStep();
      renderLogs();
      if (TERMINAL.has(run.status)) stopLive();
      else startLive();
    } catch (error) {
      if (closed) return;
      if (error.status === 404 || error.status === 422) replace(root, h("h1", {}, "Run not found"), h("p", {}, error.message), h("a", { href: "#/runs" }, "Back to the runs"));
      else replace(header, errorBox(error, refresh));
    }
  }

  const refreshSoon = throttle(refresh, 250);

  function startLive() {
    if (stream || closed) return;
    liveNote.textContent = "Following this run live…";
    stream = follow(`/api/runs/${runId}/events`, {
      onEvent: () => refreshSoon(),
      until: (event) => event.event === "run.finished",
      onStatus: (state) => {
        if (state === "connecting" && !closed && run && !TERMINAL.has(run.status)) liveNote.textContent = "Reconnecting to the run's events…";
        if (state === "live") liveNote.textContent = "Following this run live…";
      },
    });
    timer = setInterval(refresh, POLL_MS);
  }

  function stopLive() {
    if (stream) stream.close();
    stream = null;
    clearInterval(timer);
    timer = null;
    liveNote.textContent = run ? `This run has ended (${run.status}).` : "";
  }

  refresh();
  return () => {
    closed = true;
    refreshSoon.cancel();
    if (stream) stream.close();
    clearInterval(timer);
  };
}
