"""``/api/admin/queues``: the namespace's streams and consumers, and the dead letters.

Admin keys only. Counts are the namespace's (streams are shared by organizations);
messages are listed and acted on only when their subject carries the caller's
organization (``<ns>.runs.<org_id>.…``, ``<ns>.dlq.<org_id>.…``). A message's id is its
stream sequence number.

``POST /api/admin/queues/dlq`` ``retry`` resets each selected run to ``queued`` and
publishes it again on ``<NS>_RUNS`` (at most ``api_queue_retry_rate`` a second, so a
large replay does not flood the executors), then deletes the dead letter; ``remove``
deletes dead letters.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from aiohttp import web
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from pydantic import BaseModel, Field, ValidationError, model_validator

from services.api.auth import require_admin
from services.api.inputs import read_body, read_query
from services.api.jsonio import json_response
from services.api.keys import JETSTREAM, POOL, SETTINGS, TOPOLOGY, org_id
from services.api.problems import Problem, not_found
from services.api.schemas import Request
from shared.messaging.topology import Topology
from shared.models.messages import RunMessage

routes = web.RouteTableDef()

QueueName = Literal["runs", "events", "dlq"]
MAX_SELECTED = 1000
MAX_SCAN = 100_000  # messages looked at by one filtered action
ERROR_HEADER = "Flowcron-Error"
# Reset a dead-lettered run so an executor can claim it again (its succeeded steps stay,
# so it resumes after them).
_REQUEUE = """
UPDATE workflow_runs
SET status = 'queued', error = NULL, output = NULL, finished_at = NULL,
    published_at = clock_timestamp()
WHERE id = $1 AND org_id = $2 AND status <> 'running'
RETURNING id
"""


class ConsumerOut(BaseModel):
    name: str
    pending: int = Field(description="Messages not yet delivered to the consumer.")
    ack_pending: int = Field(description="Delivered, not yet acknowledged.")
    redelivered: int
    waiting: int = Field(description="Pull requests waiting for messages.")


class QueueOut(BaseModel):
    name: QueueName
    stream: str
    subjects: list[str]
    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    consumers: list[ConsumerOut]


class QueueList(BaseModel):
    items: list[QueueOut]
    next_cursor: str | None = None


class MessageOut(BaseModel):
    id: int = Field(description="The stream sequence number.")
    subject: str
    body: Any
    error: str | None = Field(description="The Flowcron-Error header (dead letters).")
    headers: dict[str, str]


class QueueDetail(QueueOut):
    messages_page: list[MessageOut] = Field(
        description="This organization's messages (runs and dlq), oldest first."
    )
    next_cursor: str | None


class QueueQuery(Request):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, pattern=r"^[0-9]{1,18}$", description="Last id seen.")


class QueueFilter(Request):
    workflow_id: uuid.UUID | None = None
    error_contains: str | None = Field(None, min_length=1, max_length=200)


class QueueActionIn(Request):
    action: Literal["retry", "remove"]
    ids: list[Annotated[int, Field(ge=1, lt=2**63)]] | None = Field(
        None, min_length=1, max_length=MAX_SELECTED
    )
    filter: QueueFilter | None = Field(None, description="Every dead letter matching; {} = all.")

    @model_validator(mode="after")
    def _one_selection(self) -> QueueActionIn:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of 'ids' and 'filter'")
        return self


class ActionFailure(BaseModel):
    id: int
    error: str


class QueueActionOut(BaseModel):
    action: Literal["retry", "remove"]
    done: list[int]
    failed: list[ActionFailure]


def _stream(topology: Topology, name: str) -> str:
    streams = {
        "runs": topology.runs_stream,
        "events": topology.events_stream,
        "dlq": topology.dlq_stream,
    }
    if name not in streams:
        raise not_found("queue")
    return streams[name]


async def _queue(js: JetStreamContext, name: QueueName, stream: str) -> QueueOut:
    info = await js.stream_info(stream)
    consumers = await js.consumers_info(stream)
    return QueueOut(
        name=name,
        stream=stream,
        subjects=list(info.config.subjects or []),
        messages=info.state.messages,
        bytes=info.state.bytes,
        first_seq=info.state.first_seq,
        last_seq=info.state.last_seq,
        consumers=[
            ConsumerOut(
                name=c.name,
                pending=c.num_pending or 0,
                ack_pending=c.num_ack_pending or 0,
                redelivered=c.num_redelivered or 0,
                waiting=c.num_waiting or 0,
            )
            for c in consumers
        ],
    )


@routes.get("/api/admin/queues")
async def list_queues(request: web.Request) -> web.Response:
    require_admin(request)
    js, topology = request.app[JETSTREAM], request.app[TOPOLOGY]
    names: tuple[QueueName, ...] = ("runs", "events", "dlq")
    items = [await _queue(js, n, _stream(topology, n)) for n in names]
    return json_response(QueueList(items=items))


def _org_subject(topology: Topology, name: str, org: uuid.UUID) -> str | None:
    if name == "events":
        return None  # event subjects carry no organization
    return f"{topology.namespace}.{name}.{org}.>"


async def _messages(
    js: JetStreamContext, stream: str, subject: str, after: int
) -> AsyncIterator[RawStreamMsg]:
    """The stream's messages on ``subject`` after sequence ``after``, oldest first."""
    seq = after + 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return
        yield msg
        seq = (msg.seq or seq) + 1


def _message_out(msg: RawStreamMsg) -> MessageOut:
    headers = dict(msg.headers or {})
    try:
        body: Any = json.loads(msg.data or b"")
    except ValueError:
        body = (msg.data or b"").decode("utf-8", "replace")
    return MessageOut(
        id=msg.seq or 0,
        subject=msg.subject or "",
        body=body,
        error=headers.get(ERROR_HEADER),
        headers=headers,
    )


@routes.get("/api/admin/queues/{name}")
async def get_queue(request: web.Request) -> web.Response:
    """The queue's counts and a page of this organization's messages (oldest first)."""
    require_admin(request)
    name = request.match_info["name"]
    topology, js = request.app[TOPOLOGY], request.app[JETSTREAM]
    stream = _stream(topology, name)
    query = read_query(request, QueueQuery)
    subject = _org_subject(topology, name, org_id(request))
    page: list[MessageOut] = []
    more = False
    if subject is not None:
        async for msg in _messages(js, stream, subject, int(query.cursor or 0)):
            if len(page) == query.limit:
                more = True
                break
            page.append(_message_out(msg))
    queue = await _queue(js, name, stream)  # type: ignore[arg-type]  # checked by _stream
    out = QueueDetail(
        **queue.model_dump(),
        messages_page=page,
        next_cursor=str(page[-1].id) if more else None,
    )
    return json_response(out)


async def _selected(
    js: JetStreamContext, stream: str, subject: str, body: QueueActionIn
) -> AsyncIterator[RawStreamMsg]:
    if body.ids is not None:
        for seq in sorted(set(body.ids)):
            try:
                msg = await js.get_msg(stream, seq=seq)
            except NotFoundError:
                continue
            if _matches_subject(msg.subject or "", subject):
                yield msg
        return
    wanted = body.filter or QueueFilter()
    scanned = 0
    async for msg in _messages(js, stream, subject, 0):
        scanned += 1
        if scanned > MAX_SCAN:
            return
        out = _message_out(msg)
        if wanted.workflow_id is not None and not (msg.subject or "").endswith(
            f".{wanted.workflow_id}"
        ):
            continue
        if wanted.error_contains and wanted.error_contains not in (out.error or ""):
            continue
        yield msg


def _matches_subject(subject: str, pattern: str) -> bool:
    return subject.startswith(pattern.removesuffix(">"))


async def _retry(request: web.Request, msg: RawStreamMsg) -> None:
    """Requeue the run row, publish its message again, then drop the dead letter."""
    topology, js = request.app[TOPOLOGY], request.app[JETSTREAM]
    try:
        message = RunMessage.model_validate_json(msg.data or b"")
    except ValidationError as exc:
        raise ValueError("the dead letter is not a run message") from exc
    if message.org_id != org_id(request):
        raise ValueError("the dead letter belongs to another organization")
    if await request.app[POOL].fetchval(_REQUEUE, message.run_id, message.org_id) is None:
        raise ValueError("the run does not exist or is running")
    # A fresh Nats-Msg-Id: the run id alone could fall in the duplicate window and be
    # dropped as a repeat of the delivery that was dead-lettered.
    await js.publish(
        topology.run_subject(message.org_id, message.workflow_id),
        message.to_bytes(),
        stream=topology.runs_stream,
        headers={"Nats-Msg-Id": f"{message.run_id}:dlq:{msg.seq}"},
    )
    await js.delete_msg(topology.dlq_stream, msg.seq or 0)


@routes.post("/api/admin/queues/{name}")
async def act_on_queue(request: web.Request) -> web.Response:
    """``retry`` or ``remove`` dead letters chosen by ``ids`` or by ``filter``."""
    require_admin(request)
    name = request.match_info["name"]
    topology, js = request.app[TOPOLOGY], request.app[JETSTREAM]
    stream = _stream(topology, name)
    body = await read_body(request, QueueActionIn)
    if name != "dlq":
        raise Problem(409, "not-dead-letters", "retry and remove apply to the 'dlq' queue only")
    subject = _org_subject(topology, name, org_id(request))
    assert subject is not None
    interval = 1 / request.app[SETTINGS].api_queue_retry_rate
    done: list[int] = []
    failed: list[ActionFailure] = []
    async for msg in _selected(js, stream, subject, body):
        if len(done) + len(failed) >= MAX_SELECTED:
            break
        try:
            if body.action == "retry":
                if done:
                    await asyncio.sleep(interval)  # the bounded replay rate
                await _retry(request, msg)
            else:
                await js.delete_msg(stream, msg.seq or 0)
        except (ValueError, NotFoundError) as exc:
            failed.append(ActionFailure(id=msg.seq or 0, error=str(exc)))
        else:
            done.append(msg.seq or 0)
    return json_response(QueueActionOut(action=body.action, done=done, failed=failed))
