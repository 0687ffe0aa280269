"""``python -m services.executor``: one executor replica."""

import sys

from services.executor.app import serve
from shared.service import run_service

sys.exit(run_service("executor", serve))
