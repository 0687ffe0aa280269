"""docker-compose.yml and .env.example, checked without a Docker engine."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tomllib
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from flowcron.cli import _parser
from flowcron.embedded import EmbeddedNats
from shared.messaging.topology import Topology
from shared.settings import Settings
from tests.deploy import composefile
from tests.deploy.composefile import FLOWCRON_SERVICES, ROOT

SETTING_VARIABLE = re.compile(r"\bFLOWCRON_[A-Z0-9_]+")


def flowcron_commands() -> set[str]:
    actions = _parser()._subparsers._group_actions  # type: ignore[union-attr]  # argparse keeps them here
    (sub,) = [a for a in actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


# JetStream names that share the prefix (DESIGN "JetStream topology"), not settings.
STREAMS = {
    Topology("flowcron").runs_stream,
    Topology("flowcron").events_stream,
    Topology("flowcron").dlq_stream,
}


def setting_names() -> set[str]:
    return {f"FLOWCRON_{name.upper()}" for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return composefile.resolved()


def test_debian_docker_compose_validates_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI"):  # .ci/run installs it: its absence there is a failure
            pytest.fail("docker-compose is not installed on CI")
        pytest.skip("docker-compose not installed (.ci/run installs Debian's)")
    for args in ([], ["--profile", "tools"]):
        result = subprocess.run(
            [binary, "--env-file", str(composefile.ENV_EXAMPLE), *args, "config", "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    services = subprocess.run(
        [binary, "--profile", "tools", "config", "--services"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert set(services) == {*FLOWCRON_SERVICES, "nats", "postgres", "nats-box"}


def test_the_stack_has_its_services_with_their_roles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {*FLOWCRON_SERVICES, "nats", "postgres", "nats-box"}
    assert composefile.replicas(services["scheduler"]) == 2
    assert composefile.replicas(services["executor"]) == 3
    # `--scale executor=N` needs neither a fixed name nor a fixed host port.
    for name in ("executor", "scheduler"):
        assert "container_name" not in services[name]
        assert "ports" not in services[name]
    assert services["nats-box"]["profiles"] == ["tools"]
    assert services["nats-box"]["environment"]["NATS_URL"] == "nats://nats:4222"
    assert set(compose["volumes"]) == {"nats-data", "postgres-data"}


def test_nats_runs_jetstream_on_a_volume_with_monitoring(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    assert nats["image"].startswith("nats:")
    assert "-js" in nats["command"]
    assert "nats-data:/data" in nats["volumes"]
    assert any(str(port).endswith(":8222") for port in nats["ports"])
    assert "8222/healthz" in " ".join(nats["healthcheck"]["test"])


def test_the_nats_configuration_is_accepted_by_nats_server() -> None:
    config = ROOT / "deploy" / "nats" / "nats-server.conf"
    result = subprocess.run(
        [EmbeddedNats.binary(), "-c", str(config), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    assert 'store_dir: "/data"' in text
    assert "sync_interval" in text


def test_postgres_has_a_volume_a_healthcheck_and_migrate_waits_for_it(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    migrate = services["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    for name in ("api", "scheduler", "executor"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


async def test_postgres_command_options_are_real_parameters(
    compose: dict[str, Any], database_url: str
) -> None:
    command = compose["services"]["postgres"]["command"]
    options = [command[i + 1] for i, arg in enumerate(command) if arg == "-c"]
    assert options
    conn = await asyncpg.connect(database_url)
    try:
        for option in options:
            name = option.partition("=")[0]
            found = await conn.fetchval("SELECT count(*) FROM pg_settings WHERE name = $1", name)
            assert found == 1, f"postgres -c {option}: no such parameter"
    finally:
        await conn.close()


def test_every_service_command_is_a_flowcron_entry_point(compose: dict[str, Any]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["flowcron"] == "flowcron.cli:main"
    commands = flowcron_commands()
    expected = {"migrate": "migrate", "api": "api", "scheduler": "scheduler"}
    expected["executor"] = "executor"
    for name in FLOWCRON_SERVICES:
        service = compose["services"][name]
        program, command, *rest = service["command"]
        assert program == "flowcron", name
        assert command in commands, f"{name}: `flowcron {command}` does not exist"
        assert command == expected[name] and rest == []
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / service["build"]["context"] / "deploy" / "Dockerfile").exists()


def test_healthchecks_name_the_service_they_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("api", "scheduler", "executor"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "flowcron-healthcheck", name]
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_every_flowcron_variable_is_a_real_setting() -> None:
    known = setting_names()
    sources = [
        ROOT / "docker-compose.yml",
        ROOT / ".env.example",
        ROOT / "deploy" / "Dockerfile",
        *sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")),
    ]
    for source in sources:
        found = set(SETTING_VARIABLE.findall(source.read_text()))
        unknown = found - known - STREAMS
        assert not unknown, f"{source.name}: not settings: {sorted(unknown)}"
    assert set(composefile.dotenv()) & known  # .env.example documents some


def test_each_service_environment_builds_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in FLOWCRON_SERVICES:
        env = composefile.environment(compose["services"][name])
        assert urlsplit(env["FLOWCRON_DATABASE_URL"]).hostname == "postgres"
        assert urlsplit(env["FLOWCRON_NATS_URL"]).hostname == "nats"
        for key in setting_names():
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        Settings()  # raises on a bad value
    api = composefile.environment(compose["services"]["api"])
    assert api["FLOWCRON_API_HOST"] == "0.0.0.0"
    assert compose["services"]["api"]["ports"] == ["127.0.0.1:8080:8080"]


def test_env_example_documents_each_variable_and_compose_uses_them() -> None:
    text = composefile.ENV_EXAMPLE.read_text()
    compose_text = composefile.COMPOSE.read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            key = line.partition("=")[0]
            above = next(ln for ln in reversed(lines[:i]) if not re.match(r"^[A-Z_]+=", ln))
            assert above.startswith("#"), f".env.example: {key} has no comment above it"
            if key != "COMPOSE_PROJECT_NAME":  # read by Compose itself
                assert "${" + key in compose_text, f"{key} is documented but compose ignores it"


def test_no_secret_in_the_image_or_a_default_that_looks_real() -> None:
    lines = (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
    instructions = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    for word in ("PASSWORD", "SECRET", "DATABASE_URL", "API_KEY", "TOKEN"):
        assert word not in instructions.upper(), word
    assert composefile.dotenv()["POSTGRES_PASSWORD"] == "change-me"
