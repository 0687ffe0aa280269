"""The executor's Prometheus metrics, served on FLOWCRON_EXECUTOR_METRICS_PORT.

Module-level series in the process's default registry (one executor per process in
production; tests read differences). The hot path only increments them: no awaits,
no extra queries.

| metric | type | labels |
|---|---|---|
| ``flowcron_executor_runs_started_total`` | counter | |
| ``flowcron_executor_runs_finished_total`` | counter | ``status`` |
| ``flowcron_executor_steps_total`` | counter | ``node_type``, ``status`` |
| ``flowcron_executor_step_duration_seconds`` | histogram | ``node_type`` |
| ``flowcron_executor_runs_in_flight`` | gauge | |
| ``flowcron_executor_pickup_latency_seconds`` | histogram | |
| ``flowcron_executor_redeliveries_total`` | counter | |
| ``flowcron_executor_dead_lettered_total`` | counter | |
"""

from __future__ import annotations

import structlog
from prometheus_client import Counter, Gauge, Histogram

log = structlog.get_logger(__name__)

RUNS_STARTED = Counter(
    "flowcron_executor_runs_started",
    "Runs claimed and started (or resumed) by this executor.",
)
RUNS_FINISHED = Counter(
    "flowcron_executor_runs_finished",
    "Runs this executor brought to a final status (dead-lettered runs count as failed).",
    ["status"],
)
STEPS = Counter(
    "flowcron_executor_steps",
    "Steps recorded with a final status, by node type.",
    ["node_type", "status"],
)
STEP_DURATION = Histogram(
    "flowcron_executor_step_duration_seconds",
    "Time a node took to run, retries and backoffs included.",
    ["node_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RUNS_IN_FLIGHT = Gauge(
    "flowcron_executor_runs_in_flight",
    "Run messages being handled now (at most FLOWCRON_EXECUTOR_CONCURRENCY per replica).",
)
PICKUP_LATENCY = Histogram(
    "flowcron_executor_pickup_latency_seconds",
    "Run message stored by JetStream to the run claimed, first deliveries only"
    " (NATS server clock to this host's clock).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REDELIVERIES = Counter(
    "flowcron_executor_redeliveries",
    "Run messages delivered more than once (an executor died, timed out or handed it back).",
)
DEAD_LETTERED = Counter(
    "flowcron_executor_dead_lettered",
    "Run messages copied to the dead-letter stream (deliveries exhausted, or unreadable).",
)
