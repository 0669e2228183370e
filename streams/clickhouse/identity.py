"""Which database a DSN names, in a form without secrets, so a worker and a client can compare.

`streams sql` asks the worker that answers on STREAMS_WEB_PORT; if that worker serves another
database than the client's STREAMS_CLICKHOUSE_DSN, the answer would silently come from the wrong
data. The worker's /health reports :func:`database_id` of its DSN and the client compares it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlparse

from streams.clickhouse.client import embedded_database, embedded_path, is_embedded


def database_name(dsn: str) -> str:
    """The DSN without credentials or options: chdb:///abs/dir?database=db or scheme://host:port/db."""
    if is_embedded(dsn):
        path = Path(embedded_path(dsn)).expanduser().resolve()
        return f"chdb://{path}?database={embedded_database(dsn)}"
    parsed = urlparse(dsn)
    port = parsed.port or (8443 if parsed.scheme == "https" else 8123)
    database = parsed.path.strip("/") or "default"
    return f"{parsed.scheme}://{(parsed.hostname or '').lower()}:{port}/{database}"


def database_id(dsn: str) -> str:
    """16 hex of sha256 over :func:`database_name`: equal for DSNs naming the same database."""
    return hashlib.sha256(database_name(dsn).encode("utf-8")).hexdigest()[:16]
