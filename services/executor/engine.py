"""Executing a workflow graph: which node runs when, concurrently, until the run ends.

The join rule is in :mod:`services.executor.joins` (and ``docs/workflows.md``): a
node runs once every incoming edge is resolved and at least one is live; a node whose
incoming edges are all dead is ``skipped``. Independent branches run as concurrent
tasks.

Resuming: nodes recorded ``succeeded`` by an earlier claim of the run are not run again;
their stored outputs feed the nodes after them.

Failing: a node that fails with ``on_error: fail`` fails the run at once. Nodes still
running are cancelled and recorded ``cancelled``; nodes not started yet are recorded
``cancelled`` too, with an error naming the node that failed. The run's error is
``node '<id>' failed: <message>``.

Loop bodies run on engines of their own (:mod:`services.executor.loop`), in a
:class:`~services.executor.scope.Scope` that prefixes their step ids.

Handing back: when the engine itself is cancelled (the executor drains), it cancels
its node tasks and records nothing, so the run stays ``running`` for the next claim.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from services.executor.events import Events
from services.executor.joins import Outcome, incoming_edges, readiness, run_output
from services.executor.scope import ROOT, Scope
from services.executor.steps import StepRunner
from services.executor.store import RunStore, StoredStep
from shared.models.graph import GraphShape, Node

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunResult:
    status: str  # succeeded | failed (| cancelled | timed_out, set by the handler)
    output: dict[str, Any] | None
    error: str | None
    steps: dict[str, int]  # count of nodes by final status
    # The error of steps left unfinished, and the statuses the run may end from.
    steps_error: str = "not finished when the run ended"
    from_statuses: tuple[str, ...] = ("running",)


class Engine:
    """One execution of one claimed run's graph."""

    def __init__(
        self,
        graph: GraphShape,
        store: RunStore,
        steps: StepRunner,
        events: Events,
        *,
        succeeded: Mapping[str, StoredStep],
        scope: Scope = ROOT,
    ) -> None:
        self._graph = graph
        self._store = store
        self._steps = steps
        self._events = events
        self._scope = scope
        self._incoming = incoming_edges(graph)
        self._outcomes: dict[str, Outcome] = {}
        for node in graph.nodes:
            step = succeeded.get(scope.step_id(node.id))
            if step is not None:
                self._outcomes[node.id] = Outcome("succeeded", step.output, attempts=step.attempt)
        self._running: dict[asyncio.Task[Outcome], str] = {}

    async def execute(self) -> RunResult:
        """Run every node that should run; LostRun propagates (nothing more is written)."""
        if self._outcomes and self._scope is ROOT:
            log.info("resuming run", already_succeeded=sorted(self._outcomes))
        try:
            failure = await self._until_done_or_failed()
        finally:
            await self._cancel_running(record=False)
        counts: dict[str, int] = dict(Counter(o.status for o in self._outcomes.values()))
        if failure is not None:
            error = f"node {failure!r} failed: {self._outcomes[failure].error}"
            return RunResult("failed", None, error, counts)
        return RunResult("succeeded", run_output(self._graph, self._outcomes), None, counts)

    async def _until_done_or_failed(self) -> str | None:
        """Start and collect nodes; the id of the node that failed the run, or None."""
        while True:
            await self._advance()
            if not self._running:
                return None
            done, _ = await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
            failure = None
            for task in done:
                node_id = self._running.pop(task)
                self._outcomes[node_id] = task.result()  # LostRun surfaces here
                if self._outcomes[node_id].fails_run and failure is None:
                    failure = node_id
            if failure is not None:
                await self._cancel_running(record=True, reason=f"node {failure!r} failed")
                await self._cancel_pending(failure)
                return failure

    async def _advance(self) -> None:
        """Start every node that is ready and skip every node that is dead, until
        nothing changes (a skip can make the next node dead too)."""
        changed = True
        while changed:
            changed = False
            for node in self._waiting():
                decision = readiness(node, self._incoming[node.id], self._outcomes)
                if decision == "run":
                    task = asyncio.create_task(
                        self._steps.run(node, dict(self._outcomes), self._scope)
                    )
                    self._running[task] = node.id
                elif decision == "skip":
                    await self._record(node, Outcome("skipped", attempts=0))
                    changed = True

    def _waiting(self) -> list[Node]:
        started = set(self._outcomes) | set(self._running.values())
        return [node for node in self._graph.nodes if node.id not in started]

    async def _cancel_running(self, *, record: bool, reason: str = "") -> None:
        tasks = dict(self._running)
        self._running.clear()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for node_id, result in zip(tasks.values(), results, strict=True):
            if isinstance(result, Outcome):  # it finished before the cancel reached it
                self._outcomes[node_id] = result
            elif record and isinstance(result, asyncio.CancelledError):
                await self._record(
                    self._graph.node(node_id), Outcome("cancelled", error=f"cancelled: {reason}")
                )
            elif record and isinstance(result, BaseException):
                raise result

    async def _cancel_pending(self, failure: str) -> None:
        for node in self._waiting():
            outcome = Outcome("cancelled", error=f"not run: node {failure!r} failed", attempts=0)
            await self._record(node, outcome)

    async def _record(self, node: Node, outcome: Outcome) -> None:
        self._outcomes[node.id] = outcome
        step_id = self._scope.step_id(node.id)
        await self._store.step_finished(
            step_id,
            node.type.value,
            outcome.status,
            attempt=outcome.attempts,
            error=outcome.error,
        )
        await self._events.publish(
            self._store.run, "step.finished", outcome.status, node_id=step_id, error=outcome.error
        )
