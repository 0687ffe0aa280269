"""Handling one delivery of a run message, from parsing to ack.

1. Parse the :class:`RunMessage`. A body that does not parse is terminated (never
   redelivered) and, when its org and workflow can be read, dead-lettered.
2. Past ``executor_max_deliver`` deliveries (or the consumer's own limit less one,
   when that is lower): fail the run ("gave up after N
   deliveries: <last error>"), copy the message to ``<ns>.dlq.<org>.<workflow>`` with a
   ``Flowcron-Error`` header, ack.
3. Claim the run (:func:`~services.executor.store.claim_run`). No row: the run is
   running elsewhere or finished; ack and drop, so a duplicate never starts it twice.
4. Execute the graph while a side task sends in-progress acks every ack_wait/3 (the
   shorter of the setting and the consumer's real ``ack_wait``).
5. Finish: final status (and the schedule's counters) in one fenced transaction, ack,
   then the ``run.finished`` event and one summary log line.

A fenced write that finds the run claimed by someone else stops the execution; this
handler then settles nothing (the new owner holds the run). An unexpected error (the
database is down …) is logged to the run and the message is nak'ed with a delay, so a
redelivery resumes the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp
import pydantic
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.executor import actions, store
from services.executor.engine import Engine, RunResult
from services.executor.errors import LostRun
from services.executor.events import Events
from services.executor.steps import StepRunner
from shared.db.pool import Pool
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from shared.models.graph import WorkflowGraph
from shared.models.messages import RunMessage
from shared.settings import Settings

log = structlog.get_logger(__name__)

# Delay before a message whose handling broke unexpectedly is delivered again.
RETRY_DELAY_S = 2.0


class RunHandler:
    """Handles deliveries of run messages for one executor process."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        js: JetStreamContext,
        http: aiohttp.ClientSession,
        *,
        executor_id: str,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._js = js
        self._http = http
        self._executor_id = executor_id
        self._topology = Topology(settings.namespace)
        self._events = Events(js, self._topology)
        self._registry = actions.registry()
        self._ack_wait_s = settings.executor_ack_wait_s
        self._max_deliver = settings.executor_max_deliver

    async def load_limits(self) -> None:
        """Align keep-alive and dead-lettering with the consumer as JetStream has it.

        Another process may have declared the shared consumer with other settings; the
        executor must beat the real ack deadline, and must dead-letter before
        JetStream's own ``max_deliver`` silently stops delivering.
        """
        info = await self._js.consumer_info(self._topology.runs_stream, EXECUTORS_CONSUMER)
        ack_wait = float(info.config.ack_wait or self._ack_wait_s)
        max_deliver = info.config.max_deliver or 0
        self._ack_wait_s = min(self._ack_wait_s, ack_wait)
        if max_deliver > 0:
            self._max_deliver = max(1, min(self._max_deliver, max_deliver - 1))
        if (self._ack_wait_s, self._max_deliver) != (
            self._settings.executor_ack_wait_s,
            self._settings.executor_max_deliver,
        ):
            log.warning(
                "consumer declared with other limits; following the stricter ones",
                ack_wait_s=self._ack_wait_s,
                max_deliver=self._max_deliver,
            )

    async def handle(self, msg: Msg) -> None:
        try:
            message = RunMessage.model_validate_json(msg.data)
        except pydantic.ValidationError as exc:
            await self._reject(msg, exc)
            return
        delivered = msg.metadata.num_delivered
        with structlog.contextvars.bound_contextvars(
            run_id=str(message.run_id), workflow_id=str(message.workflow_id)
        ):
            if delivered > self._max_deliver:
                await self._give_up(msg, message, delivered)
                return
            try:
                await self._claim_and_run(msg, message, redelivered=delivered > 1)
            except Exception as exc:  # the run must survive any fault: nak, resume
                log.exception("run handling failed; handing the message back", delivered=delivered)
                await self._note_error(message, exc)
                await msg.nak(delay=RETRY_DELAY_S)

    async def _note_error(self, message: RunMessage, exc: Exception) -> None:
        """Log the fault on the run: it is the reason given if the run is dead-lettered."""
        try:
            await store.log(
                self._pool,
                message.run_id,
                message.org_id,
                "error",
                f"executor error: {type(exc).__name__}: {exc}",
            )
        except Exception as again:  # noqa: BLE001  # the database may be what failed; nak anyway
            log.warning("could not record the error on the run", error=repr(again))

    async def _claim_and_run(self, msg: Msg, message: RunMessage, *, redelivered: bool) -> None:
        run = await store.claim_run(
            self._pool, message, executor_id=self._executor_id, redelivered=redelivered
        )
        if run is None:
            log.info("run already claimed or finished; dropping this delivery")
            await msg.ack()
            return
        started = time.monotonic()
        log.info("run claimed", attempt=run.attempt, redelivered=redelivered)
        await self._events.publish(run, "run.started", "running")
        keepalive = asyncio.create_task(self._keep_alive(msg))
        try:
            runs = store.RunStore(self._pool, run)
            result = await self._execute(runs)
            await runs.finish(result.status, result.output, result.error)
        except LostRun as exc:
            log.warning("run lost to another claim or a cancel; stopping", reason=str(exc))
            return
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
        await msg.ack()
        await self._events.publish(run, "run.finished", result.status, error=result.error)
        log.info(
            "run finished",
            status=result.status,
            duration_s=round(time.monotonic() - started, 3),
            steps=result.steps,
            attempt=run.attempt,
            error=result.error,
        )

    async def _execute(self, runs: store.RunStore) -> RunResult:
        raw = await store.load_graph(self._pool, runs.run)
        if raw is None:
            error = f"workflow version {runs.run.workflow_version} not found"
            return RunResult("failed", None, error, {})
        try:
            graph = WorkflowGraph.model_validate(raw)
        except pydantic.ValidationError as exc:
            return RunResult("failed", None, f"the workflow graph is invalid: {exc}", {})
        steps = StepRunner(
            runs, self._events, settings=self._settings, http=self._http, registry=self._registry
        )
        succeeded = await store.load_succeeded_steps(self._pool, runs.run)
        return await Engine(graph, runs, steps, self._events, succeeded=succeeded).execute()

    async def _keep_alive(self, msg: Msg) -> None:
        """In-progress acks so JetStream does not redeliver a run that is alive."""
        interval = self._ack_wait_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await msg.in_progress()
            except Exception as exc:  # noqa: BLE001  # next beat tries again; the run goes on
                log.warning("in-progress ack failed", error=repr(exc))

    async def _give_up(self, msg: Msg, message: RunMessage, delivered: int) -> None:
        reason = await store.last_error(self._pool, message) or "no error was recorded"
        error = f"gave up after {delivered - 1} deliveries: {reason}"
        if await store.give_up(self._pool, message, error):
            log.error("run dead-lettered", error=error)
            await self._dead_letter(msg, message.org_id, message.workflow_id, error)
        else:
            log.info("run had already ended; dropping its last delivery")
        await msg.ack()

    async def _reject(self, msg: Msg, exc: pydantic.ValidationError) -> None:
        error = f"unreadable run message: {exc.errors()[0]['msg']}"
        log.error("unreadable run message; terminated", subject=msg.subject, error=error)
        body = _loose_json(msg.data)
        if body.get("org_id") and body.get("workflow_id"):
            await self._dead_letter(msg, body["org_id"], body["workflow_id"], error)
        await msg.term()

    async def _dead_letter(self, msg: Msg, org_id: object, workflow_id: object, error: str) -> None:
        await self._js.publish(
            self._topology.dlq_subject(org_id, workflow_id),
            msg.data,
            stream=self._topology.dlq_stream,
            headers={
                "Flowcron-Error": " ".join(error.split())[:1000],
                "Flowcron-Deliveries": str(msg.metadata.num_delivered),
            },
        )


def _loose_json(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
