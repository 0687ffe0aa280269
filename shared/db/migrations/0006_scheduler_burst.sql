-- Scheduler, version 6: a run's "published" mark is a heap-only (HOT) update.
--
-- Every run is written, published, then marked published (the outbox). Before this
-- version the mark rewrote the row in all twelve of workflow_runs' indexes, because
-- published_at appeared in the predicate of workflow_runs_unreleased; it was as costly
-- as the insert itself. Now no index mentions published_at, and each page is filled
-- to half by inserts, so the new version of a run row written by the mark lands on
-- the row's own page and no index is touched. The executor's later writes (claim,
-- end) use the same free room, and page pruning gives it back.
--
-- The index of runs waiting for their release instant (jitter, paced catch-up) holds
-- only the runs that have one: a run without release_at no longer enters it at all.
-- The queries reading it (scheduler RELEASABLE, SECONDS_TO_RELEASE) filter
-- published_at IS NULL on the heap; a released run leaves the index when its status
-- leaves 'queued'.
DROP INDEX workflow_runs_unreleased;
CREATE INDEX workflow_runs_unreleased ON workflow_runs (release_at)
    WHERE status = 'queued' AND release_at IS NOT NULL;

ALTER TABLE workflow_runs SET (fillfactor = 50);

-- A run's organization is its workflow's: every insert takes org_id from the workflow
-- (or schedule) row it joins, and workflow_id's own foreign key, which cascades from
-- organizations through workflows, removes the runs of a deleted organization. The
-- second check of the same fact was a tenth of the cost of inserting a run.
ALTER TABLE workflow_runs DROP CONSTRAINT workflow_runs_org_id_fkey;
