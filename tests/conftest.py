"""Shared fixtures.

chdb binds one embedded ClickHouse directory per process, so the whole pytest process shares one
directory and each test that needs a database gets its own (`?database=`), migrated from scratch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from streams.clickhouse.client import connect
from streams.clickhouse.migrations import migrate


@pytest.fixture(scope="session")
def chdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def ch_dsn(chdb_root: Path) -> str:
    """A DSN naming a fresh, migrated database inside the session's embedded ClickHouse."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    migrate(connect(f"chdb://{chdb_root}?database={database}"))
    return f"chdb://{chdb_root}?database={database}"


@pytest.fixture
def ch(ch_dsn: str) -> Iterator[Client]:
    client = connect(ch_dsn)
    yield client
    client.close()
