"""`streams demo` starts its broker where its worker will look for one (STREAMS_BROKER's port), also
when KAFKA_PORT says otherwise; the Makefile passes KAFKA_PORT on as STREAMS_BROKER."""

from __future__ import annotations

import re
from pathlib import Path

from streams.demo import kafka_script_env
from streams.settings import load_settings

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"
BROKER_FROM_KAFKA_PORT = "STREAMS_BROKER=$${STREAMS_BROKER:-127.0.0.1:$(KAFKA_PORT)} "


def test_the_demo_broker_listens_where_the_worker_connects() -> None:
    settings = load_settings({"STREAMS_BROKER": "127.0.0.1:9792"})
    env = kafka_script_env(settings, {"KAFKA_PORT": "9092", "PATH": "/bin"})
    assert env == {"KAFKA_PORT": "9792", "PATH": "/bin"}
    assert kafka_script_env(load_settings({}), {})["KAFKA_PORT"] == "9092"


def test_make_demo_and_run_point_the_worker_at_kafka_port() -> None:
    text = MAKEFILE.read_text()
    for target, command in (("demo", "streams demo"), ("run", "streams demo --keep-running")):
        recipe = re.search(rf"^{target}:.*\n\t(.*)$", text, re.MULTILINE)
        assert recipe is not None, target
        assert recipe.group(1).startswith(BROKER_FROM_KAFKA_PORT), recipe.group(1)
        assert recipe.group(1).endswith(command)
