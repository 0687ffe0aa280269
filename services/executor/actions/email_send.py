"""``email_send``: send one e-mail through an SMTP server (aiosmtplib).

Config: ``to`` (an address or a list), ``subject``, ``text`` and/or ``html``,
``from``, and the server: ``smtp_host``, ``smtp_port`` (default 587), ``username`` /
``password`` (usually ``{{ secrets.… }}``), ``tls`` (``starttls`` default, ``tls``
for implicit TLS on 465, or ``none``), ``timeout_s`` (default 30).
Output: ``{"accepted": [...], "message_id": ...}``. The message carries a stable
``Message-ID: <run_id.node_id@flowcron>`` and ``Idempotency-Key: run_id:node_id``, the
same on every retry and resume, so a receiver can drop a duplicate.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import aiosmtplib

from services.executor.actions import ActionContext, require_number, require_str
from services.executor.errors import ConfigError, StepError

TLS_MODES = ("starttls", "tls", "none")


async def run(ctx: ActionContext, config: dict[str, Any]) -> dict[str, Any]:
    message = _message(ctx, config)
    tls = config.get("tls", "starttls")
    if tls not in TLS_MODES:
        raise ConfigError(f"config.tls must be one of {', '.join(TLS_MODES)}")
    port = require_number(config, "smtp_port", default=587, low=1, high=65535)
    try:
        errors, _ = await aiosmtplib.send(
            message,
            hostname=require_str(config, "smtp_host"),
            port=int(port),
            username=config.get("username") or None,
            password=config.get("password") or None,
            use_tls=tls == "tls",
            start_tls=tls == "starttls",
            timeout=require_number(config, "timeout_s", default=30, low=0.001, high=3600),
        )
    except aiosmtplib.SMTPTimeoutError as exc:
        raise StepError(f"SMTP {config.get('smtp_host')}: {exc}", kind="timeout") from None
    except aiosmtplib.SMTPConnectError as exc:
        raise StepError(f"SMTP {config.get('smtp_host')}: {exc}", kind="connection") from None
    except aiosmtplib.SMTPException as exc:
        raise StepError(f"SMTP {config.get('smtp_host')}: {exc}") from None
    recipients = _recipients(config)
    accepted = [r for r in recipients if r not in errors]
    return {"accepted": accepted, "message_id": message["Message-ID"]}


def _recipients(config: dict[str, Any]) -> list[str]:
    to = config.get("to")
    recipients = [to] if isinstance(to, str) else to
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, str) and "@" in r for r in recipients)
    ):
        raise ConfigError("config.to must be an address or a list of addresses")
    return recipients


def _message(ctx: ActionContext, config: dict[str, Any]) -> EmailMessage:
    recipients = _recipients(config)
    if not config.get("text") and not config.get("html"):
        raise ConfigError("config.text or config.html is required")
    message = EmailMessage()
    message["From"] = require_str(config, "from")
    message["To"] = ", ".join(recipients)
    message["Subject"] = str(config.get("subject", ""))
    # A stable id per (run, node): a resent message is recognisable as the same one.
    message["Message-ID"] = f"<{ctx.run_id}.{ctx.node_id}@flowcron>"
    message["Idempotency-Key"] = ctx.idempotency_key
    message.set_content(str(config.get("text") or ""))
    if config.get("html"):
        message.add_alternative(str(config["html"]), subtype="html")
    return message
