"""docker-compose.yml read the way Compose reads it, for tests without a Docker engine.

:func:`load` parses the file with PyYAML (merge keys included), and :func:`resolve`
does Compose's variable interpolation (``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?error}``, ``$$``) with the values of ``.env.example``, as
``docker compose --env-file .env.example`` would.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# Services built from deploy/Dockerfile, as opposed to third-party images.
FLOWCRON_SERVICES = ("migrate", "api", "scheduler", "executor")

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


def load(path: Path = COMPOSE) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a mapping"
    return document


def dotenv(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=value`` lines; comments and blank lines skipped."""
    values = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=value: {line!r}"
        values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op[0] == ":")
        if op and op.endswith("-") and unset_or_empty:
            return arg
        if op and op.endswith("?") and unset_or_empty:
            raise ValueError(f"required variable {name} is missing: {arg}")
        return value or ""

    return _VARIABLE.sub(substitute, text)


def resolve(value: Any, env: dict[str, str]) -> Any:
    """``value`` with every string interpolated, recursively."""
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [resolve(item, env) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, env) for key, item in value.items()}
    return value


def resolved(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose document with ``.env.example`` (or ``env``) interpolated."""
    return dict(resolve(load(), dotenv() if env is None else env))


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or ``KEY=value`` list) as strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def replicas(service: dict[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))
