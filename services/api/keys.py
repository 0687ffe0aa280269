"""Typed keys of the application's and requests' state (no string keys, no globals)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aiohttp import web
from nats.aio.client import Client
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.settings import Settings


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API key and its organization."""

    key_id: uuid.UUID
    org_id: uuid.UUID
    role: str


SETTINGS = web.AppKey("settings", Settings)
TOPOLOGY = web.AppKey("topology", Topology)
POOL = web.AppKey("pool", Pool)
NATS = web.AppKey("nats", Client)
JETSTREAM = web.AppKey("jetstream", JetStreamContext)

PRINCIPAL = web.RequestKey("principal", Principal)


def org_id(request: web.Request) -> uuid.UUID:
    """The calling organization; every query filters by it."""
    return request[PRINCIPAL].org_id
