"""Headless Chromium for the browser tests: the system's ``chromium`` (Debian package),
driven by Playwright from PyPI. No browser is ever downloaded (``playwright install``
is not used).

Without Playwright or Chromium the browser tests skip on a developer's machine, and
fail under ``CI=true``: CI installs both (``.ci/run``), so a missing one there is a
broken set-up, not a reason to pass quietly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

CANDIDATES = ("chromium", "chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


def chromium_path() -> str:
    """The system Chromium: ``FLOWCRON_TEST_CHROMIUM``, else ``chromium`` on PATH."""
    configured = os.environ.get("FLOWCRON_TEST_CHROMIUM")
    if configured:
        return configured
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    _unavailable("no chromium on PATH: apt-get install chromium")
    raise AssertionError("unreachable")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium, closed at the end."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[dev]'")
        raise
    executable = chromium_path()
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=executable, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()
