"""Our linear text models: the features of normalised text and the TF-IDF + logistic heads over them.

`model_features` is what bench/train_flags.py trains on; `SparseLinearModel` holds the shipped
weights (plain ``.npz`` arrays, no pickle) and scores batches with numpy; `WordFeaturizer` turns a
batch's words into the same feature ids without building feature strings (the scorer's hot path).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import pairwise, repeat
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from streams.enrich.normalize import tokens_of_normalized

#: The compiled batch featuriser (streams/native); None without it or with STREAMS_NATIVE=0.
_NativeFeaturizer: Any = None
if os.environ.get("STREAMS_NATIVE", "1") != "0":
    with contextlib.suppress(ImportError):  # not built: the numpy path below is complete on its own
        from streams_native import Featurizer as _NativeFeaturizer

#: Links and @mentions in normalised text, which spells "www." as "ww." (letter runs are cut to
#: two): the matches of ``https?://\S+|w{2,3}\.\S+|@\w+`` (MODEL_NOISE_REFERENCE), written with a
#: literal first character per branch, which re skips to (2x faster on tweets), and the mention
#: branch as a group, so the replacement tells the two apart without reading the match.
_MODEL_NOISE = re.compile(r"h(?:ttps?://\S+)|w(?:ww?\.\S+)|(@\w+)")
MODEL_NOISE_REFERENCE = r"https?://\S+|w{2,3}\.\S+|@\w+"
#: What a link or an @mention becomes for the model: one word each, so the spam head learns
#: "links here" (worth 0.92 -> 0.97 DEV ROC-AUC on YouTube spam) without learning any address.
LINK_WORD = "xxlink"
MENTION_WORD = "xxmention"
_LINK_SPACED = f" {LINK_WORD} "
_MENTION_SPACED = f" {MENTION_WORD} "


def _has_noise(normalized: str) -> bool:
    """Whether `normalized` may hold a link or an @mention (cheap substring tests first)."""
    return "@" in normalized or "http" in normalized or "ww." in normalized


def _noise_word(match: re.Match[str]) -> str:
    return _LINK_SPACED if match.lastindex is None else _MENTION_SPACED


def _mark_noise(normalized: str) -> str:
    """`normalized` with each link and @mention replaced by its placeholder word."""
    return _MODEL_NOISE.sub(_noise_word, normalized)


def _noisy_words(normalized: str) -> list[str]:
    """The words the model reads in a text with a link or an @mention."""
    return tokens_of_normalized(_mark_noise(normalized))


_PREFIX_LENGTHS = (3, 4, 5)
_Ids = NDArray[np.int64]


def model_features(normalized: str, words: Sequence[str] | None = None) -> list[str]:
    """Features of normalised text for our linear model (training uses this very function).

    Words and word pairs, plus word prefixes of 3-5 letters ("<fagg") so unseen inflections and
    compounds still carry their stem's weight. A link or an @mention is one placeholder word
    (`LINK_WORD`, `MENTION_WORD`), whatever it points at; the retweet marker is dropped.
    `words` may pass the text's words when the caller has them (see `analyze`).
    """
    noisy = _has_noise(normalized)
    if noisy:
        normalized = _mark_noise(normalized)
    if words is None or noisy:
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
        self._native = (
            None if _NativeFeaturizer is None else _NativeFeaturizer(list(self._vocab), dict(self._secondary))
        )

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
        if self._native is not None:
            if len(texts) != len(words):
                raise ValueError(f"{len(texts)} texts but {len(words)} word lists")
            buffers = self._native.batch(list(texts), list(words), _noisy_words)
            doc, feat, sdoc, sfeat, scount = (np.frombuffer(b, dtype="<i8") for b in buffers)
            return (doc, feat), (sdoc, sfeat, scount)
        return self.batch_reference(texts, words)

    def batch_reference(
        self, texts: Sequence[str], words: Sequence[Sequence[str]]
    ) -> tuple[tuple[_Ids, _Ids], tuple[_Ids, _Ids, _Ids]]:
        """`batch` in Python and numpy alone: the reference the compiled path is tested against."""
        flat: list[str] = []
        lengths: list[int] = []
        for text, ws in zip(texts, words, strict=True):
            if _has_noise(text):
                ws = tokens_of_normalized(_mark_noise(text))
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
        if _has_noise(normalized):
            words = tokens_of_normalized(_mark_noise(normalized))
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
