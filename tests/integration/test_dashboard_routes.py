"""The dashboard's page and files: open, typed, confined to their directory; /api stays
protected. (The dashboard itself is tested in a browser: tests/e2e/test_dashboard.py.)"""

from __future__ import annotations

import tomllib

from services.api.routes.dashboard import ROOT, is_dashboard_path
from tests.conftest import Org
from tests.integration.test_api_support import Client, assert_problem


async def test_the_page_is_served_without_a_key(api: Client) -> None:
    resp = await api.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert '<script type="module" src="/dashboard/js/main.js">' in await resp.text()
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-cache"


async def test_static_files_have_their_types_and_revalidate(api: Client) -> None:
    module = await api.get("/dashboard/js/main.js")
    assert module.status == 200
    assert module.content_type == "text/javascript"
    assert (await module.read()) == (ROOT / "js" / "main.js").read_bytes()
    etag = module.headers["ETag"]
    again = await api.get("/dashboard/js/main.js", headers={"If-None-Match": etag})
    assert again.status == 304
    css = await api.get("/dashboard/app.css")
    assert css.status == 200 and css.content_type == "text/css"


async def test_zone_list_is_every_zone_the_api_accepts(api: Client, org: Org) -> None:
    resp = await api.get("/dashboard/timezones.json")
    assert resp.status == 200
    zones = await resp.json()
    assert {"UTC", "Europe/Paris", "Asia/Kolkata", "America/New_York"} <= set(zones)
    assert "localtime" not in zones and len(zones) > 400
    check = await api.post(
        "/api/utils/validate-cron",
        json={"expression": "0 9 * * *", "timezone": zones[-1]},
        headers=org.headers,
    )
    assert (await check.json())["valid"] is True


async def test_nothing_outside_the_directory_is_served(api: Client) -> None:
    for path in (
        "/dashboard/nope.js",
        "/dashboard/../routes/dashboard.py",
        "/dashboard/%2e%2e/auth.py",
        "/dashboard/js/../../auth.py",
        "/dashboard/",
    ):
        resp = await api.get(path)
        assert resp.status in (401, 404), (path, resp.status)
        if resp.status == 404:
            assert resp.content_type == "application/problem+json"


async def test_only_the_dashboard_paths_are_open(api: Client) -> None:
    assert is_dashboard_path("/") and is_dashboard_path("/dashboard/app.css")
    for path in ("/api/workflows", "/api/schedules", "/dashboardx", "/api/dashboard/x"):
        assert not is_dashboard_path(path)
    await assert_problem(await api.get("/api/workflows"), 401)
    await assert_problem(await api.get("/api/events"), 401)


def test_every_file_served_is_package_data() -> None:
    """A wheel, and so the Docker image (a regular install), carries every file."""
    pyproject = tomllib.loads((ROOT.parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["services.api"]
    packaged = {path for pattern in patterns for path in ROOT.parent.glob(pattern)}
    served = {path for path in ROOT.rglob("*") if path.is_file()}
    assert (ROOT / "index.html") in served
    assert served <= packaged
