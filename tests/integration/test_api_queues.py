"""Queue administration: streams and consumers, dead letters listed, retried, removed."""

from __future__ import annotations

import json
import uuid

from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.models.messages import RunMessage
from tests.conftest import Org
from tests.integration.test_api_support import Client, assert_problem, create_workflow


async def _dead_letter(
    api: Client, org: Org, pool: Pool, js: JetStreamContext, topology: Topology, error: str
) -> tuple[str, int]:
    """A failed run and its dead letter, as the executor leaves them; (run id, seq)."""
    wid = (await create_workflow(api, org))["id"]
    run = await (await api.post(f"/api/workflows/{wid}/runs", headers=org.headers)).json()
    # The executor took the message off the work queue before dead-lettering it.
    await js.purge_stream(topology.runs_stream)
    await pool.execute(
        "UPDATE workflow_runs SET status = 'failed', error = $2, finished_at = now() WHERE id = $1",
        uuid.UUID(run["id"]),
        error,
    )
    message = RunMessage(
        run_id=run["id"], org_id=org.id, workflow_id=wid, workflow_version=1, trigger="manual"
    )
    ack = await js.publish(
        topology.dlq_subject(org.id, wid),
        message.to_bytes(),
        headers={"Flowcron-Error": error, "Flowcron-Deliveries": "5"},
    )
    return run["id"], ack.seq


async def test_queues_are_listed_with_their_consumers(api: Client, org: Org) -> None:
    resp = await api.get("/api/admin/queues", headers=org.headers)
    assert resp.status == 200, await resp.text()
    queues = {q["name"]: q for q in (await resp.json())["items"]}
    assert set(queues) == {"runs", "events", "dlq"}
    (consumer,) = queues["runs"]["consumers"]
    assert consumer["name"] == "executors"
    assert {"pending", "ack_pending", "redelivered", "waiting"} <= consumer.keys()
    await assert_problem(await api.get("/api/admin/queues/nope", headers=org.headers), 404)


async def test_dead_letters_are_listed_retried_and_removed(
    api: Client, org: Org, other_org: Org, pool: Pool, js: JetStreamContext, topology: Topology
) -> None:
    first, seq1 = await _dead_letter(api, org, pool, js, topology, "http 500 from upstream")
    second, seq2 = await _dead_letter(api, org, pool, js, topology, "timeout")
    third, seq3 = await _dead_letter(api, org, pool, js, topology, "timeout again")

    page = await (await api.get("/api/admin/queues/dlq?limit=2", headers=org.headers)).json()
    assert page["messages"] == 3
    assert [(m["id"], m["error"]) for m in page["messages_page"]] == [
        (seq1, "http 500 from upstream"),
        (seq2, "timeout"),
    ]
    assert page["messages_page"][0]["body"]["run_id"] == first
    rest = await (
        await api.get(f"/api/admin/queues/dlq?cursor={page['next_cursor']}", headers=org.headers)
    ).json()
    assert [m["id"] for m in rest["messages_page"]] == [seq3] and rest["next_cursor"] is None
    foreign = await (await api.get("/api/admin/queues/dlq", headers=other_org.headers)).json()
    assert foreign["messages_page"] == []

    resp = await api.post(
        "/api/admin/queues/dlq", json={"action": "retry", "ids": [seq1]}, headers=org.headers
    )
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"action": "retry", "done": [seq1], "failed": []}
    row = await pool.fetchrow(
        "SELECT status, error FROM workflow_runs WHERE id = $1", uuid.UUID(first)
    )
    assert row is not None and (row["status"], row["error"]) == ("queued", None)
    republished = await js.get_msg(
        topology.runs_stream, subject=f"{topology.namespace}.runs.>", seq=1, next=True
    )
    assert json.loads(republished.data or b"")["run_id"] == first

    resp = await api.post(
        "/api/admin/queues/dlq",
        json={"action": "remove", "filter": {"error_contains": "timeout"}},
        headers=org.headers,
    )
    assert sorted((await resp.json())["done"]) == [seq2, seq3]
    assert (await js.stream_info(topology.dlq_stream)).state.messages == 0
    assert second and third


async def test_queue_actions_refuse_bad_input(api: Client, org: Org) -> None:
    for body in (
        {"action": "retry"},
        {"action": "retry", "ids": [1], "filter": {}},
        {"action": "explode", "ids": [1]},
        {"action": "remove", "ids": []},
        {"action": "remove", "ids": [0]},
        {"action": "remove", "filter": {"colour": "red"}},
    ):
        await assert_problem(
            await api.post("/api/admin/queues/dlq", json=body, headers=org.headers), 422
        )
    await assert_problem(
        await api.post(
            "/api/admin/queues/runs", json={"action": "remove", "ids": [1]}, headers=org.headers
        ),
        409,
    )
    missing = await api.post(
        "/api/admin/queues/dlq", json={"action": "remove", "ids": [999]}, headers=org.headers
    )
    assert (await missing.json())["done"] == []
