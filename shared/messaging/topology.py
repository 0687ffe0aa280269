"""Stream, subject and consumer names of one namespace, declared idempotently.

DESIGN "JetStream topology": with namespace ``ns`` (``NS`` upper-cased)

* ``NS_RUNS``   ``ns.runs.<org_id>.<workflow_id>``   one message per run to execute
* ``NS_EVENTS`` ``ns.events.<run_id>.<kind>``        run and step lifecycle events
* ``NS_DLQ``    ``ns.dlq.<org_id>.<workflow_id>``    runs that exhausted their deliveries

and the durable pull consumer ``executors`` on ``NS_RUNS`` shared by every executor.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

log = structlog.get_logger(__name__)

EXECUTORS_CONSUMER = "executors"
# JetStream drops a second message with the same Nats-Msg-Id inside this window.
DUPLICATE_WINDOW_S = 120.0
_DAY_S = 86_400.0


@dataclass(frozen=True)
class Topology:
    """Names derived from one namespace."""

    namespace: str

    @property
    def runs_stream(self) -> str:
        return f"{self.namespace.upper()}_RUNS"

    @property
    def events_stream(self) -> str:
        return f"{self.namespace.upper()}_EVENTS"

    @property
    def dlq_stream(self) -> str:
        return f"{self.namespace.upper()}_DLQ"

    def run_subject(self, org_id: object, workflow_id: object) -> str:
        return f"{self.namespace}.runs.{org_id}.{workflow_id}"

    def event_subject(self, run_id: object, kind: str) -> str:
        return f"{self.namespace}.events.{run_id}.{kind}"

    def dlq_subject(self, org_id: object, workflow_id: object) -> str:
        return f"{self.namespace}.dlq.{org_id}.{workflow_id}"

    def stream_configs(self) -> list[StreamConfig]:
        ns = self.namespace
        return [
            # Work queue: a message is removed once an executor acks it.
            StreamConfig(
                name=self.runs_stream,
                subjects=[f"{ns}.runs.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
                discard=DiscardPolicy.NEW,
            ),
            # Events are for live views: kept a day, bounded in size.
            StreamConfig(
                name=self.events_stream,
                subjects=[f"{ns}.events.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=_DAY_S,
                max_bytes=256 * 1024 * 1024,
                discard=DiscardPolicy.OLD,
            ),
            # Dead letters are kept until an operator retries or removes them.
            StreamConfig(
                name=self.dlq_stream,
                subjects=[f"{ns}.dlq.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=30 * _DAY_S,
            ),
        ]

    def executors_consumer(self, *, ack_wait_s: float, max_deliver: int) -> ConsumerConfig:
        """The shared durable pull consumer.

        ``max_deliver`` is one more than the executor's own limit: the executor
        dead-letters a message itself on its last allowed delivery (so the run row gets
        the reason), and JetStream's limit is only the backstop.
        """
        return ConsumerConfig(
            durable_name=EXECUTORS_CONSUMER,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            max_deliver=max_deliver + 1,
            max_ack_pending=-1,
            filter_subject=f"{self.namespace}.runs.>",
        )


async def ensure_topology(
    js: JetStreamContext, topology: Topology, *, ack_wait_s: float = 30, max_deliver: int = 5
) -> None:
    """Create or update the streams and the ``executors`` consumer; safe to repeat.

    An existing stream keeps what the operator owns: its replica count (raised on a
    NATS cluster with ``nats stream edit FLOWCRON_RUNS --replicas 3``) and the limits
    Flowcron leaves unset (``max_msgs``, ``max_bytes``, ``max_msg_size``), so the next
    service start does not undo them."""
    for config in topology.stream_configs():
        try:
            info = await js.stream_info(config.name or "")
        except NotFoundError:
            await js.add_stream(config)
            log.info("stream created", stream=config.name)
        else:
            await js.update_stream(_keep_operator_settings(config, info.config))
    consumer = topology.executors_consumer(ack_wait_s=ack_wait_s, max_deliver=max_deliver)
    await js.add_consumer(topology.runs_stream, consumer)


def _keep_operator_settings(ours: StreamConfig, current: StreamConfig) -> StreamConfig:
    ours.num_replicas = current.num_replicas or ours.num_replicas
    for limit in _OPERATOR_LIMITS:
        if getattr(ours, limit) in (None, -1):
            setattr(ours, limit, getattr(current, limit))
    return ours


_OPERATOR_LIMITS = ("max_msgs", "max_bytes", "max_msg_size")


async def delete_topology(js: JetStreamContext, topology: Topology) -> None:
    """Delete the namespace's streams (tests and `flowcron` tooling only)."""
    for config in topology.stream_configs():
        try:
            await js.delete_stream(config.name or "")
        except NotFoundError:
            log.debug("stream already gone", stream=config.name)
