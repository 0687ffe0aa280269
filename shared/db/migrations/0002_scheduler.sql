-- Scheduler, version 2: decision history, held and paced runs, pause bookkeeping.

-- What became of every fire time of a schedule, with the reason: the question
-- "why did my schedule not run?" has an answer. A fire that simply created its run
-- has no row here: the run itself (trigger 'schedule') records it, which halves the
-- writes of a burst; the history endpoint reads both.
CREATE TABLE schedule_decisions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    schedule_id  uuid NOT NULL REFERENCES workflow_schedules (id) ON DELETE CASCADE,
    fire_time    timestamptz NOT NULL,
    decision     text NOT NULL CHECK (decision IN (
                     'created', 'buffered', 'skipped_overlap', 'missed', 'paused',
                     'cancelled_other', 'triggered', 'backfilled', 'duplicate')),
    run_id       uuid,
    reason       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX schedule_decisions_schedule ON schedule_decisions (schedule_id, fire_time DESC);
CREATE INDEX schedule_decisions_run ON schedule_decisions (run_id) WHERE run_id IS NOT NULL;

ALTER TABLE workflow_schedules
    -- Caught-up runs are released one per this many seconds (0 = all at once).
    ADD COLUMN catchup_interval_s double precision NOT NULL DEFAULT 1
        CHECK (catchup_interval_s >= 0),
    ADD COLUMN paused_at timestamptz;

ALTER TABLE workflow_runs
    -- Not published before this instant (jitter, paced catch-up); NULL = at once.
    ADD COLUMN release_at timestamptz,
    -- Held by the buffer_one overlap policy until the schedule's running run ends.
    ADD COLUMN held boolean NOT NULL DEFAULT false;

-- Runs waiting for their release instant or for the overlap policy.
CREATE INDEX workflow_runs_unreleased ON workflow_runs (release_at)
    WHERE status = 'queued' AND published_at IS NULL;
-- A schedule's runs in flight, for the overlap policies.
CREATE INDEX workflow_runs_schedule_active ON workflow_runs (schedule_id)
    WHERE status IN ('queued', 'running');
