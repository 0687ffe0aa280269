-- Flowcron schema, version 1: every table of DESIGN "Postgres".
-- Every row that belongs to an organization carries org_id; every query filters by it.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    -- The first characters of the key, shown in lists so a person can tell keys apart.
    prefix        text NOT NULL,
    -- SHA-256 of the whole key: keys are 256-bit random tokens, so a slow hash adds nothing.
    key_hash      bytea NOT NULL UNIQUE,
    role          text NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'member')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE workflows (
    id               uuid PRIMARY KEY,
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             text NOT NULL,
    description      text NOT NULL DEFAULT '',
    graph            jsonb NOT NULL,
    version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    max_concurrency  integer CHECK (max_concurrency IS NULL OR max_concurrency >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflows_org_created ON workflows (org_id, created_at DESC, id DESC);

-- Every version of every graph, so a run executes the version it was created with.
CREATE TABLE workflow_versions (
    workflow_id  uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    graph        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE workflow_schedules (
    id                    uuid PRIMARY KEY,
    org_id                uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    workflow_id           uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name                  text NOT NULL DEFAULT '',
    -- The schedule that /api/workflows/{id}/schedule reads and writes.
    is_default            boolean NOT NULL DEFAULT false,
    cron                  text NOT NULL,
    timezone              text NOT NULL DEFAULT 'UTC',
    enabled               boolean NOT NULL DEFAULT true,
    input                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Policies (defaults documented in docs/scheduling.md).
    catchup_policy        text NOT NULL DEFAULT 'latest'
                          CHECK (catchup_policy IN ('skip', 'latest', 'all')),
    catchup_window_s      integer NOT NULL DEFAULT 3600 CHECK (catchup_window_s >= 0),
    max_catchup_runs      integer NOT NULL DEFAULT 10 CHECK (max_catchup_runs >= 1),
    overlap_policy        text NOT NULL DEFAULT 'allow'
                          CHECK (overlap_policy IN ('allow', 'skip', 'buffer_one', 'cancel_other')),
    jitter_s              integer NOT NULL DEFAULT 0 CHECK (jitter_s >= 0),
    start_at              timestamptz,
    end_at                timestamptz,
    max_runs              integer CHECK (max_runs IS NULL OR max_runs >= 1),
    paused_until          timestamptz,
    pause_note            text NOT NULL DEFAULT '',
    auto_pause_after      integer CHECK (auto_pause_after IS NULL OR auto_pause_after >= 1),
    consecutive_failures  integer NOT NULL DEFAULT 0,
    -- Fire bookkeeping: next_run_at is the next fire time (UTC), NULL when none is left.
    next_run_at           timestamptz,
    last_run_at           timestamptz,
    total_runs            bigint NOT NULL DEFAULT 0,
    successful_runs       bigint NOT NULL DEFAULT 0,
    failed_runs           bigint NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (end_at IS NULL OR start_at IS NULL OR end_at > start_at)
);
CREATE UNIQUE INDEX workflow_schedules_one_default
    ON workflow_schedules (workflow_id) WHERE is_default;
CREATE INDEX workflow_schedules_org ON workflow_schedules (org_id, created_at, id);
CREATE INDEX workflow_schedules_workflow ON workflow_schedules (workflow_id);
-- The scheduler's claim query: enabled schedules by next fire time.
CREATE INDEX workflow_schedules_due
    ON workflow_schedules (next_run_at) WHERE enabled AND next_run_at IS NOT NULL;

CREATE TABLE workflow_runs (
    id                uuid PRIMARY KEY,
    org_id            uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    workflow_id       uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    workflow_version  integer NOT NULL,
    schedule_id       uuid REFERENCES workflow_schedules (id) ON DELETE SET NULL,
    trigger           text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'backfill', 'retry')),
    scheduled_for     timestamptz,
    status            text NOT NULL DEFAULT 'queued' CHECK (status IN
                      ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    -- Claim counter: each executor claim increments it, and every later write of that
    -- executor is conditional on it (fencing against a replica presumed dead).
    attempt           integer NOT NULL DEFAULT 0,
    input             jsonb NOT NULL DEFAULT '{}'::jsonb,
    output            jsonb,
    error             text,
    idempotency_key   text,
    executor_id       text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz,
    started_at        timestamptz,
    finished_at       timestamptz,
    UNIQUE (schedule_id, scheduled_for)
);
CREATE INDEX workflow_runs_org_created ON workflow_runs (org_id, created_at DESC, id DESC);
CREATE INDEX workflow_runs_workflow_created
    ON workflow_runs (workflow_id, created_at DESC, id DESC);
CREATE INDEX workflow_runs_org_status_created
    ON workflow_runs (org_id, status, created_at DESC, id DESC);
CREATE UNIQUE INDEX workflow_runs_idempotency
    ON workflow_runs (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The outbox: runs written but not yet confirmed published, or still waiting.
CREATE INDEX workflow_runs_outbox ON workflow_runs (created_at) WHERE status = 'queued';

CREATE TABLE run_steps (
    run_id       uuid NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id      text NOT NULL,
    org_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    node_type    text NOT NULL,
    status       text NOT NULL CHECK (status IN
                 ('pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    attempt      integer NOT NULL DEFAULT 1,
    input        jsonb,
    output       jsonb,
    error        text,
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (run_id, node_id)
);

CREATE TABLE run_logs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    node_id     text,
    level       text NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error')),
    message     text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX run_logs_run ON run_logs (run_id, id);

-- Schedulers sleep until the earliest next_run_at; a change a person makes to a schedule
-- wakes them. (The scheduler only ever moves next_run_at later, so its own updates
-- do not need to wake anyone.)
CREATE FUNCTION flowcron_notify_schedules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flowcron_schedules', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER workflow_schedules_changed
    AFTER INSERT OR UPDATE OF cron, timezone, enabled, paused_until, start_at OR DELETE
    ON workflow_schedules
    FOR EACH STATEMENT EXECUTE FUNCTION flowcron_notify_schedules();
