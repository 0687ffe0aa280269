"""Typed configuration, read once at the edge of each process.

Every setting comes from an environment variable with the prefix ``FLOWCRON_``
(``FLOWCRON_DATABASE_URL`` …). Code below the edge receives a :class:`Settings`
object; nothing in ``shared/`` reads ``os.environ`` itself. Tests build settings by
keyword: ``Settings(database_url=..., namespace=...)``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/flowcron"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ConfigurationError(Exception):
    """Raised when the environment does not describe a valid configuration.

    The message is one line that names the offending variable.
    """


class Settings(BaseSettings):
    """All of Flowcron's settings, with their defaults."""

    model_config = SettingsConfigDict(env_prefix="FLOWCRON_", extra="ignore", frozen=True)

    database_url: str = Field(DEFAULT_DATABASE_URL, description="Postgres DSN (asyncpg).")
    database_pool_min: int = Field(1, ge=0, description="Connections kept open per process.")
    database_pool_max: int = Field(10, ge=1, description="Connections at most per process.")
    nats_url: str = Field(DEFAULT_NATS_URL, description="NATS server URL(s), comma separated.")
    namespace: str = Field(
        "flowcron",
        description="Prefix of stream, subject and consumer names; lower case, [a-z0-9_].",
    )

    api_host: str = Field("127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(8080, ge=0, le=65535, description="Port the API listens on.")
    api_reuse_port: bool = Field(
        False,
        description="Listen with SO_REUSEPORT, so several API processes on one host share"
        " the port (the kernel spreads connections across them).",
    )
    api_max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body.")

    log_format: Literal["json", "console"] = Field("json", description="Log renderer.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info")

    executor_concurrency: int = Field(16, ge=1, le=10_000, description="Runs in flight.")
    executor_rate_limit: float = Field(0, ge=0, description="Runs started per second; 0 = none.")
    executor_ack_wait_s: float = Field(
        30, gt=0, description="Seconds without an ack before JetStream redelivers a run."
    )
    executor_max_deliver: int = Field(
        5, ge=1, description="Deliveries of one run message before it is dead-lettered."
    )
    executor_drain_s: float = Field(
        20, ge=0, description="On SIGTERM, seconds in-flight runs get to finish."
    )
    http_max_response_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest response body http_request reads."
    )

    scheduler_batch_size: int = Field(500, ge=1, description="Schedules claimed per query.")
    scheduler_max_sleep_s: float = Field(
        30, gt=0, description="Longest sleep between checks when nothing is due (safety net)."
    )
    scheduler_outbox_grace_s: float = Field(
        10, gt=0, description="Age after which an unpublished queued run is published again."
    )
    scheduler_metrics_port: int = Field(
        0, ge=0, le=65535, description="Port of the scheduler's /metrics and /healthz; 0 = off."
    )
    scheduler_max_clock_skew_s: float = Field(
        1.0, gt=0, description="Clock difference from the database that the scheduler reports."
    )
    scheduler_republish_after_s: float = Field(
        300, gt=0, description="Age after which a published but still queued run is re-sent."
    )

    api_max_string_chars: int = Field(
        65_536, ge=256, description="Longest string (and object key) in a request body."
    )
    api_stats_cache_s: float = Field(
        5, ge=0, description="Seconds GET /api/stats answers from its cache; 0 = no cache."
    )
    api_coalesce_reads: bool = Field(
        True,
        description="Identical GETs in flight at once share one read (services/api/coalesce.py).",
    )
    api_queue_retry_rate: float = Field(
        50, gt=0, description="Dead letters re-published per second by a queue retry."
    )
    egress: Literal["any", "public"] = Field(
        "any",
        description="Targets http_request and slack_message may reach: 'public' refuses "
        "private, loopback, link-local (169.254.169.254) and other non-global addresses.",
    )
    secrets_key: str = Field(
        "",
        repr=False,
        description="Fernet key(s) encrypting organization secrets, comma separated (the "
        "first encrypts, all decrypt: rotation). Needed once a secret is stored or used; "
        "make one with `python -c 'from shared.secrets import new_key; print(new_key())'`.",
    )
    executor_hold_s: float = Field(
        1.0,
        gt=0,
        description="Seconds a run held back by max_concurrency waits before it is offered again.",
    )
    executor_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of the executor's /metrics and /healthz (on FLOWCRON_API_HOST); "
        "0 = off. Replicas on one host need one port each; a port already taken is logged "
        "and the executor runs without the endpoint.",
    )
    executor_lock_timeout_s: float = Field(
        10,
        gt=0,
        description="Longest wait of an executor statement for a row lock held elsewhere (an"
        " open transaction on a schedule or run); past it the statement fails, the other runs'"
        " writes that shared it are sent again alone, and the run whose row is locked is"
        " handed back for redelivery.",
    )
    executor_step_commit: Literal["sync", "async"] = Field(
        "async",
        description="Commit of step, log and claim writes: 'async' does not wait for the "
        "WAL flush (a Postgres crash may lose the last fraction of a second of them; the "
        "run then repeats a step); the final status always waits for it.",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace_is_a_name(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError("must match [a-z][a-z0-9_]{0,39}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: str) -> str:
        if not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_url_is_nats(cls, value: str) -> str:
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError("must be nats://host:port (comma separated for several)")
        return value

    @property
    def nats_servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, plus keyword overrides.

    Raises:
        ConfigurationError: one line naming the first bad ``FLOWCRON_`` variable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # keys checked by pydantic
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigurationError(
            f"invalid configuration: FLOWCRON_{field.upper()}: {first['msg']}"
        ) from None
