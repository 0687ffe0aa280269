"""Handling one delivery of a run message, from parsing to ack.

1. Parse the :class:`RunMessage`. A body that does not parse is terminated (never
   redelivered) and, when its org and workflow can be read, dead-lettered.
2. Past ``executor_max_deliver`` deliveries (or the consumer's own limit less one,
   when that is lower): fail the run ("gave up after N
   deliveries: <last error>"), copy the message to ``<ns>.dlq.<org>.<workflow>`` with a
   ``Flowcron-Error`` header, ack.
3. Claim the run (:func:`~services.executor.store.claim_run`), reading its graph (once
   per workflow version: parsed graphs are cached) and its succeeded steps in the same
   round trip. No row: the run is running elsewhere, finished or cancelled; ack and
   drop, so a duplicate never starts it twice. Held by ``max_concurrency``: see
   :mod:`services.executor.hold`.
4. Execute the graph while a side task sends in-progress acks every ack_wait/3 (the
   shorter of the setting and the consumer's real ``ack_wait``). The graph's
   ``timeout_s`` bounds the run from its first start (``timed_out``); a cancel control
   message (:mod:`shared.control`) stops it at once (``cancelled``). Either way the
   steps not finished are recorded ``cancelled``.
5. Finish: final status, unfinished steps and the schedule's counters in one fenced
   statement, ack, then the ``run.finished`` event and one summary log line.

A fenced write that finds the run claimed by someone else stops the execution; this
handler then settles nothing (the new owner holds the run), unless the run has ended
(cancelled through the API): then the message is acknowledged. An unexpected error
(the database is down …) is logged to the run and the message is nak'ed with a delay,
so a redelivery resumes the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import aiohttp
import pydantic
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.executor import actions, metrics, store
from services.executor.engine import Engine, RunResult
from services.executor.errors import LostRun
from services.executor.events import Events
from services.executor.graphs import GraphCache, ParsedGraph
from services.executor.hold import Holds
from services.executor.masking import masker
from services.executor.steps import StepRunner
from shared.db.pool import Pool
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from shared.models.messages import RunMessage
from shared.secrets import SecretsKeyError, load_secrets
from shared.settings import Settings

log = structlog.get_logger(__name__)

# Delay before a message whose handling broke unexpectedly is delivered again.
RETRY_DELAY_S = 2.0
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


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
        nc: Client,
        writes: Pool | None = None,
    ) -> None:
        self._settings = settings
        self._pool = pool
        # Claims, step writes and logs; the final status goes through ``pool``.
        self._writes = writes or pool
        # Claims, step ends and final statuses of concurrent runs, combined (group commit).
        self._group = store.GroupWrites(pool, self._writes, executor_id)
        self._js = js
        self._http = http
        self._executor_id = executor_id
        self._topology = Topology(settings.namespace)
        self._events = Events(nc, self._topology)
        self._registry = actions.registry()
        self._ack_wait_s = settings.executor_ack_wait_s
        self._max_deliver = settings.executor_max_deliver
        self._graphs = GraphCache()
        self._active: dict[uuid.UUID, asyncio.Task[RunResult]] = {}
        self._cancelled: set[uuid.UUID] = set()
        self.holds = Holds(
            js, self._topology, hold_s=settings.executor_hold_s, ack_wait_s=self._ack_wait_s
        )

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
        self.holds = Holds(
            self._js,
            self._topology,
            hold_s=self._settings.executor_hold_s,
            ack_wait_s=self._ack_wait_s,
        )
        if (self._ack_wait_s, self._max_deliver) != (
            self._settings.executor_ack_wait_s,
            self._settings.executor_max_deliver,
        ):
            log.warning(
                "consumer declared with other limits; following the stricter ones",
                ack_wait_s=self._ack_wait_s,
                max_deliver=self._max_deliver,
            )

    def request_cancel(self, run_id: uuid.UUID) -> bool:
        """Cancel the run if this executor is executing it; False when it is not."""
        task = self._active.get(run_id)
        if task is None or task.done():
            return False
        self._cancelled.add(run_id)
        task.cancel()
        return True

    async def handle(self, msg: Msg) -> None:
        try:
            message = RunMessage.model_validate_json(msg.data)
        except pydantic.ValidationError as exc:
            await self._reject(msg, exc)
            return
        delivered = msg.metadata.num_delivered
        if delivered > 1:
            metrics.REDELIVERIES.inc()
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
        cached = self._graphs.get(message.workflow_id, message.workflow_version)
        claim = await store.claim_run(
            self._writes,
            message,
            executor_id=self._executor_id,
            redelivered=redelivered,
            need_graph=cached is None,
            trigger_id=cached.graph.trigger().id if cached is not None else None,
            claims=self._group.claims,
        )
        if claim is None:
            log.info("run already claimed or finished; dropping this delivery")
            await msg.ack()
            return
        if isinstance(claim, store.Held):
            log.info("run held by max_concurrency", running=claim.running, limit=claim.limit)
            self.holds.hold(msg, message)
            return
        run = claim.run
        started = time.monotonic()
        metrics.RUNS_STARTED.inc()
        if not redelivered:  # a redelivery's wait is the ack deadline, not the queue
            metrics.PICKUP_LATENCY.observe(time.time() - msg.metadata.timestamp.timestamp())
            if cached is not None:  # the claim recorded the trigger step
                metrics.STEPS.labels("trigger", "succeeded").inc()
        log.debug("run claimed", attempt=run.attempt, redelivered=redelivered)
        await self._events.publish(run, "run.started", "running")
        graph = cached or self._graphs.parse(run.workflow_id, run.workflow_version, claim.graph)
        runs = store.RunStore(self._pool, run, writes=self._writes, group=self._group)
        keepalive = asyncio.create_task(self._keep_alive(msg))
        try:
            result = await self._execute(runs, graph, claim)
            await runs.finish(
                result.status,
                result.output,
                result.error,
                steps_error=result.steps_error,
                from_statuses=result.from_statuses,
            )
        except LostRun as exc:
            log.warning("run lost to another claim or a cancel; stopping", reason=str(exc))
            if await store.run_status(self._pool, run) in TERMINAL:
                await msg.ack()  # cancelled through the API: nothing is left to do
            return
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
        await msg.ack()
        metrics.RUNS_FINISHED.labels(result.status).inc()
        error = runs.mask(result.error)
        await self._events.publish(run, "run.finished", result.status, error=error)
        log.info(
            "run finished",
            status=result.status,
            duration_s=round(time.monotonic() - started, 3),
            steps=result.steps,
            attempt=run.attempt,
            error=error,
        )

    async def _execute(
        self, runs: store.RunStore, graph: ParsedGraph | str, claim: store.Claim
    ) -> RunResult:
        if isinstance(graph, str):
            return RunResult("failed", None, graph, {})
        secrets: dict[str, str] = {}
        if graph.uses_secrets:
            try:
                secrets = await load_secrets(self._pool, runs.run.org_id, self._settings)
            except SecretsKeyError as exc:
                return RunResult("failed", None, str(exc), {})
            runs.mask = masker(secrets)
        steps = StepRunner(
            runs,
            self._events,
            settings=self._settings,
            http=self._http,
            registry=self._registry,
            secrets=secrets,
            succeeded=claim.succeeded,
        )
        engine = Engine(graph.graph, runs, steps, self._events, succeeded=claim.succeeded)
        return await self._supervise(runs.run, engine, graph.graph.timeout_s)

    async def _supervise(
        self, run: store.ClaimedRun, engine: Engine, timeout_s: float | None
    ) -> RunResult:
        """Run ``engine`` under the run's timeout, cancellable by a control message."""
        task = asyncio.create_task(engine.execute())
        self._active[run.id] = task
        remaining = None if timeout_s is None else max(0.0, timeout_s - run.elapsed_s)
        try:
            done, _ = await asyncio.wait({task}, timeout=remaining)
        finally:
            self._active.pop(run.id, None)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if run.id in self._cancelled:
            self._cancelled.discard(run.id)
            if task.cancelled():
                log.info("run cancelled by request")
                return RunResult(
                    "cancelled",
                    None,
                    "cancelled by request",
                    {},
                    steps_error="run cancelled",
                    from_statuses=("running", "cancelled"),
                )
        if not done:
            error = f"run timed out after {timeout_s:g}s (timeout_s)"
            return RunResult("timed_out", None, error, {}, steps_error="run timed out")
        return task.result()  # LostRun surfaces here

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
            metrics.RUNS_FINISHED.labels("failed").inc()
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
        metrics.DEAD_LETTERED.inc()
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
