"""The Flowcron HTTP API (aiohttp): workflows, schedules, runs, cron previews."""
