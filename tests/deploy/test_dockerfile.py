"""deploy/Dockerfile read instruction by instruction, and the healthcheck it runs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from deploy import healthcheck
from shared.settings import Settings
from tests.deploy.composefile import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def stages() -> list[list[tuple[str, str]]]:
    split: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            split.append([])
        if split:
            split[-1].append((keyword, rest))
    return split


def test_multi_stage_on_slim_python_311() -> None:
    args = dict(rest.split("=", 1) for kw, rest in instructions() if kw == "ARG" and "=" in rest)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    build, runtime = stages()
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    assert ("COPY", "--from=build /opt/flowcron /opt/flowcron") in runtime


def test_installs_from_the_project_metadata_without_the_embedded_extra() -> None:
    build, runtime = stages()
    runs = " ".join(rest for kw, rest in build if kw == "RUN")
    assert "pip install ." in runs and "pip install --no-deps ." in runs
    assert "embedded" not in runs and "-e " not in runs  # a regular install
    assert not any(kw == "RUN" and "pip" in rest for kw, rest in runtime)
    # A regular install carries the SQL migrations only as package data.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-data"]["shared.db"] == ["migrations/*.sql"]
    assert list((ROOT / "shared" / "db" / "migrations").glob("*.sql"))


def test_runs_as_a_numeric_non_root_user_with_a_healthcheck() -> None:
    runtime = stages()[-1]
    (user,) = [rest for kw, rest in runtime if kw == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0
    (check,) = [rest for kw, rest in runtime if kw == "HEALTHCHECK"]
    assert check.endswith('CMD ["flowcron-healthcheck"]')
    assert ("CMD", '["flowcron", "api"]') in runtime
    # The user is set after every instruction that needs root.
    keywords = [kw for kw, _ in runtime]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_every_copied_path_exists_and_passes_the_dockerignore() -> None:
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for keyword, rest in instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        *sources, _ = [part for part in rest.split() if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is filtered out of the context"


def test_no_setting_is_baked_in_but_the_listen_address_and_log_format() -> None:
    envs = " ".join(rest for kw, rest in instructions() if kw == "ENV")
    baked = set(re.findall(r"FLOWCRON_[A-Z_]+", envs))
    assert baked == {"FLOWCRON_LOG_FORMAT", "FLOWCRON_API_HOST"}
    assert baked <= {f"FLOWCRON_{n.upper()}" for n in Settings.model_fields}


def test_healthcheck_reads_the_service_from_pid_1(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/opt/flowcron/bin/python\0/opt/flowcron/bin/flowcron\0executor\0")
    assert healthcheck.service_of_pid1(cmdline) == "executor"
    cmdline.write_bytes(b"/sbin/tini\0--\0flowcron\0api\0")
    assert healthcheck.service_of_pid1(cmdline) == "api"
    assert healthcheck.service_of_pid1(tmp_path / "missing") is None


def test_healthcheck_reports_an_unreachable_server_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flowcron.embedded import free_port

    closed = free_port()
    settings = Settings(database_url=f"postgresql://u@127.0.0.1:{closed}/db", api_port=closed)
    assert healthcheck.check("migrate", settings) is None
    problem = healthcheck.check("executor", settings)
    assert problem is not None and problem.startswith(f"postgres 127.0.0.1:{closed}")
    assert healthcheck.check("api", settings) is not None
    assert healthcheck.main(["nonsense"]) == 1
    assert "unknown service" in capsys.readouterr().out
