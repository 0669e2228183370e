"""The moderation config (`data/moderation.toml`): its validated form and how it is read.

`load_moderation_config` reads the TOML, checks every key (a `ModerationConfigError` names the file,
the key and the problem), compiles the phrase rules (macros expanded into trie-shaped regexes) and
reads the display-name lexicon. Kept apart from scoring so the scorer only ever sees a validated
`ModerationConfig`, and tools (bench/, reviews) can load the config without the models.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from streams.enrich.normalize import normalize, tokens_of_normalized

CATEGORIES: tuple[str, ...] = ("toxicity", "profanity", "identity_attack", "threat", "spam", "username")
#: Categories scored from the comment body (lexicons and phrase rules exist for these).
TEXT_CATEGORIES: tuple[str, ...] = ("toxicity", "profanity", "identity_attack", "threat", "spam")
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_CONFIG_PATH = DATA_DIR / "moderation.toml"
CONFIG_ENV = "STREAMS_MODERATION_FILE"
#: Swearing that is not aimed at anyone: flagged as profanity, never as toxicity by itself ("holy
#: shit, what a goal"), though OLID and toxic_spans label much of it offensive. The inline model's
#: toxicity head has these words' weights set to 0 (bench/train_flags.py); the second stage's model
#: never sees them (second_stage.without_swearing).
SWEARING = frozenset(
    [
        "fuck",
        "fucking",
        "fuckin",
        "fucked",
        "fck",
        "fcking",
        "fuk",
        "fukin",
        "fukking",
        "phuck",
        "shit",
        "shits",
        "shitty",
        "shitting",
        "shitted",
        "crap",
        "crappy",
        "craps",
        "damn",
        "damned",
        "goddamn",
        "dammit",
        "hell",
        "bloody",
        "piss",
        "pissed",
        "pissing",
        "wtf",
        "omfg",
        "holy",
    ]
)
#: Top-level tables owned by other components: kept in the file, not validated here.
FOREIGN_TABLES = frozenset({"detectors", "second_stage"})
#: The `[models.*]` entry for alt-profanity-check; every other entry is a linear model file.
PROFANITY_CHECK = "profanity_check"
SCHEMA_VERSION = 1


class ModerationConfigError(ValueError):
    """The moderation config is missing, unreadable or invalid; the message names file and key."""


# Display names squashed to letters and digits (username rules and lexicon terms match on these).
_SQUASH = re.compile(r"[\W_]+")


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
    #: ("comments-lr-v3+profanity-check@1a2b3c4d"), stored on each comment row and on moderator
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
