"""Column names of a query result, also when it has no rows.

clickhouse-connect returns an empty result without column names (the Native format sends no block
for zero rows), so `streams sql` would print no header at all: not even CSV's header line.
`DESCRIBE (query)` names the columns without running the query.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def result_columns(client: Any, sql: str, parameters: dict[str, Any] | None, result: Any) -> list[str]:
    """`result`'s column names; for an empty result without names, those `DESCRIBE` reports."""
    names = list(result.column_names)
    if names or result.result_rows:
        return names
    try:
        described = client.query(f"DESCRIBE ({sql})", parameters=parameters or {})
    except Exception as exc:  # e.g. SHOW ... cannot be described: print no header rather than fail
        log.debug("cannot describe %r: %s", sql, exc)
        return []
    return [str(row[0]) for row in described.result_rows]
