"""``python -m services.executor``: one executor replica."""

import asyncio
import sys

from services.executor.app import serve
from shared.service import run_service

try:  # uvloop roughly halves the event loop's and asyncpg's CPU per run (bench/executor.py)
    import uvloop
except ImportError:  # optional: the standard loop works, slower
    pass
else:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

sys.exit(run_service("executor", serve))
