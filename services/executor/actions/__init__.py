"""Actions: the side effects an ``action`` node performs, by name.

An action is ``async def action(ctx: ActionContext, config: dict) -> output``. It gets
the node's config already rendered (templates resolved), raises
:class:`~services.executor.errors.StepError` (or :class:`ConfigError` for a config it
cannot use) to fail the step, and returns a JSON-serialisable output. Retries,
timeouts and ``on_error`` are the engine's business, not the action's.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.executor.errors import ConfigError
from shared.egress import EgressDenied, check_url
from shared.settings import Settings

LogWriter = Callable[[str, str], Awaitable[None]]
WaitWriter = Callable[[str | None], Awaitable[None]]


async def _no_wait_reason(reason: str | None) -> None:
    """Default of :attr:`ActionContext.wait_reason`: nothing is recorded."""


def _unmasked(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class ActionContext:
    """What an action may use: the run's identity, settings, the shared HTTP session,
    ``log(level, message)`` which writes a ``run_logs`` row for this node,
    ``wait_reason(text | None)`` which says why the run waits (a delay), and ``mask``
    which hides secret values in what the action prints elsewhere."""

    run_id: uuid.UUID
    org_id: uuid.UUID
    workflow_id: uuid.UUID
    node_id: str
    settings: Settings
    http: aiohttp.ClientSession
    log: LogWriter
    wait_reason: WaitWriter = _no_wait_reason
    mask: Callable[[Any], Any] = _unmasked

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and redeliveries of this node in this run."""
        return f"{self.run_id}:{self.node_id}"


Action = Callable[[ActionContext, dict[str, Any]], Awaitable[Any]]


def registry() -> dict[str, Action]:
    """Every action this executor can run, by the name used in graphs."""
    # Imported here so each action module may import ActionContext from this package.
    from services.executor.actions import (
        database_query,
        delay,
        email_send,
        http_request,
        log_message,
        slack_message,
    )

    return {
        "http_request": http_request.run,
        "log_message": log_message.run,
        "slack_message": slack_message.run,
        "delay": delay.run,
        "email_send": email_send.run,
        "database_query": database_query.run,
    }


def lookup(actions: dict[str, Action], name: str) -> Action:
    """The action called ``name``; a clear step error when there is none."""
    try:
        return actions[name]
    except KeyError:
        raise ConfigError(f"action {name!r} is not supported by this executor yet") from None


def require_str(config: dict[str, Any], key: str) -> str:
    """``config[key]`` as a non-empty string, or a ConfigError naming ``config.<key>``."""
    value = config.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"config.{key} must be a non-empty string")
    return value


def require_number(
    config: dict[str, Any], key: str, *, default: float, low: float, high: float
) -> float:
    """``config[key]`` as a number within ``[low, high]`` (``default`` when absent)."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"config.{key} must be a number between {low:g} and {high:g}")
    return float(value)


async def check_egress(ctx: ActionContext, url: str) -> None:
    """Refuse a target the egress setting forbids (``FLOWCRON_EGRESS=public`` blocks
    private, loopback and link-local addresses, the cloud metadata endpoint above all);
    the HTTP session's resolver checks again at connect time, redirects included."""
    try:
        await check_url(url, ctx.settings.egress)
    except EgressDenied as exc:
        raise ConfigError(str(exc)) from None
