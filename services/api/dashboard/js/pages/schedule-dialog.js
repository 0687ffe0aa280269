// The schedule dialog (create and edit): presets, an expression checked as you type
// (description and the next 5 fire times in the chosen zone), a searchable zone
// picker, the scheduler's policies, and the API's errors shown at their fields.

import { ApiError, api, listAll } from "../api.js";
import { debounce, h, replace } from "../dom.js";
import { exact, instantToWall, relative, viewerZone, wallToInstant } from "../time.js";
import { field, openDialog, parseJsonObject, toast } from "../ui.js";
import { suggestedInput } from "../inputs.js";
import { timezonePicker } from "../tzpicker.js";

export const PRESETS = [
  ["* * * * * *", "Every second"],
  ["*/10 * * * * *", "Every 10 seconds"],
  ["* * * * *", "Every minute"],
  ["*/5 * * * *", "Every 5 minutes"],
  ["*/15 * * * *", "Every 15 minutes"],
  ["*/30 * * * *", "Every 30 minutes"],
  ["0 * * * *", "Every hour, on the hour"],
  ["H * * * *", "Every hour, at a minute spread per schedule (H)"],
  ["0 */6 * * *", "Every 6 hours"],
  ["0 0 * * *", "Every day at midnight"],
  ["0 9 * * *", "Every day at 09:00"],
  ["0 9 * * 1-5", "Weekdays at 09:00"],
  ["*/15 9-17 * * 1-5", "Every 15 minutes in office hours, weekdays"],
  ["0 8 * * 1", "Every Monday at 08:00"],
  ["0 0 1 * *", "First day of the month at midnight"],
  ["0 18 L * *", "Last day of the month at 18:00"],
  ["0 0 1 1 *", "Every year on 1 January"],
];

const FOREVER = "9999-12-31T00:00:00Z"; // the API's "paused until resumed"

const CATCHUP = [
  ["latest", "Run the latest missed fire (like a Kubernetes CronJob)"],
  ["skip", "Skip missed fires"],
  ["all", "Run every missed fire (up to the maximum)"],
];
const OVERLAP = [
  ["allow", "Allow: start anyway"],
  ["skip", "Skip the new fire"],
  ["buffer_one", "Buffer one: hold it until the running one ends"],
  ["cancel_other", "Cancel the running one, start the new one"],
];

function select(options, value) {
  return h("select", {}, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

function numberInput(value, { min = 0, max, step = 1, placeholder } = {}) {
  return h("input", { type: "number", inputmode: "numeric", min, max, step, value: value ?? "", placeholder });
}

/**
 * Open the dialog. `schedule`: edit it; otherwise create one, for `workflowId` when
 * given (else a workflow picker). `onSaved(schedule)` after a successful save.
 */
export function openScheduleDialog({ schedule = null, workflowId = null, onSaved = () => {} } = {}) {
  const editing = Boolean(schedule);
  const s = schedule || {};
  let zone = s.timezone || viewerZone;
  const fields = {};

  // --- timetable ---------------------------------------------------------------------
  const workflowSelect = h("select", { required: true, disabled: editing }, h("option", { value: "" }, "Loading workflows…"));
  fields.workflow = field({ label: "Workflow", input: workflowSelect });
  if (editing) {
    replace(workflowSelect, h("option", { value: s.workflow_id }, s.workflow_name));
  } else {
    listAll("/api/workflows", { max: 1000 })
      .then(({ items }) => {
        replace(
          workflowSelect,
          h("option", { value: "" }, items.length ? "Choose a workflow" : "No workflow yet: create one first"),
          items.map((w) => h("option", { value: w.id, selected: w.id === workflowId }, w.name)),
        );
      })
      .catch((error) => fields.workflow.setError(`Could not list workflows: ${error.message}`));
  }
  fields.name = field({ label: "Name (optional)", input: h("input", { type: "text", maxlength: 200, value: s.name || "", placeholder: "e.g. office hours" }) });

  const presetSelect = h(
    "select",
    {},
    h("option", { value: "" }, "Custom expression"),
    PRESETS.map(([cron, label]) => h("option", { value: cron }, `${label} — ${cron}`)),
  );
  fields.preset = field({ label: "Preset", input: presetSelect });
  const cronInput = h("input.mono", { type: "text", required: true, spellcheck: "false", autocomplete: "off", value: s.cron || "*/5 * * * *" });
  fields.cron = field({
    label: "Cron expression",
    input: cronInput,
    hint: "minute hour day-of-month month day-of-week, or six fields with seconds first; @hourly-style aliases; L, # and H.",
  });
  const status = h("p.cron-status", { role: "status", "aria-live": "polite" });
  const fireList = h("ol.fire-list", { "aria-label": "Next fire times" });
  const preview = h("div.cron-preview", {}, status, h("h3.small-heading", {}, "Next 5 fire times"), fireList);

  const zoneField = { setError: () => {} };
  const picker = timezonePicker({
    value: zone,
    onchange: (next) => {
      zone = next;
      check();
      updateZoneLabels();
    },
    setError: (message) => zoneField.setError(message),
  });
  Object.assign(zoneField, field({ label: "Time zone", input: picker.input, hint: "Any IANA zone; type to search (e.g. paris, new york, kolkata)." }));
  // The combobox's list lives beside its input, inside the field.
  zoneField.input.after(picker.wrap);
  picker.wrap.prepend(picker.input);
  fields.timezone = zoneField;

  const enabledInput = h("input", { type: "checkbox", role: "switch", checked: s.enabled ?? true });
  const enabledWrap = h("div.field.inline", {}, enabledInput, h("label", { for: (enabledInput.id = "schedule-enabled") }, "Enabled"));
  fields.input = field({
    label: "Run input (JSON object)",
    input: h("textarea.mono", { rows: 3, spellcheck: "false" }, JSON.stringify(s.input || (workflowId ? suggestedInput(workflowId) : {}), null, 2)),
    hint: "Every run of this schedule gets this as its input.",
  });

  if (!editing) {
    // A new schedule of a workflow starts with the input last used for it.
    workflowSelect.addEventListener("change", () => {
      const current = fields.input.input.value.trim();
      if (workflowSelect.value && (current === "" || current === "{}")) {
        fields.input.input.value = JSON.stringify(suggestedInput(workflowSelect.value), null, 2);
      }
    });
  }

  // --- policies ----------------------------------------------------------------------
  fields.catchup_policy = field({ label: "Catch-up policy", input: select(CATCHUP, s.catchup_policy || "latest"), hint: "What to do with fires missed while no scheduler ran." });
  fields.catchup_window_s = field({ label: "Catch-up window (seconds)", input: numberInput(s.catchup_window_s ?? 3600, { max: 31622400 }), hint: "Missed fires older than this are dropped." });
  fields.max_catchup_runs = field({ label: "Max catch-up runs", input: numberInput(s.max_catchup_runs ?? 10, { min: 1, max: 1000 }) });
  fields.catchup_interval_s = field({ label: "Catch-up interval (seconds)", input: numberInput(s.catchup_interval_s ?? 1, { max: 3600, step: "any" }), hint: "Caught-up runs start this far apart." });
  fields.overlap_policy = field({ label: "Overlap policy", input: select(OVERLAP, s.overlap_policy || "allow"), hint: "A fire while a run of this schedule is still queued or running." });
  fields.jitter_s = field({ label: "Jitter (seconds)", input: numberInput(s.jitter_s ?? 0, { max: 3600 }), hint: "Start each run up to this late (stable per fire time)." });
  fields.max_runs = field({ label: "Max runs", input: numberInput(s.max_runs, { min: 1, placeholder: "no limit" }), hint: "Stop after this many runs." });
  fields.auto_pause_after = field({ label: "Auto-pause after failures", input: numberInput(s.auto_pause_after, { min: 1, max: 1000, placeholder: "never" }), hint: "Pause after this many consecutive failed runs." });
  fields.start_at = field({ label: "Start", input: h("input", { type: "datetime-local", step: 1, value: instantToWall(s.start_at, zone) }), hint: "No fire before this (in the schedule's zone)." });
  fields.end_at = field({ label: "End", input: h("input", { type: "datetime-local", step: 1, value: instantToWall(s.end_at, zone) }), hint: "No fire after this (in the schedule's zone)." });
  const pausedInput = h("input", { type: "checkbox", id: "schedule-paused", checked: Boolean(s.paused) });
  const pausedWrap = h("div.field.inline", {}, pausedInput, h("label", { for: "schedule-paused" }, "Paused"));
  const untilValue = s.paused && s.paused_until && s.paused_until < "9999" ? instantToWall(s.paused_until, zone) : "";
  fields.paused_until = field({ label: "Paused until", input: h("input", { type: "datetime-local", step: 1, value: untilValue }), hint: "Empty: until resumed." });
  fields.pause_note = field({ label: "Pause note", input: h("input", { type: "text", maxlength: 500, value: s.pause_note || "" }), hint: "Why it is paused; shown in the list and the history." });

  function updateZoneLabels() {
    for (const name of ["start_at", "end_at", "paused_until"]) {
      const label = fields[name].wrap.querySelector("label");
      label.textContent = `${{ start_at: "Start", end_at: "End", paused_until: "Paused until" }[name]} (${zone})`;
    }
  }
  function syncPause() {
    fields.paused_until.input.disabled = !pausedInput.checked;
    fields.pause_note.input.disabled = !pausedInput.checked;
  }
  pausedInput.addEventListener("change", syncPause);
  syncPause();
  updateZoneLabels();

  const summary = h("div.error-summary", { role: "alert", hidden: true, tabindex: "-1" });

  // --- checking the expression as it is typed -------------------------------------------
  let sequence = 0;
  async function check() {
    const expression = cronInput.value.trim();
    presetSelect.value = PRESETS.some(([c]) => c === expression) ? expression : "";
    const mine = ++sequence;
    if (!expression) {
      status.className = "cron-status invalid";
      status.textContent = "Enter an expression, or pick a preset.";
      replace(fireList);
      return;
    }
    const startAt = wallToInstant(fields.start_at.input.value, zone);
    const endAt = wallToInstant(fields.end_at.input.value, zone);
    const body = { expression, timezone: zone, count: 5 };
    if (startAt && startAt > new Date().toISOString()) body.start = new Date(new Date(startAt).getTime() - 1000).toISOString();
    if (editing) body.schedule_id = s.id;
    status.className = "cron-status checking";
    status.textContent = "Checking…";
    let out;
    try {
      out = await api("POST", "/api/utils/validate-cron", { body });
    } catch (error) {
      if (mine !== sequence) return;
      status.className = "cron-status invalid";
      status.textContent = `Could not check the expression: ${error.message}`;
      return;
    }
    if (mine !== sequence) return; // an older answer arriving late
    if (!out.valid) {
      status.className = "cron-status invalid";
      status.textContent = `✗ ${out.error}`;
      fields.cron.setError(out.error);
      replace(fireList);
      return;
    }
    fields.cron.setError(null);
    status.className = "cron-status valid";
    status.textContent = `✓ ${out.description}`;
    const fires = out.next_runs.filter((t) => !endAt || t <= endAt);
    replace(
      fireList,
      fires.length
        ? fires.map((t) =>
            h(
              "li",
              {},
              h("span.fire-zone", {}, exact(t, zone)),
              h("span.muted", {}, ` · ${relative(t)}`),
              zone !== viewerZone ? h("div.muted.small", {}, `your time: ${exact(t, viewerZone)}`) : null,
            ),
          )
        : h("li.muted", {}, "No fire before the end date."),
    );
  }
  const checkSoon = debounce(check, 250);
  cronInput.addEventListener("input", checkSoon);
  presetSelect.addEventListener("change", () => {
    if (presetSelect.value) {
      cronInput.value = presetSelect.value;
      check();
    }
  });
  fields.start_at.input.addEventListener("change", check);
  fields.end_at.input.addEventListener("change", check);

  // --- saving ----------------------------------------------------------------------
  function body() {
    const errors = [];
    const number = (name, { nullable = false, float = false } = {}) => {
      const raw = fields[name].input.value.trim();
      if (raw === "") {
        if (nullable) return null;
        errors.push([name, "Required."]);
        return undefined;
      }
      const value = float ? Number(raw) : Number.parseInt(raw, 10);
      if (!Number.isFinite(value) || (!float && String(value) !== raw.replace(/^\+/, ""))) {
        errors.push([name, `"${raw}" is not ${float ? "a number" : "a whole number"}.`]);
      }
      return value;
    };
    let input = {};
    try {
      input = parseJsonObject(fields.input.input.value, "The run input");
    } catch (error) {
      errors.push(["input", error.message]);
    }
    const paused = pausedInput.checked;
    const out = {
      cron: cronInput.value.trim(),
      timezone: zone,
      name: fields.name.input.value.trim(),
      enabled: enabledInput.checked,
      input,
      catchup_policy: fields.catchup_policy.input.value,
      catchup_window_s: number("catchup_window_s"),
      max_catchup_runs: number("max_catchup_runs"),
      catchup_interval_s: number("catchup_interval_s", { float: true }),
      overlap_policy: fields.overlap_policy.input.value,
      jitter_s: number("jitter_s"),
      max_runs: number("max_runs", { nullable: true }),
      auto_pause_after: number("auto_pause_after", { nullable: true }),
      start_at: wallToInstant(fields.start_at.input.value, zone),
      end_at: wallToInstant(fields.end_at.input.value, zone),
      paused_until: paused ? wallToInstant(fields.paused_until.input.value, zone) || FOREVER : null,
      pause_note: paused ? fields.pause_note.input.value.trim() : "",
    };
    if (!out.cron) errors.push(["cron", "Enter an expression, or pick a preset."]);
    if (!editing && !workflowSelect.value) errors.push(["workflow", "Choose the workflow to schedule."]);
    return { out, errors };
  }

  function showErrors(list, detail) {
    for (const f of Object.values(fields)) f.setError(null);
    const unplaced = [];
    for (const [name, message] of list) {
      const key = name.split(".")[0].replace(/\[.*$/, "");
      if (fields[key] && name !== "") fields[key].setError(message);
      else unplaced.push(name ? `${name}: ${message}` : message);
    }
    summary.hidden = false;
    replace(
      summary,
      h("strong", {}, detail || "Please correct the highlighted fields."),
      list.length ? h("ul", {}, list.map(([name, message]) => h("li", {}, name ? `${labelOf(name)}: ${message}` : message))) : null,
    );
    // The summary names each field by its label; focus brings it (the top) into view.
    summary.focus();
    summary.scrollIntoView({ block: "start" });
    return unplaced;
  }

  function labelOf(name) {
    const key = name.split(".")[0];
    const label = fields[key] && fields[key].wrap.querySelector("label");
    return label ? label.textContent : name;
  }

  const save = h("button.primary", { type: "submit", form: "schedule-form" }, editing ? "Save changes" : "Create schedule");
  const cancel = h("button", { type: "button", onclick: () => handle.close() }, "Cancel");
  const form = h(
    "form.schedule-form",
    { id: "schedule-form", novalidate: true },
    summary,
    h(
      "div.form-columns",
      {},
      h(
        "fieldset.timetable",
        {},
        h("legend", {}, "When"),
        fields.workflow.wrap,
        fields.name.wrap,
        fields.preset.wrap,
        fields.cron.wrap,
        fields.timezone.wrap,
        preview,
        enabledWrap,
        fields.input.wrap,
      ),
      h(
        "fieldset.policies",
        {},
        h("legend", {}, "Policies"),
        h("div.grid-2", {}, fields.catchup_policy.wrap, fields.catchup_window_s.wrap, fields.max_catchup_runs.wrap, fields.catchup_interval_s.wrap),
        h("div.grid-2", {}, fields.overlap_policy.wrap, fields.jitter_s.wrap, fields.max_runs.wrap, fields.auto_pause_after.wrap),
        h("div.grid-2", {}, fields.start_at.wrap, fields.end_at.wrap),
        pausedWrap,
        h("div.grid-2", {}, fields.paused_until.wrap, fields.pause_note.wrap),
      ),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { out, errors } = body();
    if (errors.length) {
      showErrors(errors);
      return;
    }
    save.disabled = true;
    try {
      const saved = editing
        ? await api("PATCH", `/api/schedules/${s.id}`, { body: out })
        : await api("POST", `/api/workflows/${workflowSelect.value}/schedules`, { body: out });
      toast(editing ? "Schedule saved" : `Scheduled ${saved.workflow_name}: ${saved.description}`);
      handle.close();
      onSaved(saved);
    } catch (error) {
      if (error instanceof ApiError) {
        showErrors(
          error.errors.map((e) => [e.field, e.message]),
          error.errors.length ? "The API refused the schedule:" : `The API refused the schedule: ${error.detail}`,
        );
      } else {
        showErrors([], error.message);
      }
    } finally {
      save.disabled = false;
    }
  });

  const handle = openDialog({
    title: editing ? `Edit schedule — ${s.workflow_name}` : "New schedule",
    content: form,
    actions: [cancel, save],
    size: "wide",
  });
  (editing ? cronInput : workflowSelect).focus();
  check();
  return handle;
}
