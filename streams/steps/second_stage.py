"""The second-stage step: enriched rows -> newer row versions carrying the second stage's verdict,
for the rows whose inline verdict is borderline (streams.enrich.flags.second_stage)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from streams.enrich.flags.second_stage import SecondStageScorer
from streams.models import EnrichedComment


def second_look(scorer: SecondStageScorer, comments: Sequence[EnrichedComment]) -> list[EnrichedComment]:
    """The rows re-scored, in input order: inline-scored (stage 0), not deletions, with a body and a
    borderline inline verdict. Each is the same row with the second stage's flags, its model version
    (the inline one + "+<second-stage id>") and stage 1; a replay gives the same rows."""
    chosen = [
        c
        for c in comments
        if c.stage == 0 and c.event.event_type != "comment.deleted" and c.event.body and scorer.wants(c.flags)
    ]
    verdicts = scorer.rescore([c.event.body for c in chosen], [c.flags for c in chosen])
    return [
        msgspec.structs.replace(c, flags=v, model_version=c.model_version + scorer.version_suffix, stage=1)
        for c, v in zip(chosen, verdicts, strict=True)
    ]
