import sys

from services.scheduler.app import serve
from shared.service import run_service

sys.exit(run_service("scheduler", serve))
