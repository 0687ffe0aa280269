"""Control messages to executors on core NATS (not JetStream: a control message is
only useful now, to the executor holding the run).

Subject: ``<ns>.control.cancel.<run_id>``, empty body. The executor holding the run
cancels it within a moment (status ``cancelled``, unfinished steps ``cancelled``); an
executor not holding it ignores the message. Callers first set the run's status in
Postgres, which is the record: a run no executor holds is never claimed again.
"""

from __future__ import annotations

from nats.aio.client import Client


def cancel_subject(topology_namespace: str, run_id: object) -> str:
    return f"{topology_namespace}.control.cancel.{run_id}"


def cancel_wildcard(topology_namespace: str) -> str:
    """What executors subscribe to."""
    return f"{topology_namespace}.control.cancel.*"


async def request_cancel(nc: Client, topology_namespace: str, run_id: object) -> None:
    """Ask whichever executor holds ``run_id`` to cancel it now (fire and forget)."""
    await nc.publish(cancel_subject(topology_namespace, run_id), b"")
    await nc.flush()
