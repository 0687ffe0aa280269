-- API, version 4: indexes for the run filters and the statistics.

-- GET /api/stats reads the runs of one organization created in a time window. With
-- the columns it aggregates INCLUDEd, that is an index-only scan of the window (the
-- heap is not read once autovacuum has set the visibility map), whatever the number
-- of older runs. Per-workflow and per-schedule stats filter the same scan.
CREATE INDEX workflow_runs_org_created_stats ON workflow_runs (org_id, created_at)
    INCLUDE (status, workflow_id, schedule_id, started_at, finished_at);

-- GET /api/runs?schedule_id=… newest first (the workflow and status filters have
-- indexes since version 1).
CREATE INDEX workflow_runs_schedule_created
    ON workflow_runs (schedule_id, created_at DESC, id DESC) WHERE schedule_id IS NOT NULL;
