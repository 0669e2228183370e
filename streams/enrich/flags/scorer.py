"""`FlagScorer`: one comment's evidence from lexicons, phrase rules, models, spam signals and its
author's display name, combined into scores, flags and reasons (see `streams.enrich.flags`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from streams.enrich.flags.config import (
    _SQUASH,
    CATEGORIES,
    PROFANITY_CHECK,
    TEXT_CATEGORIES,
    ModelConfig,
    ModerationConfig,
    PhraseRule,
    load_moderation_config,
)
from streams.enrich.flags.evidence import Evidence, _AppliedModel, _cite_models, _dedupe, _noisy_or, _ordered_reasons
from streams.enrich.flags.linear import WordFeaturizer
from streams.enrich.flags.profanity import ProfanityCheckModel, _load_linear, _load_profanity_check
from streams.enrich.normalize import Analysis, TermMatcher, analyze, normalize
from streams.enrich.text import count_links
from streams.models import FlagResult


@dataclass(frozen=True)
class ScoreInput:
    """One comment to score. `duplicate_authors`: how many OTHER authors already posted the same
    fingerprint (state the caller keeps); it is evidence for `spam`."""

    body: str
    author: str | None = None
    duplicate_authors: int = 0


_NON_LETTERS = re.compile(r"[\W\d_]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|[_.\d]+")
_TEXT_INDEX = {c: i for i, c in enumerate(TEXT_CATEGORIES)}


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class FlagScorer:
    """Scores comments for every category in `CATEGORIES` (see `streams.enrich.flags`).

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
