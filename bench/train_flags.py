"""Train the Davidson-2017 logistic regression shipped as streams/enrich/data/davidson-lr-v1.npz.

    .venv/bin/python bench/train_flags.py            # train on the TRAIN split, write the model
    .venv/bin/python bench/train_flags.py --tune     # fit on train-minus-dev, report dev AUCs
    .venv/bin/python bench/train_flags.py --without-dev --out /tmp/dev.npz
                                                     # a model that never saw DEV, for choosing
                                                     # weights/thresholds in moderation.toml on DEV

Data: /work/shared/data/davidson-2017/labeled_data.csv (read here only; never at run time).

Split (deterministic, shared with bench/flags_eval.py): each tweet's *group key* is its text with
HTML entities decoded, links, @mentions and "RT" removed, case-folded, letters only; bucket =
blake2b(key) mod 5. Bucket 0 is the held-out TEST split (never used here). Bucket 1 is DEV, used
only with --tune to choose hyper-parameters; the shipped model is fitted on buckets 1-4. Grouping
by key keeps retweets and copies of one tweet on the same side of the split.

Model: features from `streams.enrich.flags.model_features` (words, word pairs, 3-5 letter word
prefixes) -> binary TF-IDF (presence x idf, l2-normalised) -> two logistic-regression heads:
  toxicity        target = share of annotators who said hate OR offensive
  identity_attack target = share of annotators who said hate
Soft targets (each row twice, weighted p and 1-p) use the annotator disagreement the counts
carry instead of the majority class. Coefficients are exported as plain arrays; the run-time
`SparseLinearModel` reproduces scikit-learn's probabilities (checked below).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.enrich.flags import DATA_DIR, SparseLinearModel, model_features  # noqa: E402
from streams.enrich.normalize import normalize  # noqa: E402

DATA = Path("/work/shared/data/davidson-2017/labeled_data.csv")
DATASET_COMMIT = "cb50f7e9eb855a99abc51423bf40df0e26d6fe30"
MODEL_ID = "davidson-lr-v1"
MODEL_PATH = DATA_DIR / f"{MODEL_ID}.npz"
HEADS = ("toxicity", "identity_attack")
TEST_BUCKET, DEV_BUCKET = 0, 1
# Chosen with --tune on DEV (see PROVENANCE.md); C is the inverse L2 strength.
C_BY_HEAD = {"toxicity": 4.0, "identity_attack": 2.0}
MIN_DF = 2
PRUNE_BELOW = 1e-3

_LINK = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"(?<![\w.@])@\w+")
_RT = re.compile(r"\brt\b", re.IGNORECASE)
_NON_LETTERS = re.compile(r"[\W\d_]+")


@dataclass(frozen=True)
class Row:
    row_id: str
    text: str  # HTML entities decoded; links and mentions still in (the model ignores them)
    klass: int  # 0 hate, 1 offensive, 2 neither (majority)
    hate: float  # share of annotators saying hate
    offensive: float
    bucket: int


def group_key(tweet: str) -> str:
    # Deliberately independent of streams' normaliser, so the split never moves when it changes.
    text = _RT.sub(" ", _MENTION.sub(" ", _LINK.sub(" ", html.unescape(tweet))))
    return _NON_LETTERS.sub("", text.casefold())


def bucket_of(tweet: str) -> int:
    digest = hashlib.blake2b(group_key(tweet).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 5


def load_rows(path: Path = DATA) -> list[Row]:
    rows: list[Row] = []
    with path.open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            count = int(rec["count"])
            rows.append(
                Row(
                    row_id=rec[""],
                    text=html.unescape(rec["tweet"]),
                    klass=int(rec["class"]),
                    hate=int(rec["hate_speech"]) / count,
                    offensive=int(rec["offensive_language"]) / count,
                    bucket=bucket_of(rec["tweet"]),
                )
            )
    return rows


def targets(rows: list[Row], head: str) -> np.ndarray:
    if head == "toxicity":
        return np.array([r.hate + r.offensive for r in rows])
    return np.array([r.hate for r in rows])


def fit_heads(rows: list[Row], c_by_head: dict[str, float]) -> tuple[TfidfVectorizer, list[LogisticRegression]]:
    texts = [normalize(r.text) for r in rows]
    vec = TfidfVectorizer(analyzer=model_features, min_df=MIN_DF, binary=True, norm="l2")
    x = vec.fit_transform(texts)
    both = sp.vstack([x, x]).tocsr()
    ones = np.r_[np.ones(x.shape[0]), np.zeros(x.shape[0])]
    models = []
    for head in HEADS:
        p = np.clip(targets(rows, head), 0.0, 1.0)
        clf = LogisticRegression(C=c_by_head[head], max_iter=5000)
        clf.fit(both, ones, sample_weight=np.r_[p, 1.0 - p])
        models.append(clf)
    return vec, models


def export(vec: TfidfVectorizer, models: list[LogisticRegression], meta: dict[str, object]) -> SparseLinearModel:
    vocab: dict[str, int] = vec.vocabulary_
    features = sorted(vocab, key=vocab.__getitem__)
    coef = np.stack([m.coef_.ravel() for m in models], axis=1)
    keep = np.abs(coef).max(axis=1) >= PRUNE_BELOW
    kept = [f for f, k in zip(features, keep, strict=True) if k]
    return SparseLinearModel(
        kept,
        np.asarray(vec.idf_)[keep],
        coef[keep],
        np.array([float(m.intercept_[0]) for m in models]),
        heads=HEADS,
        tf="binary",
        meta=meta,
    )


def dev_report(train: list[Row], dev: list[Row], c_by_head: dict[str, float]) -> dict[str, float]:
    vec, models = fit_heads(train, c_by_head)
    x = vec.transform([normalize(r.text) for r in dev])
    labels = {
        "toxicity": np.array([r.klass != 2 for r in dev]),
        "identity_attack": np.array([r.klass == 0 for r in dev]),
    }
    return {h: float(roc_auc_score(labels[h], m.predict_proba(x)[:, 1])) for h, m in zip(HEADS, models, strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune", action="store_true", help="grid over C on DEV; writes nothing")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument(
        "--without-dev",
        action="store_true",
        help="fit on buckets 2-4 only (for choosing weights/thresholds on DEV); use with --out",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rows = load_rows()
    counts = {b: sum(r.bucket == b for r in rows) for b in range(5)}
    print(f"rows={len(rows)} buckets={counts} (bucket {TEST_BUCKET} = held-out TEST, never used here)")
    train_all = [r for r in rows if r.bucket != TEST_BUCKET]

    if args.tune:
        train = [r for r in train_all if r.bucket != DEV_BUCKET]
        dev = [r for r in train_all if r.bucket == DEV_BUCKET]
        for c in (0.5, 1.0, 2.0, 4.0, 8.0):
            aucs = dev_report(train, dev, {h: c for h in HEADS})
            print(f"C={c:<4} dev AUC " + "  ".join(f"{h}={a:.4f}" for h, a in aucs.items()))
        return 0

    if args.without_dev:
        if args.out == MODEL_PATH:
            parser.error("--without-dev needs --out (it must not replace the shipped model)")
        train_all = [r for r in train_all if r.bucket != DEV_BUCKET]
    vec, models = fit_heads(train_all, C_BY_HEAD)
    csv_sha = hashlib.sha256(DATA.read_bytes()).hexdigest()
    meta: dict[str, object] = {
        "id": MODEL_ID,
        "dataset": "davidson-2017 labeled_data.csv",
        "dataset_commit": DATASET_COMMIT,
        "dataset_sha256": csv_sha,
        "split": "blake2b(group_key) % 5; bucket 0 held out; trained on buckets "
        + ("2-4 (DEV held out too)" if args.without_dev else "1-4"),
        "train_rows": len(train_all),
        "C": C_BY_HEAD,
        "min_df": MIN_DF,
        "prune_below": PRUNE_BELOW,
        "sklearn": sklearn.__version__,
        # Mean soft target per head: the base rate the probabilities are calibrated to.
        "train_prior": {h: round(float(np.clip(targets(train_all, h), 0, 1).mean()), 6) for h in HEADS},
        "features": "model_features: words, word pairs, <prefix3-5; binary tf x idf, l2",
    }
    model = export(vec, models, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)

    # The exported arrays must reproduce scikit-learn (up to pruning and float32 storage).
    reloaded = SparseLinearModel.load(args.out)
    sample = [normalize(r.text) for r in train_all[:3000]]
    ours = reloaded.predict_proba([model_features(t) for t in sample])
    x = vec.transform(sample)
    theirs = np.stack([m.predict_proba(x)[:, 1] for m in models], axis=1)
    max_diff = float(np.abs(ours - theirs).max())
    print(
        f"exported {len(reloaded.vocabulary)} of {len(vec.vocabulary_)} features -> {args.out} "
        f"({args.out.stat().st_size / 1024:.0f} KiB); max |p_ours - p_sklearn| = {max_diff:.2e}"
    )
    if max_diff > 2e-3:
        print("export does not reproduce scikit-learn", file=sys.stderr)
        return 1
    print(json.dumps(meta, indent=2))
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
