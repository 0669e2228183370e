"""Fault injection for the crash tests: ``STREAMS_FAULT_INJECT="enrich:2,windows:1"`` makes the named
agent raise once, in its N-th batch, after it sent that batch's outputs and before it persisted its
state (the worst moment: a replay must neither lose nor double-count anything). The name ``fetch``
instead makes the consumer drop its N-th fetched batch of agents' input records undelivered, as
Faust does with a batch it breaks off (streams/kafka_consumer.py). Unset in production.
"""

from __future__ import annotations


class InjectedFault(RuntimeError):
    """Raised where STREAMS_FAULT_INJECT asks for it."""


def parse_plan(text: str) -> dict[str, int]:
    """``"enrich:2,windows:1"`` -> ``{"enrich": 2, "windows": 1}`` (batch numbers start at 1)."""
    plan: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        agent, _, batch = part.partition(":")
        if not agent or not batch.isdigit() or int(batch) < 1:
            raise ValueError(f"STREAMS_FAULT_INJECT entry {part!r}: expected agent:batch-number, e.g. enrich:2")
        plan[agent] = int(batch)
    return plan


_plan: dict[str, int] = {}
_batches: dict[str, int] = {}


def configure(text: str) -> None:
    """Take the plan from STREAMS_FAULT_INJECT (streams.app does, as it loads the settings)."""
    global _plan
    _plan = parse_plan(text)
    _batches.clear()


def _planned(name: str) -> int | None:
    """Count one batch of `name`; its number if the plan names this one, else None."""
    if not _plan:
        return None
    seen = _batches[name] = _batches.get(name, 0) + 1
    return seen if _plan.get(name) == seen else None


def checkpoint(agent: str) -> None:
    """Count one batch of `agent`; raise if this is the batch the plan names (once)."""
    if (seen := _planned(agent)) is not None:
        raise InjectedFault(f"injected fault in {agent}, batch {seen} (STREAMS_FAULT_INJECT)")


def drops_fetch() -> bool:
    """Count one fetched batch of agents' input records; whether the plan says to drop it."""
    return _planned("fetch") is not None
