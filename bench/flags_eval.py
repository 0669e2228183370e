"""Evaluate the moderation flags on every held-out split and measure throughput; writes bench/RESULTS.md.

    .venv/bin/python bench/flags_eval.py                      # full run
    .venv/bin/python bench/flags_eval.py --quick              # smaller throughput sample
    .venv/bin/python bench/flags_eval.py --choose-thresholds  # pick thresholds on DEV, rewrite
                                                              # [thresholds] in moderation.toml

Quality is measured on the TEST split (20%, a seeded hash of the row id: bench/moderation_data.py)
of every labelled set the models were trained on; neither training nor any choice used it.
Thresholds are chosen on DEV (10%) only. Each table row is one set and one label, scored by one of
our categories (moderation_data.LABELS says how the labels map); figures are given for the scorer
shipped before issue 13 (bench/baseline: the Davidson-2017 model and its config) and for the
current one, with the same code: ROC-AUC of the category's score, and precision / recall of its
decision (score >= the category's threshold).

Also reported: false positives (any flag) on bench/data/identity_probe.txt and on ToxiGen's
neutral TEST sentences, the sample-thread expectations, scoring throughput on ONE core
(FlagScorer.score_many on raw bodies, batches of 512: the figure the target applies to) and that of
the three enrichment steps the agent runs per comment (text_features + detect_languages +
FlagScorer.score_many).
"""

from __future__ import annotations

import os

# One core, one thread: set before numpy loads its BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import moderation_data as md  # noqa: E402

from streams.cli import freeze_long_lived_objects  # noqa: E402
from streams.enrich import normalize  # noqa: E402
from streams.enrich.flags import (  # noqa: E402
    CATEGORIES,
    DEFAULT_CONFIG_PATH,
    FlagScorer,
    ModerationConfig,
    ModerationConfigError,
    ScoreInput,
    load_moderation_config,
)
from streams.enrich.flags.encoder import EncoderUnavailable  # noqa: E402
from streams.enrich.flags.second_stage import TwoStageScorer  # noqa: E402
from streams.enrich.language import detect_languages  # noqa: E402
from streams.enrich.normalize import _analyze_cached, analyze  # noqa: E402
from streams.enrich.text import text_features  # noqa: E402
from streams.models import FlagResult  # noqa: E402

RESULTS = BENCH / "RESULTS.md"
PROBE = BENCH / "data" / "identity_probe.txt"
ORDINARY = BENCH / "data" / "ordinary_comments.txt"
BASELINE = BENCH / "baseline" / "moderation-v1.toml"
SAMPLE = ROOT / "streams" / "samples" / "000_0506d22904cf1e0a.txt"
START, END = "<!-- flags:start -->", "<!-- flags:end -->"
BATCH = 512
#: Operating point for the thresholds chosen on DEV.
TARGET_PRECISION = 0.80
#: ... unless that precision is reached only at a recall below this (then: best F1 on DEV).
MIN_RECALL = 0.25
THRESHOLD_GRID = np.round(np.arange(0.50, 0.995, 0.01), 2)
PRIOR_GRID = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5)
#: Per category, while choosing: at most this share of the neutral sentences flagged (the target,
#: 5%, is for any flag).
NEUTRAL_FP_PER_CATEGORY = 0.02
#: Categories whose labels do not match the category as the project defines it: threshold by hand.
BY_HAND = {
    "threat": "too few labelled threats (DEV: 100) to place a threshold; the phrase rules are written for 0.5",
    "profanity": "profanity here is any swear word (lexicon-defined); Gab 'vulgar' and obscene spans label far less",
}
THROUGHPUT_TARGET = 10_000
FP_TARGET = 0.05
#: The column of the inline scorer followed by the second stage (TwoStageScorer).
SECOND = "second stage"


def second_stage_note(model_id: str) -> list[str]:
    return [
        "Columns: before = the scorer shipped before issue 13; after = the inline scorer (every comment, "
        "in the pipeline); second stage = what a comment's row says once the second-stage model "
        f"({model_id}, `streams worker --second-stage`) has re-scored it: the inline verdict below its "
        "`rescore_from` band, the second stage's above (streams/enrich/flags/second_stage.py). The "
        "target column judges the last column.",
    ]


@dataclass(frozen=True)
class Check:
    """One table row: a set's label, scored by one category (or the highest of several, written
    "a or b": a label that spans categories), with its ROC-AUC target (0: none)."""

    set: str
    label: str
    category: str
    auc_target: float
    value: Callable[[md.Row], float | None]

    @property
    def categories(self) -> list[str]:
        return self.category.split(" or ")

    def score(self, result: FlagResult) -> float:
        return max(result.scores[c] for c in self.categories)

    def flagged(self, result: FlagResult) -> bool:
        return any(c in result.flags for c in self.categories)


def _label(category: str) -> Callable[[md.Row], float | None]:
    return lambda r: r.labels[category]


def _extra(name: str) -> Callable[[md.Row], float | None]:
    return lambda r: r.extra.get(name)


CHECKS = [
    Check("gab", "hate (hd)", "identity_attack", 0.88, _label("identity_attack")),
    Check("gab", "vulgar (vo)", "profanity", 0.88, _label("profanity")),
    Check("gab", "call for violence (cv)", "threat", 0.80, _label("threat")),
    # A label that spans two of our categories is scored by the higher of them: OLID's OFF is
    # "profanity or a targeted offence" (its guidelines).
    Check("olid", "offensive (A)", "toxicity or profanity", 0.88, _extra("offensive")),
    Check("olid", "offensive (A), toxicity alone", "toxicity", 0.0, _label("toxicity")),
    Check("olid", "targeted offence (B: TIN)", "toxicity", 0.0, _extra("targeted")),
    # Any span counts, profane ones too: toxicity or profanity here, as for OLID.
    Check("toxic_spans", "toxic (any span)", "toxicity or profanity", 0.80, _label("toxicity")),
    Check("toxic_spans", "toxic (any span), toxicity alone", "toxicity", 0.0, _label("toxicity")),
    Check("toxic_spans", "toxic, a span not only profane", "toxicity", 0.0, _extra("toxic_not_profane")),
    Check("toxic_spans", "insult span", "toxicity", 0.0, _extra("insult")),
    Check("toxic_spans", "identity attack span", "identity_attack", 0.0, _label("identity_attack")),
    Check("toxic_spans", "threat span", "threat", 0.80, _label("threat")),
    Check("toxic_spans", "profane/obscene span", "profanity", 0.0, _label("profanity")),
    Check("implicit_hate", "implicit or explicit hate", "identity_attack", 0.0, _label("identity_attack")),
    Check("implicit_hate", "threatening (implicit)", "threat", 0.80, _label("threat")),
    Check("toxigen", "hate vs neutral", "identity_attack", 0.0, _label("identity_attack")),
    Check("wikipedia", "toxic", "toxicity", 0.0, _label("toxicity")),
    Check("youtube_spam", "spam", "spam", 0.95, _label("spam")),
    Check("sms_spam", "spam", "spam", 0.95, _label("spam")),
]


def score_all(scorer: FlagScorer, texts: Sequence[str]) -> list[FlagResult]:
    out: list[FlagResult] = []
    for i in range(0, len(texts), BATCH):
        out += scorer.score_many([ScoreInput(t) for t in texts[i : i + BATCH]])
    return out


def _pr(y: np.ndarray, flagged: np.ndarray) -> tuple[float, float]:
    tp = float((y & flagged).sum())
    precision = tp / flagged.sum() if flagged.sum() else float("nan")
    recall = tp / y.sum() if y.sum() else float("nan")
    return precision, recall


def quality(
    rows: list[md.Row], scorers: dict[str, FlagScorer]
) -> tuple[list[str], list[str], dict[str, dict[str, float]]]:
    """The per-set table on TEST for every scorer; returns (lines, misses, {check: {figure: value}})."""
    by_set: dict[str, list[md.Row]] = defaultdict(list)
    for r in rows:
        by_set[r.set].append(r)
    results = {
        name: {s: score_all(sc, [r.text for r in rs]) for s, rs in by_set.items()} for name, sc in scorers.items()
    }
    names = list(scorers)
    lines = [
        "| set (TEST rows) | label -> category | positives | "
        + " | ".join(f"ROC-AUC {n}" for n in names)
        + " | "
        + " | ".join(f"P / R {n}" for n in names)
        + " | target |",
        "|---|---|---:|" + "---:|" * (2 * len(names)) + "---|",
    ]
    misses: list[str] = []
    figures: dict[str, dict[str, float]] = {}
    for check in CHECKS:
        keep = [i for i, r in enumerate(by_set[check.set]) if check.value(r) is not None]
        y = np.array([check.value(by_set[check.set][i]) >= 0.5 for i in keep])  # type: ignore[operator]
        aucs, prs = [], []
        for n in names:
            res = [results[n][check.set][i] for i in keep]
            scores = np.array([check.score(r) for r in res])
            flagged = np.array([check.flagged(r) for r in res])
            auc = float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else float("nan")
            p, rc = _pr(y, flagged)
            aucs.append(auc)
            prs.append(f"{p:.2f} / {rc:.2f}")
            figures[f"{check.set}:{check.label}:{n}"] = {"auc": auc, "precision": p, "recall": rc}
        target = ""
        if check.auc_target:
            ok = aucs[-1] >= check.auc_target
            target = f"AUC >= {check.auc_target:.2f}: {'met' if ok else 'MISSED'}"
            if not ok:
                misses.append(f"{check.set} {check.label} ROC-AUC {aucs[-1]:.3f} < {check.auc_target:.2f}")
        lines.append(
            f"| {check.set} ({len(keep)}) | {check.label} -> {check.category} | {int(y.sum())} ({y.mean():.1%}) | "
            + " | ".join(f"{a:.3f}" for a in aucs)
            + " | "
            + " | ".join(prs)
            + f" | {target} |"
        )
    return lines, misses, figures


def threshold_of(scorer: FlagScorer, category: str) -> float:
    """The threshold that decides `category` (the second stage's own for the categories it re-scores)."""
    if isinstance(scorer, TwoStageScorer) and category in scorer.second.stage.thresholds:
        return scorer.second.stage.thresholds[category]
    return scorer.config.thresholds[category]


def pooled_decisions(rows: list[md.Row], scorer: FlagScorer, label: str) -> tuple[list[str], dict[str, float]]:
    """Precision / recall of each category's decision over every TEST row labelled for it (pooled)."""
    results = score_all(scorer, [r.text for r in rows])
    lines = [
        f"| category | TEST rows | positives | threshold | precision | recall | ({label}) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    out: dict[str, float] = {}
    for category in md.CATS:
        keep = [i for i, r in enumerate(rows) if r.labels[category] is not None]
        y = np.array([rows[i].labels[category] >= 0.5 for i in keep])  # type: ignore[operator]
        flagged = np.array([category in results[i].flags for i in keep])
        p, rc = _pr(y, flagged)
        out[f"{category}:precision"], out[f"{category}:recall"] = p, rc
        lines.append(
            f"| {category} | {len(keep)} | {int(y.sum())} | {threshold_of(scorer, category):.2f} | "
            f"{p:.3f} | {rc:.3f} | |"
        )
    return lines, out


def _pick(
    y: np.ndarray, scores: np.ndarray, neutral: np.ndarray | None, ordinary: np.ndarray | None = None
) -> tuple[float, float, float, str, float] | None:
    """(threshold, precision, recall, rule, rank) for one category's DEV scores; None if no
    threshold in the grid keeps the neutral-sentence false positives within FP_TARGET and every
    `ordinary` comment (bench/data/ordinary_comments.txt) unflagged."""
    grid = []
    highest_ordinary = float(ordinary.max()) if ordinary is not None and ordinary.size else -1.0
    for t in THRESHOLD_GRID:
        flagged = scores >= t
        if (
            flagged.sum() < 5
            or t <= highest_ordinary
            or (neutral is not None and neutral.size and (neutral >= t).mean() > NEUTRAL_FP_PER_CATEGORY)
        ):
            continue
        p, rc = _pr(y, flagged)
        grid.append((float(t), p, rc))
    if not grid:
        return None
    at_precision = [g for g in grid if g[1] >= TARGET_PRECISION and g[2] >= MIN_RECALL]
    if at_precision:
        t, p, rc = at_precision[0]
        return t, p, rc, f"lowest with precision >= {TARGET_PRECISION:.2f}", 1.0 + rc
    t, p, rc = max(grid, key=lambda g: _f_half(g[1], g[2]))
    return t, p, rc, f"best F0.5: precision {TARGET_PRECISION:.2f} only below recall {MIN_RECALL:.2f}", _f_half(p, rc)


def _f_half(p: float, r: float) -> float:
    """F-beta with beta 0.5: precision counts twice as much as recall (a false flag costs a
    moderator's time and a reader's trust)."""
    return 1.25 * p * r / (0.25 * p + r) if p + r else 0.0


def choose_thresholds(
    dev: list[md.Row], config: ModerationConfig, model: str = "comments"
) -> tuple[dict[str, float], dict[str, tuple[float, float, float, int, str]]]:
    """Per category, on DEV pooled over the sets that label it, the model's prior (PRIOR_GRID) and
    the threshold (THRESHOLD_GRID, from 0.5 up: the lexicons' weights are written for that scale):
    the lowest threshold whose decision has precision >= TARGET_PRECISION (the most recall at that
    precision) with recall >= MIN_RECALL, else (the labels do not allow it) the best F0.5; always
    keeping ToxiGen's neutral DEV sentences flagged at most FP_TARGET and no ordinary comment
    (bench/data/ordinary_comments.txt) flagged. Returns (priors, {category:
    (threshold, precision, recall, positives, rule)}). The fallback when the precision target is out of
    reach is the best F0.5."""
    base = config.models[model]
    # Neutral sentences about identity groups: ToxiGen's DEV ones and the identity probe (so the
    # probe's figure in the tables is not independent of this choice; ToxiGen's TEST one is).
    texts = [r.text for r in dev] + probe_lines()
    neutral_idx = [i for i, r in enumerate(dev) if r.set == "toxigen" and r.extra.get("neutral")]
    neutral_idx += list(range(len(dev), len(texts)))
    ordinary_texts = ordinary_lines()
    ordinary_idx = list(range(len(texts), len(texts) + len(ordinary_texts)))
    texts += ordinary_texts

    def scored(priors: dict[str, float]) -> list[FlagResult]:
        cfg = replace(config, models={**config.models, model: replace(base, priors=priors)})
        return score_all(FlagScorer(cfg), texts)

    labelled = {}
    for category in md.CATS:
        if category in BY_HAND:
            continue
        keep = [i for i, r in enumerate(dev) if r.labels[category] is not None]
        labelled[category] = (keep, np.array([dev[i].labels[category] >= 0.5 for i in keep]))  # type: ignore[operator]
    best: dict[str, tuple[float, float]] = {}
    for q in PRIOR_GRID:
        results = scored(dict.fromkeys(md.CATS, q))
        for category, (keep, y) in labelled.items():
            scores = np.array([results[i].scores[category] for i in keep])
            neutral = np.array([results[i].scores[category] for i in neutral_idx])
            ordinary = np.array([results[i].scores[category] for i in ordinary_idx])
            pick = _pick(y, scores, neutral, ordinary)
            # Lower priors first: a higher one must win by more than 0.01 (less model, more rules).
            if pick is not None and (category not in best or pick[4] > best[category][1] + 0.01):
                best[category] = (q, pick[4])
            print(f"  prior {q}: {category} {pick[:3] if pick else None}", flush=True)
    priors = {c: best[c][0] if c in best else base.priors.get(c, 0.5) for c in md.CATS}
    results = scored(priors)
    chosen: dict[str, tuple[float, float, float, int, str]] = {}
    for category, why in BY_HAND.items():
        keep = [i for i, r in enumerate(dev) if r.labels[category] is not None]
        y = np.array([dev[i].labels[category] >= 0.5 for i in keep])  # type: ignore[operator]
        t = config.thresholds[category]
        p, rc = _pr(y, np.array([results[i].scores[category] >= t for i in keep]))
        chosen[category] = (t, p, rc, int(y.sum()), f"by hand: {why}")
    for category, (keep, y) in labelled.items():
        scores = np.array([results[i].scores[category] for i in keep])
        neutral = np.array([results[i].scores[category] for i in neutral_idx])
        ordinary = np.array([results[i].scores[category] for i in ordinary_idx])
        pick = _pick(y, scores, neutral, ordinary) or (0.99, *_pr(y, scores >= 0.99), "none keeps neutral FP low", 0.0)
        t, p, rc, rule, _ = pick
        chosen[category] = (t, p, rc, int(y.sum()), rule)
    return priors, chosen


def write_thresholds(
    chosen: dict[str, tuple[float, float, float, int, str]],
    priors: dict[str, float] | None = None,
    path: Path = DEFAULT_CONFIG_PATH,
) -> None:
    text = path.read_text(encoding="utf-8")
    start = text.index("[thresholds]\n")
    end = text.index("\n\n", start)
    current = load_moderation_config(path).thresholds
    lines = ["[thresholds]"]
    for category in CATEGORIES:
        if category in chosen:
            t, p, r, n, rule = chosen[category]
            lines.append(f"{category} = {t:.2f}  # DEV: precision {p:.3f}, recall {r:.3f} ({n} positives); {rule}")
        else:
            lines.append(f"{category} = {current[category]:.2f}  # no labelled data: chosen by hand")
    text = text[:start] + "\n".join(lines) + text[end:]
    if priors is not None:
        block = text.index("[models.comments]")
        line_start = text.index("\npriors = ", block) + 1
        line_end = text.index("\n", line_start)
        values = ", ".join(f"{c} = {q:g}" for c, q in priors.items())
        text = text[:line_start] + f"priors = {{ {values} }}" + text[line_end:]
    path.write_text(text, encoding="utf-8")
    load_moderation_config(path)  # still valid


def _lines(path: Path) -> list[str]:
    return [s for s in (line.strip() for line in path.read_text().splitlines()) if s and not s.startswith("#")]


def probe_lines() -> list[str]:
    return _lines(PROBE)


def ordinary_lines() -> list[str]:
    return _lines(ORDINARY)


#: The categories an identity mention can wrongly raise; profanity and spam are about other words.
IDENTITY_HARM = frozenset({"toxicity", "identity_attack", "threat"})


def false_positives(scorers: dict[str, FlagScorer], neutral: list[str]) -> tuple[list[str], list[str]]:
    misses: list[str] = []
    last = list(scorers)[-1]
    lines = [
        "| sentences | "
        + " | ".join(f"flagged {n}" for n in scorers)
        + f" | {last}: flagged toxicity, identity_attack or threat | target |",
        "|---|" + "---:|" * (len(scorers) + 1) + "---|",
    ]
    examples: list[str] = []
    for label, texts in (
        (f"identity probe (bench/data/identity_probe.txt, {len(probe_lines())})", probe_lines()),
        (f"ToxiGen neutral, TEST split ({len(neutral)})", neutral),
    ):
        rates = []
        identity_rate = 0.0
        for name, scorer in scorers.items():
            res = score_all(scorer, texts)
            flagged = [(t, r.flags) for t, r in zip(texts, res, strict=True) if r.flags]
            rates.append(len(flagged) / len(texts))
            if name == last:
                identity_rate = sum(bool(IDENTITY_HARM.intersection(f)) for _, f in flagged) / len(texts)
                examples += [f"  - {label.split(' (')[0]}: {t!r} -> {', '.join(f)}" for t, f in flagged[:6]]
        ok = rates[-1] <= FP_TARGET
        if not ok:
            misses.append(f"{label}: {rates[-1]:.1%} flagged > {FP_TARGET:.0%}")
        lines.append(
            f"| {label} | "
            + " | ".join(f"{x:.1%}" for x in rates)
            + f" | {identity_rate:.1%} | <= {FP_TARGET:.0%}: {'met' if ok else 'MISSED'} |"
        )
    return [*lines, "", "Flagged examples (current scorer):", *examples], misses


def annotator_ceiling() -> list[str]:
    """How well ONE annotator of toxic_spans agrees with the others on 'toxic': evidence for the cap."""
    d = md.DATA_ROOT / "toxic_spans"
    has_span: dict[str, bool] = {}
    with (d / "spans.csv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            if rec["type"].strip():
                has_span[rec["annotation"]] = True
    per: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    with (d / "annotations.csv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            per[rec["comment_id"]].append((int(rec["annotation"]), has_span.get(rec["annotation"], False)))
    test_ids = {r.row_id for r in md.toxic_spans() if r.split == "test"}
    one, rest = [], []
    for cid, anns in per.items():
        if cid not in test_ids or len(anns) < 4:
            continue
        anns.sort()
        one.append(anns[0][1])
        rest.append(np.mean([a for _, a in anns[1:]]) >= 0.5)
    y, x = np.array(rest), np.array(one, dtype=float)
    return [
        f"toxic_spans label ceiling: on the {len(y)} TEST comments with 4+ annotators, one annotator's "
        f"toxic/not toxic judgement (any span marked) against the majority of the others has ROC-AUC "
        f"{roc_auc_score(y, x):.3f} (precision {_pr(y, x > 0)[0]:.2f}, recall {_pr(y, x > 0)[1]:.2f}). "
        "All comments come from the platform's toxic pool, so 'not toxic' here is a borderline call."
    ]


# ---------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------


DAVIDSON = Path("/work/shared/data/davidson-2017/labeled_data.csv")
_LINK = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"(?<![\w.@])@\w+")
_RT = re.compile(r"\brt\b", re.IGNORECASE)
_NON_LETTERS = re.compile(r"[\W\d_]+")


def davidson_test_tweets() -> list[str]:
    """The Davidson-2017 tweets of the old TEST bucket (the throughput mix since session 1, kept so
    throughput figures stay comparable across sessions)."""
    import html

    out: list[str] = []
    with DAVIDSON.open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            tweet = rec["tweet"]
            key = _RT.sub(" ", _MENTION.sub(" ", _LINK.sub(" ", html.unescape(tweet))))
            key = _NON_LETTERS.sub("", key.casefold())
            if int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") % 5 == 0:
                out.append(html.unescape(tweet))
    return out


def realistic_mix(n: int, seed: int = 20180320) -> tuple[list[str], list[str]]:
    """Unique comment bodies and authors, mixed like a busy news thread (see RESULTS.md)."""
    rnd = random.Random(seed)
    tweets = davidson_test_tweets()
    probe_lines = [s for s in (x.strip() for x in PROBE.read_text().splitlines()) if s and not s.startswith("#")]
    sample = [s.strip() for s in re.split(r"(?<=[.!?])\s+", SAMPLE.read_text()) if len(s.strip()) > 20]
    sentences = sample + probe_lines + tweets
    spam = [
        "I make ${n} per hour working from home, check www.{d}.com and bit.ly/{d}{n}",
        "Earn ${n} a week! Visit {d}.net now, click here: http://{d}.xyz/{n}",
        "Great article. My aunt earned ${n} last month online, see {d}.info/{n}",
    ]
    texts: list[str] = []
    seen: set[str] = set()
    while len(texts) < n:
        u = rnd.random()
        if u < 0.40:
            text = rnd.choice(tweets)
        elif u < 0.55:
            text = rnd.choice(probe_lines)
        elif u < 0.95:
            text = " ".join(rnd.choice(sentences) for _ in range(rnd.randint(2, 6)))
        else:
            text = rnd.choice(spam).format(n=rnd.randint(50, 9999), d=f"site{rnd.randint(1, 999)}")
        if text in seen:
            text = f"{text} ({len(texts)})"
        seen.add(text)
        texts.append(text)
    authors = [f"reader{rnd.randint(1, 2000)}" for _ in range(n)]
    return texts, authors


def second_stage_throughput(two_stage: TwoStageScorer, test: list[md.Row], n: int) -> list[str]:
    """The second stage's cost on one core (comments it re-scores per CPU second) and the share of
    comments it would re-score: on the realistic mix and on the TEST rows."""
    bodies, authors = realistic_mix(n)
    inline_scorer = FlagScorer(two_stage.config)
    inline = inline_scorer.score_many([ScoreInput(b, a) for b, a in zip(bodies, authors, strict=True)])
    wanted = [i for i, r in enumerate(inline) if two_stage.second.wants(r)]
    test_inline = score_all(inline_scorer, [r.text for r in test])
    test_share = sum(two_stage.second.wants(r) for r in test_inline) / len(test)
    two_stage.second.rescore(bodies[:8], inline[:8])  # warm up
    started = time.process_time()
    two_stage.second.rescore(bodies, inline)
    cpu = time.process_time() - started
    model = two_stage.second.model
    tokens = np.mean([len(s) for s in model.token_ids(bodies)]) if hasattr(model, "token_ids") else float("nan")
    stage = two_stage.second.stage
    return [
        f"**Second stage ({stage.id}), one core: {n / cpu:,.0f} comments/s** re-scored (realistic mix, "
        f"{n} bodies, {tokens:.0f} word pieces on average, at most {getattr(model, 'max_tokens', '?')}; numpy, "
        f"one BLAS thread; process CPU time). With `rescore_from = {stage.rescore_from}` it re-scores "
        f"{len(wanted) / n:.0%} of the realistic mix and {test_share:.0%} of the TEST rows, so one core "
        f"keeps up with about {n / cpu / max(len(wanted) / n, 1e-9):,.0f} comments/s of such a stream; "
        "beyond that its rows arrive later (its lag is `streams_consumer_lag` of the second-stage group), "
        "the pipeline never waits for it.",
    ]


def _reference_ns() -> float:
    """CPU speed yardstick: ns per iteration of a fixed pure-Python loop (best of 5)."""
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        sum(i * i for i in range(300_000))
        best = min(best, time.process_time() - t)
    return best / 300_000 * 1e9


def throughput(scorer: FlagScorer, n: int, repeats: int, before: FlagScorer | None = None) -> tuple[list[str], float]:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    texts, authors = realistic_mix(n)
    batches = [(texts[i : i + BATCH], authors[i : i + BATCH]) for i in range(0, n, BATCH)]
    # Warm-up: load both flag models and the language model outside the timed runs.
    scorer.warm_up()
    detect_languages(["warm up"])
    freeze_long_lived_objects()  # as the worker and `streams score` do after loading the models
    # The analysis cache holds 4096 bodies: per-stage timings of the cached steps use the last
    # 4096 bodies, analysed beforehand.
    tail = batches[-(4096 // BATCH) :]
    tail_n = sum(len(bs) for bs, _ in tail)

    def best_of(fn: Callable[[], object], prepare: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(repeats):
            prepare()
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        return best

    def cold() -> None:
        _analyze_cached.cache_clear()

    def warm_tail() -> None:
        _analyze_cached.cache_clear()
        for bs, _ in tail:
            for b in bs:
                analyze(b)

    def end_to_end() -> None:
        for bodies, names in batches:
            for body in bodies:
                text_features(body)
            detect_languages(bodies)
            scorer.score_many([ScoreInput(b, a) for b, a in zip(bodies, names, strict=True)])

    def score_all_cold() -> None:
        for bodies, names in batches:
            scorer.score_many([ScoreInput(b, a) for b, a in zip(bodies, names, strict=True)])

    def analyze_all() -> None:
        for b in texts:
            analyze(b)

    def features_tail() -> None:
        for bs, _ in tail:
            for b in bs:
                text_features(b)

    def languages_all() -> None:
        for bs, _ in batches:
            detect_languages(bs)

    def score_tail() -> None:
        for bs, ns in tail:
            scorer.score_many([ScoreInput(b, a) for b, a in zip(bs, ns, strict=True)])

    ref_before = _reference_ns()
    total = best_of(end_to_end, cold)
    scoring = best_of(score_all_cold, cold)
    stages = [
        ("analyze: normalise + words (once per body, shared)", best_of(analyze_all, cold) / n),
        ("text_features (analysis cached)", best_of(features_tail, warm_tail) / tail_n),
        ("detect_languages", best_of(languages_all, lambda: None) / n),
        ("FlagScorer.score_many (analysis cached)", best_of(score_tail, warm_tail) / tail_n),
    ]
    before_rate = float("nan")
    if before is not None:
        before.warm_up()
        freeze_long_lived_objects()

        def score_before() -> None:
            for bodies, names in batches:
                before.score_many([ScoreInput(b, a) for b, a in zip(bodies, names, strict=True)])

        before_rate = n / best_of(score_before, cold)
    # The same scorer on the Python reference code alone (what STREAMS_NATIVE=0 runs), same run.
    python_rate = float("nan")
    native_featurizers = {f: f._native for f, _ in scorer._word_featurizers.values()}
    if normalize.NATIVE:
        native_analyze, normalize._native_analyze_folded = normalize._native_analyze_folded, None
        for f in native_featurizers:
            f._native = None
        try:
            python_rate = n / best_of(score_all_cold, cold)
        finally:
            normalize._native_analyze_folded = native_analyze
            for f, native in native_featurizers.items():
                f._native = native
    ref_after = _reference_ns()
    ref = (ref_before + ref_after) / 2
    rate = n / total
    scoring_rate = n / scoring
    lengths = sorted(map(len, texts))
    lines = [
        f"Realistic mix: {n} unique bodies, mean {sum(lengths) / n:.0f} characters (median "
        f"{lengths[n // 2]}): 40% Davidson-2017 tweets (the old TEST bucket, as in earlier sessions), "
        "15% probe sentences, 40% multi-sentence "
        "comments (2-6 sentences drawn from the sample thread, the probe and the tweets), 5% link "
        "spam; authors drawn from 2,000 names. Per batch of 512, the agent's three steps: "
        "`text_features` for each body, `detect_languages(batch)`, `FlagScorer.score_many(batch)`; "
        "a body's normalised analysis is computed once and reused by the later steps (LRU cache).",
        "",
        f"**Scoring throughput, one core: {scoring_rate:,.0f} comments/s** (`FlagScorer.score_many` "
        "on the raw bodies, nothing cached: what `streams score` runs; target >= "
        f"{THROUGHPUT_TARGET:,}: {'met' if scoring_rate >= THROUGHPUT_TARGET else 'MISSED'}; the scorer "
        f"shipped before, measured in the same run on the same bodies: {before_rate:,.0f} comments/s; "
        f"this scorer on the Python reference code alone, without the compiled fast path streams/native "
        f"(STREAMS_NATIVE=0), same run: {python_rate:,.0f} comments/s). "
        f"**The agent's whole enrichment step (all three steps): {rate:,.0f} comments/s.** Process CPU "
        f"time, pinned to one core, best of {repeats}, cyclic GC frozen after warm-up as in the worker.",
        "",
        "| stage | us per comment |",
        "|---|---:|",
        *[f"| {name} | {secs * 1e6:.1f} |" for name, secs in stages],
        f"| **scoring alone (analyze + score_many, nothing cached)** | **{scoring / n * 1e6:.1f}** |",
        f"| **end to end (all three steps)** | **{total / n * 1e6:.1f}** |",
        "",
        f"Machine: {_cpu_name()}, Python {platform.python_version()}, shared with other jobs (load "
        f"average {os.getloadavg()[0]:.2f} at the end). CPU-speed yardstick: a fixed pure-Python loop "
        f"(`sum(i * i for i in range(n))`) ran at {min(ref_before, ref_after):.0f}-"
        f"{max(ref_before, ref_after):.0f} ns per iteration during this run (it varies 2x from run to "
        "run on this shared VM). In those units scoring one comment costs about "
        f"{scoring / n * 1e9 / ref:,.0f} iterations (the whole enrichment step {total / n * 1e9 / ref:,.0f}); "
        "on a core that runs the loop at 30 ns (a current desktop) that is roughly "
        f"{1e9 / (scoring / n * 1e9 / ref * 30):,.0f} comments/s scored ({1e9 / (total / n * 1e9 / ref * 30):,.0f} "
        "enriched): an estimate, not a measurement.",
    ]
    return lines, scoring_rate


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def sample_thread(scorer: FlagScorer) -> list[str]:
    """The documented expectations on the sample thread, as scored now."""
    checks = [
        (
            "Adolph.H. (the Jews ... subvert)",
            "But the Jews have other things in view. As always they want to slowly subvert  white Christian nations.",
            None,
            "identity_attack",
        ),
        (
            "FireBrander (absolute moron)",
            "Youtube...Wolf Blitzer on Jeopardy..what an absolute moron...",
            None,
            "toxicity",
        ),
        (
            "IH8OBAMA (crap / shit)",
            "Crooked Hillary tried to pull that crap on me but I scared the shit out of her",
            None,
            "profanity",
        ),
        ("author 'Dindu Nuffins'", "", "Dindu Nuffins", "username"),
    ]
    lines = ["Sample thread expectations (unit tests assert these):"]
    for label, body, author, category in checks:
        r = scorer.score(body, author=author)
        lines.append(
            f"  - {label}: {category} {'flagged' if category in r.flags else 'NOT flagged'} "
            f"(score {r.scores[category]:.2f}; {', '.join(r.reasons.get(category, []))})"
        )
    r = scorer.score("", author="IH8OBAMA")
    lines.append(
        f"  - author 'IH8OBAMA': username score {r.scores['username']:.2f}, "
        f"{'flagged' if 'username' in r.flags else 'not flagged'} by design (political dislike of a person, "
        "no slur; listed as a reason for review)"
    )
    return lines


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


NOTES = [
    "Notes:",
    "",
    "- Split: `blake2b('comment-streams-moderation-v2:<set>:<row id>') % 10`: buckets 0-1 TEST "
    "(reported here, never used for a choice), 2 DEV (thresholds: `--choose-thresholds`; C in "
    "bench/train_flags.py), the rest TRAIN (the shipped model is fitted on TRAIN only). Sets without "
    "an id column (Gab, implicit hate, ToxiGen, SMS) use their whitespace-collapsed, case-folded text "
    "as the id, so copies never straddle the split.",
    "- Thresholds and priors (`--choose-thresholds`, DEV only): per category, over DEV pooled across "
    "every set that labels it, a prior for the model's head (0.02-0.5) and a threshold (0.50-0.99: the "
    "lexicon weights in moderation.toml are written for that scale): the lowest threshold with "
    "precision >= 0.80 and recall >= 0.25 if there is one (toxicity 0.63, spam 0.57), else the best "
    "F0.5 (identity_attack); at most 2% of neutral identity sentences (ToxiGen's DEV ones and the "
    "identity probe, so the probe's row above is not independent; ToxiGen's TEST row is) flagged per "
    "category, and none of the product's ordinary comments (bench/data/ordinary_comments.txt: "
    "'Stupid decision by the council.' keeps toxicity above 0.60; DEV precision is flat at ~0.80 "
    "from 0.50 to 0.70, recall 0.38 -> 0.23). profanity "
    "and threat are set by hand at 0.50: profanity here means any swear word, which Gab's 'vulgar' and "
    "the obscene spans label far more narrowly (pooled DEV precision 0.22 at recall 0.67), and threat has "
    "100 DEV positives. username has no labelled data (0.50 by hand). Pooled DEV mixes sets with very "
    "different base rates (toxic_spans is 70% toxic), so precision on one set can differ a lot from it.",
    "- toxicity's model head has its weights for plain swearing (fuck, shit, damn, hell, ... and their "
    "prefixes; bench/train_flags.py SWEARING) set to 0 after fitting: the project flags swearing as "
    "profanity, never as toxicity alone ('holy shit, what a goal'), while OLID and toxic_spans label "
    "much of it offensive. That costs toxicity AUC on those sets (OLID DEV 0.82 unmasked, model alone) "
    "and recall at precision 0.80; it is a product choice the owner may revisit (training with OLID's "
    "level B instead, untargeted swearing a toxicity negative, was no better: PROVENANCE.md).",
    "- Labels that span two of our categories (since 2026-12-07): OLID's offensive (level A OFF) is, by "
    "its annotation guidelines, 'profanity or a targeted offence', and a toxic_spans comment is toxic "
    "when any span is marked, profane ones included; here plain swearing is profanity, not toxicity, "
    "so those target rows take the higher of the toxicity and profanity scores (and count either "
    "flag). The rows below each give toxicity alone against the same label (as this table did before) "
    "and against the part of it that is toxicity by the project's definition (OLID level B's targeted "
    "offences, TIN; toxic_spans comments with a span that is not only profane). The mapping follows "
    "the labels' definitions; on DEV, with minilm-ft-v1, it gave OLID 0.857 against 0.830 and "
    "toxic_spans 0.641 against 0.633. The pooled decisions below still count every OFF tweet and "
    "every marked toxic_spans comment as a toxicity positive.",
    "- 'before' is the scorer shipped before issue 13 (bench/baseline: davidson-lr-v1 and its config), "
    "run by today's code; its scores are unchanged by this session's code changes (reasons only).",
    "- Label caps: toxic_spans comes from the platform's toxic pool only; its 'not toxic' comments are "
    "borderline, and one annotator agrees with the others' majority only as well as the line above "
    "says. Threat positives are few (TEST: see the positives column), so their AUCs move by a few "
    "points between splits.",
    "- ToxiGen neutral: until 2026-12-02 most sentences flagged here were copies of one demonstration "
    "('... leave me out of your crappy marriage ...') flagged as profanity for 'crappy' (6.5%). 'crap' "
    "now weighs 0.3, as 'damn' does (needs other evidence): the dsojevic lexicon rates it mild "
    "(severity 1, with damn, hell, bloody), and TRAIN+DEV labels treat it so (Gab posts with 'crap' "
    "are vulgar 7.5% of the time against a 6.3% base rate and 37% for 'shit'; toxic_spans 18%, "
    "'damn' 25%). Those TEST examples are what prompted the look, so this row is no longer an "
    "untouched estimate for that one word. ToxiGen's 'neutral' means not hateful. The column beside the "
    "target counts only the categories an identity mention can wrongly raise (toxicity, "
    "identity_attack, threat); the target itself is judged on every flag.",
    "- Throughput: compare 'before' and 'after' in the same run (same bodies, same moment of this "
    "shared VM): the five-head model costs about the same as the two-head Davidson model it replaces "
    "(the featurisation is shared; only the per-head sums grow). Absolute figures follow the yardstick: "
    "session 4 measured 9,925/s for the old scorer at 42-47 ns; runs at ~100 ns give about a third. Since "
    "2026-12-02 (session 10) both scorers run the compiled fast path (streams/native: the normalisation's "
    "last steps and the model featuriser, same results as the Python code, property-tested); the 'Python "
    "reference alone' figure is the scorer without it, so the gain is measured in each run. The two "
    "scorers are within ~10% of each other, in either order from run to run (13,018 vs 14,146 and "
    "10,726 vs 10,518 comments/s in two runs of 2026-12-02 and -03).",
    "- Tried on DEV before settling on the shipped features (words, word pairs, 3-5 letter word "
    "prefixes): character 3-5-grams inside words added to them (no gain on DEV: OLID 0.810 vs 0.818, "
    "toxic_spans toxic 0.621 either way, Gab vulgar 0.821 vs 0.817) and C 1 / 4 (PROVENANCE.md).",
    "- Second stage (2026-12-07; bench/train_second_stage.py, DEV only): the model's logit and the "
    "inline score's are combined per category by a logistic regression fitted on pooled DEV; "
    "thresholds are the lowest with pooled DEV precision >= 0.80 and recall >= 0.25, else the best "
    "F0.5, raised until at most 2% of the neutral identity sentences are flagged (as for the inline "
    "scorer) and above every score of the product's ordinary comments. A phrase rule's score is a "
    "floor (the sample thread's 'the Jews ... subvert' comment stays flagged; on DEV, with the first "
    "model trained, the floor cost toxic_spans toxic ROC-AUC 0.657 -> 0.640), and so is a profanity "
    "lexicon term's; profanity's threshold is the inline one (set by hand). The model reads the text "
    "without plain swearing (config.SWEARING), as the inline toxicity head ignores it: a first model "
    "trained with it scored 'holy shit, what a goal' and 'Stupid decision by the council.' toxic. The "
    "ordinary comments set toxicity's threshold (0.77, DEV recall 0.30; 0.68 before the neutral "
    "and ordinary limits). "
    "`rescore_from` "
    "is 0 (every comment): on DEV any band above it cost 0.005 mean ROC-AUC or more (0.05: -0.005 "
    "for 74% of the rows, 0.2: -0.021 for 35%), because harmful comments the inline scorer misses "
    "entirely are what the second stage finds.",
]


def write_results(section: str) -> None:
    block = f"{START}\n{section.rstrip()}\n{END}\n"
    if RESULTS.exists():
        current = RESULTS.read_text(encoding="utf-8")
        if START in current and END in current:
            head, rest = current.split(START, 1)
            tail = rest.split(END, 1)[1].lstrip("\n")
            RESULTS.write_text(head + block + ("\n" + tail if tail else ""), encoding="utf-8")
            return
        RESULTS.write_text(current.rstrip() + "\n\n" + block, encoding="utf-8")
        return
    RESULTS.write_text("# Benchmark results\n\n" + block, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller throughput sample, fewer repeats")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument(
        "--choose-thresholds", action="store_true", help="choose thresholds on DEV and rewrite moderation.toml"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rows = md.load_all()
    if args.choose_thresholds:
        dev = [r for r in rows if r.split == "dev"]
        priors, chosen = choose_thresholds(dev, load_moderation_config())
        print(f"priors: {priors}")
        for c, (t, p, r, n, rule) in chosen.items():
            print(f"{c}: threshold {t:.2f}  DEV precision {p:.3f} recall {r:.3f} ({n} positives; {rule})")
        write_thresholds(chosen, priors)
        print(f"rewrote [thresholds] in {DEFAULT_CONFIG_PATH}")
        return 0

    test = [r for r in rows if r.split == "test"]
    scorer = FlagScorer()
    before = FlagScorer(load_moderation_config(BASELINE))
    scorers: dict[str, FlagScorer] = {"before": before, "after": scorer}
    try:
        two_stage: TwoStageScorer | None = TwoStageScorer()
    except (EncoderUnavailable, ModerationConfigError) as exc:
        print(f"second stage not measured: {exc}", file=sys.stderr)
        two_stage = None
    if two_stage is not None:
        scorers[SECOND] = two_stage
    digests = {
        name: ", ".join(
            f"{m.id} (sha256 {hashlib.sha256(m.file.read_bytes()).hexdigest()[:12]})"
            for m in sc.config.models.values()
            if m.enabled and m.file is not None
        )
        for name, sc in scorers.items()
    }
    q_lines, misses, figures = quality(test, scorers)
    decisions = {name: pooled_decisions(test, sc, name) for name, sc in scorers.items()}
    pooled = decisions[list(scorers)[-1]][1]
    neutral = [r.text for r in test if r.set == "toxigen" and r.extra.get("neutral")]
    fp_lines, fp_misses = false_positives(scorers, neutral)
    misses += fp_misses
    for category in ("toxicity", "identity_attack"):
        p, rc = pooled[f"{category}:precision"], pooled[f"{category}:recall"]
        if not (p >= 0.80 and rc >= 0.60):
            misses.append(f"{category} at threshold (pooled TEST): precision {p:.3f}, recall {rc:.3f}")
    if two_stage is not None:
        inline_misses = [
            f"{c.set} {c.label} {figures[f'{c.set}:{c.label}:after']['auc']:.3f}"
            for c in CHECKS
            if c.auc_target and figures[f"{c.set}:{c.label}:after"]["auc"] < c.auc_target
        ]
        misses.append(
            "(targets judged on the second stage's verdicts; the inline scorer alone misses ROC-AUC: "
            + "; ".join(inline_misses)
            + ")"
        )
    ceiling = annotator_ceiling()
    s_lines = sample_thread(scorer)
    t_lines, rate = throughput(scorer, n=8192 if args.quick else 32768, repeats=2 if args.quick else 3, before=before)
    if rate < THROUGHPUT_TARGET:
        misses.append(f"scoring throughput {rate:,.0f}/s < {THROUGHPUT_TARGET:,}/s")
    if two_stage is not None:
        t_lines += ["", *second_stage_throughput(two_stage, test, n=256 if args.quick else 1024)]
    counts = {name: sum(r.set == name for r in test) for name in md.LOADERS}
    section = "\n".join(
        [
            "## Moderation flags (streams/enrich)",
            "",
            f"Generated by `.venv/bin/python bench/flags_eval.py{' --quick' if args.quick else ''}` on "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. after: {digests['after']}, config "
            f"{_shown(scorer.config.path)}; before: {digests['before']}, config {_shown(BASELINE)}.",
            "",
            "### Quality on every held-out TEST split",
            "",
            "TEST rows per set: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ". Label mapping: "
            "bench/moderation_data.py (`LABELS`; labels read by the bench only: `EXTRA_LABELS`). A row "
            'scored by "a or b" takes the higher of the two scores and counts either flag. P / R: '
            "precision / recall of the category's decision.",
            "",
            *second_stage_note(two_stage.second.stage.id if two_stage else "off"),
            "",
            *q_lines,
            "",
            "Decisions pooled over every TEST row labelled for the category:",
            "",
            *[line for _, (lines, _) in decisions.items() for line in [*lines, ""]],
            *ceiling,
            "",
            "### False positives on neutral sentences about identity groups",
            "",
            *fp_lines,
            "",
            *s_lines,
            "",
            "### Throughput",
            "",
            *t_lines,
            "",
            "### Targets",
            "",
            ("All targets met." if not misses else "Missed: " + "; ".join(misses) + ". See notes below."),
            "",
            *NOTES,
            "",
            f"(run took {time.perf_counter() - started:.0f} s)",
        ]
    )
    print(section)
    if not args.no_write:
        write_results(section)
        print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
