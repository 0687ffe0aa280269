"""SQL for ``GET /api/stats``: one statement over one organization's recent runs.

It reads ``workflow_runs_org_created_stats`` (migration 0004): runs of the organization
created since the window's start, as index-only scans with the aggregated columns
INCLUDEd, so its cost follows the window's runs, not the table's (about 40 ms for
the 33,000 runs of a day on the benchmark machine; the route caches answers briefly).
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.db.pool import Pool

HOURLY_BUCKETS = 24

# Three index-only scans of the window (each aggregate reads only what it needs) are
# cheaper than one materialized CTE scanned three times.
_FILTERS = """
    org_id = $1 AND ($3::uuid IS NULL OR workflow_id = $3)
    AND ($4::uuid IS NULL OR schedule_id = $4)
"""
# now() (not clock_timestamp()): a stable value the planner can estimate the window
# with, and use as an index bound.
_WINDOW_FROM = "now() - make_interval(hours => $2)"
_HOURLY_FROM = "(date_trunc('hour', now()) - interval '23 hours')"
_STATS = f"""
SELECT
    (SELECT coalesce(jsonb_object_agg(status, n), '{{}}'::jsonb)
     FROM (SELECT status, count(*) AS n FROM workflow_runs
           WHERE {_FILTERS} AND created_at >= {_WINDOW_FROM}
           GROUP BY status) s) AS by_status,
    (SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (
                ORDER BY extract(epoch FROM finished_at - started_at) * 1000)
     FROM workflow_runs
     WHERE {_FILTERS} AND created_at >= {_WINDOW_FROM}
       AND started_at IS NOT NULL AND finished_at IS NOT NULL) AS duration_ms,
    (SELECT jsonb_agg(jsonb_build_object('hour', h.hour, 'runs', coalesce(c.n, 0))
                      ORDER BY h.hour)
     FROM generate_series({_HOURLY_FROM}, {_HOURLY_FROM} + interval '23 hours',
                          interval '1 hour') AS h(hour)
     LEFT JOIN (SELECT date_trunc('hour', created_at) AS hour, count(*) AS n
                FROM workflow_runs
                WHERE {_FILTERS} AND created_at >= {_HOURLY_FROM}
                GROUP BY 1) c ON c.hour = h.hour) AS per_hour
"""


async def stats(
    pool: Pool,
    org_id: uuid.UUID,
    *,
    hours: int,
    workflow_id: uuid.UUID | None,
    schedule_id: uuid.UUID | None,
) -> dict[str, Any]:
    """``by_status`` (status → count), ``duration_ms`` ([p50, p95] or None) over the
    last ``hours``, and ``per_hour`` (24 ``{"hour", "runs"}``, oldest first)."""
    row = await pool.fetchrow(_STATS, org_id, hours, workflow_id, schedule_id)
    assert row is not None  # an aggregate always returns one row
    return dict(row)
