"""The compose stack cannot run here (no Docker engine); check that it agrees with the repository."""

from __future__ import annotations

import re

import yaml

from streams import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "deploy" / "compose"


def test_compose_mounts_exist_and_grafana_gets_every_datasource_variable() -> None:
    stack = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    services = stack["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE / source).resolve().exists(), f"{name} mounts missing {source}"
    text = (PROJECT_ROOT / "dashboards/provisioning/datasources/datasources.yaml").read_text()
    datasources = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    needed = set(re.findall(r"\$\{([A-Z_]+)\}", datasources))
    assert needed <= set(services["grafana"]["environment"]), needed - set(services["grafana"]["environment"])


def test_worker_service_uses_known_settings() -> None:
    from streams.settings import load_settings

    stack = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in stack["services"]["worker"]["environment"].items()}
    settings = load_settings(env)
    assert settings.clickhouse_dsn.startswith("http://")
    assert f"worker:{settings.web_port}" in (COMPOSE / "prometheus.yml").read_text()
