"""The scheduler's SQL, by name."""

# Due schedules, oldest first; SKIP LOCKED lets several schedulers share the work and
# a schedule is only ever held by one of them. Due-ness uses the database's clock.
CLAIM_DUE = """
SELECT s.id, s.org_id, s.workflow_id, s.cron, s.timezone, s.next_run_at, s.input,
       s.catchup_policy, s.catchup_window_s, s.max_catchup_runs, s.end_at, s.max_runs,
       s.total_runs, w.version AS workflow_version
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
    (id, org_id, workflow_id, workflow_version, schedule_id, trigger, scheduled_for, input)
SELECT u.id, u.org_id, u.workflow_id, u.workflow_version, u.schedule_id, 'schedule',
       u.scheduled_for, u.input
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::uuid[], $6::timestamptz[],
            $7::jsonb[])
     AS u(id, org_id, workflow_id, workflow_version, schedule_id, scheduled_for, input)
ON CONFLICT (schedule_id, scheduled_for) DO NOTHING
RETURNING id AS run_id, org_id, workflow_id, workflow_version, trigger, schedule_id,
          scheduled_for
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
WHERE status = 'queued' AND published_at IS NULL
  AND created_at < clock_timestamp() - make_interval(secs => $1)
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
