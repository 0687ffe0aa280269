// Starter workflows for the "New workflow" dialog. `input` is a suggested run input.

export const TEMPLATES = [
  {
    id: "github-activity",
    title: "GitHub activity monitor",
    summary: "Fetch a repository's events, log how many, and post to Slack when there are any.",
    input: {
      base_url: "https://api.github.com",
      repo: "octocat/Hello-World",
      slack_webhook_url: "https://hooks.slack.com/services/T000/B000/XXXX",
    },
    workflow: {
      name: "GitHub activity monitor",
      description: "http_request → log_message → condition → slack_message",
      graph: {
        name: "GitHub activity monitor",
        nodes: [
          { id: "start", type: "trigger" },
          {
            id: "fetch",
            type: "action",
            action: "http_request",
            config: {
              method: "GET",
              url: "{{ input.base_url }}/repos/{{ input.repo }}/events",
              headers: { Accept: "application/vnd.github+json" },
            },
            retry: { max_attempts: 3, backoff_s: 1 },
            timeout_s: 10,
          },
          {
            id: "log",
            type: "action",
            action: "log_message",
            config: { message: "{{ nodes.fetch.output.body | length }} events on {{ input.repo }}" },
          },
          {
            id: "has_events",
            type: "condition",
            config: { expression: "(nodes.fetch.output.body | length) > 0" },
          },
          {
            id: "notify",
            type: "action",
            action: "slack_message",
            config: {
              webhook_url: "{{ input.slack_webhook_url }}",
              text: "{{ nodes.fetch.output.body | length }} new events on {{ input.repo }}",
            },
          },
        ],
        edges: [
          { from: "start", to: "fetch" },
          { from: "fetch", to: "log" },
          { from: "log", to: "has_events" },
          { from: "has_events", to: "notify", branch: "true" },
        ],
      },
    },
  },
  {
    id: "health-check",
    title: "HTTP health check",
    summary: "Call a URL; log whether it answered 200.",
    input: { url: "https://example.org/healthz" },
    workflow: {
      name: "HTTP health check",
      description: "http_request → condition → log_message (up / down)",
      graph: {
        nodes: [
          { id: "start", type: "trigger" },
          {
            id: "probe",
            type: "action",
            action: "http_request",
            config: { method: "GET", url: "{{ input.url }}", accept: ["2xx", "4xx", "5xx"] },
            timeout_s: 10,
          },
          { id: "up", type: "condition", config: { expression: "nodes.probe.output.status == 200" } },
          { id: "ok", type: "action", action: "log_message", config: { message: "{{ input.url }} is up" } },
          {
            id: "down",
            type: "action",
            action: "log_message",
            config: { message: "{{ input.url }} answered {{ nodes.probe.output.status }}" },
          },
        ],
        edges: [
          { from: "start", to: "probe" },
          { from: "probe", to: "up" },
          { from: "up", to: "ok", branch: "true" },
          { from: "up", to: "down", branch: "false" },
        ],
      },
    },
  },
  {
    id: "heartbeat",
    title: "Heartbeat",
    summary: "Log one line per run: the simplest scheduled workflow.",
    input: { who: "flowcron" },
    workflow: {
      name: "Heartbeat",
      description: "trigger → log_message",
      graph: {
        nodes: [
          { id: "start", type: "trigger" },
          {
            id: "beat",
            type: "action",
            action: "log_message",
            config: { message: "heartbeat from {{ input.who }} at {{ run.scheduled_for }}" },
          },
        ],
        edges: [{ from: "start", to: "beat" }],
      },
    },
  },
];
