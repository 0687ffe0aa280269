"""API keys: random tokens shown once, stored as SHA-256 hashes.

A key looks like ``fc_<43 url-safe characters>`` (256 random bits). Because the key is
random and long, a fast hash is as safe as a slow one and keeps every request cheap.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Literal

from shared.db.pool import Connection

KEY_PREFIX = "fc_"
Role = Literal["admin", "member"]


@dataclass(frozen=True)
class NewKey:
    id: uuid.UUID
    org_id: uuid.UUID
    key: str  # the plaintext, shown once
    prefix: str
    role: Role


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def ensure_organization(conn: Connection, name: str) -> uuid.UUID:
    """The id of organization ``name``, created if it does not exist."""
    org_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO organizations (id, name) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
           RETURNING id""",
        uuid.uuid4(),
        name,
    )
    return org_id


async def create_key(
    conn: Connection, org_id: uuid.UUID, *, name: str = "", role: Role = "admin"
) -> NewKey:
    key = generate_key()
    key_id = uuid.uuid4()
    prefix = key[: len(KEY_PREFIX) + 6]
    await conn.execute(
        """INSERT INTO api_keys (id, org_id, name, prefix, key_hash, role)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        key_id,
        org_id,
        name,
        prefix,
        hash_key(key),
        role,
    )
    return NewKey(key_id, org_id, key, prefix, role)
