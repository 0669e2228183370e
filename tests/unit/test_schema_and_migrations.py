from __future__ import annotations

import json

import jsonschema
import msgspec
import pytest
from clickhouse_connect.driver.client import Client

from streams import PROJECT_ROOT
from streams.clickhouse.migrations import MigrationError, discover, migrate
from streams.models import CommentEvent, comment_event_schema

SCHEMA_FILE = PROJECT_ROOT / "schemas" / "events" / "comment.v1.json"


def test_event_json_schema_file_is_current() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == comment_event_schema(), "stale: run `streams schema --write`"


def test_example_payloads_validate_against_the_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    examples = sorted((PROJECT_ROOT / "schemas" / "events" / "examples").glob("comment.v1.*.json"))
    assert examples, "each schema keeps example payloads"
    for path in examples:
        payload = json.loads(path.read_text())
        jsonschema.validate(payload, schema)
        msgspec.json.decode(path.read_bytes(), type=CommentEvent)


def test_schema_rejects_what_the_decoder_rejects() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"event_id": "e"}, schema)


@pytest.mark.clickhouse
def test_migrations_apply_once_and_rerun_safely(ch: Client) -> None:
    # The fixture already migrated this database: a second run applies nothing and changes nothing.
    tables_before = ch.query("SHOW TABLES").result_rows
    assert migrate(ch) == []
    assert ch.query("SHOW TABLES").result_rows == tables_before
    applied = ch.query("SELECT version FROM schema_migrations FINAL ORDER BY version").result_rows
    assert [v for (v,) in applied] == [m.version for m in discover()]
    assert {"comments", "dead_letters"} <= {t for (t,) in tables_before}


@pytest.mark.clickhouse
def test_an_edited_applied_migration_is_refused(ch: Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for m in discover():
        (tmp_path / m.path.name).write_text(m.sql)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="forward-only"):
        migrate(ch, tmp_path)


@pytest.mark.clickhouse
def test_comments_table_is_idempotent_by_comment_identity(ch: Client) -> None:
    cols = ["thread_id", "comment_id", "author", "posted_at", "version", "body"]
    from datetime import UTC, datetime

    t = datetime(2018, 3, 20, 13, 30, tzinfo=UTC)
    ch.insert("comments", [["th", "c1", "a", t, 0, "v0"], ["th", "c1", "a", t, 0, "v0"]], column_names=cols)
    ch.insert("comments", [["th", "c1", "a", t, 1, "edited"], ["th", "c2", "b", t, 0, "x"]], column_names=cols)
    rows = ch.query("SELECT comment_id, body FROM comments FINAL ORDER BY comment_id").result_rows
    assert rows == [("c1", "edited"), ("c2", "x")]
