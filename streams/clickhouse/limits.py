"""Limits of ad-hoc queries (a module of its own: settings and the read-only client both need it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QueryLimits:
    timeout_seconds: float = 30.0
    max_result_rows: int = 100_000
    max_result_bytes: int = 256 * 1024 * 1024
    #: Ad-hoc queries leave cores to ingestion.
    max_threads: int = 1

    def settings(self) -> dict[str, Any]:
        """Session settings, in order: the limits first, then `readonly`, which freezes them."""
        return {
            "max_execution_time": self.timeout_seconds,
            "max_result_rows": self.max_result_rows,
            "max_result_bytes": self.max_result_bytes,
            "result_overflow_mode": "throw",
            "max_threads": self.max_threads,
            "readonly": 1,
        }
