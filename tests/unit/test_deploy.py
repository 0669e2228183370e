"""The compose stack cannot run here (no Docker engine): check it against the Compose specification's
JSON Schema and against the repository (settings, ports, services the workers need, pinned images).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from streams import PROJECT_ROOT
from streams.settings import describe_settings, load_settings

COMPOSE = PROJECT_ROOT / "deploy" / "compose"
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
STATEFUL = {"kafka": "/var/lib/kafka/data", "clickhouse": "/var/lib/clickhouse", "prometheus": "/prometheus"}


def env_example() -> dict[str, str]:
    values = {}
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name in env and (env[name] != "" or op not in (":-", ":?")):
            return env[name]
        if op in (":-", "-"):
            return str(arg)
        raise AssertionError(f"${{{name}}} is unset and has no default ({arg or 'no message'})")

    return _VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


def compose_variables() -> set[str]:
    """${VAR} references, and the variables secrets are read from."""
    text = (COMPOSE / "docker-compose.yml").read_text()
    secrets = yaml.safe_load(text).get("secrets", {})
    from_secrets = {s["environment"] for s in secrets.values() if "environment" in s}
    return {m["name"] for m in _VARIABLE.finditer(text)} | from_secrets


def load_stack(env: dict[str, str] | None = None) -> dict[str, Any]:
    text = interpolate((COMPOSE / "docker-compose.yml").read_text(), env_example() if env is None else env)
    stack = yaml.safe_load(text)
    assert isinstance(stack, dict)
    return stack


def compose_schema() -> dict[str, Any]:
    # The Compose specification's schema, as vendored (with its licence) by check-jsonschema; read
    # as a file, without importing that package (and its CLI dependencies).
    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None and spec.submodule_search_locations, "pip install check-jsonschema (dev extras)"
    package = Path(next(iter(spec.submodule_search_locations)))
    schema = json.loads((package / "builtin_schemas" / "vendor" / "compose-spec.json").read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def schema_errors(stack: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(stack)]


def published(port: str | dict[str, Any]) -> tuple[str, str, str]:
    """(host ip, host port or range, container port) of a short or long port entry."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port.get("published", "")), str(port["target"])
    parts = str(port).rsplit(":", 2)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return "", parts[0] if len(parts) == 2 else "", parts[-1]


# -- the Compose specification ---------------------------------------------------------------


def test_the_stack_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(load_stack()) == []


def test_the_schema_check_rejects_what_compose_would() -> None:
    stack = load_stack()
    broken = copy.deepcopy(stack)
    broken["services"]["worker"]["healthcheck"]["intervall"] = "10s"  # a typo'd key
    assert any("intervall" in e for e in schema_errors(broken))
    broken = copy.deepcopy(stack)
    broken["services"]["worker"]["depends_on"]["kafka"]["condition"] = "service_ready"  # not in the enum
    assert any("service_ready" in e for e in schema_errors(broken))
    broken = copy.deepcopy(stack)
    broken["volumes"]["kafka-data"] = {"driver_opts": "not a mapping"}
    assert schema_errors(broken)


def test_required_variables_fail_loudly_when_unset() -> None:
    env = env_example()
    del env["CLICKHOUSE_PASSWORD"]
    with pytest.raises(AssertionError, match="CLICKHOUSE_PASSWORD"):
        load_stack(env)


def test_env_example_lists_exactly_the_variables_the_stack_uses() -> None:
    assert compose_variables() == set(env_example())


# -- our own checks --------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_version() -> None:
    stack = load_stack()
    images = {name: s.get("image", "") for name, s in stack["services"].items()}
    for name, image in images.items():
        assert image, f"{name} has no image (services that build name the image they make)"
        _, _, tag = image.rpartition(":")
        assert re.match(r"^v?\d+(\.\d+)+", tag), f"{name}: {image} is not pinned to a version"
    base = re.search(r"^FROM\s+(\S+)", (COMPOSE / "Dockerfile").read_text(), re.M)
    assert base and re.search(r":\d+\.\d+\.\d+", base[1]), "the worker image's base is not pinned"
    plugins = stack["services"]["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    assert re.fullmatch(r"grafana-clickhouse-datasource \d+\.\d+\.\d+", plugins)


def test_every_long_running_service_has_a_healthcheck_and_state_on_named_volumes() -> None:
    stack = load_stack()
    services = stack["services"]
    declared = set(stack["volumes"])
    for name, service in services.items():
        if service.get("restart") == "no":
            continue  # one-shot (migrate)
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE / source).resolve().exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"
    for name, path in {**STATEFUL, "grafana": "/var/lib/grafana"}.items():
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert mounts.get(path) in declared, f"{name} keeps {path} on no named volume"


def test_the_workers_have_every_service_they_need_and_start_after_the_schema() -> None:
    stack = load_stack()
    services = stack["services"]
    worker = services["worker"]
    settings = load_settings({k: str(v) for k, v in worker["environment"].items()})
    broker_host = settings.bootstrap_servers[0].rsplit(":", 1)[0]
    clickhouse_host = re.match(r"https?://(?:[^@/]*@)?([^:/]+)", settings.clickhouse_dsn)
    assert broker_host in services and clickhouse_host and clickhouse_host[1] in services
    assert worker["depends_on"][broker_host]["condition"] == "service_healthy"
    assert worker["depends_on"][clickhouse_host[1]]["condition"] == "service_healthy"
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    migrate = services["migrate"]
    assert migrate["command"] == ["streams", "migrate"] and migrate["environment"] == worker["environment"]
    assert migrate["image"] == worker["image"] and "build" in migrate
    assert worker["deploy"]["replicas"] >= 2
    for needed in ("kafka", "clickhouse", "prometheus", "grafana"):
        assert needed in services


def test_worker_settings_ports_and_token_match_the_settings_table() -> None:
    stack = load_stack()
    worker = stack["services"]["worker"]
    env = {k: str(v) for k, v in worker["environment"].items()}
    known = {var for var, _, _ in describe_settings()}
    assert {k for k in env if k.startswith("STREAMS_")} <= known
    settings = load_settings(env)
    assert settings.clickhouse_dsn.startswith("http://")
    # The port the worker listens on is the one published (on loopback only) and scraped.
    ports = [published(p) for p in worker["ports"]]
    assert ports and all(ip == "127.0.0.1" and target == str(settings.web_port) for ip, _, target in ports)
    first, _, last = ports[0][1].partition("-")
    assert int(last or first) - int(first) + 1 >= worker["deploy"]["replicas"], "one host port per replica"
    healthcheck = " ".join(worker["healthcheck"]["test"])
    assert f":{settings.web_port}/health" in healthcheck
    # Bound beyond loopback, the worker requires the token: it comes from a Compose secret.
    assert settings.web_host == "0.0.0.0" and not settings.api_token
    secret = settings.api_token_file.removeprefix("/run/secrets/")
    assert secret in worker["secrets"] and secret in stack["secrets"]
    assert stack["secrets"][secret]["environment"] == "STREAMS_API_TOKEN"


def test_prometheus_scrapes_every_worker_replica() -> None:
    stack = load_stack()
    port = load_settings({k: str(v) for k, v in stack["services"]["worker"]["environment"].items()}).web_port
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    # DNS discovery of the service name yields one target per replica (`--scale worker=N` included).
    assert discovery["names"] == ["worker"] and discovery["type"] == "A" and discovery["port"] == port
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_every_published_port_binds_to_loopback() -> None:
    for name, service in load_stack()["services"].items():
        for port in service.get("ports", []):
            assert published(port)[0] == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_grafana_gets_every_datasource_variable_and_the_provisioning() -> None:
    grafana = load_stack()["services"]["grafana"]
    text = (PROJECT_ROOT / "dashboards/provisioning/datasources/datasources.yaml").read_text()
    datasources = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    needed = set(re.findall(r"\$\{([A-Z_]+)\}", datasources))
    assert needed <= set(grafana["environment"]), needed - set(grafana["environment"])
    targets = {v.split(":")[1] for v in grafana["volumes"]}
    assert {"/etc/grafana/provisioning/datasources", "/etc/grafana/provisioning/dashboards"} <= targets
    provider = yaml.safe_load((PROJECT_ROOT / "dashboards/provisioning/dashboards/dashboards.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] in targets
