"""The scheduler's SQL, by name."""

# Due schedules, oldest first; SKIP LOCKED lets several schedulers share the work and
# a schedule is only ever held by one of them. Due-ness uses the database's clock. The
# input comes as text: the scheduler only copies it into run rows, unparsed.
CLAIM_DUE = """
SELECT s.id, s.org_id, s.workflow_id, s.cron, s.timezone, s.next_run_at, s.input::text AS input,
       s.catchup_policy, s.catchup_window_s, s.max_catchup_runs, s.catchup_interval_s,
       s.end_at, s.max_runs, s.total_runs, s.overlap_policy, s.jitter_s, s.paused_until,
       s.pause_note, s.auto_pause_after, s.consecutive_failures, w.version AS workflow_version
FROM workflow_schedules s
JOIN workflows w ON w.id = s.workflow_id
WHERE s.enabled AND s.next_run_at <= clock_timestamp()
ORDER BY s.next_run_at
LIMIT $1
FOR UPDATE OF s SKIP LOCKED
"""

DB_NOW = "SELECT clock_timestamp()"

# One run per (schedule, fire time): the UNIQUE constraint makes a second insert of the
# same fire a no-op, whatever number of schedulers race.
INSERT_RUNS = """
INSERT INTO workflow_runs
    (id, org_id, workflow_id, workflow_version, schedule_id, trigger, scheduled_for, input,
     release_at, held)
SELECT u.id, u.org_id, u.workflow_id, u.workflow_version, u.schedule_id, 'schedule',
       u.scheduled_for, u.input::jsonb, u.release_at, u.held
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::uuid[], $6::timestamptz[],
            $7::text[], $8::timestamptz[], $9::boolean[])
     AS u(id, org_id, workflow_id, workflow_version, schedule_id, scheduled_for, input,
          release_at, held)
ON CONFLICT (schedule_id, scheduled_for) DO NOTHING
RETURNING id
"""

INSERT_DECISIONS = """
INSERT INTO schedule_decisions (org_id, schedule_id, fire_time, decision, run_id, reason)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::uuid[],
                     $6::text[])
"""

# Runs of these schedules in flight, for the overlap policies.
ACTIVE_RUNS = """
SELECT schedule_id,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'queued' AND NOT held) AS queued,
       count(*) FILTER (WHERE status = 'queued' AND held) AS held
FROM workflow_runs
WHERE schedule_id = ANY($1::uuid[]) AND status IN ('queued', 'running')
GROUP BY schedule_id
"""

# cancel_other: a newer fire cancels the schedule's runs in flight. The executor's
# writes are conditional on status 'running', so it stops at its next write.
CANCEL_ACTIVE = """
UPDATE workflow_runs
SET status = 'cancelled', finished_at = clock_timestamp(),
    error = 'cancelled by a newer fire (overlap policy cancel_other)'
WHERE schedule_id = ANY($1::uuid[]) AND status IN ('queued', 'running')
  AND NOT (id = ANY($2::uuid[]))
RETURNING id
"""

AUTO_PAUSE = """
UPDATE workflow_schedules
-- A finite far future, not 'infinity': asyncpg reads infinity as a naive datetime.
SET paused_until = '9999-12-31 00:00:00+00', paused_at = clock_timestamp(),
    pause_note = 'auto-paused after ' || consecutive_failures || ' consecutive failed runs'
WHERE id = ANY($1::uuid[])
"""

# buffer_one: a held run is released when no other run of its schedule is in flight.
UNHOLD = """
UPDATE workflow_runs r
SET held = false, release_at = coalesce(release_at, clock_timestamp())
WHERE r.held AND r.status = 'queued'
  AND NOT EXISTS (
      SELECT 1 FROM workflow_runs o
      WHERE o.schedule_id = r.schedule_id AND o.id <> r.id
        AND o.status IN ('queued', 'running') AND NOT o.held)
RETURNING id
"""

# Runs whose release instant (jitter, paced catch-up) has come.
RELEASABLE = """
SELECT id AS run_id, org_id, workflow_id, workflow_version, trigger, schedule_id, scheduled_for
FROM workflow_runs
WHERE status = 'queued' AND published_at IS NULL AND NOT held
  AND release_at <= clock_timestamp()
ORDER BY release_at
LIMIT $1
"""

SECONDS_TO_RELEASE = """
SELECT EXTRACT(EPOCH FROM (min(release_at) - clock_timestamp()))::float8
FROM workflow_runs
WHERE status = 'queued' AND published_at IS NULL AND NOT held AND release_at IS NOT NULL
"""

ADVANCE_SCHEDULES = """
UPDATE workflow_schedules s
SET next_run_at = u.next_run_at,
    last_run_at = coalesce(u.last_run_at, s.last_run_at),
    total_runs = s.total_runs + u.created,
    updated_at = clock_timestamp()
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int[])
     AS u(id, next_run_at, last_run_at, created)
WHERE s.id = u.id
"""

# Seconds until the earliest fire (negative when one is already due), by the DB clock.
SECONDS_TO_NEXT = """
SELECT EXTRACT(EPOCH FROM (min(next_run_at) - clock_timestamp()))::float8
FROM workflow_schedules
WHERE enabled AND next_run_at IS NOT NULL
"""

# Runs committed but not known to be published (a crash between commit and publish).
UNPUBLISHED = """
SELECT id AS run_id, org_id, workflow_id, workflow_version, trigger, schedule_id, scheduled_for
FROM workflow_runs
WHERE status = 'queued' AND published_at IS NULL AND NOT held
  AND coalesce(release_at, created_at) < clock_timestamp() - make_interval(secs => $1)
ORDER BY created_at
LIMIT $2
"""

# Runs published long ago and still queued: sent again only when the executors'
# consumer has nothing pending, i.e. the message itself was lost (a purged stream).
STALE_PUBLISHED = """
SELECT id AS run_id, org_id, workflow_id, workflow_version, trigger, schedule_id, scheduled_for
FROM workflow_runs
WHERE status = 'queued' AND published_at < clock_timestamp() - make_interval(secs => $1)
ORDER BY created_at
LIMIT $2
"""

DUE_BACKLOG = """
SELECT count(*) FROM workflow_schedules
WHERE enabled AND next_run_at <= clock_timestamp()
"""
