from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Pipeline, ensure_broker


@pytest.fixture(scope="session")
def broker() -> str:
    return ensure_broker()


@pytest.fixture(scope="module")
def pipeline(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """One running worker shared by a module's tests (a worker takes ~15 s to join its group)."""
    p = Pipeline(tmp_path_factory.mktemp("pipeline"), broker).start()
    yield p
    p.stop()


@pytest.fixture
def fresh_pipeline(broker: str, tmp_path: Path) -> Iterator[Pipeline]:
    """A worker of the test's own, for tests that crash or restart it."""
    p = Pipeline(tmp_path, broker)
    yield p
    p.stop()
