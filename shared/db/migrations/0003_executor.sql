-- Executor, version 3: why a run waits, retries of a run, organization secrets.

-- Why a run that has not ended is not progressing (NULL while it executes): 'queued'
-- until an executor claims it, 'held by max_concurrency: …', 'retrying node … at …',
-- 'in a delay until …'. Every insert starts as 'queued', so no writer has to know.
ALTER TABLE workflow_runs ADD COLUMN wait_reason text DEFAULT 'queued';
UPDATE workflow_runs SET wait_reason = NULL WHERE status NOT IN ('queued');

-- A run that has ended waits for nothing, whoever ends it (executor, API cancel,
-- scheduler overlap policy): the reason is cleared with the terminal status.
CREATE FUNCTION flowcron_clear_wait_reason() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.wait_reason := NULL;
    RETURN NEW;
END;
$$;
CREATE TRIGGER workflow_runs_ended_waits_for_nothing
    BEFORE UPDATE OF status ON workflow_runs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
          AND NEW.wait_reason IS NOT NULL)
    EXECUTE FUNCTION flowcron_clear_wait_reason();

-- The run this one retries (POST /api/runs/{id}/retry).
ALTER TABLE workflow_runs
    ADD COLUMN retry_of uuid REFERENCES workflow_runs (id) ON DELETE SET NULL;

-- The max_concurrency check counts the running runs of one workflow.
CREATE INDEX workflow_runs_workflow_running ON workflow_runs (workflow_id)
    WHERE status = 'running';

-- Secrets of an organization, encrypted with Fernet (shared/secrets.py) under
-- FLOWCRON_SECRETS_KEY: the database alone never reveals a value.
CREATE TABLE secrets (
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$'),
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, name)
);
