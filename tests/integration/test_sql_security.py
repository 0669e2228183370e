"""Ad-hoc SQL cannot write, read files, reach URLs or change settings: each bypass found in issue 11
runs against the real engine (directly, and through a running worker's /sql with a token)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import urllib3
from clickhouse_connect.driver.client import Client

from streams.clickhouse.limits import QueryLimits
from streams.clickhouse.readonly import ReadOnlyClient, StatementRefused
from tests.integration.harness import Pipeline

pytestmark = [pytest.mark.clickhouse]

TOKEN = "test-token-0123456789"


def bypasses(victim: Path, url: str) -> list[str]:
    """Every statement issue 11 saw run without --write."""
    return [
        f"WITH 1 AS y INSERT INTO FUNCTION file('{victim}','LineAsString') SELECT 'pwned' "
        "SETTINGS engine_file_truncate_on_insert=1",
        "WITH x AS (SELECT 1) INSERT INTO comments (comment_id) SELECT 'x'",
        "SELECT '--'; DROP TABLE comments",
        "SELECT '/*'; TRUNCATE TABLE comments; SELECT '*/'",
        "/* /* */ SELECT */ SET max_result_rows = 2; SELECT 1",
        "SELECT '--'; CREATE TABLE evil (a Int8) ENGINE = Memory",
        "SELECT '--'; ALTER TABLE comments DELETE WHERE 1",
        "SELECT '--'; SET max_result_rows = 2; SELECT 1",
        "SET max_result_rows = 2",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT 1 SETTINGS max_execution_time = 0",
        f"SELECT 1 INTO OUTFILE '{victim}.out'",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        f"SELECT * FROM url('{url}', 'LineAsString')",
        "SELECT * FROM executable('id', 'TSV', 'x String')",
        "SELECT * FROM remote('127.0.0.1', system.one)",
        "DROP TABLE comments",
    ]


@pytest.fixture
def internal_endpoint() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server standing in for an internal endpoint; it records every request."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"secret\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/health", hits
    server.shutdown()


def assert_nothing_changed(ch: Client, victim: Path, hits: list[str]) -> None:
    assert not victim.exists() and not Path(f"{victim}.out").exists()
    assert hits == []
    tables = {r[0] for r in ch.query("SHOW TABLES").result_rows}
    assert "comments" in tables and "evil" not in tables
    assert ch.query("SELECT count() FROM comments").result_rows[0][0] == 0


def test_every_bypass_is_refused_by_the_engine(
    ch: Client, ch_dsn: str, tmp_path: Path, internal_endpoint: tuple[str, list[str]]
) -> None:
    url, hits = internal_endpoint
    victim = tmp_path / "victim.txt"
    reader = ReadOnlyClient(ch_dsn, QueryLimits(max_result_rows=1000))
    for sql in bypasses(victim, url):
        with pytest.raises(Exception) as caught:
            reader.query(sql)
        assert isinstance(caught.value, StatementRefused) or "READONLY" in str(caught.value), sql
    assert_nothing_changed(ch, victim, hits)
    # The session's limits still hold after all that: a later query of anyone is unaffected.
    assert reader.query("SELECT number FROM system.numbers LIMIT 10").result_rows[-1] == (9,)
    with pytest.raises(Exception, match="max rows"):
        reader.query("SELECT number FROM system.numbers LIMIT 5000")


def test_reads_and_bound_parameters_work(ch: Client, ch_dsn: str) -> None:
    reader = ReadOnlyClient(ch_dsn)
    assert reader.query("SELECT {n:UInt8} + 1 AS x", {"n": 41}).result_rows == [(42,)]
    # A parameter is a value, never SQL: this compares a string, it does not run a DROP.
    result = reader.query("SELECT count() FROM comments WHERE author = {a:String}", {"a": "x'; DROP TABLE comments"})
    assert result.result_rows == [(0,)]
    assert "comments" in {r[0] for r in ch.query("SHOW TABLES").result_rows}


def test_slow_queries_stop_at_the_time_limit(ch_dsn: str) -> None:
    reader = ReadOnlyClient(ch_dsn, QueryLimits(timeout_seconds=1))
    with pytest.raises(Exception, match=r"TIMEOUT_EXCEEDED|Timeout exceeded"):
        reader.query("SELECT count() FROM system.numbers WHERE sipHash64(number) = 1")


# -- through a worker's /sql ------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path_factory.mktemp("guarded"), broker, STREAMS_API_TOKEN=TOKEN).start()
    yield p
    p.stop()


def post(
    p: Pipeline, body: bytes, *, token: str | None = TOKEN, content_type: str = "application/json"
) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = urllib3.request("POST", f"{p.settings.worker_url}/sql", body=body, headers=headers, timeout=30)
    try:
        payload = orjson.loads(response.data)
    except orjson.JSONDecodeError:
        payload = {"raw": response.data.decode(errors="replace")}
    return response.status, payload


@pytest.mark.kafka
def test_sql_endpoint_needs_the_token_and_json(guarded: Pipeline) -> None:
    body = orjson.dumps({"sql": "SELECT 1"})
    assert post(guarded, body)[0] == 200
    status, payload = post(guarded, body, token=None)
    assert status == 401 and "token" in str(payload["error"])
    assert post(guarded, body, token="wrong")[0] == 401
    # A browser's "simple request" (text/plain) is refused before anything runs.
    status, payload = post(guarded, orjson.dumps({"sql": "DROP TABLE comments"}), content_type="text/plain")
    assert status == 415
    for bad, reason in [(b"notjson", "not JSON"), (b"[1,2]", "object"), (b'{"sql":5}', "string")]:
        status, payload = post(guarded, bad)
        assert status == 400 and reason in str(payload["error"]), (bad, payload)
        assert "Traceback" not in str(payload)


@pytest.mark.kafka
def test_sql_endpoint_refuses_every_bypass(guarded: Pipeline, internal_endpoint: tuple[str, list[str]]) -> None:
    url, hits = internal_endpoint
    victim = guarded.workdir / "victim.txt"
    for sql in bypasses(victim, url):
        status, payload = post(guarded, orjson.dumps({"sql": sql}))
        assert status == 400, (sql, payload)
    assert not victim.exists() and hits == []
    assert guarded.scalar("SELECT count() FROM comments") == 0
    assert guarded.scalar("SELECT count() FROM system.tables WHERE name = 'comments'") == 1
    # No setting stuck in a shared session: a result over two rows still comes back.
    assert len(guarded.query("SELECT number FROM system.numbers LIMIT 5")) == 5


@pytest.mark.kafka
def test_faust_debug_pages_are_off(guarded: Pipeline) -> None:
    for path in ("/router/", "/table/", "/graph/", "/stats/"):
        response = urllib3.request("GET", f"{guarded.settings.worker_url}{path}", timeout=10)
        assert response.status == 404, path


@pytest.mark.kafka
def test_streams_sql_without_write_cannot_write_through_the_worker(guarded: Pipeline) -> None:
    done = guarded.cli("sql", "WITH x AS (SELECT 1) INSERT INTO comments (comment_id) SELECT 'x'")
    assert done.returncode != 0
    assert b"INSERT" in done.stderr and b"Traceback" not in done.stderr
    assert guarded.scalar("SELECT count() FROM comments") == 0


@pytest.mark.kafka
def test_a_worker_beyond_loopback_needs_a_token(broker: str, tmp_path: Path) -> None:
    p = Pipeline(tmp_path, broker, STREAMS_WEB_HOST="0.0.0.0")
    done = p.cli("worker")
    assert done.returncode != 0
    assert b"STREAMS_API_TOKEN" in done.stderr
