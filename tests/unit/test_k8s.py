"""Every rendered Kubernetes manifest, validated offline against the Kubernetes API schemas
(kubernetes-validate, strict: unknown fields fail), plus our own checks against the settings."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streams import PROJECT_ROOT
from streams.settings import Settings, describe_settings, load_settings
from tests.k8s_render import Doc, RenderError, render

K8S = PROJECT_ROOT / "deploy" / "k8s"
OVERLAYS = ["local", "production"]
KUBERNETES_VERSION = "1.33.0"
#: Made out of band in production (the overlay's comment says how); its keys are checked below.
EXTERNAL_SECRET = "comment-streams-secrets"
SECRET_KEYS = {"api-token", "clickhouse-dsn", "kafka-sasl-password", "ca.crt"}
FILE_SETTINGS = re.compile(r"^STREAMS_\w+_(FILE|CAFILE|CERTFILE|KEYFILE)$")


def rendered(overlay: str) -> list[Doc]:
    return render(K8S / "overlays" / overlay)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {})
    if "template" not in spec:
        return []
    pod = spec["template"]["spec"]
    return list(pod.get("containers", [])) + list(pod.get("initContainers", []))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(overlay: str) -> None:
    docs = rendered(overlay)
    assert len(docs) >= 6
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_typo() -> None:
    worker = find(rendered("local"), "Deployment", "comment-streams-worker")
    typo = copy.deepcopy(worker)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/health", "port": 1}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=True)
    missing = copy.deepcopy(worker)
    del missing["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError, match="selector"):
        kubernetes_validate.validate(missing, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_offline_renderer_agrees_with_kustomize(overlay: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout

    def key(doc: Doc) -> tuple[str, str, str]:
        return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]

    expected = sorted((d for d in yaml.safe_load_all(out) if d), key=key)
    assert sorted(rendered(overlay), key=key) == expected


def test_the_renderer_refuses_fields_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: [{name: x}]\n")
    with pytest.raises(RenderError, match="configMapGenerator"):
        render(tmp_path)


def mounted_files(doc: Doc, container: Doc) -> set[str]:
    """Paths of the Secret items a container sees."""
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"].get("volumes", [])}
    paths = set()
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        for item in secret["items"] if secret else []:
            paths.add(f"{mount['mountPath']}/{item['path']}")
    return paths


def container_settings(docs: list[Doc], doc: Doc, container: Doc, tmp_path: Path) -> Settings:
    """The settings the container would load; every file it names must be mounted from the Secret."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "<from the Secret>")
    files = mounted_files(doc, container)
    for name, value in env.items():
        if FILE_SETTINGS.match(name):
            assert value in files, f"{container['name']}: {name}={value} is not mounted ({sorted(files)})"
            stand_in = tmp_path / value.strip("/").replace("/", "_")
            stand_in.write_text("stand-in\n")
            env[name] = str(stand_in)
    # The DSN is a secret value: a placeholder of the right shape (https when a CA bundle is given).
    scheme = "https" if env.get("STREAMS_CLICKHOUSE_CA_FILE") else "http"
    env["STREAMS_CLICKHOUSE_DSN"] = f"{scheme}://streams@clickhouse:8123/streams"
    return load_settings(env)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_and_the_job_match_the_settings_table(overlay: str, tmp_path: Path) -> None:
    docs = rendered(overlay)
    worker = find(docs, "Deployment", "comment-streams-worker")
    (container,) = containers(worker)
    known = {var for var, _, _ in describe_settings()}
    config = find(docs, "ConfigMap", "comment-streams-config")["data"]
    assert set(config) <= known, set(config) - known
    job = find(docs, "Job", "comment-streams-migrate")
    container_settings(docs, job, containers(job)[0], tmp_path)
    settings = container_settings(docs, worker, container, tmp_path)
    assert container["command"] == ["streams", "worker"]
    (http,) = container["ports"]
    assert http["containerPort"] == settings.web_port and settings.web_host == "0.0.0.0"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": http["name"]}, probe
    # Replicas tied to partitions: none idle, and every worker gets the same share.
    replicas = worker["spec"]["replicas"]
    assert 2 <= replicas <= settings.partitions and settings.partitions % replicas == 0
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(settings.web_port)
    # Bound beyond loopback, the worker requires the API token: a file (mounted from the Secret, as
    # container_settings checked for every *_FILE setting).
    assert settings.api_token_file and not settings.api_token
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert settings.data_dir.startswith(mounts["data"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_pdb_and_job_fit_the_workers(overlay: str) -> None:
    docs = rendered(overlay)
    worker = find(docs, "Deployment", "comment-streams-worker")
    pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    selector = worker["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = find(docs, "Service", "comment-streams-worker")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == containers(worker)[0]["ports"][0]["name"]
    pdb = find(docs, "PodDisruptionBudget", "comment-streams-worker")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] < worker["spec"]["replicas"]
    job = find(docs, "Job", "comment-streams-migrate")
    (migrate,) = containers(job)
    assert migrate["command"] == ["streams", "migrate"] and migrate["image"] == containers(worker)[0]["image"]
    assert migrate["envFrom"] == containers(worker)[0]["envFrom"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_pinned_bounded_and_refers_to_what_exists(overlay: str) -> None:
    docs = rendered(overlay)
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert len(namespaces) == 1 and namespaces <= {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    referenced_secret_keys: set[tuple[str, str]] = set()
    for doc in docs:
        for container in containers(doc):
            name = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            tag = container["image"].rpartition(":")[2]
            assert tag[:1].isdigit() and tag != "latest", f"{name}: {container['image']} is not pinned"
            resources: dict[str, Any] = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{name} has no requests"
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), f"{name} has no limits"
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced_secret_keys.add((ref["name"], ref["key"]))
        for volume in doc.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []):
            if "secret" in volume:
                for item in volume["secret"]["items"]:
                    referenced_secret_keys.add((volume["secret"]["secretName"], item["key"]))
    for secret_name, key in referenced_secret_keys:
        if secret_name in secrets:
            assert key in secrets[secret_name]["stringData"], (secret_name, key)
        else:
            assert overlay == "production" and secret_name == EXTERNAL_SECRET and key in SECRET_KEYS
    if overlay == "production":
        assert not secrets, "production Secrets are made out of band, never committed"
        text = (K8S / "overlays" / "production" / "kustomization.yaml").read_text()
        assert all(f"--from-file={key}=" in text for key in SECRET_KEYS), "the overlay documents every key"


def test_production_is_secured_and_uses_the_clickhouse_cluster_schema() -> None:
    docs = rendered("production")
    config = find(docs, "ConfigMap", "comment-streams-config")["data"]
    assert config["STREAMS_CLICKHOUSE_CLUSTER"]
    assert len(config["STREAMS_BROKER"].split(",")) >= 3
    assert config["STREAMS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["STREAMS_KAFKA_SASL_MECHANISM"].startswith("SCRAM-")
    assert config["STREAMS_CLICKHOUSE_CA_FILE"] and config["STREAMS_KAFKA_SSL_CAFILE"]
    assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in config), "passwords belong in the Secret"
