// Workflows: the list, create from pasted JSON or a starter template (with a live
// picture of the graph), view, run now with an input, schedule, delete.

import { ApiError, api, listAll } from "../api.js";
import { debounce, h, replace } from "../dom.js";
import { graphSvg } from "../graph.js";
import { rememberInput, suggestedInput } from "../inputs.js";
import { TEMPLATES } from "../templates.js";
import { exact } from "../time.js";
import { confirmDialog, errorBox, field, jsonBlock, openDialog, parseJsonObject, toast } from "../ui.js";
import { openScheduleDialog } from "./schedule-dialog.js";

/** "Run now" with an input; answers the run (and goes to its page). */
export function openRunDialog(workflow, navigate) {
  const input = field({
    label: "Run input (JSON object)",
    input: h("textarea.mono", { rows: 8, spellcheck: "false" }, JSON.stringify(suggestedInput(workflow.id), null, 2)),
    hint: "Templates see it as {{ input.… }}.",
  });
  const idempotencyKey = crypto.randomUUID(); // a double click starts one run
  const start = h("button.primary", { type: "submit", form: "run-form" }, "Start run");
  const form = h("form", { id: "run-form", novalidate: true }, input.wrap);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try {
      body = { input: parseJsonObject(input.input.value, "The input") };
    } catch (error) {
      input.setError(error.message);
      input.input.focus();
      return;
    }
    start.disabled = true;
    try {
      const run = await api("POST", `/api/workflows/${workflow.id}/runs`, { body, headers: { "Idempotency-Key": idempotencyKey } });
      rememberInput(workflow.id, body.input);
      handle.close();
      toast(`Run of ${workflow.name} queued`);
      navigate(`#/runs/${run.id}`);
    } catch (error) {
      input.setError(error.forField ? error.forField("input") || error.message : error.message);
    } finally {
      start.disabled = false;
    }
  });
  const handle = openDialog({
    title: `Run ${workflow.name} now`,
    content: form,
    actions: [h("button", { type: "button", onclick: () => handle.close() }, "Cancel"), start],
  });
  input.input.focus();
}

function viewDialog(workflow) {
  openDialog({
    title: `${workflow.name} (version ${workflow.version})`,
    size: "wide",
    content: h(
      "div.workflow-view",
      {},
      workflow.description ? h("p", {}, workflow.description) : null,
      h("div.graph-box", {}, graphSvg(workflow.graph, { title: `Graph of ${workflow.name}` })),
      h("details", {}, h("summary", {}, "Graph JSON"), jsonBlock(workflow.graph)),
    ),
  });
}

function createDialog(onCreated) {
  const name = field({ label: "Name", input: h("input", { type: "text", required: true, maxlength: 200 }) });
  const description = field({ label: "Description (optional)", input: h("input", { type: "text", maxlength: 10000 }) });
  const templateSelect = h(
    "select",
    {},
    h("option", { value: "" }, "Blank: paste your own JSON"),
    TEMPLATES.map((t) => h("option", { value: t.id }, t.title)),
  );
  const template = field({ label: "Start from", input: templateSelect, hint: "A starter template fills the name and the graph; edit anything before creating." });
  const templateNote = h("p.small.muted", { "aria-live": "polite" });
  const graph = field({
    label: "Graph (JSON)",
    input: h("textarea.mono.graph-json", { rows: 16, spellcheck: "false", required: true }),
    hint: 'A graph {"nodes": [...], "edges": [...]}, or a whole workflow {"name", "description", "graph"}. See docs/workflows.md.',
  });
  const picture = h("div.graph-box.preview", { "aria-live": "polite" });
  const summary = h("div.error-summary", { role: "alert", hidden: true, tabindex: "-1" });
  let suggested = {};

  function parsed() {
    const value = parseJsonObject(graph.input.value, "The graph");
    return value.graph ? value : { graph: value };
  }

  const redraw = debounce(() => {
    try {
      const { graph: g } = parsed();
      if (!Array.isArray(g.nodes)) throw new Error('The graph needs a "nodes" list.');
      graph.setError(null);
      replace(picture, graphSvg({ nodes: g.nodes.filter((n) => n && n.id), edges: Array.isArray(g.edges) ? g.edges : [] }, { title: "Preview of the graph" }));
    } catch (error) {
      graph.setError(error.message);
      replace(picture, h("p.muted", {}, "The picture appears when the JSON is valid."));
    }
  }, 200);
  graph.input.addEventListener("input", redraw);

  templateSelect.addEventListener("change", () => {
    const chosen = TEMPLATES.find((t) => t.id === templateSelect.value);
    if (!chosen) {
      templateNote.textContent = "";
      suggested = {};
      return;
    }
    name.input.value = chosen.workflow.name;
    description.input.value = chosen.workflow.description;
    graph.input.value = JSON.stringify(chosen.workflow.graph, null, 2);
    suggested = chosen.input;
    templateNote.textContent = `${chosen.summary} Suggested input: ${JSON.stringify(chosen.input)}`;
    redraw();
  });

  const create = h("button.primary", { type: "submit", form: "workflow-form" }, "Create workflow");
  const form = h(
    "form.workflow-form",
    { id: "workflow-form", novalidate: true },
    summary,
    h("div.form-columns", {}, h("div", {}, template.wrap, templateNote, name.wrap, description.wrap, graph.wrap), h("div", {}, h("h3.small-heading", {}, "Picture"), picture)),
  );

  function fail(detail, errors = []) {
    summary.hidden = false;
    replace(summary, h("strong", {}, detail), errors.length ? h("ul", {}, errors.map((e) => h("li", {}, h("code", {}, e.field || "body"), `: ${e.message}`))) : null);
    summary.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    name.setError(null);
    let body;
    try {
      const value = parsed();
      body = { name: name.input.value.trim() || value.name || "", description: description.input.value.trim() || value.description || "", graph: value.graph };
      if (value.max_concurrency !== undefined) body.max_concurrency = value.max_concurrency;
    } catch (error) {
      graph.setError(error.message);
      fail(error.message);
      return;
    }
    if (!body.name) {
      name.setError("Give the workflow a name.");
      fail("The workflow needs a name.");
      return;
    }
    create.disabled = true;
    try {
      const workflow = await api("POST", "/api/workflows", { body });
      rememberInput(workflow.id, suggested);
      handle.close();
      toast(`Workflow ${workflow.name} created`);
      onCreated(workflow);
    } catch (error) {
      if (error instanceof ApiError) {
        if (error.forField("name")) name.setError(error.forField("name"));
        fail(error.errors.length ? "The API refused the workflow:" : `The API refused the workflow: ${error.detail}`, error.errors);
      } else fail(error.message);
    } finally {
      create.disabled = false;
    }
  });

  const handle = openDialog({
    title: "New workflow",
    content: form,
    size: "wide",
    actions: [h("button", { type: "button", onclick: () => handle.close() }, "Cancel"), create],
  });
  replace(picture, h("p.muted", {}, "Choose a template or paste a graph."));
  templateSelect.focus();
}

export function render(root, { navigate }) {
  let closed = false;
  const list = h("div.table-wrap");
  const search = h("input", { type: "search", placeholder: "Name contains…", "aria-label": "Search workflows by name" });
  replace(
    root,
    h(
      "div.page-header",
      {},
      h("h1", {}, "Workflows"),
      h("div.header-tools", {}, search, h("button.primary", { type: "button", onclick: () => createDialog(() => load()) }, "New workflow")),
    ),
    list,
  );

  function row(w, schedules) {
    const mine = schedules.filter((s) => s.workflow_id === w.id);
    return h(
      "tr",
      { dataset: { workflow: w.id } },
      h("td", { "data-label": "Name" }, h("strong", {}, w.name), w.description ? h("div.small.muted", {}, w.description) : null),
      h("td", { "data-label": "Version" }, String(w.version)),
      h("td", { "data-label": "Nodes" }, String(w.graph.nodes.length)),
      h(
        "td",
        { "data-label": "Schedules" },
        mine.length
          ? mine.map((s) => h("div.small", {}, h("code.cron", {}, s.cron), ` ${s.timezone}${s.enabled ? "" : " (off)"}`))
          : h("span.muted", {}, "none"),
      ),
      h("td", { "data-label": "Created" }, h("span.small", {}, exact(w.created_at))),
      h(
        "td.actions",
        { "data-label": "Actions" },
        h("button", { type: "button", onclick: () => viewDialog(w), "aria-label": `View ${w.name}` }, "View"),
        h("button", { type: "button", onclick: () => openRunDialog(w, navigate), "aria-label": `Run ${w.name} now` }, "Run now"),
        h(
          "button",
          {
            type: "button",
            "aria-label": `Schedule ${w.name}`,
            onclick: () => openScheduleDialog({ workflowId: w.id, onSaved: () => navigate("#/schedules") }),
          },
          "Schedule",
        ),
        h("a.button", { href: `#/runs?workflow_id=${w.id}`, "aria-label": `Runs of ${w.name}` }, "Runs"),
        h(
          "button.danger-outline",
          {
            type: "button",
            "aria-label": `Delete ${w.name}`,
            onclick: async () => {
              const yes = await confirmDialog({
                title: `Delete ${w.name}?`,
                message: "The workflow is deleted with its schedules, runs, steps and logs. This cannot be undone.",
              });
              if (!yes) return;
              try {
                await api("DELETE", `/api/workflows/${w.id}`);
                toast(`${w.name} deleted`);
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

  async function load() {
    try {
      const [{ items, more }, schedules] = await Promise.all([
        listAll("/api/workflows", { query: { q: search.value.trim() || undefined }, max: 1000 }),
        listAll("/api/schedules").then((r) => r.items),
      ]);
      if (closed) return;
      replace(
        list,
        items.length
          ? h(
              "table.data.responsive",
              {},
              h("caption.visually-hidden", {}, "Workflows"),
              h("thead", {}, h("tr", {}, ["Name", "Version", "Nodes", "Schedules", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
              h("tbody", {}, items.map((w) => row(w, schedules))),
            )
          : h("div.empty", {}, h("p", {}, search.value ? "No workflow matches." : "No workflows yet: create one from a template.")),
        more ? h("p.small.muted", {}, "Showing the newest 1000; search to narrow.") : null,
      );
    } catch (error) {
      if (!closed) replace(list, errorBox(error, load));
    }
  }
  search.addEventListener("input", debounce(load, 300));
  load();
  return () => {
    closed = true;
  };
}
