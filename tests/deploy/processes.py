"""Flowcron services as local processes, started and stopped by PID.

Used by the "compose without containers" test, the executor scaling tests and
``bench/scaling.py``. A process gets a clean environment: the caller's ``FLOWCRON_``
variables are dropped so that only the ones given reach the service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# The console scripts of this virtual environment (`flowcron` is installed there).
BIN = Path(sys.executable).parent
STOP_TIMEOUT_S = 30.0


def command_argv(program: str, *args: str) -> list[str]:
    """The argv that runs a console script of the project, such as ``flowcron api``.

    The installed script when there is one (``make`` installs the project), else what
    that script does: import the ``[project.scripts]`` target and call it.
    """
    script = BIN / program
    if script.exists():
        return [str(script), *args]
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"][program]
    module, _, function = target.partition(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", code, *args]


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCRON_")}
    return {**base, **extra}


def settings_environment(settings: Settings, **overrides: object) -> dict[str, str]:
    """``FLOWCRON_`` variables reproducing ``settings`` (test fixtures) plus overrides."""
    values = {**settings.model_dump(), **overrides}
    return {f"FLOWCRON_{name.upper()}": str(value) for name, value in values.items()}


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@dataclass
class Processes:
    """Every process one test started; :meth:`stop_all` ends them by PID."""

    log_dir: Path
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env=clean_environment(env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def stop(self, process: Process, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait; SIGKILL only when the process outlives ``timeout``."""
        if process.popen.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        return self._wait(process, timeout)

    def stop_all(self, timeout: float = STOP_TIMEOUT_S) -> dict[str, int]:
        """One SIGTERM to every running process at once, then the exit code of each.

        (Only one: a second SIGTERM reaching a service after its own handler is gone
        would kill it with -15 in the middle of a clean exit.)
        """
        for process in self.started:
            if process.popen.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        return {process.name: self._wait(process, timeout) for process in self.started}

    @staticmethod
    def _wait(process: Process, timeout: float) -> int:
        try:
            return process.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()
            return -signal.SIGKILL


@contextmanager
def processes(log_dir: Path) -> Iterator[Processes]:
    """Processes that are stopped at the end whatever happens (by PID, never by name)."""
    group = Processes(log_dir)
    try:
        yield group
    finally:
        group.stop_all()
