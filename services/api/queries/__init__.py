"""SQL of the API, one module per table family; every statement filters by ``org_id``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A connection taken from the pool or opened directly (generic only in the stubs).
    Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy[Any]
else:
    Conn = asyncpg.Connection
