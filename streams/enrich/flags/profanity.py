"""alt-profanity-check's model lifted into a `SparseLinearModel`, and the per-process model cache.

Models are loaded once per process, on first use, under one lock (`_load_linear`,
`_load_profanity_check`), whichever scorer asks first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streams.enrich.flags.linear import SparseLinearModel

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
