"""Schema v2 (source_state, source_kind): generated files are fresh, v1 events still validate."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import msgspec
import pytest

from streams import PROJECT_ROOT
from streams.clickhouse.rows import COMMENT_COLUMNS
from streams.ingest import validate
from streams.models import SCHEMA_VERSIONS, CommentEvent, comment_event_schema

EVENTS = PROJECT_ROOT / "schemas" / "events"


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_schema_version_file_is_current(version: int) -> None:
    committed = json.loads((EVENTS / f"comment.v{version}.json").read_text())
    assert committed == comment_event_schema(version), "stale: run `streams schema --write`"


def test_v1_examples_validate_against_v2_and_pass_ingest() -> None:
    v2 = json.loads((EVENTS / "comment.v2.json").read_text())
    examples = sorted((EVENTS / "examples").glob("comment.v1.*.json"))
    assert examples
    for path in examples:
        jsonschema.validate(json.loads(path.read_text()), v2)
        accepted = validate(path.read_bytes(), now=datetime(2030, 1, 1, tzinfo=UTC))
        assert isinstance(accepted, CommentEvent), (path, accepted)
        assert accepted.schema_version == 1 and accepted.source_state is None


def test_v2_examples_validate_and_v1_refuses_them() -> None:
    v1 = json.loads((EVENTS / "comment.v1.json").read_text())
    v2 = json.loads((EVENTS / "comment.v2.json").read_text())
    examples = sorted((EVENTS / "examples").glob("comment.v2.*.json"))
    assert len(examples) >= 2
    for path in examples:
        payload = json.loads(path.read_text())
        jsonschema.validate(payload, v2)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(payload, v1)
        event = msgspec.json.decode(path.read_bytes(), type=CommentEvent)
        assert event.source_state is not None


def test_an_unknown_source_state_is_refused_by_schema_and_decoder() -> None:
    payload = json.loads((EVENTS / "examples" / "comment.v2.spam.json").read_text())
    payload["source_state"] = "sort-of-spam"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(payload, json.loads((EVENTS / "comment.v2.json").read_text()))
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(json.dumps(payload), type=CommentEvent)


def test_comment_rows_carry_the_source_state() -> None:
    assert COMMENT_COLUMNS[-3:-1] == ("source_state", "source_kind")
    migration = (PROJECT_ROOT / "schemas" / "clickhouse" / "0006_source_state.sql").read_text()
    assert "source_state" in migration and "source_kind" in migration
