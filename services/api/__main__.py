"""``python -m services.api``: the HTTP API."""

import sys

from services.api.app import serve
from shared.service import run_service

if __name__ == "__main__":
    sys.exit(run_service("api", serve))
