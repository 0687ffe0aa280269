"""The scheduler: turns due cron schedules into run rows and run messages."""
