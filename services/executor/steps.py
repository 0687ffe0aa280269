"""Running one node: render its config, execute it with retries and a timeout, record
the step, and turn a failure into the outcome its ``on_error`` asks for.

* ``retry``: ``max_attempts`` tries in all, waiting :func:`~services.executor.backoff.retry_delay`
  between them. Errors that cannot change on a retry (templates, config) are not retried.
* ``timeout_s``: the limit of each attempt.
* ``on_error``: ``fail`` (the step is ``failed`` and the run fails), ``continue`` (the
  step counts as ``succeeded`` with output ``{"error": message}``), ``route`` (the step
  is ``failed`` with output ``{"error": message}``, and its ``branch: error`` edges
  become live instead of its other edges).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import structlog

from services.executor import actions, templates
from services.executor.backoff import retry_delay
from services.executor.errors import ConfigError, LostRun, StepError
from services.executor.events import Events
from services.executor.joins import Outcome
from services.executor.store import RunStore
from shared.models.graph import Node, NodeType
from shared.settings import Settings

log = structlog.get_logger(__name__)


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
    ) -> None:
        self._store = store
        self._events = events
        self._settings = settings
        self._http = http
        self._registry = registry
        run = store.run
        self._run_context = {
            "id": str(run.id),
            "trigger": run.trigger,
            "scheduled_for": run.scheduled_for.isoformat() if run.scheduled_for else None,
            "attempt": run.attempt,
            "workflow_id": str(run.workflow_id),
        }

    async def run(self, node: Node, finished: Mapping[str, Outcome]) -> Outcome:
        """Execute ``node`` given the outcomes so far; LostRun propagates."""
        with structlog.contextvars.bound_contextvars(node_id=node.id):
            context = templates.template_context(
                run_input=self._store.run.input,
                nodes={k: {"output": o.output, "status": o.status} for k, o in finished.items()},
                run=self._run_context,
            )
            await self._events.publish(self._store.run, "step.started", "running", node_id=node.id)
            try:
                config = self._rendered_config(node, context)
            except StepError as exc:
                await self._store.step_started(node.id, node.type.value, 1, node.config)
                outcome = await self._failed(node, str(exc), attempts=1)
            else:
                outcome = await self._attempts(node, config, context)
            await self._events.publish(
                self._store.run,
                "step.finished",
                outcome.status,
                node_id=node.id,
                error=outcome.error,
            )
            return outcome

    def _rendered_config(self, node: Node, context: dict[str, Any]) -> dict[str, Any]:
        if node.type is NodeType.CONDITION:
            return dict(node.config)  # the expression is evaluated, not rendered
        rendered: dict[str, Any] = templates.render(node.config, context, node_id=node.id)
        return rendered

    async def _attempts(
        self, node: Node, config: dict[str, Any], context: dict[str, Any]
    ) -> Outcome:
        policy = node.retry
        for attempt in range(1, policy.max_attempts + 1):
            await self._store.step_started(node.id, node.type.value, attempt, config)
            try:
                async with asyncio.timeout(node.timeout_s):
                    output = await self._execute(node, config, context)
            except LostRun:
                raise
            except Exception as exc:  # noqa: BLE001  # any fault of a node fails that node only
                error = _describe(exc, node)
                retryable = not isinstance(exc, StepError) or exc.retryable
                if attempt == policy.max_attempts or not retryable:
                    return await self._failed(node, error, attempts=attempt)
                wait = retry_delay(policy, attempt)
                log.info("step attempt failed; retrying", attempt=attempt, wait_s=round(wait, 3))
                await self._store.log(
                    "warning",
                    f"attempt {attempt}/{policy.max_attempts} failed: {error};"
                    f" retrying in {wait:.2f}s",
                    node_id=node.id,
                )
                await asyncio.sleep(wait)
            else:
                await self._store.step_finished(
                    node.id, node.type.value, "succeeded", attempt=attempt, output=output
                )
                return Outcome("succeeded", output, attempts=attempt)
        raise AssertionError("unreachable: the loop returns on the last attempt")

    async def _execute(self, node: Node, config: dict[str, Any], context: dict[str, Any]) -> Any:
        if node.type is NodeType.TRIGGER:
            return self._store.run.input
        if node.type is NodeType.CONDITION:
            value = templates.evaluate(
                str(config["expression"]), context, node_id=node.id, path="config.expression"
            )
            return {"result": bool(value)}
        if node.type is NodeType.TRANSFORM:
            if "value" not in config:
                raise ConfigError("a transform node needs config.value")
            return config["value"]
        if node.type is NodeType.LOOP:
            raise ConfigError("loop nodes are not supported yet")
        action = actions.lookup(self._registry, str(node.action))
        return await action(self._action_context(node), config)

    def _action_context(self, node: Node) -> actions.ActionContext:
        run = self._store.run

        async def write_log(level: str, message: str) -> None:
            await self._store.log(level, message, node_id=node.id)

        return actions.ActionContext(
            run_id=run.id,
            org_id=run.org_id,
            workflow_id=run.workflow_id,
            node_id=node.id,
            settings=self._settings,
            http=self._http,
            log=write_log,
        )

    async def _failed(self, node: Node, error: str, *, attempts: int) -> Outcome:
        log.info("step failed", error=error, attempts=attempts, on_error=node.on_error)
        await self._store.log("error", f"node {node.id!r} failed: {error}", node_id=node.id)
        kind = node.type.value
        output: dict[str, str] | None = {"error": error}
        if node.on_error == "continue":
            await self._store.step_finished(
                node.id, kind, "succeeded", attempt=attempts, output=output, error=error
            )
            return Outcome("succeeded", output, error, attempts=attempts)
        if node.on_error != "route":
            output = None
        await self._store.step_finished(
            node.id, kind, "failed", attempt=attempts, output=output, error=error
        )
        return Outcome("failed", output, error, routed=node.on_error == "route", attempts=attempts)


def _describe(exc: Exception, node: Node) -> str:
    if isinstance(exc, StepError):
        return str(exc)
    if isinstance(exc, TimeoutError) and node.timeout_s is not None:
        return f"timed out after {node.timeout_s:g}s (timeout_s)"
    return f"{type(exc).__name__}: {exc}"
