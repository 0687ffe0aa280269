"""FLOWCRON_EGRESS=public: private, loopback and link-local targets are refused."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.egress import EgressDenied, EgressResolver, address_allowed, check_url


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # the cloud metadata endpoint
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:169.254.169.254",
        "::ffff:127.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not address_allowed(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(address)


async def test_check_url() -> None:
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://localhost:8080/",
        "https://10.0.0.1/hook",
    ):
        with pytest.raises(EgressDenied, match="not a public address"):
            await check_url(url, "public")
        await check_url(url, "any")
    await check_url("https://93.184.216.34/", "public")
    with pytest.raises(EgressDenied):
        await check_url("not a url", "public")


async def test_the_resolver_refuses_what_names_resolve_to() -> None:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    async with TestServer(app, host="127.0.0.1") as server:
        url = f"http://localhost:{server.port}/"
        connector = aiohttp.TCPConnector(resolver=EgressResolver("public"))
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(EgressDenied):
                await session.get(url)
        connector = aiohttp.TCPConnector(resolver=EgressResolver("any"))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(url) as resp,
        ):
            assert await resp.text() == "hi"
