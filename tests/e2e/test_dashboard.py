"""The dashboard in a real browser (headless Chromium), through its UI only.

The API, scheduler and executor run as processes on the test's database and namespace;
the template's http_request and slack_message steps call a local stand-in for GitHub
and Slack. Screenshots of each page go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from nats.js import JetStreamContext

from flowcron.embedded import free_port
from shared.db.pool import Pool
from shared.messaging.topology import Topology
from shared.models.messages import RunMessage
from shared.settings import Settings
from tests.conftest import Org
from tests.deploy.processes import command_argv, processes, settings_environment
from tests.e2e.browser import ARTIFACTS, chromium
from tests.waiting import wait_for

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SLOW_S = 4.0  # the stand-in's delay for repo "slow": long enough to watch a run run
EVENTS = [{"type": "PushEvent"}, {"type": "WatchEvent"}, {"type": "IssuesEvent"}]
OK_BG = "rgb(223, 243, 229)"  # --ok-bg of the light theme: a succeeded node's fill
LIVE_S = 20  # under the schedules page's 30 s poll: only the event stream is that quick


@dataclass
class Remote:
    """The stand-in for GitHub and Slack, and what Slack was sent."""

    url: str
    slack_posts: list[dict[str, Any]] = field(default_factory=list)

    def run_input(self, repo: str) -> dict[str, str]:
        return {"base_url": self.url, "repo": repo, "slack_webhook_url": f"{self.url}/slack"}


@pytest_asyncio.fixture(loop_scope="session")
async def remote() -> AsyncIterator[Remote]:
    port = free_port()
    found = Remote(f"http://127.0.0.1:{port}")

    async def events(request: web.Request) -> web.Response:
        if request.match_info["repo"] == "slow":
            await asyncio.sleep(SLOW_S)  # a slow remote, not synchronisation
        return web.json_response(EVENTS)

    async def slack(request: web.Request) -> web.Response:
        found.slack_posts.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/repos/{owner}/{repo}/events", events)
    app.router.add_post("/slack", slack)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield found
    finally:
        await runner.cleanup()


@pytest.fixture
def stack(settings: Settings, js: object, tmp_path: Path) -> Iterator[str]:
    """API, scheduler and executor as processes; the API's base URL."""
    port = free_port()
    env = settings_environment(settings, api_port=port)
    with processes(tmp_path) as group:
        for service in ("api", "scheduler", "executor"):
            group.start(service, command_argv("flowcron", service), env)
        yield f"http://127.0.0.1:{port}"
        codes = group.stop_all()
    assert set(codes.values()) == {0}, f"exit codes {codes}; logs in {tmp_path}"


@pytest_asyncio.fixture(loop_scope="session")
async def api_url(stack: str) -> str:
    async with aiohttp.ClientSession() as session:

        async def ready() -> bool:
            try:
                async with session.get(f"{stack}/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, timeout=30, message="the API to be ready")
    return stack


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def nav(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name)


async def dead_letter(
    js: JetStreamContext, topology: Topology, pool: Pool, org: Org, run_id: str, error: str
) -> None:
    """A dead letter for ``run_id``, as an executor leaves one after max_deliver."""
    workflow_id = await pool.fetchval(
        "SELECT workflow_id FROM workflow_runs WHERE id = $1", uuid.UUID(run_id)
    )
    message = RunMessage(
        run_id=run_id, org_id=org.id, workflow_id=workflow_id, workflow_version=1, trigger="manual"
    )
    subject = topology.dlq_subject(org.id, workflow_id)
    await js.publish(subject, message.to_bytes(), headers={"Flowcron-Error": error})


async def test_the_dashboard_from_sign_in_to_deleting_a_schedule(
    api_url: str,
    org: Org,
    remote: Remote,
    settings: Settings,
    js: JetStreamContext,
    topology: Topology,
    pool: Pool,
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=10_000)
    async with chromium() as browser:
        context = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await sign_in(page, api_url, org.api_key)
        await create_from_template(page)
        await schedule_it(page, remote)
        await watch_the_schedule_fire(page)
        await open_a_run_from_the_list(page)
        assert "3 new events on acme/widgets" in remote.slack_posts[0]["text"]
        run_id = await watch_a_run_live(page, remote)
        await at_phone_width(page)
        for error in ("delivered 5 times: first", "delivered 5 times: second"):
            await dead_letter(js, topology, pool, org, run_id, error)
        await see_the_queues(page)
        await toggle_and_delete(page)
        await context.close()
    assert not errors, errors


async def sign_in(page: Page, api_url: str, key: str) -> None:
    from playwright.async_api import expect

    await page.goto(f"{api_url}/")
    field = page.get_by_label("API key")
    await field.fill("fc_not_a_real_key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(
        page.get_by_text("This key was refused: unknown or revoked API key")
    ).to_be_visible()
    await expect(field).to_have_attribute("aria-invalid", "true")
    await shot(page, "01-sign-in-bad-key")
    await field.fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Schedules", level=1)).to_be_visible()
    await expect(page.get_by_text("No schedules yet.")).to_be_visible()
    await expect(page.locator("#live")).to_have_text("Live")


async def create_from_template(page: Page) -> None:
    from playwright.async_api import expect

    await nav(page, "Workflows").click()
    await page.get_by_role("button", name="New workflow").click()
    dialog = page.get_by_role("dialog", name="New workflow")
    await dialog.get_by_label("Start from").select_option(label="GitHub activity monitor")
    await expect(dialog.get_by_label("Name", exact=True)).to_have_value("GitHub activity monitor")
    nodes = dialog.locator("svg.graph [data-node]")
    await expect(nodes).to_have_count(5)
    await shot(page, "02-new-workflow")
    await dialog.get_by_role("button", name="Create workflow").click()
    await expect(dialog).to_be_hidden()
    row = page.locator("tr", has_text="GitHub activity monitor")
    await expect(row).to_contain_text("log_message → condition → slack_message")
    await shot(page, "03-workflows")


async def schedule_it(page: Page, remote: Remote) -> None:
    """The expression is checked as it is typed; the fire times follow it and the zone."""
    from playwright.async_api import expect

    await page.get_by_role("button", name="Schedule GitHub activity monitor").click()
    dialog = page.get_by_role("dialog", name="New schedule")
    status = dialog.get_by_role("status")
    cron = dialog.get_by_label("Cron expression")
    fires = dialog.get_by_role("list", name="Next fire times").get_by_role("listitem")
    await cron.fill("61 * * * *")
    await expect(status).to_contain_text("the minute field '61' is not valid")
    await expect(cron).to_have_attribute("aria-invalid", "true")
    await expect(fires).to_have_count(0)

    zone = dialog.get_by_role("combobox", name="Time zone")
    await zone.fill("kolk")
    await expect(dialog.get_by_role("option", name="Asia/Kolkata")).to_be_visible()
    await zone.press("Enter")
    await expect(zone).to_have_value("Asia/Kolkata")
    await cron.fill("0 9 * * 1-5")
    await expect(status).to_contain_text("At 09:00, Monday through Friday")
    await expect(fires).to_have_count(5)
    for i in range(5):
        await expect(fires.nth(i)).to_contain_text("09:00:00 UTC+5:30")
    weekday_first = await fires.first.inner_text()

    await dialog.get_by_label("Preset").select_option(value="*/15 * * * *")
    await expect(cron).to_have_value("*/15 * * * *")
    await expect(status).to_contain_text("Every 15 minutes")
    await expect(fires.first).not_to_have_text(weekday_first)
    await expect(fires.first).to_contain_text(re.compile(r":(00|15|30|45):00 UTC\+5:30"))
    await shot(page, "04-schedule-dialog")

    await dialog.get_by_label("Preset").select_option(value="* * * * * *")
    await expect(status).to_contain_text("Every second")
    run_input = json.dumps(remote.run_input("acme/widgets"))
    await dialog.get_by_label("Run input (JSON object)").fill(run_input)
    # The API's refusal is shown at the field it names.
    jitter = dialog.get_by_label("Jitter (seconds)")
    await jitter.fill("99999")
    await dialog.get_by_role("button", name="Create schedule").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("Jitter (seconds)")
    await expect(dialog.get_by_role("alert")).to_contain_text("3600")
    await expect(jitter).to_have_attribute("aria-invalid", "true")
    await shot(page, "05-schedule-dialog-error")
    await jitter.fill("0")
    await dialog.get_by_role("button", name="Create schedule").click()
    await expect(dialog).to_be_hidden()


async def watch_the_schedule_fire(page: Page) -> None:
    from playwright.async_api import expect

    await expect(page.get_by_role("heading", name="Schedules", level=1)).to_be_visible()
    row = page.locator("tr[data-schedule]")
    await expect(row).to_have_count(1)
    for text in ("GitHub activity monitor", "* * * * * *", "Every second", "Asia/Kolkata"):
        await expect(row).to_contain_text(text)
    next_run = row.locator("td.next-run")
    await expect(next_run).to_contain_text("UTC+5:30 (Asia/Kolkata)")
    await expect(next_run).to_contain_text(re.compile(r"in \d+ seconds?|now|\d+ seconds? ago"))
    # Counters move without a reload: the event stream refreshes the page.
    succeeded = row.locator(".counts .ok")
    await expect(succeeded).to_have_text(re.compile(r"✓ [1-9]"), timeout=LIVE_S * 1000)
    await expect(row.locator(".rate")).to_have_text("100%")
    runs_card = page.get_by_role("region", name="Runs").locator(".card-value")
    await expect(runs_card).not_to_have_text("0")
    await shot(page, "06-schedules")


async def open_a_run_from_the_list(page: Page) -> None:
    from playwright.async_api import expect

    await nav(page, "Runs").click()
    rows = page.locator("tr[data-run]")
    await expect(rows.first).to_be_visible()
    first = await rows.first.get_attribute("data-run")
    # New runs arrive at the top while the page is open.
    await expect(rows.first).not_to_have_attribute("data-run", first or "", timeout=LIVE_S * 1000)
    await shot(page, "07-runs")
    await page.locator('tr[data-status="succeeded"] a').first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("succeeded")
    graph = page.locator("svg.graph")
    for node in ("start", "fetch", "log", "has_events", "notify"):
        await expect(graph.locator(f'[data-node="{node}"]')).to_have_attribute(
            "data-status", "succeeded"
        )
    fill = await graph.locator('[data-node="fetch"] rect').evaluate(
        "rect => getComputedStyle(rect).fill"
    )
    assert fill == OK_BG
    await graph.locator('[data-node="fetch"]').click()
    panel = page.get_by_role("region", name="Selected step")
    await expect(panel).to_contain_text("Step fetch")
    await expect(panel).to_contain_text('"status": 200')
    await expect(panel).to_contain_text("Attempts")
    await expect(page.locator(".logs")).to_contain_text("3 events on acme/widgets")
    await shot(page, "08-run")


async def watch_a_run_live(page: Page, remote: Remote) -> str:
    """Run now, against a slow remote: the run page shows it running, then done.
    Answers the run's id."""
    from playwright.async_api import expect

    await nav(page, "Workflows").click()
    await page.get_by_role("button", name="Run GitHub activity monitor now").click()
    dialog = page.get_by_role("dialog", name="Run GitHub activity monitor now")
    await dialog.get_by_label("Run input (JSON object)").fill(
        json.dumps(remote.run_input("acme/slow"))
    )
    await dialog.get_by_role("button", name="Start run").click()
    fetch = page.locator('svg.graph [data-node="fetch"]')
    await expect(fetch).to_have_attribute("data-status", "running")
    await expect(page.get_by_text("Following this run live…")).to_be_visible()
    await shot(page, "09-run-running")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(
        "succeeded", timeout=int(SLOW_S * 1000) + 10_000
    )
    await expect(fetch).to_have_attribute("data-status", "succeeded")
    await expect(page.get_by_text("This run has ended (succeeded).")).to_be_visible()
    return page.url.rsplit("/", 1)[-1]


async def at_phone_width(page: Page) -> None:
    from playwright.async_api import expect

    await page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    await nav(page, "Schedules").click()
    await expect(page.locator("tr[data-schedule]")).to_have_count(1)
    await shot(page, "10-phone-schedules")
    overflow = await page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= PHONE["width"], f"the page is {overflow}px wide at phone width"
    await page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]


async def see_the_queues(page: Page) -> None:
    """Counts, then two dead letters: one retried, the other removed."""
    from playwright.async_api import expect

    await nav(page, "Queues").click()
    runs = page.locator('[data-queue="runs"]')
    await expect(runs.locator('tr[data-consumer="executors"]')).to_be_visible()
    await expect(page.locator('[data-queue="dlq"] [data-count="messages"]')).to_have_text("2")
    letters = page.locator("tr[data-dlq]")
    await expect(letters).to_have_count(2)
    await expect(letters.first).to_contain_text("delivered 5 times: first")
    await shot(page, "11-queues")
    await letters.first.get_by_role("checkbox").check()
    await page.get_by_role("button", name="Retry selected").click()
    await expect(letters).to_have_count(1)
    await expect(letters.first).to_contain_text("delivered 5 times: second")
    await page.get_by_role("button", name="Remove all").click()
    await (
        page.get_by_role("dialog", name="Remove dead letters?")
        .get_by_role("button", name="Remove")
        .click()
    )
    await expect(page.get_by_text("No dead letters.")).to_be_visible()


async def toggle_and_delete(page: Page) -> None:
    from playwright.async_api import expect

    await nav(page, "Schedules").click()
    switch = page.get_by_role("switch", name=re.compile("Enabled: GitHub activity monitor"))
    await expect(switch).to_have_attribute("aria-checked", "true")
    await switch.click()
    await expect(switch).to_have_attribute("aria-checked", "false")
    await expect(page.locator("td.next-run")).to_have_text("off")
    await page.reload()  # the change was saved, not only drawn
    await expect(switch).to_have_attribute("aria-checked", "false")
    await page.get_by_role("button", name="Delete schedule of GitHub activity monitor").click()
    confirm = page.get_by_role("dialog", name="Delete this schedule?")
    await confirm.get_by_role("button", name="Delete").click()
    await expect(page.get_by_text("No schedules yet.")).to_be_visible()
    # Keyboard: Escape closes a dialog and gives focus back to what opened it.
    opener = page.get_by_role("button", name="New schedule")
    await opener.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog", name="New schedule")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog", name="New schedule")).to_be_hidden()
    await expect(opener).to_be_focused()
    await shot(page, "12-schedules-empty")
