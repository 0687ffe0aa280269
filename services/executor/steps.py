"""Running one node: render its config, execute it with retries and a timeout, record
the step, and turn a failure into the outcome its ``on_error`` asks for.

* ``retry``: ``max_attempts`` tries in all, waiting :func:`~services.executor.backoff.retry_delay`
  between them, for the failures ``retry_on`` names. Errors that cannot change on a
  retry (templates, config) are not retried. While it waits, the run's ``wait_reason``
  says until when.
* ``timeout_s``: the limit of each attempt.
* ``on_error``: ``fail`` (the step is ``failed`` and the run fails), ``continue`` (the
  step counts as ``succeeded`` with output ``{"error": message}``), ``route`` (the step
  is ``failed`` with output ``{"error": message}``, and its ``branch: error`` edges
  become live instead of its other edges).
* Instant nodes (trigger, condition, transform, log_message) are recorded once, when
  they end; others get a ``running`` row when each attempt starts. The trigger is
  usually recorded by the claim itself (:func:`~services.executor.store.claim_run`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import structlog

from services.executor import actions, metrics, templates
from services.executor.backoff import retry_delay, should_retry
from services.executor.errors import ConfigError, LostRun, StepError
from services.executor.events import Events
from services.executor.joins import Outcome
from services.executor.scope import Scope
from services.executor.store import RunStore, StoredStep
from shared.models.graph import Node, NodeType
from shared.settings import Settings

log = structlog.get_logger(__name__)

INSTANT = frozenset({NodeType.TRIGGER, NodeType.CONDITION, NodeType.TRANSFORM})
# Actions that end as soon as their one write is made: no running row first.
INSTANT_ACTIONS = frozenset({"log_message"})


class StepRunner:
    """Runs the nodes of one claimed run."""

    def __init__(
        self,
        store: RunStore,
        events: Events,
        *,
        settings: Settings,
        http: aiohttp.ClientSession,
        registry: dict[str, actions.Action],
        secrets: Mapping[str, str] | None = None,
        succeeded: Mapping[str, StoredStep] | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._settings = settings
        self._http = http
        self._registry = registry
        self._secrets = dict(secrets or {})
        # Steps recorded succeeded before this claim (loop bodies resume from them too).
        self.succeeded: Mapping[str, StoredStep] = succeeded or {}
        run = store.run
        self._run_context = {
            "id": str(run.id),
            "trigger": run.trigger,
            "scheduled_for": run.scheduled_for.isoformat() if run.scheduled_for else None,
            "attempt": run.attempt,
            "workflow_id": str(run.workflow_id),
        }

    @property
    def store(self) -> RunStore:
        return self._store

    @property
    def events(self) -> Events:
        return self._events

    async def run(self, node: Node, finished: Mapping[str, Outcome], scope: Scope) -> Outcome:
        """Execute ``node`` given the outcomes so far; LostRun propagates."""
        step_id = scope.step_id(node.id)
        began = time.monotonic()
        with structlog.contextvars.bound_contextvars(node_id=step_id):
            context = templates.template_context(
                run_input=self._store.run.input,
                nodes={
                    k: {"output": o.output, "status": o.status}
                    for k, o in {**scope.outer, **finished}.items()
                },
                run=self._run_context,
                secrets=self._secrets,
                loop=scope.loop,
            )
            await self._events.publish(self._store.run, "step.started", "running", node_id=step_id)
            try:
                config = self._rendered_config(node, context, step_id)
            except StepError as exc:
                outcome = await self._failed(node, step_id, str(exc), attempts=1, input=node.config)
            else:
                outcome = await self._attempts(node, step_id, config, context, scope)
            metrics.STEP_DURATION.labels(node.type.value).observe(time.monotonic() - began)
            await self._events.publish(
                self._store.run,
                "step.finished",
                outcome.status,
                node_id=step_id,
                error=self._store.mask(outcome.error),
            )
            return outcome

    def _rendered_config(self, node: Node, context: dict[str, Any], step_id: str) -> dict[str, Any]:
        if node.type is NodeType.CONDITION:
            return dict(node.config)  # the expression is evaluated, not rendered
        rendered: dict[str, Any] = templates.render(node.config, context, node_id=step_id)
        return rendered

    async def _attempts(
        self,
        node: Node,
        step_id: str,
        config: dict[str, Any],
        context: dict[str, Any],
        scope: Scope,
    ) -> Outcome:
        policy = node.retry
        kind = node.type.value
        instant = node.type in INSTANT or node.action in INSTANT_ACTIONS
        for attempt in range(1, policy.max_attempts + 1):
            # An instant node's log lines are written with its end, in one statement.
            pending: list[tuple[str, str]] | None = [] if instant else None
            if not instant:
                await self._store.step_started(step_id, kind, attempt, config)
            try:
                async with asyncio.timeout(node.timeout_s):
                    output = await self._execute(
                        node, step_id, config, context, scope, pending=pending
                    )
            except LostRun:
                raise
            except Exception as exc:  # noqa: BLE001  # any fault of a node fails that node only
                error = _describe(exc, node)
                if attempt == policy.max_attempts or not should_retry(policy, exc):
                    return await self._failed(
                        node,
                        step_id,
                        error,
                        attempts=attempt,
                        input=config if instant else None,
                        logs=pending,
                    )
                if pending:
                    for level, message in pending:
                        await self._store.log(level, message, node_id=step_id)
                await self._back_off(node, step_id, attempt, error)
            else:
                await self._store.step_finished(
                    step_id,
                    kind,
                    "succeeded",
                    attempt=attempt,
                    output=output,
                    input=config if instant else None,
                    logs=pending,
                )
                return Outcome("succeeded", output, attempts=attempt)
        raise AssertionError("unreachable: the loop returns on the last attempt")

    async def _back_off(self, node: Node, step_id: str, attempt: int, error: str) -> None:
        policy = node.retry
        wait = retry_delay(policy, attempt)
        until = (datetime.now(UTC) + timedelta(seconds=wait)).isoformat(timespec="milliseconds")
        log.info("step attempt failed; retrying", attempt=attempt, wait_s=round(wait, 3))
        await self._store.log(
            "warning",
            f"attempt {attempt}/{policy.max_attempts} failed: {error}; retrying in {wait:.2f}s",
            node_id=step_id,
        )
        await self._store.wait_reason(
            f"retry backoff: node {step_id!r} tries again (attempt {attempt + 1} of"
            f" {policy.max_attempts}) at {until}"
        )
        await asyncio.sleep(wait)
        await self._store.wait_reason(None)

    async def _execute(
        self,
        node: Node,
        step_id: str,
        config: dict[str, Any],
        context: dict[str, Any],
        scope: Scope,
        *,
        pending: list[tuple[str, str]] | None = None,
    ) -> Any:
        if node.type is NodeType.TRIGGER:
            return self._store.run.input if scope.loop is None else dict(scope.loop)
        if node.type is NodeType.CONDITION:
            value = templates.evaluate(
                str(config["expression"]), context, node_id=step_id, path="config.expression"
            )
            return {"result": bool(value)}
        if node.type is NodeType.TRANSFORM:
            if "value" not in config:
                raise ConfigError("a transform node needs config.value")
            return config["value"]
        if node.type is NodeType.LOOP:
            from services.executor.loop import run_loop  # the loop runs engines of its own

            outer = {k: Outcome(v["status"], v["output"]) for k, v in context["nodes"].items()}
            return await run_loop(self, node, config, scope, outer)
        action = actions.lookup(self._registry, str(node.action))
        return await action(self._action_context(node, step_id, pending), config)

    def _action_context(
        self, node: Node, step_id: str, pending: list[tuple[str, str]] | None
    ) -> actions.ActionContext:
        run = self._store.run

        async def write_log(level: str, message: str) -> None:
            if pending is not None:
                pending.append((level, message))
            else:
                await self._store.log(level, message, node_id=step_id)

        return actions.ActionContext(
            run_id=run.id,
            org_id=run.org_id,
            workflow_id=run.workflow_id,
            node_id=step_id,
            settings=self._settings,
            http=self._http,
            log=write_log,
            wait_reason=self._store.wait_reason,
            mask=self._store.mask,
        )

    async def _failed(
        self,
        node: Node,
        step_id: str,
        error: str,
        *,
        attempts: int,
        input: Any = None,
        logs: list[tuple[str, str]] | None = None,
    ) -> Outcome:
        """Record the failure as ``on_error`` says, with its error log line in the same
        statement."""
        log.info("step failed", error=self._store.mask(error), attempts=attempts)
        logs = [*(logs or []), ("error", f"node {step_id!r} failed: {error}")]
        output: dict[str, str] | None = None if node.on_error == "fail" else {"error": error}
        status = "succeeded" if node.on_error == "continue" else "failed"
        await self._store.step_finished(
            step_id,
            node.type.value,
            status,
            attempt=attempts,
            output=output,
            error=error,
            input=input,
            logs=logs,
        )
        if status == "succeeded":
            return Outcome("succeeded", output, error, attempts=attempts)
        return Outcome("failed", output, error, routed=node.on_error == "route", attempts=attempts)


def _describe(exc: Exception, node: Node) -> str:
    if isinstance(exc, StepError):
        return str(exc)
    if isinstance(exc, TimeoutError) and node.timeout_s is not None:
        return f"timed out after {node.timeout_s:g}s (timeout_s)"
    return f"{type(exc).__name__}: {exc}"
