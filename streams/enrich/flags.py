"""Moderation flags: a score, a decision and the reasons for each category, for one comment.

Every category score is a noisy-OR of independent pieces of evidence, each a weight in [0, 1]:
``score = 1 - prod(1 - w_i)``. Evidence comes from

- lexicon terms (``lexicon:<category>:<term>``) and phrase rules (``phrase:<category>:<id>``),
  both in `data/moderation.toml`, matched on normalised text (see `streams.enrich.normalize`);
- linear models (``model:<id>:<probability>``): our comment model, one logistic-regression head
  per text category (`comments-lr-v2`, trained by bench/train_flags.py on labelled comment sets;
  weights shipped in `data/`, scored with numpy, no pickle) and alt-profanity-check for profanity;
  a model's probability (re-based to the configured prior) times the configured weight. A model is
  named as a reason only where it moved the rounded score;
- spam signals (``spam:links=N``, ``spam:duplicate_authors=N``);
- for `username`, the display name checked against username rules, the comment lexicons and the
  display-name lexicon (`data/username-lexicon-v1.tsv`: category and severity per term).

`toxicity` is at least the score of the categories it includes (identity attacks and threats are
toxic too), with reason ``category:<name>``. A category is flagged when its score reaches its
threshold. Scores are rounded to 4 decimals; reasons are listed even below the threshold, so a
moderator sees why a comment scored what it did.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise, repeat
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from streams.enrich.normalize import Analysis, TermMatcher, analyze, normalize, tokens_of_normalized
from streams.enrich.text import count_links
from streams.models import FlagResult

__all__ = [
    "CATEGORIES",
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "FlagScorer",
    "ModerationConfig",
    "ModerationConfigError",
    "PhraseRule",
    "ScoreInput",
    "SparseLinearModel",
    "WordFeaturizer",
    "load_moderation_config",
    "model_features",
]

CATEGORIES: tuple[str, ...] = ("toxicity", "profanity", "identity_attack", "threat", "spam", "username")
#: Categories scored from the comment body (lexicons and phrase rules exist for these).
TEXT_CATEGORIES: tuple[str, ...] = ("toxicity", "profanity", "identity_attack", "threat", "spam")
DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_CONFIG_PATH = DATA_DIR / "moderation.toml"
CONFIG_ENV = "STREAMS_MODERATION_FILE"
#: Top-level tables owned by other components: kept in the file, not validated here.
FOREIGN_TABLES = frozenset({"detectors"})
#: The `[models.*]` entry for alt-profanity-check; every other entry is a linear model file.
PROFANITY_CHECK = "profanity_check"
SCHEMA_VERSION = 1


class ModerationConfigError(ValueError):
    """The moderation config is missing, unreadable or invalid; the message names file and key."""


# --------------------------------------------------------------------------------------------
# Linear text models
# --------------------------------------------------------------------------------------------

# Literal first characters (h, w, @) keep this search cheap.
_MODEL_NOISE = re.compile(r"https?://\S+|www\.\S+|@\w+")
_PREFIX_LENGTHS = (3, 4, 5)
_Ids = NDArray[np.int64]


def model_features(normalized: str, words: Sequence[str] | None = None) -> list[str]:
    """Features of normalised text for our linear model (training uses this very function).

    Words and word pairs, plus word prefixes of 3-5 letters ("<fagg") so unseen inflections and
    compounds still carry their stem's weight. Links, @mentions and the retweet marker are noise.
    `words` may pass the text's words when the caller has them (see `analyze`).
    """
    if words is None or "@" in normalized or "http" in normalized or "www" in normalized:
        if "@" in normalized or "http" in normalized or "www" in normalized:
            normalized = _MODEL_NOISE.sub(" ", normalized)
        words = tokens_of_normalized(normalized)
    if "rt" in words:
        words = [w for w in words if w != "rt"]
    feats = list(words)
    feats += [f"{a} {b}" for a, b in pairwise(words)]
    feats += [f"<{w[:k]}" for w in words if len(w) > 3 for k in _PREFIX_LENGTHS if len(w) > k]
    return feats


TfMode = Literal["binary", "raw", "sublinear"]


class SparseLinearModel:
    """Linear heads over L2-normalised TF-IDF of string features, scored in batches with numpy.

    Equivalent to scikit-learn's ``TfidfVectorizer(norm="l2")`` + a linear model's decision
    function. `tf` is how a feature's count in a document enters: "binary" (present = 1, as
    ``binary=True``), "raw" (the count) or "sublinear" (1 + log count). Stored as plain arrays
    (``.npz``, loaded with ``allow_pickle=False``).
    """

    def __init__(
        self,
        features: Sequence[str],
        idf: NDArray[np.float64],
        coef: NDArray[np.float64],
        intercept: NDArray[np.float64],
        *,
        heads: Sequence[str],
        tf: TfMode,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        n = len(features)
        if idf.shape != (n,) or coef.shape != (n, len(heads)) or intercept.shape != (len(heads),):
            raise ValueError(
                f"inconsistent model arrays: {n} features, idf {idf.shape}, coef {coef.shape}, "
                f"intercept {intercept.shape}, {len(heads)} heads"
            )
        if tf not in ("binary", "raw", "sublinear"):
            raise ValueError(f"tf must be binary, raw or sublinear, not {tf!r}")
        self.vocabulary: dict[str, int] = {f: i for i, f in enumerate(features)}
        self.heads = tuple(heads)
        self.tf: TfMode = tf
        self.meta: Mapping[str, Any] = MappingProxyType(dict(meta or {}))
        self._idf = np.asarray(idf, dtype=np.float64)
        self._coef = np.asarray(coef, dtype=np.float64)
        self._intercept = np.asarray(intercept, dtype=np.float64)
        # Per feature: idf^2 (for the norm) and idf x coef per head, gathered in one go.
        self._binary_table = np.column_stack([self._idf**2, self._idf[:, None] * self._coef])

    @property
    def features(self) -> list[str]:
        return list(self.vocabulary)

    def ids(self, feats: Iterable[str]) -> list[int]:
        """Vocabulary ids of the known features among `feats` (repeats kept)."""
        get = self.vocabulary.get
        return [i for i in map(get, feats) if i is not None]

    def decision_function(self, docs: Iterable[Sequence[str]]) -> NDArray[np.float64]:
        """Raw linear scores for documents given as feature strings, shape (n_docs, n_heads)."""
        return self.decision_function_ids([self.ids(feats) for feats in docs])

    def decision_function_ids(self, docs: Sequence[Collection[int]]) -> NDArray[np.float64]:
        """Raw linear scores for documents given as feature ids (repeats count unless binary;
        a set counts each id once)."""
        n_docs = len(docs)
        out = np.tile(self._intercept, (n_docs, 1))
        flat: list[int] = []
        lengths: list[int] = []
        # Repeated features are rare: count them in Python only where they occur.
        repeats: list[tuple[int, int]] = []  # (position in flat, count)
        binary = self.tf == "binary"
        previous = 0
        for ids in docs:
            unique = ids if isinstance(ids, set | frozenset) else set(ids)
            if len(unique) != len(ids) and not binary:
                counts: dict[int, int] = {}
                for i in ids:
                    counts[i] = counts.get(i, 0) + 1
                for i, c in counts.items():
                    if c > 1:
                        repeats.append((len(flat), c))
                    flat.append(i)
            else:
                flat.extend(unique)
            lengths.append(len(flat) - previous)
            previous = len(flat)
        if not flat:
            return out
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        feat = np.asarray(flat, dtype=np.int64)
        if binary or not repeats:
            return self._add_binary(out, doc, feat, n_docs)
        tf = np.ones(len(flat))
        pos, cnt = zip(*repeats, strict=True)
        tf[list(pos)] = np.log(cnt) + 1.0 if self.tf == "sublinear" else np.asarray(cnt, dtype=np.float64)
        return self._add_weighted(out, doc, feat, tf, n_docs)

    def decision_function_pairs(
        self,
        doc: NDArray[np.int64],
        feat: NDArray[np.int64],
        n_docs: int,
        counts: NDArray[np.int64] | None = None,
    ) -> NDArray[np.float64]:
        """Raw linear scores from distinct (document, feature id) pairs, shape (n_docs, n_heads).

        `counts` holds each pair's count (for "raw"/"sublinear"; None: every count is 1).
        """
        out = np.tile(self._intercept, (n_docs, 1))
        if len(feat) == 0:
            return out
        if counts is None or self.tf == "binary":
            return self._add_binary(out, doc, feat, n_docs)
        tf = np.log(counts) + 1.0 if self.tf == "sublinear" else counts.astype(np.float64)
        return self._add_weighted(out, doc, feat, tf, n_docs)

    def _add_binary(
        self, out: NDArray[np.float64], doc: NDArray[np.int64], feat: NDArray[np.int64], n_docs: int
    ) -> NDArray[np.float64]:
        """Add the L2-normalised scores of binary features (norm and weights precomputed per feature)."""
        table = self._binary_table[feat]
        norm = np.sqrt(np.bincount(doc, weights=table[:, 0], minlength=n_docs))
        norm[norm == 0.0] = 1.0
        for h in range(len(self.heads)):
            out[:, h] += np.bincount(doc, weights=table[:, h + 1], minlength=n_docs) / norm
        return out

    def _add_weighted(
        self,
        out: NDArray[np.float64],
        doc: NDArray[np.int64],
        feat: NDArray[np.int64],
        tf: NDArray[np.float64],
        n_docs: int,
    ) -> NDArray[np.float64]:
        """Add the L2-normalised tf-idf scores of features with term frequencies `tf`."""
        x = tf * self._idf[feat]
        norm = np.sqrt(np.bincount(doc, weights=x * x, minlength=n_docs))
        norm[norm == 0.0] = 1.0
        for h in range(len(self.heads)):
            out[:, h] += np.bincount(doc, weights=x * self._coef[feat, h], minlength=n_docs) / norm
        return out

    def predict_proba(self, docs: Iterable[Sequence[str]]) -> NDArray[np.float64]:
        """Logistic probability per head, shape (n_docs, n_heads)."""
        z = self.decision_function(docs)
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def save(self, path: Path, *, half: bool = False) -> None:
        """Write as compressed ``.npz`` of plain arrays (strings as UTF-8 bytes).

        `half` stores the coefficients as float16 (``coef16``): half the size of float32, scores
        within about 1e-3 of the full-precision model.
        """
        meta = dict(self.meta)
        meta.update(heads=list(self.heads), tf=self.tf)
        arrays: dict[str, NDArray[Any]] = {
            "features": np.frombuffer("\n".join(self.vocabulary).encode("utf-8"), dtype=np.uint8),
            "idf": self._idf.astype(np.float32),
            "intercept": self._intercept,
            "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8),
        }
        if half:
            arrays["coef16"] = self._coef.astype(np.float16)
        else:
            arrays["coef"] = self._coef.astype(np.float32)
        np.savez_compressed(path, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: Path) -> SparseLinearModel:
        with np.load(path, allow_pickle=False) as data:
            features = data["features"].tobytes().decode("utf-8").split("\n")
            meta = json.loads(data["meta"].tobytes().decode("utf-8"))
            coef = (data["coef16"] if "coef16" in data else data["coef"]).astype(np.float64)
            return cls(
                features,
                data["idf"].astype(np.float64),
                coef,
                data["intercept"].astype(np.float64),
                heads=meta["heads"],
                tf=meta["tf"],
                meta=meta,
            )


class WordFeaturizer:
    """`model_features` -> vocabulary ids for a `SparseLinearModel`, without building strings.

    Gives the same ids as ``model.ids(model_features(text))`` (a test checks it), but caches each
    word's own ids (the word and its prefixes) and looks word pairs up in a nested dict, which is
    several times cheaper than formatting every feature string per comment. A `secondary`
    word-level vocabulary (alt-profanity-check's) is looked up in the same pass.
    """

    CACHE_SIZE = 200_000

    def __init__(self, model: SparseLinearModel, secondary: Mapping[str, int] | None = None) -> None:
        self.model = model
        self._vocab = model.vocabulary
        self._secondary = secondary or {}
        self._pairs: dict[str, dict[str, int]] = {}
        for feature, i in model.vocabulary.items():
            if " " in feature and not feature.startswith("<"):
                first, second = feature.split(" ", 1)
                self._pairs.setdefault(first, {})[second] = i
        # word -> (ids of the word and its prefixes, {next word: id of the pair} or None,
        #          ids of the word in the secondary vocabulary)
        self._cache: dict[str, tuple[tuple[int, ...], dict[str, int] | None, tuple[int, ...]]] = {}
        # Batch path (`batch`): each word seen gets a row of ids in two numpy tables, so a whole
        # batch is featurised with a handful of array operations instead of a loop per word.
        # Words of the model's word pairs get their rows up front: a pair is then the pair of
        # row numbers, looked up in one sorted array.
        self._rows: dict[str, int] = {}
        self._own = np.full((1024, 4), -1, dtype=np.int64)  # the word and its 3 prefixes, at most
        self._other = np.full((1024, 1), -1, dtype=np.int64)
        pair_words = sorted({w for first, seconds in self._pairs.items() for w in (first, *seconds)} | {"rt"})
        self._add_rows(pair_words)
        self._fixed_rows = dict(self._rows)
        self._rt = self._rows["rt"]
        keys = [self._rows[a] * _PAIR_BASE + self._rows[b] for a, seconds in self._pairs.items() for b in seconds]
        ids = [i for seconds in self._pairs.values() for i in seconds.values()]
        order = np.argsort(np.asarray(keys, dtype=np.int64), kind="stable")
        self._pair_keys = np.asarray(keys, dtype=np.int64)[order]
        self._pair_ids = np.asarray(ids, dtype=np.int64)[order]
        self._n_features = len(self._vocab)
        self._n_secondary = max(self._secondary.values(), default=-1) + 1

    def _entry(self, word: str) -> tuple[tuple[int, ...], dict[str, int] | None, tuple[int, ...]]:
        get = self._vocab.get
        feats = [word]
        if len(word) > 3:
            feats += [f"<{word[:k]}" for k in _PREFIX_LENGTHS if len(word) > k]
        own = tuple(i for i in map(get, feats) if i is not None)
        # The secondary tokeniser (scikit-learn's default) splits "don't" into "don" and "t".
        parts = word.split("'") if "'" in word else (word,)
        other = tuple(i for i in map(self._secondary.get, parts) if i is not None)
        return own, self._pairs.get(word), other

    def _add_rows(self, words: Sequence[str]) -> None:
        start = len(self._rows)
        need = start + len(words)
        if need > len(self._own):
            grow = max(need, 2 * len(self._own))
            self._own = np.vstack([self._own, np.full((grow - len(self._own), 4), -1, dtype=np.int64)])
            self._other = np.vstack(
                [self._other, np.full((grow - len(self._other), self._other.shape[1]), -1, dtype=np.int64)]
            )
        for r, word in enumerate(words, start):
            own, _, other = self._entry(word)
            self._rows[word] = r
            self._own[r] = -1  # rows are reused after the cache is reset
            self._other[r] = -1
            if word != "rt":  # the retweet marker is not a word of the comment (training drops it)
                self._own[r, : len(own)] = own
            if len(other) > self._other.shape[1]:
                extra = len(other) - self._other.shape[1]
                self._other = np.hstack([self._other, np.full((len(self._other), extra), -1, dtype=np.int64)])
            self._other[r, : len(other)] = other

    def batch(
        self, texts: Sequence[str], words: Sequence[Sequence[str]]
    ) -> tuple[tuple[_Ids, _Ids], tuple[_Ids, _Ids, _Ids]]:
        """`ids_pair` for a whole batch, as arrays: ((doc, model id) distinct pairs,
        (doc, secondary id, count)). `texts` are normalised texts, `words` their words."""
        flat: list[str] = []
        lengths: list[int] = []
        for text, ws in zip(texts, words, strict=True):
            if "@" in text or "http" in text or "www" in text:
                ws = tokens_of_normalized(_MODEL_NOISE.sub(" ", text))
            flat += ws
            lengths.append(len(ws))
        if len(self._rows) > self.CACHE_SIZE:
            self._rows = dict(self._fixed_rows)  # rows past the fixed ones are rewritten as needed
        rows = np.fromiter(map(self._rows.get, flat, repeat(-1)), dtype=np.int64, count=len(flat))
        missing = np.flatnonzero(rows < 0).tolist()
        if missing:
            self._add_rows(list(dict.fromkeys(flat[i] for i in missing)))
            rows[missing] = [self._rows[flat[i]] for i in missing]
        doc = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        # Secondary vocabulary: every word, repeats counted.
        other = self._other[rows]
        mask = other >= 0
        n2 = max(self._n_secondary, 1)
        keys, counts = _distinct(np.broadcast_to(doc[:, None], other.shape)[mask] * n2 + other[mask])
        secondary = (keys // n2, keys % n2, counts)
        # Model: the word's own ids plus adjacent pairs within a document, "rt" left out.
        kept = rows != self._rt
        rows, doc = rows[kept], doc[kept]
        own = self._own[rows]
        mask = own >= 0
        docs = [np.broadcast_to(doc[:, None], own.shape)[mask]]
        feats = [own[mask]]
        if len(rows) > 1 and len(self._pair_keys):
            same = doc[1:] == doc[:-1]
            pair = rows[:-1][same] * _PAIR_BASE + rows[1:][same]
            pos = np.minimum(np.searchsorted(self._pair_keys, pair), len(self._pair_keys) - 1)
            hit = self._pair_keys[pos] == pair
            docs.append(doc[1:][same][hit])
            feats.append(self._pair_ids[pos[hit]])
        n = max(self._n_features, 1)
        keys, _ = _distinct(np.concatenate(docs) * n + np.concatenate(feats))
        return (keys // n, keys % n), secondary

    def ids(self, normalized: str, words: Sequence[str]) -> list[int]:
        """Ids of ``model_features(normalized)`` (each once); `words` are the words of `normalized`."""
        return list(self.ids_pair(normalized, words)[0])

    def ids_pair(self, normalized: str, words: Sequence[str]) -> tuple[set[int], list[int]]:
        """(distinct ids for the model, ids with repeats in the secondary vocabulary)."""
        if "@" in normalized or "http" in normalized or "www" in normalized:
            words = tokens_of_normalized(_MODEL_NOISE.sub(" ", normalized))
        cache = self._cache
        own: set[int] = set()
        other: list[int] = []
        following: dict[str, int] | None = None
        for word in words:
            entry = cache.get(word)
            if entry is None:
                entry = self._entry(word)
                if len(cache) >= self.CACHE_SIZE:
                    cache.clear()
                cache[word] = entry
            if entry[2]:
                other += entry[2]
            if word == "rt":  # the retweet marker is not a word of the comment (training drops it)
                continue
            own.update(entry[0])
            if following is not None:
                pair = following.get(word)
                if pair is not None:
                    own.add(pair)
            following = entry[1]
        return own, other


#: Two row numbers make one key: rows stay far below this (the cache is reset at 200k).
_PAIR_BASE = 1 << 31


def _distinct(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Sorted distinct keys and their counts. `np.unique` takes a hash-table path here that is
    about 20x slower than sorting (numpy 2.4); int32 sorts faster still when the keys fit."""
    if len(keys) == 0:
        return keys, keys
    small = keys.max() < 2**31
    ordered = np.sort(keys.astype(np.int32) if small else keys)
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, len(ordered)))
    return ordered[starts].astype(np.int64), counts


_PC_TOKEN = re.compile(r"(?u)\b\w\w+\b")


class ProfanityCheckModel:
    """alt-profanity-check's model, fed our normalised text, scored in one batch.

    The package ships a TF-IDF vectoriser and a 5-fold sigmoid-calibrated LinearSVC as joblib
    pickles (loaded by the package itself on import). Its own `predict_prob` tokenises in Python
    per text; we lift the arrays into a `SparseLinearModel` once and reproduce its probability
    exactly (mean of the folds' calibrated sigmoids; `predict`, tested). The scorer feeds it the
    words it already has (`predict_ids`, `predict_words`), which differs from `predict` only where
    our word split differs (links and @mentions dropped, digits/underscores): mean |difference|
    about 0.003 on the benchmark mix. If the pickled objects ever change shape, we fall back to
    calling `predict_prob`.
    """

    model_id = "profanity-check"

    def __init__(self) -> None:
        from profanity_check import profanity_check as pc

        self._predict_prob: Callable[[list[str]], Any] = pc.predict_prob
        self._linear: SparseLinearModel | None = None
        self._a = np.zeros(0)
        self._b = np.zeros(0)
        try:
            vec, clf = pc.vectorizer, pc.model
            folds = clf.calibrated_classifiers_
            vocab: dict[str, int] = vec.vocabulary_
            features = sorted(vocab, key=vocab.__getitem__)
            coef = np.stack([np.asarray(f.estimator.coef_, dtype=np.float64).ravel() for f in folds], axis=1)
            intercept = np.array([float(np.ravel(f.estimator.intercept_)[0]) for f in folds])
            self._a = np.array([float(f.calibrators[0].a_) for f in folds])
            self._b = np.array([float(f.calibrators[0].b_) for f in folds])
            ok = (
                vec.analyzer == "word"
                and vec.ngram_range == (1, 1)
                and vec.norm == "l2"
                and not vec.sublinear_tf
                and all(f.method == "sigmoid" for f in folds)
            )
            if ok:
                self._linear = SparseLinearModel(
                    features,
                    np.asarray(vec.idf_, dtype=np.float64),
                    coef,
                    intercept,
                    heads=[f"fold{i}" for i in range(len(folds))],
                    tf="raw",
                )
        except (AttributeError, IndexError, TypeError, ValueError):
            self._linear = None

    @property
    def fast(self) -> bool:
        """True when scoring uses the lifted arrays rather than the package's own function."""
        return self._linear is not None

    def predict(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Probability that each (lower-cased) text is profane; same as the package's
        `predict_prob`."""
        if not texts:
            return np.zeros(0)
        if self._linear is None:
            return np.asarray(self._predict_prob(list(texts)), dtype=np.float64)
        return self._calibrated(self._linear.decision_function([_PC_TOKEN.findall(t) for t in texts]))

    def predict_words(self, texts: Sequence[str], words: Sequence[Sequence[str]]) -> NDArray[np.float64]:
        """`predict` from words we already have (`analyze`), skipping a second tokenisation.

        The package keeps words of 2+ characters and splits at apostrophes; so do we here.
        """
        if not texts:
            return np.zeros(0)
        if self._linear is None:
            return self.predict(texts)
        get = self._linear.vocabulary.get
        docs: list[list[int]] = []
        for text, ws in zip(texts, words, strict=True):
            if "'" in text:
                # The package's tokeniser splits "don't" into "don" and "t".
                ws = " ".join(ws).replace("'", " ").split()
            # Words of one character are unknown to the vocabulary anyway (it keeps 2+).
            docs.append([i for i in map(get, ws) if i is not None])
        return self._calibrated(self._linear.decision_function_ids(docs))

    @property
    def vocabulary(self) -> Mapping[str, int] | None:
        """Word -> id for `predict_ids`, or None when scoring falls back to the package."""
        return self._linear.vocabulary if self._linear is not None else None

    def predict_ids(self, docs: Sequence[Sequence[int]]) -> NDArray[np.float64]:
        """`predict` from word ids (with repeats) in `vocabulary`."""
        if self._linear is None:
            raise RuntimeError("profanity-check arrays unavailable; use predict()")
        return self._calibrated(self._linear.decision_function_ids(docs))

    def predict_pairs(
        self, doc: NDArray[np.int64], feat: NDArray[np.int64], n_docs: int, counts: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """`predict` from distinct (document, word id) pairs and their counts (`WordFeaturizer.batch`)."""
        if self._linear is None:
            raise RuntimeError("profanity-check arrays unavailable; use predict()")
        return self._calibrated(self._linear.decision_function_pairs(doc, feat, n_docs, counts))

    def _calibrated(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        # CalibratedClassifierCV (sigmoid): mean over folds of 1 / (1 + exp(a * f + b)).
        return np.asarray((1.0 / (1.0 + np.exp(self._a * z + self._b))).mean(axis=1), dtype=np.float64)


_model_lock = threading.Lock()
_linear_models: dict[Path, SparseLinearModel] = {}
_profanity_model: list[ProfanityCheckModel] = []


def _load_linear(path: Path) -> SparseLinearModel:
    with _model_lock:
        model = _linear_models.get(path)
        if model is None:
            model = _linear_models[path] = SparseLinearModel.load(path)
        return model


def _load_profanity_check() -> ProfanityCheckModel:
    with _model_lock:
        if not _profanity_model:
            _profanity_model.append(ProfanityCheckModel())
        return _profanity_model[0]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhraseRule:
    """A regular expression over normalised text that is evidence for one category."""

    id: str
    category: str
    weight: float
    pattern: re.Pattern[str]
    comment: str
    #: The rule only runs when the text has at least one word from EACH of these sets (none:
    #: always runs). A cheap set test that spares most comments the regular expression.
    requires: tuple[frozenset[str], ...] = ()
    #: ... and contains at least one of these substrings (empty: no condition).
    requires_text: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    id: str
    enabled: bool
    #: Category -> weight: evidence = weight x probability.
    weights: Mapping[str, float]
    #: The model is named as a reason when its probability is at least this.
    cite_at: float
    file: Path | None = None
    #: Head -> base rate to re-base its probabilities to (prior-shift correction); absent: keep
    #: the training base rate.
    priors: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SpamConfig:
    free_links: int
    per_link: float
    per_duplicate_author: float
    duplicate_min_letters: int


@dataclass(frozen=True)
class UsernameConfig:
    from_lexicons: Mapping[str, float]
    allow: tuple[str, ...]
    contains: Mapping[str, float]
    patterns: tuple[PhraseRule, ...]
    phrase_categories: Mapping[str, float]
    #: From the display-name lexicon file: whole-word terms (normalised, may hold spaces) ->
    #: (weight, reason), and squashed terms matched inside the squashed name.
    lexicon_words: Mapping[str, tuple[float, str]] = field(default_factory=dict)
    lexicon_contains: tuple[tuple[str, float, str], ...] = ()


#: Severity bands of the display-name lexicon (surge-ai's 1-3 scale): mild < 1.5 <= strong < 2.5 <= severe.
SEVERITY_BANDS = ("mild", "strong", "severe")


def _severity_band(severity: float) -> str:
    return "mild" if severity < 1.5 else "strong" if severity < 2.5 else "severe"


def _load_username_lexicon(
    check: _Checker, file_value: Any, weights: Mapping[str, float], factors: Mapping[str, float]
) -> tuple[dict[str, tuple[float, str]], tuple[tuple[str, float, str], ...]]:
    """Read and validate the display-name lexicon (TSV: term, category, severity, mode)."""
    path = _resolve_model_file(check, file_value, "username.lexicon_file")
    words: dict[str, tuple[float, str]] = {}
    contains: list[tuple[str, float, str]] = []
    header_seen = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if not header_seen:
            if fields != ["term", "category", "severity", "mode"]:
                raise ModerationConfigError(f"{path}:{number}: expected the header 'term category severity mode'")
            header_seen = True
            continue
        where = f"{path}:{number}"
        if len(fields) != 4:
            raise ModerationConfigError(f"{where}: expected 4 tab-separated fields, got {len(fields)}")
        term, category, severity_text, mode = fields
        if category not in TEXT_CATEGORIES:
            raise ModerationConfigError(f"{where}: category must be one of {', '.join(TEXT_CATEGORIES)}")
        try:
            severity = float(severity_text)
        except ValueError:
            raise ModerationConfigError(f"{where}: severity must be a number, got {severity_text!r}") from None
        if not 1.0 <= severity <= 3.0:
            raise ModerationConfigError(f"{where}: severity must be in [1, 3], got {severity:g}")
        if mode not in ("word", "contains"):
            raise ModerationConfigError(f"{where}: mode must be 'word' or 'contains', got {mode!r}")
        norm = " ".join(tokens_of_normalized(normalize(term)))
        squashed = _SQUASH.sub("", norm)
        if len(squashed) < 3:
            raise ModerationConfigError(f"{where}: term needs at least 3 letters after normalisation")
        weight = weights[_severity_band(severity)] * factors.get(category, 0.0)
        if weight <= 0.0:
            continue
        reason = f"username:lexicon:{category}:{norm}"
        if mode == "contains":
            contains.append((squashed, weight, reason))
        else:
            words[norm] = (weight, reason)
    if not header_seen:
        raise ModerationConfigError(f"{path}: empty display-name lexicon")
    return words, tuple(contains)


@dataclass(frozen=True)
class ModerationConfig:
    """Validated `moderation.toml`. Build with `load_moderation_config`."""

    path: Path
    thresholds: Mapping[str, float]
    toxicity_includes: Mapping[str, float]
    lexicons: Mapping[str, Mapping[str, float]]
    phrases: tuple[PhraseRule, ...]
    macros: Mapping[str, tuple[str, ...]]
    models: Mapping[str, ModelConfig]
    spam: SpamConfig
    username: UsernameConfig
    #: Tables owned by other components (``[detectors]``), as parsed, unvalidated.
    foreign: Mapping[str, Any] = field(default_factory=dict)
    #: Names what scored a comment: the enabled models' ids and a hash of this file's text
    #: ("comments-lr-v2+profanity-check@1a2b3c4d"), stored on each comment row and on moderator
    #: reviews so precision and recall can be compared between versions.
    model_version: str = ""


class _Checker:
    """Validation helpers that raise `ModerationConfigError` naming the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ModerationConfigError:
        return ModerationConfigError(f"{self.path}: {key}: {problem}")

    def table(
        self, value: Any, key: str, allowed: Iterable[str] | None = None, required: Iterable[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {_describe(value)}")
        if allowed is not None:
            allowed_set = set(allowed)
            unknown = sorted(set(value) - allowed_set)
            if unknown:
                raise self.fail(
                    f"{key}.{unknown[0]}" if key else unknown[0],
                    f"unknown key (allowed: {', '.join(sorted(allowed_set))})",
                )
        for name in required:
            if name not in value:
                raise self.fail(f"{key}.{name}" if key else name, "missing required key")
        return value

    def number(self, value: Any, key: str, lo: float = 0.0, hi: float = 1.0) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number in [{lo:g}, {hi:g}], got {_describe(value)}")
        if not (lo <= value <= hi) or math.isnan(value):
            raise self.fail(key, f"must be in [{lo:g}, {hi:g}], got {value!r}")
        return float(value)

    def integer(self, value: Any, key: str, lo: int = 0, hi: int = 1_000_000) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer in [{lo}, {hi}], got {_describe(value)}")
        if not lo <= value <= hi:
            raise self.fail(key, f"must be in [{lo}, {hi}], got {value!r}")
        return value

    def string(self, value: Any, key: str, *, non_empty: bool = True) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {_describe(value)}")
        if non_empty and not value.strip():
            raise self.fail(key, "must not be empty")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {_describe(value)}")
        return value

    def string_list(self, value: Any, key: str) -> list[str]:
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list of strings, got {_describe(value)}")
        return [self.string(v, f"{key}[{i}]") for i, v in enumerate(value)]

    def weights(self, value: Any, key: str, allowed_keys: Iterable[str]) -> dict[str, float]:
        table = self.table(value, key, allowed=allowed_keys)
        return {k: self.number(v, f"{key}.{k}") for k, v in table.items()}


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


_MACRO_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def _macro_alternation(values: Sequence[str], squash: bool) -> str:
    """A regex matching any of `values` (normalised; words separated by any whitespace), as a
    trie: ``jew(?:ish\\s+people|ry|s)?`` rather than ``jewish\\s+people|jewry|jews|jew``.

    Python's engine tries an alternation's branches one by one at every position it reaches, so a
    flat list of 55 group words costs 55 comparisons per word start; the trie costs about one per
    letter. Rules only test whether a pattern matches anywhere, which does not depend on the order
    of alternatives; optional tails are greedy, so longer forms are still tried first.
    """
    trie: dict[str, dict[str, Any]] = {}
    for v in values:
        norm = normalize(v)
        if squash:
            tokens = [re.escape(c) for c in re.sub(r"[\W_]+", "", norm)]
        else:
            tokens = [r"\s+" if c == " " else re.escape(c) for c in norm]
        node = trie
        for token in tokens:
            node = node.setdefault(token, {})
        node[""] = {}  # end of a form

    def emit(node: dict[str, Any]) -> str:
        branches = [token + emit(child) for token, child in sorted(node.items()) if token]
        if not branches:
            return ""
        if len(branches) == 1:
            return f"(?:{branches[0]})?" if "" in node else branches[0]
        return "(?:" + "|".join(branches) + (")?" if "" in node else ")")

    return "(?:" + emit(trie) + ")"


def _compile_rule(
    check: _Checker,
    raw: Any,
    key: str,
    macros: Mapping[str, tuple[str, ...]],
    categories: Sequence[str],
    *,
    squash: bool = False,
) -> PhraseRule:
    allowed = ("id", "category", "weight", "pattern", "comment", "requires", "requires_text")
    table = check.table(raw, key, allowed=allowed, required=("id", "category", "weight", "pattern", "comment"))
    rule_id = check.string(table["id"], f"{key}.id")
    if _ID.fullmatch(rule_id) is None:
        raise check.fail(f"{key}.id", f"must be lower-case letters, digits, '-', '_' or '.', got {rule_id!r}")
    category = check.string(table["category"], f"{key}.category")
    if category not in categories:
        raise check.fail(f"{key}.category", f"must be one of {', '.join(categories)}, got {category!r}")
    weight = check.number(table["weight"], f"{key}.weight")
    check.string(table["comment"], f"{key}.comment")
    source = check.string(table["pattern"], f"{key}.pattern")

    def expand(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in macros:
            raise check.fail(f"{key}.pattern", f"unknown macro {{{name}}} (defined: {', '.join(sorted(macros))})")
        return _macro_alternation(macros[name], squash)

    expanded = _MACRO_REF.sub(expand, source)
    try:
        pattern = re.compile(expanded)
    except re.error as exc:
        raise check.fail(f"{key}.pattern", f"invalid regular expression: {exc}") from None
    requires = _requires(check, table.get("requires", []), f"{key}.requires", macros)
    requires_text = tuple(
        s.casefold() for s in check.string_list(table.get("requires_text", []), f"{key}.requires_text")
    )
    return PhraseRule(rule_id, category, weight, pattern, table["comment"], requires, requires_text)


def _requires(
    check: _Checker, value: Any, key: str, macros: Mapping[str, tuple[str, ...]]
) -> tuple[frozenset[str], ...]:
    """`requires`: a list of words (any of them), or a list of such lists (one from each)."""
    if not isinstance(value, list):
        raise check.fail(key, f"must be a list of words or a list of lists of words, got {_describe(value)}")
    groups = value if value and all(isinstance(v, list) for v in value) else [value]
    out: list[frozenset[str]] = []
    for g, group in enumerate(groups):
        gkey = f"{key}[{g}]" if groups is value else key
        words: set[str] = set()
        for i, word in enumerate(check.string_list(group, gkey)):
            ref = _MACRO_REF.fullmatch(word)
            if ref is not None:
                if ref.group(1) not in macros:
                    raise check.fail(f"{gkey}[{i}]", f"unknown macro {word}")
                words.update(tokens_of_normalized(normalize(v))[0] for v in macros[ref.group(1)] if normalize(v))
                continue
            toks = tokens_of_normalized(normalize(word))
            if len(toks) != 1:
                raise check.fail(f"{gkey}[{i}]", f"must be a single word or a {{macro}}, got {word!r}")
            words.add(toks[0])
        if words:
            out.append(frozenset(words))
    return tuple(out)


def _resolve_model_file(check: _Checker, value: Any, key: str) -> Path:
    name = Path(check.string(value, key))
    candidates = [name] if name.is_absolute() else [check.path.parent / name, DATA_DIR / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise check.fail(key, f"model file not found (looked in: {', '.join(str(c) for c in candidates)})")


def load_moderation_config(path: Path | None = None) -> ModerationConfig:
    """Read and validate the moderation config.

    `path` defaults to ``$STREAMS_MODERATION_FILE`` when set, else `DEFAULT_CONFIG_PATH`.
    Raises `ModerationConfigError` (a ValueError) naming the file, the key and the problem.
    """
    if path is None:
        env = os.environ.get(CONFIG_ENV, "").strip()
        path = Path(env) if env else DEFAULT_CONFIG_PATH
    path = Path(path)
    check = _Checker(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ModerationConfigError(f"{path}: moderation config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModerationConfigError(f"{path}: cannot read moderation config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModerationConfigError(f"{path}: invalid TOML: {exc}") from None

    top_keys = {
        "schema_version",
        "thresholds",
        "toxicity",
        "models",
        "macros",
        "lexicon",
        "phrases",
        "spam",
        "username",
    }
    check.table(raw, "", allowed=top_keys | FOREIGN_TABLES, required=sorted(top_keys - {"macros"}))
    version = check.integer(raw["schema_version"], "schema_version", 1, 1_000)
    if version != SCHEMA_VERSION:
        raise check.fail("schema_version", f"unsupported version {version} (this code reads {SCHEMA_VERSION})")

    thresholds_raw = check.table(raw["thresholds"], "thresholds", allowed=CATEGORIES, required=CATEGORIES)
    thresholds = {c: check.number(thresholds_raw[c], f"thresholds.{c}") for c in CATEGORIES}

    tox = check.table(raw["toxicity"], "toxicity", allowed=("include",), required=("include",))
    includes = check.weights(tox["include"], "toxicity.include", [c for c in TEXT_CATEGORIES if c != "toxicity"])

    macros_raw = check.table(raw.get("macros", {}), "macros")
    macros: dict[str, tuple[str, ...]] = {}
    for name, values in macros_raw.items():
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is None:
            raise check.fail(f"macros.{name}", "macro names are letters, digits and '_'")
        words = check.string_list(values, f"macros.{name}")
        if not words:
            raise check.fail(f"macros.{name}", "must list at least one word or phrase")
        macros[name] = tuple(words)

    lex_raw = check.table(raw["lexicon"], "lexicon", allowed=TEXT_CATEGORIES)
    lexicons: dict[str, dict[str, float]] = {}
    for category, terms_raw in lex_raw.items():
        terms = check.table(terms_raw, f"lexicon.{category}")
        entries: dict[str, float] = {}
        for term, weight in terms.items():
            key = f'lexicon.{category}."{term}"'
            if not normalize(term.strip("*")):
                raise check.fail(key, "term is empty after normalisation")
            if "*" in term.strip("*"):
                raise check.fail(key, "'*' is only allowed at the start (suffix match) or end (prefix match)")
            entries[term] = check.number(weight, key)
        lexicons[category] = entries

    phrases_raw = raw["phrases"]
    if not isinstance(phrases_raw, list):
        raise check.fail("phrases", f"must be an array of tables ([[phrases]]), got {_describe(phrases_raw)}")
    phrases = tuple(
        _compile_rule(check, p, f"phrases[{i}]", macros, TEXT_CATEGORIES) for i, p in enumerate(phrases_raw)
    )
    seen: set[str] = set()
    for i, rule in enumerate(phrases):
        if rule.id in seen:
            raise check.fail(f"phrases[{i}].id", f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)

    # `profanity_check` is the installed package's model; every other entry is one of our linear
    # models (`file`: an .npz written by bench/train_flags.py).
    models_raw = check.table(raw["models"], "models")
    models: dict[str, ModelConfig] = {}
    for name, value in models_raw.items():
        key = f"models.{name}"
        if _ID.fullmatch(name) is None:
            raise check.fail(key, "model names are lower-case letters, digits, '-', '_' or '.'")
        linear = name != PROFANITY_CHECK
        required = ["enabled", "id", "weights", "cite_at"] + (["file"] if linear else [])
        allowed = required + (["priors"] if linear else [])
        table = check.table(value, key, allowed=allowed, required=required)
        enabled = check.boolean(table["enabled"], f"{key}.enabled")
        priors = check.weights(table.get("priors", {}), f"{key}.priors", TEXT_CATEGORIES)
        for head, prior in priors.items():
            if not 0.0 < prior < 1.0:
                raise check.fail(f"{key}.priors.{head}", f"must be strictly between 0 and 1, got {prior!r}")
        models[name] = ModelConfig(
            priors=MappingProxyType(priors),
            id=check.string(table["id"], f"{key}.id"),
            enabled=enabled,
            weights=check.weights(table["weights"], f"{key}.weights", TEXT_CATEGORIES),
            cite_at=check.number(table["cite_at"], f"{key}.cite_at"),
            file=_resolve_model_file(check, table["file"], f"{key}.file") if "file" in table and enabled else None,
        )

    spam_keys = ("free_links", "per_link", "per_duplicate_author", "duplicate_min_letters")
    spam_raw = check.table(raw["spam"], "spam", allowed=spam_keys, required=spam_keys)
    spam = SpamConfig(
        free_links=check.integer(spam_raw["free_links"], "spam.free_links", 0, 1000),
        per_link=check.number(spam_raw["per_link"], "spam.per_link"),
        per_duplicate_author=check.number(spam_raw["per_duplicate_author"], "spam.per_duplicate_author"),
        duplicate_min_letters=check.integer(
            spam_raw["duplicate_min_letters"], "spam.duplicate_min_letters", 0, 100_000
        ),
    )

    user_keys = ("from_lexicons", "phrases_from", "allow", "contains", "patterns")
    user_optional = ("lexicon_file", "severity_weights")
    user_raw = check.table(raw["username"], "username", allowed=user_keys + user_optional, required=user_keys)
    from_lexicons = check.weights(user_raw["from_lexicons"], "username.from_lexicons", TEXT_CATEGORIES)
    lexicon_words: dict[str, tuple[float, str]] = {}
    lexicon_contains: tuple[tuple[str, float, str], ...] = ()
    if "lexicon_file" in user_raw:
        bands = check.table(
            user_raw.get("severity_weights"),
            "username.severity_weights",
            allowed=SEVERITY_BANDS,
            required=SEVERITY_BANDS,
        )
        band_weights = {b: check.number(bands[b], f"username.severity_weights.{b}") for b in SEVERITY_BANDS}
        lexicon_words, lexicon_contains = _load_username_lexicon(
            check, user_raw["lexicon_file"], band_weights, from_lexicons
        )
    contains: dict[str, float] = {}
    for term, weight in check.table(user_raw["contains"], "username.contains").items():
        key = f'username.contains."{term}"'
        squashed = re.sub(r"[\W_]+", "", normalize(term))
        if len(squashed) < 3:
            raise check.fail(key, "needs at least 3 characters after normalisation (shorter ones match everywhere)")
        contains[squashed] = check.number(weight, key)
    patterns_raw = user_raw["patterns"]
    if not isinstance(patterns_raw, list):
        raise check.fail("username.patterns", f"must be an array of tables, got {_describe(patterns_raw)}")
    username = UsernameConfig(
        lexicon_words=MappingProxyType(lexicon_words),
        lexicon_contains=lexicon_contains,
        from_lexicons=from_lexicons,
        phrase_categories=check.weights(user_raw["phrases_from"], "username.phrases_from", TEXT_CATEGORIES),
        allow=tuple(
            re.sub(r"[\W_]+", "", normalize(w)) for w in check.string_list(user_raw["allow"], "username.allow")
        ),
        contains=contains,
        patterns=tuple(
            _compile_rule(check, p, f"username.patterns[{i}]", macros, ("username",), squash=True)
            for i, p in enumerate(patterns_raw)
        ),
    )

    return ModerationConfig(
        path=path,
        thresholds=MappingProxyType(thresholds),
        toxicity_includes=MappingProxyType(includes),
        lexicons=MappingProxyType({k: MappingProxyType(v) for k, v in lexicons.items()}),
        phrases=phrases,
        macros=MappingProxyType(macros),
        models=MappingProxyType(models),
        spam=spam,
        username=username,
        foreign=MappingProxyType({k: raw[k] for k in FOREIGN_TABLES if k in raw}),
        model_version=model_version_of(models, text),
    )


def model_version_of(models: Mapping[str, ModelConfig], config_text: str) -> str:
    """``<enabled model ids joined by +>@<first 8 hex of the config's sha256>`` ("rules" without models)."""
    ids = "+".join(m.id for m in models.values() if m.enabled) or "rules"
    return f"{ids}@{hashlib.sha256(config_text.encode()).hexdigest()[:8]}"


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreInput:
    """One comment to score. `duplicate_authors`: how many OTHER authors already posted the same
    fingerprint (state the caller keeps); it is evidence for `spam`."""

    body: str
    author: str | None = None
    duplicate_authors: int = 0


Evidence = list[tuple[float, str]]

_NON_LETTERS = re.compile(r"[\W\d_]+")
_SQUASH = re.compile(r"[\W_]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|[_.\d]+")
_TEXT_INDEX = {c: i for i, c in enumerate(TEXT_CATEGORIES)}


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


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


class FlagScorer:
    """Scores comments for every category in `CATEGORIES` (see the module docstring).

    Models are loaded once per process, on first use. An instance keeps small caches (display
    names, per-word features) and is meant for one thread; the agent creates one per worker.
    """

    #: Display names are few and repeat constantly: their outcome is cached (bounded).
    USERNAME_CACHE_SIZE = 20_000

    def __init__(self, config: ModerationConfig | None = None) -> None:
        self.config = config if config is not None else load_moderation_config()
        cfg = self.config
        self._thresholds = np.array([cfg.thresholds[c] for c in CATEGORIES])
        # One matcher over every lexicon; each term knows its categories, weights and spelling.
        raw_terms: list[str] = []
        self._targets: dict[str, list[tuple[str, float, str]]] = {}
        for category in TEXT_CATEGORIES:
            for term, weight in cfg.lexicons.get(category, {}).items():
                raw_terms.append(term)
                target = (category, weight, f"lexicon:{category}:{term}")
                self._targets.setdefault(_matcher_key(term), []).append(target)
        self._matcher = TermMatcher(raw_terms)
        # Phrase rules grouped by their `requires` word sets. An inverted index (word -> which
        # requirement of which group it satisfies) finds the groups to run with one set
        # intersection per comment instead of a set test per group.
        groups: dict[tuple[frozenset[str], ...], list[PhraseRule]] = {}
        for rule in cfg.phrases:
            groups.setdefault(rule.requires, []).append(rule)
        self._phrase_groups = [(req, tuple(rules)) for req, rules in groups.items()]
        self._always_rules = tuple(r for req, rules in self._phrase_groups if not req for r in rules)
        self._gated: list[tuple[int, tuple[PhraseRule, ...]]] = []
        self._requirement_index: dict[str, list[tuple[int, int]]] = {}
        for req, rules in self._phrase_groups:
            if not req:
                continue
            g = len(self._gated)
            self._gated.append((len(req), rules))
            for r, words in enumerate(req):
                for word in words:
                    self._requirement_index.setdefault(word, []).append((g, r))
        self._requirement_words = frozenset(self._requirement_index)
        self._rule_position = {rule.id: i for i, rule in enumerate(cfg.phrases)}
        self._includes = [(_TEXT_INDEX[c], f) for c, f in cfg.toxicity_includes.items() if f > 0.0]
        self._username_cache: dict[str, tuple[float, list[str]]] = {}
        self._word_featurizers: dict[Path, tuple[WordFeaturizer, Mapping[str, int] | None]] = {}

    # -- public API -------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the models now (once per process) rather than on the first comments scored."""
        self.score_many([ScoreInput(body="warm up", author="warm up")])

    def score(self, body: str, author: str | None = None, duplicate_authors: int = 0) -> FlagResult:
        """Flags for one comment."""
        return self.score_many([ScoreInput(body, author, duplicate_authors)])[0]

    def score_many(self, items: Sequence[ScoreInput]) -> list[FlagResult]:
        """Flags for many comments, in order; model calls are batched."""
        n = len(items)
        if n == 0:
            return []
        for item in items:
            if not isinstance(item.body, str):
                raise TypeError(f"body must be a string, got {type(item.body).__name__}")
            if item.duplicate_authors < 0:
                raise ValueError(f"duplicate_authors must be >= 0, got {item.duplicate_authors}")
        analyses = [analyze(item.body) for item in items]
        # keep[i, c] = product of (1 - weight) over item i's evidence for text category c.
        keep = np.ones((n, len(TEXT_CATEGORIES)))
        cited: list[dict[str, list[str]] | None] = [None] * n
        applied: list[_AppliedModel] = []
        self._model_evidence(analyses, keep, applied)

        spam = self.config.spam
        # Rule evidence is sparse: collect per-item factors in Python, apply them in one go.
        rule_rows: list[int] = []
        rule_factors: list[list[float]] = []
        for i, (item, an) in enumerate(zip(items, analyses, strict=True)):
            evidence = self._rule_evidence(an) if an.normalized else None
            links = count_links(item.body)
            if links > spam.free_links and spam.per_link > 0.0:
                weight = min(1.0, spam.per_link * (links - spam.free_links))
                evidence = evidence or {}
                evidence.setdefault("spam", []).append((weight, f"spam:links={links}"))
            if (
                item.duplicate_authors > 0
                and spam.per_duplicate_author > 0.0
                and len(_NON_LETTERS.sub("", an.normalized)) >= spam.duplicate_min_letters
            ):
                weight = min(1.0, spam.per_duplicate_author * item.duplicate_authors)
                evidence = evidence or {}
                evidence.setdefault("spam", []).append((weight, f"spam:duplicate_authors={item.duplicate_authors}"))
            if not evidence:
                continue
            reasons = cited[i]
            if reasons is None:
                reasons = cited[i] = {}
            factors = [1.0] * len(TEXT_CATEGORIES)
            for category, ev in evidence.items():
                col = _TEXT_INDEX[category]
                for weight, _ in ev:
                    factors[col] *= 1.0 - weight
                reasons.setdefault(category, []).extend(r for _, r in ev)
            rule_rows.append(i)
            rule_factors.append(factors)
        if rule_rows:
            keep[rule_rows] *= np.asarray(rule_factors)
        _cite_models(applied, keep, cited)

        text_scores = 1.0 - keep
        tox = _TEXT_INDEX["toxicity"]
        own_toxicity = np.round(text_scores[:, tox], 4)
        for col, factor in self._includes:
            inherited = text_scores[:, col] * factor
            lifted = np.nonzero(np.round(inherited, 4) > np.round(text_scores[:, tox], 4))[0]
            for i in lifted.tolist():
                reasons = cited[i]
                if reasons is None or TEXT_CATEGORIES[col] not in reasons:
                    continue  # no named evidence lifted it (a model below `cite_at`)
                reasons.setdefault("toxicity", []).append(f"category:{TEXT_CATEGORIES[col]}")
            np.maximum(text_scores[:, tox], inherited, out=text_scores[:, tox])
        # Where an included category set the toxicity score, the models' own toxicity evidence did
        # not move it: a model is named only where it did (its own evidence still is, as context).
        for i in np.nonzero(np.round(text_scores[:, tox], 4) > own_toxicity)[0].tolist():
            reasons = cited[i]
            if reasons is not None and "toxicity" in reasons:
                reasons["toxicity"] = [r for r in reasons["toxicity"] if not r.startswith("model:")]

        scores = np.zeros((n, len(CATEGORIES)))
        scores[:, : len(TEXT_CATEGORIES)] = text_scores
        user_col = CATEGORIES.index("username")
        for i, item in enumerate(items):
            if item.author:
                user_score, user_reasons = self._username(item.author)
                scores[i, user_col] = user_score
                if user_reasons:
                    reasons = cited[i]
                    if reasons is None:
                        reasons = cited[i] = {}
                    reasons["username"] = user_reasons
        rounded = np.round(np.clip(scores, 0.0, 1.0), 4)
        flagged = rounded >= self._thresholds
        results: list[FlagResult] = []
        for row, flags_row, reasons in zip(rounded.tolist(), flagged.tolist(), cited, strict=True):
            ordered = {c: _ordered_reasons(reasons[c]) for c in CATEGORIES if c in reasons} if reasons else {}
            results.append(
                FlagResult(
                    scores=dict(zip(CATEGORIES, row, strict=True)),
                    flags=[c for c, f in zip(CATEGORIES, flags_row, strict=True) if f],
                    reasons=ordered,
                )
            )
        return results

    # -- evidence ---------------------------------------------------------------------------

    def _rule_evidence(self, an: Analysis) -> dict[str, Evidence] | None:
        evidence: dict[str, Evidence] | None = None
        hits = self._matcher.find(an.normalized, an.words, an.wordset, collapse=an.elongated)
        if hits:
            # One piece of evidence per (category, matched word): "shit" matching both "shit"
            # and "*shit" counts once, with the larger weight.
            best: dict[tuple[str, str], tuple[float, str]] = {}
            for hit in hits:
                for category, weight, reason in self._targets.get(hit.term, ()):
                    key = (category, hit.matched)
                    if key not in best or weight > best[key][0]:
                        best[key] = (weight, reason)
            evidence = {}
            for (category, _), ev in best.items():
                evidence.setdefault(category, []).append(ev)
        text = an.normalized
        runnable: list[PhraseRule] = list(self._always_rules)
        present = an.wordset & self._requirement_words
        if present:
            satisfied: dict[int, set[int]] = {}
            for word in present:
                for g, r in self._requirement_index[word]:
                    satisfied.setdefault(g, set()).add(r)
            for g, reqs in satisfied.items():
                needed, rules = self._gated[g]
                if len(reqs) == needed:
                    runnable += rules
            if len(runnable) > 1:
                runnable.sort(key=lambda rule: self._rule_position[rule.id])  # reasons in config order
        for rule in runnable:
            # Substring tests in C beat one alternation of the literals (re tries every branch
            # at every position).
            if rule.requires_text and not any(map(text.__contains__, rule.requires_text)):
                continue
            if rule.pattern.search(text) is not None:
                if evidence is None:
                    evidence = {}
                evidence.setdefault(rule.category, []).append((rule.weight, f"phrase:{rule.category}:{rule.id}"))
        return evidence

    def _model_evidence(
        self, analyses: Sequence[Analysis], keep: NDArray[np.float64], applied: list[_AppliedModel]
    ) -> None:
        models = self.config.models
        linear = [m for name, m in models.items() if name != PROFANITY_CHECK and m.enabled and m.file is not None]
        prof = models.get(PROFANITY_CHECK)
        use_prof = prof is not None and prof.enabled and any(w > 0.0 for w in prof.weights.values())
        prof_model = _load_profanity_check() if use_prof else None
        prof_p: NDArray[np.float64] | None = None
        for n_model, cfg in enumerate(linear):
            # The first linear model's pass over the batch's words also feeds alt-profanity-check.
            featurizer = self._featurizer(cfg, prof_model if n_model == 0 else None)
            (doc, feat), (sdoc, sfeat, scount) = featurizer.batch(
                [a.normalized for a in analyses], [a.words for a in analyses]
            )
            model = featurizer.model
            z = model.decision_function_pairs(doc, feat, len(analyses))
            trained = model.meta.get("train_prior", {})
            for h, head in enumerate(model.heads):
                # Prior shift: move the log-odds from the training base rate to the configured one.
                if head in cfg.priors and head in trained:
                    z[:, h] += _logit(cfg.priors[head]) - _logit(float(trained[head]))
            probs = 1.0 / (1.0 + np.exp(-z))
            # A text with no known feature (empty, or only unseen words) is no evidence either way.
            probs[np.bincount(doc, minlength=len(analyses)) == 0] = 0.0
            for h, head in enumerate(model.heads):
                self._apply_model(cfg, head, probs[:, h], keep, applied)
            if n_model == 0 and prof_model is not None and prof_model.vocabulary is not None:
                prof_p = prof_model.predict_pairs(sdoc, sfeat, len(analyses), scount)
        if prof_model is not None and prof is not None:
            if prof_p is None:
                prof_p = prof_model.predict_words([a.normalized for a in analyses], [a.words for a in analyses])
            for category in prof.weights:
                self._apply_model(prof, category, prof_p, keep, applied)

    def _featurizer(self, cfg: ModelConfig, prof_model: ProfanityCheckModel | None) -> WordFeaturizer:
        secondary = prof_model.vocabulary if prof_model is not None else None
        assert cfg.file is not None
        current = self._word_featurizers.get(cfg.file)
        if current is None or current[1] is not secondary:
            current = self._word_featurizers[cfg.file] = (WordFeaturizer(_load_linear(cfg.file), secondary), secondary)
        return current[0]

    @staticmethod
    def _apply_model(
        cfg: ModelConfig,
        category: str,
        p: NDArray[np.float64],
        keep: NDArray[np.float64],
        applied: list[_AppliedModel],
    ) -> None:
        weight = cfg.weights.get(category, 0.0)
        if weight <= 0.0 or category not in _TEXT_INDEX:
            return
        col = _TEXT_INDEX[category]
        keep[:, col] *= 1.0 - weight * p
        applied.append(_AppliedModel(cfg, category, col, weight * p, p))

    def _username(self, author: str) -> tuple[float, list[str]]:
        cached = self._username_cache.get(author)
        if cached is not None:
            return cached
        cfg = self.config.username
        evidence: Evidence = []
        # Not through the shared cache: names would evict comment bodies (and are cached here).
        spaced = analyze(_CAMEL.sub(" ", author), cache=False)
        squashed = _SQUASH.sub("", analyze(author, cache=False).normalized)
        matched: dict[str, int] = {}  # word matched by the comment lexicons -> its evidence
        if spaced.normalized:
            for hit in self._matcher.find(spaced.normalized, spaced.words, spaced.wordset, collapse=spaced.elongated):
                for category, weight, reason in self._targets.get(hit.term, ()):
                    factor = cfg.from_lexicons.get(category, 0.0)
                    if factor > 0.0:
                        matched.setdefault(hit.matched, len(evidence))
                        evidence.append((weight * factor, reason))
        if spaced.normalized and cfg.lexicon_words:
            # Whole words of the name (and runs of words, for multi-word terms), never parts of
            # words: "Big Coon" but not "Raccoon".
            ws = spaced.words
            for n in (1, 2, 3, 4):
                for k in range(len(ws) - n + 1):
                    term = ws[k] if n == 1 else " ".join(ws[k : k + n])
                    hit_word = cfg.lexicon_words.get(term)
                    if hit_word is None:
                        continue
                    # A word the comment lexicons matched too counts once, at the larger weight.
                    at = matched.get(term)
                    if at is None:
                        evidence.append(hit_word)
                    elif hit_word[0] > evidence[at][0]:
                        evidence[at] = hit_word
        if spaced.normalized:
            for _, rules in self._phrase_groups:
                for rule in rules:
                    factor = cfg.phrase_categories.get(rule.category, 0.0)
                    if factor > 0.0 and rule.pattern.search(spaced.normalized) is not None:
                        evidence.append((rule.weight * factor, f"phrase:{rule.category}:{rule.id}"))
        if squashed:
            cleaned = squashed
            for allowed in cfg.allow:
                if allowed in cleaned:
                    cleaned = cleaned.replace(allowed, " ")
            for term, weight in cfg.contains.items():
                if term in cleaned:
                    evidence.append((weight, f"username:contains:{term}"))
            for term, weight, reason in cfg.lexicon_contains:
                if term in cleaned:
                    evidence.append((weight, reason))
            for rule in cfg.patterns:
                if rule.pattern.search(squashed) is not None:
                    evidence.append((rule.weight, f"username:{rule.id}"))
        outcome = (_noisy_or(evidence), _dedupe(r for _, r in evidence))
        if len(self._username_cache) >= self.USERNAME_CACHE_SIZE:
            self._username_cache.clear()
        self._username_cache[author] = outcome
        return outcome


def _matcher_key(term: str) -> str:
    """The key `TermMatcher` reports for a configured term (its normalised spelling)."""
    core = normalize(term.strip("*"))
    return ("*" if term.startswith("*") else "") + core + ("*" if term.endswith("*") else "")
