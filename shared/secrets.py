"""Organization secrets: Fernet-encrypted in the ``secrets`` table, readable by name.

Contract:

* Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under
  ``FLOWCRON_SECRETS_KEY``. The setting may hold several keys, comma separated: the
  first encrypts, every one decrypts (rotate by prepending a new key, then re-putting).
* A missing or malformed key raises :class:`SecretsKeyError` when a secret is stored or
  read, naming the variable; listing and deleting names need no key.
* Names match ``[A-Za-z_][A-Za-z0-9_]{0,127}`` (usable as ``{{ secrets.NAME }}``);
  values are strings of at most :data:`MAX_VALUE_CHARS` characters.
* Development may use :func:`derive_key` to make a stable key from any passphrase.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.settings import Settings

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE_CHARS = 65_536

_PUT = """
INSERT INTO secrets (org_id, name, value) VALUES ($1, $2, $3)
ON CONFLICT (org_id, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
RETURNING (xmax = 0) AS created
"""
_NAMES = "SELECT name, created_at, updated_at FROM secrets WHERE org_id = $1 ORDER BY name"
_DELETE = "DELETE FROM secrets WHERE org_id = $1 AND name = $2"
_LOAD = "SELECT name, value FROM secrets WHERE org_id = $1"


class SecretsKeyError(Exception):
    """FLOWCRON_SECRETS_KEY is missing or is not a Fernet key (one line, names it)."""


class SecretError(ValueError):
    """A secret name or value is not acceptable."""


def new_key() -> str:
    """A fresh random Fernet key, for ``FLOWCRON_SECRETS_KEY``."""
    return Fernet.generate_key().decode()


def derive_key(passphrase: str) -> str:
    """A stable Fernet key from ``passphrase`` (development only: not a slow KDF)."""
    digest = hashlib.sha256(b"flowcron-secrets:" + passphrase.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def cipher(settings: Settings) -> MultiFernet:
    """The Fernet cipher of ``settings.secrets_key``.

    Raises:
        SecretsKeyError: the key is missing or malformed.
    """
    keys = [k.strip() for k in settings.secrets_key.split(",") if k.strip()]
    if not keys:
        raise SecretsKeyError("FLOWCRON_SECRETS_KEY is not set: secrets cannot be stored or used")
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError:
        raise SecretsKeyError(
            "FLOWCRON_SECRETS_KEY: each key must be 32 url-safe base64-encoded bytes"
        ) from None


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise SecretError(f"secret name {name!r} must match [A-Za-z_][A-Za-z0-9_]{{0,127}}")
    return name


async def put_secret(
    conn: Any, org_id: uuid.UUID, name: str, value: str, settings: Settings
) -> bool:
    """Create or replace secret ``name``; True when it was created.

    ``conn`` is an asyncpg connection or pool.

    Raises:
        SecretError: bad name or value. SecretsKeyError: no usable key.
    """
    check_name(name)
    if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
        raise SecretError(f"a secret value is a string of at most {MAX_VALUE_CHARS} characters")
    token = cipher(settings).encrypt(value.encode())
    return bool(await conn.fetchval(_PUT, org_id, name, token))


async def list_secret_names(conn: Any, org_id: uuid.UUID) -> list[dict[str, Any]]:
    """``[{"name", "created_at", "updated_at"}]`` by name; values are never listed."""
    return [dict(r) for r in await conn.fetch(_NAMES, org_id)]


async def delete_secret(conn: Any, org_id: uuid.UUID, name: str) -> bool:
    """Delete secret ``name``; False when there was none."""
    status = await conn.execute(_DELETE, org_id, name)
    return bool(status.endswith(" 1"))


async def load_secrets(conn: Any, org_id: uuid.UUID, settings: Settings) -> dict[str, str]:
    """Every secret of the organization, decrypted. No secret: ``{}``, without a key.

    Raises:
        SecretsKeyError: secrets exist but the key is missing, malformed or not the one
        they were encrypted with.
    """
    rows = await conn.fetch(_LOAD, org_id)
    if not rows:
        return {}
    fernet = cipher(settings)
    values: dict[str, str] = {}
    for row in rows:
        try:
            values[row["name"]] = fernet.decrypt(bytes(row["value"])).decode()
        except InvalidToken:
            raise SecretsKeyError(
                f"FLOWCRON_SECRETS_KEY does not decrypt secret {row['name']!r}"
                " (was it encrypted under another key?)"
            ) from None
    return values
