"""POST /v1/comments through a real `streams ingest-api` process, broker, worker and ClickHouse.

Responses are checked against the OpenAPI document (schemas/openapi/ingest.yaml)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from streams import PROJECT_ROOT
from tests.integration.harness import Pipeline, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

TOKEN = "ingest-test-token"
SPEC = yaml.safe_load((PROJECT_ROOT / "schemas" / "openapi" / "ingest.yaml").read_text())
EVENT_SCHEMA = json.loads((PROJECT_ROOT / "schemas" / "events" / "comment.v2.json").read_text())


def _response_schema(status: int) -> dict[str, Any]:
    response = SPEC["paths"]["/v1/comments"]["post"]["responses"][str(status)]
    ref = response["content"]["application/json"]["schema"]["$ref"]
    return dict(SPEC["components"]["schemas"][ref.rsplit("/", 1)[-1]])


def _event(n: int, **over: object) -> dict[str, object]:
    event: dict[str, object] = {
        "schema_version": 2,
        "event_id": f"e-api-{n}",
        "source": "api",
        "thread_id": "api-thread",
        "comment_id": f"c-api-{n}",
        "author": f"writer{n}",
        "posted_at": "2024-03-01T12:00:00Z",
        "body": f"live comment {n}",
        "source_state": "visible",
    }
    event.update(over)
    jsonschema.validate(event, EVENT_SCHEMA)  # what we send is what the document promises to take
    return event


def _start(env: dict[str, str], port: int, tmp: Path) -> subprocess.Popen[bytes]:
    log = (tmp / f"api-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "ingest-api", "--port", str(port), "--max-body-bytes", "4096"],
        env={**env, "STREAMS_API_TOKEN": TOKEN},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError((tmp / f"api-{port}.log").read_text())


@pytest.fixture(scope="module")
def api(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = _start(pipeline.env, port, tmp_path_factory.mktemp("api"))
    yield f"http://127.0.0.1:{port}/v1/comments"
    proc.terminate()
    proc.wait(timeout=30)


def post(
    url: str, body: bytes, content_type: str = "application/json", token: str | None = TOKEN
) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


def test_one_event_an_array_and_json_lines_land(api: str, pipeline: Pipeline) -> None:
    status, _, body = post(api, json.dumps(_event(1)).encode())
    assert status == 202 and body == {"accepted": 1, "rejected": 0, "errors": []}
    jsonschema.validate(body, _response_schema(202))
    status, _, body = post(api, json.dumps([_event(2), _event(3, source_state="spam")]).encode())
    assert (status, body["accepted"]) == (202, 2)
    lines = b"\n".join(
        [json.dumps(_event(4)).encode(), b"{broken", json.dumps({**_event(5), "posted_at": "naive"}).encode()]
    )
    status, _, body = post(api, lines, "application/x-ndjson")
    jsonschema.validate(body, _response_schema(202))
    assert status == 202 and body["accepted"] == 1 and body["rejected"] == 2
    assert [(e["line"], e["reason_code"]) for e in body["errors"]] == [(2, "not_json"), (3, "schema")]
    pipeline.wait_until("SELECT count() FROM comments FINAL WHERE thread_id = 'api-thread'", lambda n: n == 4)
    state = pipeline.scalar("SELECT source_state FROM comments FINAL WHERE comment_id = 'c-api-3'")
    assert state == "spam"


def test_auth_content_type_and_size_are_enforced(api: str) -> None:
    one = json.dumps(_event(9)).encode()
    for token in (None, "wrong"):
        status, headers, body = post(api, one, token=token)
        assert status == 401 and headers.get("WWW-Authenticate") == "Bearer"
        jsonschema.validate(body, _response_schema(401))
    status, _, body = post(api, one, "text/plain")
    assert status == 415
    jsonschema.validate(body, _response_schema(415))
    status, _, body = post(api, b"[" + b",".join([one] * 20) + b"]")
    assert status == 413
    jsonschema.validate(body, _response_schema(413))


def test_an_unreachable_broker_is_503_with_retry_after(pipeline: Pipeline, tmp_path: Path) -> None:
    port = free_port()
    env = {**pipeline.env, "STREAMS_BROKER": f"127.0.0.1:{free_port()}"}
    proc = _start(env, port, tmp_path)
    try:
        status, headers, body = post(f"http://127.0.0.1:{port}/v1/comments", json.dumps(_event(10)).encode())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert status == 503 and int(headers["Retry-After"]) > 0
    jsonschema.validate(body, _response_schema(503))
    documented = SPEC["paths"]["/v1/comments"]["post"]["responses"]
    assert set(documented) == {"202", "401", "413", "415", "503"}
