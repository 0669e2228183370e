"""The friendly check on the engine's canonical statement (the engine's readonly mode is the guard:
tests/integration/test_sql_security.py)."""

from __future__ import annotations

import pytest

from streams.clickhouse.readonly import StatementRefused, check_canonical, first_line


@pytest.mark.parametrize(
    "canonical",
    [
        "SELECT 1",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SHOW TABLES",
        "DESCRIBE TABLE comments",
        "SELECT 'drop table x; insert into outfile' AS s",
        "EXPLAIN SELECT 1",
        "SELECT `INTO OUTFILE` FROM t",
    ],
)
def test_reads_pass(canonical: str) -> None:
    assert check_canonical(canonical) == canonical


@pytest.mark.parametrize(
    ("canonical", "why"),
    [
        ("INSERT INTO comments WITH 1 AS y SELECT 1", "INSERT"),
        ("DROP TABLE comments", "DROP"),
        ("SET max_result_rows = 2", "SET"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
        ("", "empty"),
    ],
)
def test_writes_are_refused_with_a_reason(canonical: str, why: str) -> None:
    with pytest.raises(StatementRefused, match=why):
        check_canonical(canonical)


def test_engine_errors_become_one_line() -> None:
    exc = RuntimeError(
        "Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'readonly' setting in readonly mode. "
        "(READONLY)\nstack trace line"
    )
    assert first_line(exc) == "Cannot modify 'readonly' setting in readonly mode. (READONLY)"
