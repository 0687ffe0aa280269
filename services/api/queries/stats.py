"""SQL for ``GET /api/stats``: one statement over one organization's recent runs.

It reads ``workflow_runs_org_created_stats`` (migration 0004): runs of the organization
created since the window's start, as an index-only scan with the aggregated columns
INCLUDEd, so its cost follows the window's runs, not the table's.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.db.pool import Pool

HOURLY_BUCKETS = 24

_STATS = """
WITH bounds AS (
    SELECT clock_timestamp() AS now,
           date_trunc('hour', clock_timestamp()) - interval '23 hours' AS hourly_from
), r AS MATERIALIZED (
    SELECT status, created_at, started_at, finished_at
    FROM workflow_runs, bounds
    WHERE org_id = $1
      AND created_at >= least(bounds.now - make_interval(hours => $2), bounds.hourly_from)
      AND ($3::uuid IS NULL OR workflow_id = $3)
      AND ($4::uuid IS NULL OR schedule_id = $4)
), w AS (
    SELECT r.* FROM r, bounds WHERE r.created_at >= bounds.now - make_interval(hours => $2)
)
SELECT
    (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb)
     FROM (SELECT status, count(*) AS n FROM w GROUP BY status) s) AS by_status,
    (SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (
                ORDER BY extract(epoch FROM finished_at - started_at) * 1000)
     FROM w WHERE started_at IS NOT NULL AND finished_at IS NOT NULL) AS duration_ms,
    (SELECT jsonb_agg(jsonb_build_object('hour', h.hour, 'runs', coalesce(c.n, 0))
                      ORDER BY h.hour)
     FROM bounds,
          generate_series(bounds.hourly_from, bounds.hourly_from + interval '23 hours',
                          interval '1 hour') AS h(hour)
     LEFT JOIN (SELECT date_trunc('hour', created_at) AS hour, count(*) AS n
                FROM r GROUP BY 1) c ON c.hour = h.hour) AS per_hour
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
