"""How evidence becomes a score and which of it is named as a reason.

A category's score is the noisy-OR of its evidence (`_noisy_or`); reasons are deduplicated and
ordered from the most specific evidence to the most general (`_ordered_reasons`); a model is cited
only where it moved the rounded score (`_cite_models`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from streams.enrich.flags.config import ModelConfig

Evidence = list[tuple[float, str]]


def _noisy_or(evidence: Iterable[tuple[float, str]]) -> float:
    keep = 1.0
    for weight, _ in evidence:
        keep *= 1.0 - weight
    return 1.0 - keep


def _dedupe(reasons: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(reasons))


# Reasons read best from the most specific evidence to the most general.
_REASON_RANK = {"lexicon": 0, "phrase": 1, "username": 2, "spam": 3, "model": 4, "category": 5}


def _ordered_reasons(reasons: list[str]) -> list[str]:
    unique = _dedupe(reasons)
    if len(unique) > 1:
        unique.sort(key=lambda r: _REASON_RANK.get(r.partition(":")[0], 9))  # stable: config order kept
    return unique


@dataclass(frozen=True)
class _AppliedModel:
    """One model head's evidence for one category over a batch (cited once all evidence is in)."""

    cfg: ModelConfig
    category: str
    col: int
    evidence: NDArray[np.float64]  # weight x probability, per comment
    p: NDArray[np.float64]


def _cite_models(
    applied: Sequence[_AppliedModel], keep: NDArray[np.float64], cited: list[dict[str, list[str]] | None]
) -> None:
    """Name a model as a reason where its probability reaches `cite_at` AND it moved the score.

    With noisy-OR, a model with evidence e raised the category's score by (the product of the
    other evidence's keep factors) x e; that must show in the rounded score (4 decimals). A model
    whose probability was high but whose evidence changed nothing visible (other evidence already
    at 1) is not named.
    """
    for a in applied:
        others = np.divide(keep[:, a.col], 1.0 - a.evidence, out=np.ones(len(a.p)), where=a.evidence < 1.0)
        raised = others * a.evidence
        values = a.p.tolist()
        prefix = f"model:{a.cfg.id}:"
        for i in np.flatnonzero((a.p >= a.cfg.cite_at) & (raised >= 5e-5)).tolist():
            reasons = cited[i]
            if reasons is None:
                reasons = cited[i] = {}
            reasons.setdefault(a.category, []).append(f"{prefix}{values[i]:.2f}")
