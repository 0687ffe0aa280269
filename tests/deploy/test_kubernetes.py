"""deploy/kubernetes: the manifests parse and say what the issue asks (no cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shared.messaging.topology import EXECUTORS_CONSUMER, Topology
from tests.deploy.composefile import ROOT

K8S = ROOT / "deploy" / "kubernetes"


def documents() -> list[dict[str, Any]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert isinstance(document, dict), path
            found.append(document)
    return found


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind and "metadata" in d}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_every_manifest_parses_with_the_kinds_expected() -> None:
    kinds = {(d["kind"], d.get("metadata", {}).get("name")) for d in documents()}
    assert kinds >= {
        ("Deployment", "flowcron-api"),
        ("Deployment", "flowcron-scheduler"),
        ("Deployment", "flowcron-executor"),
        ("Service", "flowcron-api"),
        ("ConfigMap", "flowcron-config"),
        ("Secret", "flowcron-secrets"),
        ("ScaledObject", "flowcron-executor"),
    }
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists(), resource
    assert "secret.example.yaml" not in kustomization["resources"]  # a template


def test_deployments_run_flowcron_commands_as_non_root_with_config_and_secret() -> None:
    deployments = by_kind("Deployment")
    assert deployments["flowcron-scheduler"]["spec"]["replicas"] == 2
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        main = container(deployment)
        assert main["command"] == ["flowcron", name.removeprefix("flowcron-")]
        (init,) = spec["initContainers"]
        assert init["command"] == ["flowcron", "migrate"]
        for each in (main, init):
            sources = {next(iter(s.values()))["name"] for s in each["envFrom"]}
            assert sources == {"flowcron-config", "flowcron-secrets"}
    grace = deployments["flowcron-executor"]["spec"]["template"]["spec"]
    config = by_kind("ConfigMap")["flowcron-config"]["data"]
    assert grace["terminationGracePeriodSeconds"] > float(config["FLOWCRON_EXECUTOR_DRAIN_S"])


def test_api_probes_healthz_and_readyz_behind_a_service() -> None:
    api = container(by_kind("Deployment")["flowcron-api"])
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e["value"] for e in api["env"]}
    assert env["FLOWCRON_API_HOST"] == "0.0.0.0"
    (port,) = api["ports"]
    assert port["containerPort"] == int(env["FLOWCRON_API_PORT"])
    service = by_kind("Service")["flowcron-api"]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "flowcron-api"}
    for worker in ("flowcron-scheduler", "flowcron-executor"):
        probe = container(by_kind("Deployment")[worker])["livenessProbe"]
        assert probe["exec"]["command"][0] == "flowcron-healthcheck"


def test_keda_scales_executors_on_the_executors_consumer() -> None:
    scaled = by_kind("ScaledObject")["flowcron-executor"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "flowcron-executor"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    meta = trigger["metadata"]
    namespace = by_kind("ConfigMap")["flowcron-config"]["data"]["FLOWCRON_NAMESPACE"]
    assert meta["stream"] == Topology(namespace).runs_stream == "FLOWCRON_RUNS"
    assert meta["consumer"] == EXECUTORS_CONSUMER == "executors"
    assert meta["natsServerMonitoringEndpoint"].endswith(":8222")
    assert all(isinstance(value, str) for value in meta.values())  # KEDA wants strings


def test_the_readme_names_the_operators() -> None:
    readme = (K8S / "README.md").read_text()
    for name in ("nats/nats", "CloudNativePG", "KEDA"):
        assert name in readme
    assert Path(K8S / "secret.example.yaml").exists()


def test_scheduler_and_executor_pods_serve_their_metrics_port() -> None:
    deployments = by_kind("Deployment")
    for name, setting in (
        ("flowcron-scheduler", "FLOWCRON_SCHEDULER_METRICS_PORT"),
        ("flowcron-executor", "FLOWCRON_EXECUTOR_METRICS_PORT"),
    ):
        template = deployments[name]["spec"]["template"]
        main = container(deployments[name])
        env = {e["name"]: e["value"] for e in main["env"]}
        (port,) = main["ports"]
        assert port["name"] == "metrics"
        assert port["containerPort"] == int(env[setting]) > 0
        assert template["metadata"]["annotations"]["prometheus.io/port"] == env[setting]
        assert env["FLOWCRON_API_HOST"] == "0.0.0.0"  # the pod's own address
