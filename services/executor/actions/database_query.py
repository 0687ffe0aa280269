"""``database_query``: run one SQL statement on a PostgreSQL database.

Config: ``dsn`` (``postgresql://…``, normally ``{{ secrets.… }}``), ``query`` (SQL with
``$1, $2 …`` placeholders: values go in ``params``, never into the SQL text),
``params`` (a list, default empty), ``read_only`` (default true: the statement runs in
a READ ONLY transaction), ``max_rows`` (default 1000, at most 10000; rows past it are
dropped and ``truncated`` is set), ``timeout_s`` (default 30, connecting and querying).

Output: ``{"rows": [{column: value}], "row_count": n, "truncated": bool}``; values that
JSON has no type for (timestamps, decimals, UUIDs) become strings. The DSN, which holds
a password, never appears in an error.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from services.executor.actions import ActionContext, require_number, require_str
from services.executor.errors import ConfigError, StepError
from shared.db.pool import init_connection

MAX_ROWS = 10_000


async def run(ctx: ActionContext, config: dict[str, Any]) -> dict[str, Any]:
    dsn = require_str(config, "dsn")
    if not dsn.startswith(("postgres://", "postgresql://")):
        raise ConfigError("config.dsn must be a postgresql:// URL")
    query = require_str(config, "query")
    params = config.get("params", [])
    if not isinstance(params, list):
        raise ConfigError("config.params must be a list")
    max_rows = int(require_number(config, "max_rows", default=1000, low=1, high=MAX_ROWS))
    timeout = require_number(config, "timeout_s", default=30, low=0.001, high=3600)
    read_only = bool(config.get("read_only", True))
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise StepError(f"cannot connect to the database: {type(exc).__name__}: {exc}") from None
    try:
        await init_connection(conn)
        async with conn.transaction(readonly=read_only):
            cursor = await conn.cursor(query, *params, timeout=timeout)
            records = await cursor.fetch(max_rows + 1, timeout=timeout)
    except asyncpg.PostgresError as exc:
        # Class 42 (syntax, unknown table, privileges) and a write in a read-only
        # transaction (25006) fail the same way on a retry.
        sqlstate = str(getattr(exc, "sqlstate", ""))
        permanent = sqlstate.startswith("42") or sqlstate == "25006"
        raise StepError(f"query failed: {exc}", retryable=not permanent) from None
    finally:
        await conn.close()
    rows = json.loads(json.dumps([dict(r) for r in records[:max_rows]], default=str))
    return {"rows": rows, "row_count": len(rows), "truncated": len(records) > max_rows}
