"""deploy/kubernetes/: every manifest is valid against the Kubernetes schemas (offline,
strict: unknown fields fail), and the manifests agree with each other and with the hub:
its configuration loads, probes and metrics exist, the grace period covers the drain."""

from __future__ import annotations

import asyncio
import importlib
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from fastws.hub.config import load_config
from fastws.hub.metrics import METRICS
from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess
from tests.support.loops import run_async
from tests.support.paths import ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"


def validator():
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        pytest.fail(
            "kubernetes-validate is not installed; install it with: pip install -e '.[dev]'",
            pytrace=False,
        )


def manifests_by_name() -> dict[tuple[str, str], dict]:
    """Every resource of deploy/kubernetes/, by kind and name."""
    return {
        (doc["kind"], doc["metadata"]["name"]): doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
    }


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    kubernetes_validate = validator()
    resources = manifests_by_name()
    assert set(resources) == {
        ("ConfigMap", "fastws"), ("ConfigMap", "adapter-config"), ("Deployment", "fastws"),
        ("HorizontalPodAutoscaler", "fastws"), ("PodDisruptionBudget", "fastws"),
        ("Secret", "fastws"), ("Service", "fastws"),
    }  # fmt: skip
    for resource in resources.values():
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    service = resources[("Service", "fastws")]
    broken = {**service, "spec": {**service["spec"], "sessionAffinityTimeout": 10}}  # unknown
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_manifests_agree_with_each_other_and_with_the_hub(tmp_path: Path) -> None:
    resources = manifests_by_name()
    deployment = resources[("Deployment", "fastws")]
    secret = resources[("Secret", "fastws")]["stringData"]
    hub_toml = resources[("ConfigMap", "fastws")]["data"]["hub.toml"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    # The hub's configuration loads with the Secret's broker URL and key files.
    broker = next(e for e in container["env"] if e["name"] == "FASTWS_BROKER")
    assert broker["valueFrom"]["secretKeyRef"] == {"name": "fastws", "key": "broker-url"}
    text = hub_toml
    for key in ("jwt.secret", "api.key"):
        (tmp_path / key).write_text(secret[key])
        text = text.replace(f"/etc/fastws/secrets/{key}", str(tmp_path / key))
    (tmp_path / "hub.toml").write_text(text)
    config = load_config({}, {"FASTWS_BROKER": secret["broker-url"]}, str(tmp_path / "hub.toml"))
    assert config.broker.startswith("nats://")

    # Probes on the port that serves them: /ready and /health on the internal port.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"websocket": config.port, "internal": config.internal_port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "internal"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "internal"}
    service = resources[("Service", "fastws")]["spec"]
    assert [p["targetPort"] for p in service["ports"]] == ["websocket"]  # not the internal one
    assert service["selector"] == deployment["spec"]["template"]["metadata"]["labels"]

    # The preStop waits for the endpoints, signals the hub and waits for it to exit;
    # the grace period covers that wait, the shutdown and a margin.
    script = container["lifecycle"]["preStop"]["exec"]["command"][-1]
    delay = float(re.match(r"sleep (\d+(?:\.\d+)?); kill -TERM 1; while kill -0 1", script)[1])
    assert pod["terminationGracePeriodSeconds"] >= delay + config.shutdown_timeout + 10

    # The HPA scales on CPU and on a metric the hub exports, which the adapter serves.
    hpa = resources[("HorizontalPodAutoscaler", "fastws")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "fastws"
    kinds = {m["type"]: m for m in hpa["metrics"]}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    metric = kinds["Pods"]["pods"]["metric"]["name"]
    assert metric in METRICS
    rules = yaml.safe_load(resources[("ConfigMap", "adapter-config")]["data"]["config.yaml"])
    assert [rule["name"]["as"] for rule in rules["rules"]] == [metric]
    assert tomllib.loads(hub_toml)["internal_port"] == int(
        deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
    )


@run_async(loops=("uvloop",), timeout=60)
async def test_the_prestop_hook_drains_a_hub_as_sigterm_does() -> None:
    """The hook's script, run against a hub process (its pid in place of 1, no delay):
    the client is told to reconnect and closed with 1001, and the hook returns only
    once the hub has exited, with status 0."""
    deployment = manifests_by_name()[("Deployment", "fastws")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    *shell, script = container["lifecycle"]["preStop"]["exec"]["command"]
    async with HubProcess() as hub:
        client = await HubClient.open(hub.port)
        pid = str(hub.pid)
        script = re.sub(r"^sleep \d+;", "sleep 0;", script)
        script = script.replace("kill -TERM 1;", f"kill -TERM {pid};")
        script = script.replace("kill -0 1 ", f"kill -0 {pid} ")
        hook = await asyncio.create_subprocess_exec(*shell, script)
        (push,) = await client.pushes_of("disconnect", 1)
        assert push["code"] == 1001 and push["reconnect"] is True
        assert hook.returncode is None  # the hub waits for this client's close handshake
        assert (await client.closed())[0] == 1001
        assert await hub.exited() == 0  # reaped here: in a pod, PID 1 exiting ends it
        assert await asyncio.wait_for(hook.wait(), 30) == 0
