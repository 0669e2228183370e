"""The plan of `streams worker --processes N` (roles, ports, data dirs) and its restart delays."""

from __future__ import annotations

import pytest

from streams.settings import SettingsError, load_settings
from streams.supervisor import MAX_RESTART_DELAY, PlanError, plan_processes, restart_delay


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load_settings({"STREAMS_WEB_PORT": "7000", "STREAMS_DATA_DIR": "/d", **env})


def test_embedded_database_gets_one_sink_process_on_the_base_port() -> None:
    plan = plan_processes(settings(STREAMS_CLICKHOUSE_DSN="chdb:///tmp/x", STREAMS_PARTITIONS="4"), 3)
    assert [(c.index, c.role, c.web_port, c.data_dir) for c in plan] == [
        (0, "sink", 7000, "/d/sink"),
        (1, "processing", 7001, "/d/process-1"),
        (2, "processing", 7002, "/d/process-2"),
        (3, "processing", 7003, "/d/process-3"),
    ]
    env = plan[1].environ({"STREAMS_WEB_PORT": "7000", "OTHER": "x"})
    assert env["STREAMS_WORKER_ROLE"] == "processing" and env["STREAMS_WEB_PORT"] == "7001" and env["OTHER"] == "x"


def test_server_dsn_runs_every_agent_in_every_process() -> None:
    plan = plan_processes(settings(STREAMS_CLICKHOUSE_DSN="http://ch:8123/db"), 2)
    assert [(c.role, c.web_port) for c in plan] == [("all", 7000), ("all", 7001)]


def test_more_processes_than_partitions_is_refused_with_the_reason() -> None:
    with pytest.raises(PlanError, match=r"more than the 4 partitions.*1 process\(es\) would sit idle"):
        plan_processes(settings(STREAMS_PARTITIONS="4"), 5)
    with pytest.raises(PlanError, match="STREAMS_WORKER_ROLE"):
        plan_processes(settings(STREAMS_WORKER_ROLE="sink"), 2)


def test_roles_and_app_ids() -> None:
    sink = settings(STREAMS_WORKER_ROLE="sink", STREAMS_TOPIC_PREFIX="p.")
    processing = settings(STREAMS_WORKER_ROLE="processing", STREAMS_TOPIC_PREFIX="p.")
    assert (sink.runs_sink, sink.runs_processing, sink.faust_app_id) == (True, False, "p.comment-streams-sink")
    assert (processing.runs_sink, processing.runs_processing) == (False, True)
    assert processing.faust_app_id == settings(STREAMS_TOPIC_PREFIX="p.").faust_app_id == "p.comment-streams"
    with pytest.raises(SettingsError, match="WORKER_ROLE"):
        settings(STREAMS_WORKER_ROLE="both")


def test_restart_delay_doubles_up_to_a_cap() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert restart_delay(50) == MAX_RESTART_DELAY


def test_the_second_stage_runs_in_a_process_and_consumer_group_of_its_own() -> None:
    alone = plan_processes(settings(STREAMS_CLICKHOUSE_DSN="chdb:///tmp/x"), 1, second_stage=True)
    assert [(c.role, c.web_port, c.data_dir) for c in alone] == [
        ("all", 7000, "/d"),
        ("second-stage", 7001, "/d/second-stage"),
    ]
    two = plan_processes(settings(STREAMS_CLICKHOUSE_DSN="chdb:///tmp/x", STREAMS_PARTITIONS="4"), 2, second_stage=True)
    assert [c.role for c in two] == ["sink", "processing", "processing", "second-stage"]
    assert two[-1].web_port == 7003
    role = settings(STREAMS_WORKER_ROLE="second-stage", STREAMS_TOPIC_PREFIX="p.")
    assert (role.runs_second_stage, role.runs_processing, role.runs_sink) == (True, False, False)
    assert role.faust_app_id == "p.comment-streams-second-stage"
