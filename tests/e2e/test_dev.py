"""`flowcron dev` on a bare machine: embedded Postgres and NATS, the README's tour.

This is the first README command as a new user runs it: no FLOWCRON_DATABASE_URL or
FLOWCRON_NATS_URL, so everything is started from the PyPI packages under the data
folder; then the tour's shell block runs verbatim against it; then Ctrl-C stops
everything, embedded servers included.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowcron.embedded import free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A five-minute tour", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the README's tour has a shell block"
    return match.group(1)


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)  # a synchronous test driving a child process
    raise AssertionError(f"timed out waiting for {what}")


def test_flowcron_dev_runs_the_readme_tour_on_embedded_servers(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCRON_")}
    env.update({"FLOWCRON_API_PORT": str(port), "FLOWCRON_LOG_FORMAT": "json"})
    data = tmp_path / ".flowcron"
    log = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [sys.executable, "-m", "flowcron", "dev", "--data-dir", str(data)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        wait_until(
            lambda: (data / "api-key").exists() and port_open("127.0.0.1", port),
            90,
            "flowcron dev to come up",
        )
        assert dev.stdout is not None
        banner = b""
        while b"Stop:" not in banner:
            banner += dev.stdout.readline()
        key = (data / "api-key").read_text().strip()
        assert key.encode() in banner
        assert f"http://127.0.0.1:{port}".encode() in banner

        tour = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", tour_script()],
            cwd=tmp_path,
            env={**env, "API": f"http://127.0.0.1:{port}"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert tour.returncode == 0, tour.stderr
        out = tour.stdout
        assert '"valid":true' in out.replace(" ", "")
        assert "2026-11-01T05:30:00" in out and "2026-11-02T06:30:00" in out
        assert '"status":"succeeded"' in out.replace(" ", "")
        assert "with n=3" in out
        assert '"enabled":false' in out.replace(" ", "")
    finally:
        dev.send_signal(signal.SIGINT)
        code = dev.wait(60)
        log.close()
    assert code == 0, (tmp_path / "dev.log").read_text()[-3000:]
    assert not port_open("127.0.0.1", port)
    # The embedded servers are gone too: nothing holds their data folders.
    assert not (data / "postgres" / "postmaster.pid").exists()
