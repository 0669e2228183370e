"""Fault injection for the crash tests: ``STREAMS_FAULT_INJECT="enrich:2,windows:1"`` makes the named
agent raise once, in its N-th batch, after it sent that batch's outputs and before it persisted its
state (the worst moment: a replay must neither lose nor double-count anything). Unset in production.
"""

from __future__ import annotations

from streams.app import settings


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


_plan = parse_plan(settings.fault_inject)
_batches: dict[str, int] = {}


def checkpoint(agent: str) -> None:
    """Count one batch of `agent`; raise if this is the batch the plan names (once)."""
    if not _plan:
        return
    seen = _batches[agent] = _batches.get(agent, 0) + 1
    if _plan.get(agent) == seen:
        raise InjectedFault(f"injected fault in {agent}, batch {seen} (STREAMS_FAULT_INJECT)")
