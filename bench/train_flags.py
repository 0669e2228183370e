"""Train the comment models shipped as streams/enrich/data/comments-lr-v3.npz (deterministic).

    .venv/bin/python bench/train_flags.py                 # fit on TRAIN, write the model
    .venv/bin/python bench/train_flags.py --out /tmp/m.npz --no-check

Data: the labelled sets in /work/shared/data/moderation (read by bench/moderation_data.py, here
only; never at run time). Split: a seeded hash of each row's id (moderation_data.py): 20% TEST
(never used for any choice; bench/flags_eval.py reports on it), 10% DEV (hyper-parameters here,
thresholds in moderation.toml via bench/flags_eval.py --choose-thresholds), 70% TRAIN. The shipped
model is fitted on TRAIN only, so DEV stays honest for the threshold choice.

Model: `streams.enrich.flags.model_features` (words, word pairs, 3-5 letter word prefixes) of the
normalised text -> binary TF-IDF (presence x idf, l2-normalised) -> one logistic-regression head
per category (toxicity, profanity, identity_attack, threat, spam), each fitted on the rows whose
set labels that category (moderation_data.LABELS). Soft targets (each row twice, weighted p and
1 - p) keep annotator disagreement; classes are weighted to balance (so a head's probability is
at an even prior; the thresholds are chosen on DEV for the full scorer). Coefficients are stored unpruned (see
PRUNE_BELOW) as float16 plain arrays; the run-time `SparseLinearModel` reproduces scikit-learn's
probabilities (checked below).

Choices made on DEV (bench/train_flags.py --tune): C per head, min_df. Pooled DEV AUCs per set
are printed by --tune.

Moderator reviews (off by default, so the default run stays as it was): `--reviews FILE` adds the
comments moderators judged (`streams review`, table moderation_reviews) to TRAIN, exported with

    streams query reviewed_comments --format json > reviews.json

(a JSON array, one object per line; JSON lines work too). confirm and missed make the comment a
positive for the category, reject a negative; several verdicts on one comment and category are
averaged into a soft label, like annotator shares. `username` has no text head and is skipped.
DEV and TEST stay the labelled sets' own, so their numbers stay comparable between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import moderation_data as md  # noqa: E402

from streams.enrich.flags import DATA_DIR, SparseLinearModel, model_features  # noqa: E402
from streams.enrich.flags.config import SWEARING  # noqa: E402
from streams.enrich.normalize import normalize  # noqa: E402

MODEL_ID = "comments-lr-v3"
MODEL_PATH = DATA_DIR / f"{MODEL_ID}.npz"
HEADS = md.CATS
#: Inverse L2 strength per head (chosen on DEV with --tune).
C_BY_HEAD = {"toxicity": 4.0, "profanity": 4.0, "identity_attack": 4.0, "threat": 4.0, "spam": 4.0}
MIN_DF = 2
#: No pruning: a dropped feature would still have counted in the L2 norm scikit-learn uses, so
#: pruning changes other features' scores too (seen: up to 0.06 in probability at 0.02).
PRUNE_BELOW = 0.0


#: Swearing that is not aimed at anyone. The project flags it as profanity, never as toxicity by
#: itself ("holy shit, what a goal"), but OLID and toxic_spans label much of it offensive / toxic.
#: So the toxicity head's weights for these words (and their 4-5 letter prefixes) are set to 0
#: after fitting; word pairs keep theirs ("fuck you" stays evidence of abuse), and so do insults.
# (the list: streams.enrich.flags.config.SWEARING, which the second stage's model input drops too)


def swearing_features(features: list[str]) -> list[int]:
    """Indices of the word and word-prefix features of `SWEARING` words."""
    prefixes = {f"<{w[:k]}" for w in SWEARING for k in (4, 5) if len(w) > k}
    return [i for i, f in enumerate(features) if f in SWEARING or f in prefixes]


def mask_swearing(model: LogisticRegression, vec: TfidfVectorizer) -> int:
    vocab: dict[str, int] = vec.vocabulary_
    features = sorted(vocab, key=vocab.__getitem__)
    idx = swearing_features(features)
    model.coef_[0, idx] = 0.0
    return len(idx)


#: Verdict -> training label for the reviewed category (streams/reviews.py).
REVIEW_LABELS = {"confirm": 1.0, "missed": 1.0, "reject": 0.0}


def read_reviews(path: Path) -> list[dict[str, object]]:
    """The objects of a reviews export: a JSON array (`streams query ... --format json`) or JSON lines."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        loaded = json.loads(text)
        return [r for r in loaded if isinstance(r, dict)]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def review_rows(reviews: list[dict[str, object]]) -> list[md.Row]:
    """One training row per reviewed comment (set "reviews"), labelled only in its reviewed categories."""
    verdicts: dict[tuple[str, str], dict[str, list[float]]] = {}
    texts: dict[tuple[str, str], tuple[str, str | None]] = {}
    for r in reviews:
        category, verdict, body = r.get("category"), r.get("verdict"), r.get("body")
        if category not in HEADS or verdict not in REVIEW_LABELS or not isinstance(body, str) or not body.strip():
            continue
        key = (str(r.get("thread_id") or ""), str(r.get("comment_id") or ""))
        author = r.get("author")
        texts[key] = (body, author if isinstance(author, str) else None)
        verdicts.setdefault(key, {}).setdefault(str(category), []).append(REVIEW_LABELS[str(verdict)])
    out = []
    for key in sorted(verdicts):
        labels: dict[str, float | None] = dict.fromkeys(md.CATS)
        for category, values in verdicts[key].items():
            labels[category] = sum(values) / len(values)
        body, author = texts[key]
        out.append(md.Row("reviews", f"{key[0]}:{key[1]}", body, labels, author=author))
    return out


def featurize(texts: list[str]) -> list[str]:
    return [normalize(t) for t in texts]


def fit(
    rows: list[md.Row], norms: list[str], c_by_head: dict[str, float]
) -> tuple[TfidfVectorizer, dict[str, LogisticRegression], dict[str, float]]:
    vec = TfidfVectorizer(analyzer=model_features, min_df=MIN_DF, binary=True, norm="l2", dtype=np.float64)
    x_all = vec.fit_transform(norms)
    heads: dict[str, LogisticRegression] = {}
    priors: dict[str, float] = {}
    for head in HEADS:
        idx = [i for i, r in enumerate(rows) if r.labels[head] is not None]
        p = np.clip(np.array([rows[i].labels[head] for i in idx], dtype=np.float64), 0.0, 1.0)
        x = x_all[idx]
        both = sp.vstack([x, x]).tocsr()
        y = np.r_[np.ones(len(idx)), np.zeros(len(idx))]
        pos = float(p.sum())
        neg = len(p) - pos
        w = np.r_[p * len(p) / (2 * pos), (1.0 - p) * len(p) / (2 * neg)]
        clf = LogisticRegression(C=c_by_head[head], max_iter=5000)
        clf.fit(both, y, sample_weight=w)
        heads[head] = clf
        priors[head] = 0.5  # balanced classes: probabilities are at an even prior
        print(f"  head {head}: {len(idx)} rows, {pos:.0f} positive (soft sum)", flush=True)
    return vec, heads, priors


def export(vec: TfidfVectorizer, heads: dict[str, LogisticRegression], meta: dict[str, object]) -> SparseLinearModel:
    vocab: dict[str, int] = vec.vocabulary_
    features = sorted(vocab, key=vocab.__getitem__)
    coef = np.stack([heads[h].coef_.ravel() for h in HEADS], axis=1)
    keep = np.abs(coef).max(axis=1) >= PRUNE_BELOW if PRUNE_BELOW > 0 else np.ones(len(features), dtype=bool)
    kept = [f for f, k in zip(features, keep, strict=True) if k]
    return SparseLinearModel(
        kept,
        np.asarray(vec.idf_)[keep],
        coef[keep],
        np.array([float(heads[h].intercept_[0]) for h in HEADS]),
        heads=HEADS,
        tf="binary",
        meta=meta,
    )


def dev_aucs(rows: list[md.Row], scores: np.ndarray) -> list[str]:
    out = []
    for h, head in enumerate(HEADS):
        parts = []
        for name in md.LOADERS:
            k = [i for i, r in enumerate(rows) if r.set == name and r.labels[head] is not None]
            y = np.array([rows[i].labels[head] >= 0.5 for i in k])  # type: ignore[operator]
            if len(k) and 0 < y.sum() < len(y):
                parts.append(f"{name} {roc_auc_score(y, scores[k, h]):.3f}")
        out.append(f"{head}: " + ", ".join(parts))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--tune", action="store_true", help="grid over C on DEV; writes nothing")
    parser.add_argument("--no-check", action="store_true", help="skip the export check against scikit-learn")
    parser.add_argument(
        "--reviews",
        type=Path,
        default=None,
        help="add moderator reviews to TRAIN (`streams query reviewed_comments --format json` output); off by default",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rows = md.load_all()
    train = [r for r in rows if r.split == "train"]
    dev = [r for r in rows if r.split == "dev"]
    print(f"rows={len(rows)} train={len(train)} dev={len(dev)} (TEST never used here)", flush=True)
    reviewed = review_rows(read_reviews(args.reviews)) if args.reviews else []
    if args.reviews:
        print(f"+ {len(reviewed)} reviewed comments from {args.reviews} (TRAIN only)", flush=True)
        train += reviewed
    train_norms = featurize([r.text for r in train])
    dev_norms = featurize([r.text for r in dev])

    if args.tune:
        for c in (1.0, 4.0, 16.0):
            vec, heads, _ = fit(train, train_norms, dict.fromkeys(HEADS, c))
            x = vec.transform(dev_norms)
            scores = np.stack([heads[h].decision_function(x) for h in HEADS], axis=1)
            print(f"C={c}:\n  " + "\n  ".join(dev_aucs(dev, scores)), flush=True)
        return 0

    vec, heads, priors = fit(train, train_norms, C_BY_HEAD)
    print(f"toxicity head: {mask_swearing(heads['toxicity'], vec)} swearing features set to 0")
    meta: dict[str, object] = {
        "id": MODEL_ID,
        "datasets": {name: {"source": src, "licence": lic} for name, (src, lic) in md.SOURCES.items()},
        "data_sha256": md.file_digests(),
        "labels": md.LABELS,
        "split": f"blake2b('{md.SPLIT_SEED}:<set>:<row id>') % {md.N_BUCKETS}; buckets "
        f"{sorted(md.TEST_BUCKETS)} TEST, {sorted(md.DEV_BUCKETS)} DEV, the rest TRAIN (fitted on TRAIN only)",
        "train_rows": len(train),
        "C": C_BY_HEAD,
        "min_df": MIN_DF,
        "prune_below": PRUNE_BELOW,
        "class_weight": "balanced per head",
        "train_prior": priors,
        "sklearn": sklearn.__version__,
        "features": "model_features: words (links and @mentions as one placeholder word each), word pairs, "
        "<prefix3-5; binary tf x idf, l2",
        "toxicity_masked": sorted(SWEARING),
    }
    if args.reviews:
        meta["reviews"] = {
            "file": args.reviews.name,
            "sha256": hashlib.sha256(args.reviews.read_bytes()).hexdigest(),
            "rows": len(reviewed),
        }
    model = export(vec, heads, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out, half=True)
    reloaded = SparseLinearModel.load(args.out)
    print(
        f"exported {len(reloaded.vocabulary)} of {len(vec.vocabulary_)} features -> {args.out} "
        f"({args.out.stat().st_size / 1024:.0f} KiB, sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()[:12]})"
    )
    x = vec.transform(dev_norms)
    ours = reloaded.decision_function([model_features(t) for t in dev_norms])
    print("DEV ROC-AUC of the exported heads:\n  " + "\n  ".join(dev_aucs(dev, ours)))
    if not args.no_check:
        theirs = np.stack([heads[h].decision_function(x) for h in HEADS], axis=1)
        max_diff = float(np.abs(1 / (1 + np.exp(-ours)) - 1 / (1 + np.exp(-theirs))).max())
        print(f"max |p_ours - p_sklearn| on DEV = {max_diff:.2e} (pruning + float16 coefficients)")
        if max_diff > 5e-3:
            print("export does not reproduce scikit-learn", file=sys.stderr)
            return 1
    print(json.dumps({k: v for k, v in meta.items() if k not in ("data_sha256", "labels", "datasets")}, indent=1))
    print(f"done in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
