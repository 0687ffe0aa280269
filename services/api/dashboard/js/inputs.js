// The run input last used for a workflow (or suggested by the template it came from),
// kept in this browser to prefill "Run now" and new schedules.

const INPUT_STORAGE = "flowcron.input.";

export function suggestedInput(workflowId) {
  try {
    return JSON.parse(localStorage.getItem(INPUT_STORAGE + workflowId) || "{}");
  } catch {
    return {};
  }
}

export function rememberInput(workflowId, input) {
  localStorage.setItem(INPUT_STORAGE + workflowId, JSON.stringify(input));
}
