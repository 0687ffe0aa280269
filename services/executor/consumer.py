"""The pull loop on the shared ``executors`` consumer, with slots, a rate limit and
a drain.

* Slots: at most ``executor_concurrency`` runs in flight per replica, and the loop
  fetches only as many messages as there are free slots, so replicas share the work
  fairly instead of one hoarding messages it cannot start.
* Rate: at most ``executor_rate_limit`` runs started per second (0 = no limit).
* Fetches time out after :data:`FETCH_TIMEOUT_S`, so a stop is noticed within that.
* Drain, when ``stop`` is set: (1) fetch nothing more; (2) give in-flight runs up to
  ``executor_drain_s`` to finish; (3) cancel the rest and ``nak`` their messages, so
  another replica claims them at once as a redelivery and resumes them after their
  last completed step (the run rows stay ``running``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.executor import metrics
from services.executor.ratelimit import RateLimiter
from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from shared.settings import Settings

log = structlog.get_logger(__name__)

FETCH_TIMEOUT_S = 1.0
# After a failed fetch (NATS unreachable …), wait this long before the next one.
FETCH_ERROR_PAUSE_S = 1.0

Handle = Callable[[Msg], Awaitable[None]]


class Consumer:
    def __init__(self, js: JetStreamContext, settings: Settings, handle: Handle) -> None:
        self._js = js
        self._settings = settings
        self._handle = handle
        self._topology = Topology(settings.namespace)
        self._limiter = RateLimiter(settings.executor_rate_limit)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then drain (module docstring)."""
        sub = await self._js.pull_subscribe(
            subject=f"{self._topology.namespace}.runs.>",
            durable=EXECUTORS_CONSUMER,
            stream=self._topology.runs_stream,
        )
        log.info("consuming", concurrency=self._settings.executor_concurrency)
        try:
            while not stop.is_set():
                await self._fetch_once(sub, stop)
            log.info("stop requested: fetching no more runs")
        finally:
            await self._drain()
            await sub.unsubscribe()

    async def _fetch_once(
        self, sub: JetStreamContext.PullSubscription, stop: asyncio.Event
    ) -> None:
        free = self._settings.executor_concurrency - len(self._tasks)
        if free <= 0:
            await asyncio.wait(
                set(self._tasks), timeout=FETCH_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
            return
        batch = self._limiter.available(free)
        if batch == 0:
            await _sleep_unless(stop, self._limiter.wait_s())
            return
        try:
            messages = await sub.fetch(batch, timeout=FETCH_TIMEOUT_S)
        except nats.errors.TimeoutError:
            return
        except Exception as exc:  # noqa: BLE001  # the loop outlives a broken connection
            log.warning("fetch failed", error=repr(exc))
            await _sleep_unless(stop, FETCH_ERROR_PAUSE_S)
            return
        self._limiter.take(len(messages))
        for msg in messages:
            if stop.is_set():  # arrived while stopping: hand it straight back
                await _settle(msg.nak, "nak")
            else:
                self._start(msg)

    def _start(self, msg: Msg) -> None:
        task = asyncio.create_task(self._process(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, msg: Msg) -> None:
        metrics.RUNS_IN_FLIGHT.inc()
        try:
            await self._handle(msg)
        except asyncio.CancelledError:
            # Drain ran out of time: hand the run back to be resumed by another replica.
            await _settle(msg.nak, "nak")
            raise
        except Exception:  # one bad message never stops the loop
            log.exception("run message handler failed")
        finally:
            metrics.RUNS_IN_FLIGHT.dec()

    async def _drain(self) -> None:
        if not self._tasks:
            log.info("drained: no runs in flight")
            return
        budget = self._settings.executor_drain_s
        log.info("draining in-flight runs", in_flight=len(self._tasks), budget_s=budget)
        _, pending = await asyncio.wait(set(self._tasks), timeout=budget)
        if pending:
            log.warning("drain budget spent; handing runs back", handed_back=len(pending))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        log.info("drained", handed_back=len(pending))


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _settle(action: Callable[[], Awaitable[None]], name: str) -> None:
    try:
        await action()
    except Exception as exc:  # noqa: BLE001  # already settled, or NATS gone: redelivery covers it
        log.warning("could not settle message", action=name, error=repr(exc))
