"""Live run and step events as Server-Sent Events, fed from ``<NS>_EVENTS``.

* ``GET /api/runs/{id}/events``: the run's events from its first (JetStream replays
  what the stream still holds, then follows), ending after ``run.finished``.
* ``GET /api/events``: every new event of the caller's organization, until the client
  goes away.

Each SSE message has ``event:`` the kind (``run.started``, ``step.started``,
``step.finished``, ``run.finished``), ``id:`` the stream sequence when known, and
``data:`` the event's JSON body (``run_id``, ``org_id``, ``workflow_id``, ``node_id``,
``status``, ``at``, ``error``). Events whose ``org_id`` is not the caller's are
never sent.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp_sse import sse_response
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from services.api.inputs import path_id
from services.api.jsonio import dumps, iso
from services.api.keys import JETSTREAM, NATS, POOL, TOPOLOGY, org_id
from services.api.problems import not_found
from services.api.queries import runs as sql

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

FINISHED = "run.finished"
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
PING_S = 15
QUEUE_SIZE = 1000  # events buffered per client; a client this far behind loses events


@dataclass(frozen=True)
class Event:
    kind: str
    body: dict[str, Any]
    seq: int | None


def _event(msg: Msg, namespace: str, org: uuid.UUID) -> Event | None:
    """The event in ``msg`` if it belongs to ``org``; None otherwise or if unreadable."""
    prefix = f"{namespace}.events."
    _run_id, _, kind = msg.subject.removeprefix(prefix).partition(".")
    try:
        body = json.loads(msg.data)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("org_id") != str(org):
        return None
    # JetStream deliveries carry their metadata in a $JS.ACK reply subject; a core
    # subscriber sees the publisher's own reply inbox instead.
    seq = msg.metadata.sequence.stream if msg.reply.startswith("$JS.ACK.") else None
    return Event(kind, body, seq)


# Each open stream's "stop" event, set when the API shuts down so that no stream holds
# the shutdown for aiohttp's whole grace period.
STREAMS = web.AppKey("event_streams", set[asyncio.Event])


async def close_streams(app: web.Application) -> None:
    """``on_shutdown``: end every open event stream."""
    for stop in app.get(STREAMS, set()):
        stop.set()


async def _next(queue: asyncio.Queue[Event], ends: tuple[asyncio.Future[Any], ...]) -> Event | None:
    """The next event, or None once one of ``ends`` is done (client gone, shutdown)."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, *ends}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    return None


async def _pump(
    request: web.Request, queue: asyncio.Queue[Event], *, until_finished: bool
) -> web.StreamResponse:
    """Send events until the run finishes (``until_finished``), the client goes away (a
    failed write or ping, or the handler cancelled by aiohttp) or the API shuts down."""
    stop = asyncio.Event()
    streams = request.app[STREAMS]
    streams.add(stop)
    try:
        async with sse_response(request, ping_interval=PING_S) as stream:
            ends = (asyncio.ensure_future(stream.wait()), asyncio.ensure_future(stop.wait()))
            try:
                while stream.is_connected():
                    event = await _next(queue, ends)
                    if event is None:
                        break
                    await stream.send(
                        dumps(event.body),
                        event=event.kind,
                        id=str(event.seq) if event.seq is not None else None,
                    )
                    if until_finished and event.kind == FINISHED:
                        break
            except ConnectionError:
                log.debug("event stream client went away")
            finally:
                for end in ends:
                    end.cancel()
    finally:
        streams.discard(stop)
    response: web.StreamResponse = stream
    return response


def _enqueue(queue: asyncio.Queue[Event], event: Event | None) -> None:
    if event is not None and not queue.full():
        queue.put_nowait(event)


@routes.get("/api/runs/{id}/events")
async def run_events(request: web.Request) -> web.StreamResponse:
    run_id = path_id(request)
    org = org_id(request)
    row = await sql.get(request.app[POOL], org, run_id)
    if row is None:
        raise not_found("run")
    topology = request.app[TOPOLOGY]
    queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
    if row["status"] in TERMINAL:
        # Its events may have aged out of the stream: the row says how it ended.
        queue.put_nowait(_finished_from_row(dict(row)))
        return await _pump(request, queue, until_finished=True)

    async def on_message(msg: Msg) -> None:
        _enqueue(queue, _event(msg, topology.namespace, org))

    subscription = await request.app[JETSTREAM].subscribe(
        topology.event_subject(run_id, ">"),
        stream=topology.events_stream,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    try:
        return await _pump(request, queue, until_finished=True)
    finally:
        await subscription.unsubscribe()


def _finished_from_row(row: dict[str, Any]) -> Event:
    body = {
        "run_id": str(row["id"]),
        "org_id": str(row["org_id"]),
        "workflow_id": str(row["workflow_id"]),
        "status": row["status"],
        "at": iso(row["finished_at"]) if row["finished_at"] else None,
        "error": row["error"],
    }
    return Event(FINISHED, body, None)


@routes.get("/api/events")
async def org_events(request: web.Request) -> web.StreamResponse:
    org = org_id(request)
    topology = request.app[TOPOLOGY]
    queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)

    async def on_message(msg: Msg) -> None:
        _enqueue(queue, _event(msg, topology.namespace, org))

    # Core NATS sees what is published to the stream's subjects: live events only.
    client = request.app[NATS]
    subscription = await client.subscribe(f"{topology.namespace}.events.>", cb=on_message)
    await client.flush()  # the server has the subscription before the client hears "200"
    try:
        return await _pump(request, queue, until_finished=False)
    finally:
        await subscription.unsubscribe()
