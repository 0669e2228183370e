"""The second-stage verdict: a heavier model re-scores the comments the inline scorer finds borderline.

The inline scorer (`FlagScorer`) decides every comment within the pipeline's budget (~100 us). The
second stage (`minilm-ft-v1`: a fine-tuned 6-layer transformer, streams/enrich/flags/encoder.py,
~13 ms per comment per core) runs on its own agent (streams/agents/second_stage.py) and never
holds the pipeline up: the comment's row lands with the inline verdict first and a newer row
version with the second stage's verdict replaces it when ready.

For each text category, the second-stage score is a logistic regression over the inline score's
logit and the model's logit (``combine``: both weights and a bias, fitted on DEV by
bench/train_second_stage.py), so the lexicons and phrase rules the inline scorer knows still
count; where a phrase rule (for profanity, also a lexicon term) backs the inline score of a
category, the second stage can raise that score but not lower it (`rule_backed`). The model reads
the text without plain swearing (`without_swearing`): swearing is profanity here, never toxicity
by itself. `toxicity` then includes identity attacks and threats as the inline scorer does.
Comments whose inline scores are all below ``rescore_from`` keep the inline verdict (shipped: 0,
every comment; on DEV any higher band cost 0.005 mean ROC-AUC or more); `spam` and `username`
are never re-scored.

Reasons: the inline reasons stay (they still fed the score); ``model:<id>:<probability>`` is added
to a category only where the second stage raised its score and the model's probability is at
least `CITE_AT`, so a reason never names a model that did not move the score.

Config: the ``[second_stage]`` table of moderation.toml (validated here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import numpy as np

from streams.enrich.flags.config import (
    SWEARING,
    ModerationConfig,
    ModerationConfigError,
    _Checker,
    _resolve_model_file,
)
from streams.enrich.flags.scorer import FlagScorer, ScoreInput
from streams.enrich.normalize import normalize
from streams.models import FlagResult

#: The text categories the second stage scores, in the model's head order.
HEADS = ("toxicity", "profanity", "identity_attack", "threat")
TABLE = "second_stage"
#: The model is named as a reason where it raised a score and its own probability is at least this
#: (as the inline models' `cite_at`): a nudge from a model that finds the text harmless is no reason.
CITE_AT = 0.5
#: Reasons the second stage does not outvote: phrase rules, written on purpose for a pattern a model
#: may not have seen ("the Jews ... subvert"). Lexicon terms it may: a single word out of context is
#: what the model reads better (on DEV, with the first model trained, letting lexicon terms win too
#: cost toxic_spans toxicity ROC-AUC 0.657 -> 0.635 and identity_attack precision 0.80 -> 0.75).
RULE_REASONS = ("phrase:",)
#: profanity is what the lexicon says it is (any swear word), so its lexicon terms are a floor too.
RULE_REASONS_BY_CATEGORY = {"profanity": ("phrase:", "lexicon:")}
_RUNS = re.compile(r"(.)\1+")  # elongations of listed words without double letters: "shiiit" -> "shit"
_WORDISH = re.compile(r"[^\s.,;:?()\[\]{}\"]+")


def without_swearing(text: str) -> str:
    """The text the model reads: words that normalise to plain swearing (config.SWEARING) left out,
    so it never learns or applies "swearing = toxic" from sets that label it so (OLID, toxic_spans).
    Profanity comes from the inline lexicon instead (a floor: `rule_backed`)."""

    def keep(match: re.Match[str]) -> str:
        word = normalize(match.group(0)).strip("'!")
        return "" if word in SWEARING or _RUNS.sub(r"\1", word) in SWEARING else match.group(0)

    return _WORDISH.sub(keep, text)


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), 1e-4, 1 - 1e-4)
    out: np.ndarray = np.log(q / (1 - q))
    return out


def rule_backed(results: Sequence[FlagResult]) -> np.ndarray:
    """[n, len(HEADS)] bool: a phrase rule (for profanity, also a lexicon term) backs the inline verdict."""
    prefixes = [RULE_REASONS_BY_CATEGORY.get(c, RULE_REASONS) for c in HEADS]
    return np.array(
        [
            [any(r.startswith(p) for r in res.reasons.get(c, ())) for c, p in zip(HEADS, prefixes, strict=True)]
            for res in results
        ],
        dtype=bool,
    ).reshape(len(results), len(HEADS))


def combine_scores(
    inline: np.ndarray,
    logits: np.ndarray,
    combine: Mapping[str, Sequence[float]],
    includes: Mapping[str, float] | None = None,
    ruled: np.ndarray | None = None,
) -> np.ndarray:
    """Second-stage scores [n, len(HEADS)] from the inline scores and the model's logits (same shape).

    Where `ruled` (rule_backed) is set, the score is at least the inline one: a phrase rule someone
    wrote on purpose (for profanity, a lexicon term) is not outvoted by a model that has not seen it."""
    out = np.zeros(inline.shape, np.float64)
    for j, category in enumerate(HEADS):
        a, b, c = combine[category]
        out[:, j] = 1.0 / (1.0 + np.exp(-(a * logit(inline[:, j]) + b * logits[:, j] + c)))
    if ruled is not None:
        out = np.where(ruled, np.maximum(out, inline), out)
    tox = HEADS.index("toxicity")
    for category, factor in (includes or {}).items():
        if category in HEADS:
            np.maximum(out[:, tox], out[:, HEADS.index(category)] * factor, out=out[:, tox])
    return out


@dataclass(frozen=True)
class SecondStageConfig:
    enabled: bool
    id: str
    file: Path | None
    #: Re-score a comment when one of its inline text scores is at least this (0: every comment).
    rescore_from: float
    combine: Mapping[str, tuple[float, float, float]]
    thresholds: Mapping[str, float]


def second_stage_config(config: ModerationConfig) -> SecondStageConfig | None:
    """The validated ``[second_stage]`` table of a moderation config (None: the file has none)."""
    raw = config.foreign.get(TABLE)
    if raw is None:
        return None
    check = _Checker(config.path)
    keys = ("enabled", "id", "file", "rescore_from", "combine", "thresholds")
    table = check.table(raw, TABLE, allowed=keys, required=keys)
    enabled = check.boolean(table["enabled"], f"{TABLE}.enabled")
    combine_raw = check.table(table["combine"], f"{TABLE}.combine", allowed=HEADS, required=HEADS)
    combine: dict[str, tuple[float, float, float]] = {}
    for category, value in combine_raw.items():
        key = f"{TABLE}.combine.{category}"
        if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, int | float) for v in value):
            raise check.fail(key, "must be [inline weight, model weight, bias]: three numbers")
        combine[category] = (float(value[0]), float(value[1]), float(value[2]))
    thresholds_raw = check.table(table["thresholds"], f"{TABLE}.thresholds", allowed=HEADS, required=HEADS)
    return SecondStageConfig(
        enabled=enabled,
        id=check.string(table["id"], f"{TABLE}.id"),
        file=_resolve_model_file(check, table["file"], f"{TABLE}.file") if enabled else None,
        rescore_from=check.number(table["rescore_from"], f"{TABLE}.rescore_from"),
        combine=MappingProxyType(combine),
        thresholds=MappingProxyType({c: check.number(thresholds_raw[c], f"{TABLE}.thresholds.{c}") for c in HEADS}),
    )


class ModelLogits(Protocol):
    """What the second stage needs from a model: head logits [n, len(HEADS)] for texts."""

    heads: tuple[str, ...]

    def logits(self, texts: Sequence[str]) -> np.ndarray: ...


def model_texts(model_input: str | None, texts: Sequence[str]) -> list[str]:
    """What a model trained on `model_input` ("without_swearing", or the text as it is) reads of
    `texts`: the one rule for training (bench/train_second_stage.py) and scoring."""
    if model_input == "without_swearing":
        return [without_swearing(t) for t in texts]
    return list(texts)


def model_logits(model: ModelLogits, texts: Sequence[str]) -> np.ndarray:
    """The model's logits for texts, given the input it was trained on (its meta's "input")."""
    return np.asarray(model.logits(model_texts(getattr(model, "meta", {}).get("input"), texts)), np.float64)


class SecondStageScorer:
    """Decides which inline verdicts get a second look and what the second look says (pure, given the model)."""

    def __init__(self, config: ModerationConfig, model: ModelLogits | None = None) -> None:
        stage = second_stage_config(config)
        if stage is None or not stage.enabled or stage.file is None:
            raise ModerationConfigError(f"{config.path}: no enabled [{TABLE}] table: the second stage is off")
        self.stage = stage
        self.includes = dict(config.toxicity_includes)
        if model is None:
            from streams.enrich.flags.encoder import MiniLMClassifier

            model = MiniLMClassifier(stage.file)
            if tuple(model.heads) != HEADS:
                raise ModerationConfigError(f"{stage.file}: heads {model.heads}, expected {HEADS}")
        self.model = model
        self.version_suffix = f"+{stage.id}"

    def wants(self, result: FlagResult) -> bool:
        """Whether an inline verdict is borderline enough to be re-scored."""
        return max(result.scores.get(c, 0.0) for c in HEADS) >= self.stage.rescore_from

    def rescore(self, texts: Sequence[str], results: Sequence[FlagResult]) -> list[FlagResult]:
        """The second-stage verdicts for texts and their inline verdicts (same order)."""
        if not texts:
            return []
        inline = np.array([[r.scores.get(c, 0.0) for c in HEADS] for r in results])
        logits = model_logits(self.model, texts)
        ruled = rule_backed(results)
        combined = np.round(combine_scores(inline, logits, self.stage.combine, self.includes, ruled), 4)
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        flagged = combined >= np.array([self.stage.thresholds[c] for c in HEADS])
        out: list[FlagResult] = []
        for i, result in enumerate(results):
            scores = dict(result.scores)
            reasons = {c: list(v) for c, v in result.reasons.items()}
            for j, category in enumerate(HEADS):
                new = float(combined[i, j])
                if new > round(inline[i, j], 4) and probabilities[i, j] >= CITE_AT:
                    reasons.setdefault(category, []).append(f"model:{self.stage.id}:{probabilities[i, j]:.2f}")
                scores[category] = new
            text_flags = {c for j, c in enumerate(HEADS) if flagged[i, j]}
            flags = [c for c in scores if c in text_flags or (c not in HEADS and c in result.flags)]
            out.append(FlagResult(scores=scores, flags=flags, reasons=reasons))
        return out


class TwoStageScorer(FlagScorer):
    """Both verdicts in one call (`streams score --second-stage`, the bench): the inline verdict, then
    the second stage's for the comments it wants. The worker runs the two on separate agents."""

    def __init__(self, config: ModerationConfig | None = None, model: ModelLogits | None = None) -> None:
        super().__init__(config)
        self.second = SecondStageScorer(self.config, model)

    def score_many(self, items: Sequence[ScoreInput]) -> list[FlagResult]:
        results = super().score_many(items)
        chosen = [i for i, r in enumerate(results) if items[i].body and self.second.wants(r)]
        again = self.second.rescore([items[i].body for i in chosen], [results[i] for i in chosen])
        for i, verdict in zip(chosen, again, strict=True):
            results[i] = verdict
        return results
