"""The scheduler's Prometheus metrics (exposed on FLOWCRON_SCHEDULER_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FIRES = Counter("flowcron_scheduler_fires_total", "Fires decided, by decision.", ["decision"])
FIRE_LAG = Histogram(
    "flowcron_scheduler_fire_lag_seconds",
    "Scheduled fire time to the run message acknowledged by JetStream (database clock).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DUE_BACKLOG = Gauge(
    "flowcron_scheduler_due_backlog", "Enabled schedules whose fire time has passed."
)
OUTBOX_REPUBLISHED = Counter(
    "flowcron_scheduler_outbox_republished_total", "Runs published again by the outbox sweep."
)
CLOCK_SKEW = Gauge(
    "flowcron_scheduler_clock_skew_seconds", "This host's clock minus the database's clock."
)
BATCHES = Counter("flowcron_scheduler_batches_total", "Claim batches that found due schedules.")
