"""Text normalisation for matching: one canonical form for the many ways people disguise words.

`normalize` is lossy on purpose. Its output is for matching lexicons, phrase rules, models and
fingerprints, never for display. Steps, in order:

1. Unicode: compatibility-decompose (NFKD: fullwidth, ligatures, mathematical letters -> ASCII),
   drop Latin combining accents (``fück`` -> ``fuck``), zero-width characters and the soft hyphen,
   map look-alike letters from other scripts (Cyrillic, Greek, small capitals) to Latin, recompose
   (NFKC), casefold. Pure ASCII input skips this step (it is already in that form).
2. Leetspeak inside words (``sh1t``, ``b!tch``, ``$hit``, ``a$$``), not in numbers (``2018``,
   ``$4,600``), ordinals (``1st``), version-like tails (``covid19``) or a mention's leading ``@``.
3. Whitespace runs become one space; punctuation stays, so word boundaries are kept.
4. Runs of 3+ identical letters become 2 (``shiiiit`` -> ``shiit``); `TermMatcher` also tries 1
   for the words that were stretched (`Analysis.elongated`).
5. Letters spaced out to dodge filters are joined: ``f u c k`` / ``f.u.c.k`` -> ``fuck`` (three or
   more single letters in a row; the only place word boundaries move).

`analyze` returns the normalised text with its words (letter/digit runs, inner apostrophes kept)
and caches the last 4096 texts, because the enrichment agent needs them for text features and
again for flags. Every step is guarded by a cheap test, since most comments need none of them.
"""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from functools import lru_cache
from typing import NamedTuple

#: The compiled fast path (streams/native, built by `make`): the same results as the Python code
#: (property-tested), about 5x cheaper. Without it, or with STREAMS_NATIVE=0, Python runs alone.
_native_analyze_folded: Callable[[str], tuple[str, tuple[str, ...], frozenset[str]] | None] | None = None
if os.environ.get("STREAMS_NATIVE", "1") != "0":
    # Not built (no Rust toolchain): the Python reference is complete on its own.
    with contextlib.suppress(ImportError):
        from streams_native import analyze_folded as _native_analyze_folded
NATIVE = _native_analyze_folded is not None

__all__ = [
    "Analysis",
    "TermHit",
    "TermMatcher",
    "analyze",
    "collapse_repeats",
    "normalize",
    "tokens",
    "tokens_of_normalized",
]

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064"

# Case-aware, applied before casefolding: uppercase Greek Eta looks like H, lowercase eta like n.
_HOMOGLYPHS = {
    # Cyrillic upper case
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    "Ү": "Y", "Ӏ": "I",
    # Cyrillic lower case (some only look Latin in italic or small-caps styles, still used to evade)
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ү": "y", "ӏ": "l", "ь": "b", "п": "n", "г": "r", "и": "u", "ѵ": "v", "һ": "h",
    # Greek upper case
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Greek lower case
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "μ": "u",
    # Latin look-alikes NFKC leaves alone: dotless i, script g, small capitals
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ł": "l", "ø": "o", "đ": "d", "ħ": "h",
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t",
    "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    # Typographic apostrophes, so "don’t" tokenises like "don't"
    "\u2019": "'", "\u2018": "'", "\u02bc": "'",
}  # fmt: skip

_UNICODE_TABLE: dict[int, str | None] = {ord(k): v for k, v in _HOMOGLYPHS.items()}
_UNICODE_TABLE.update({ord(c): None for c in _ZERO_WIDTH})
# Latin combining diacritics (after NFKD): removing them turns "fück" into "fuck".
_UNICODE_TABLE.update({cp: None for cp in range(0x0300, 0x0370)})
# Typographic characters NFKD leaves alone but that should read as plain text.
_UNICODE_TABLE.update({0x2026: "...", 0x00A0: " "})

_LEET_TABLE = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})

# Cheap test first (bytes.translate in C): does the text contain a substitutable character at all?
_NOT_LEET_BYTES = bytes(b for b in range(256) if chr(b) not in "013457@$!")
# Then: one touching a Latin letter ("!" only between letters, "$" also at a word's edge).
# Every alternative starts with a substitutable character, so the engine skips to those
# (3x cheaper than starting with a lookbehind); the letter before is checked by a lookbehind
# over the character and its predecessor. Possessive run: linear even on "!!!!..." x 100k.
_LEET_HINT = re.compile(r"[013457@$!](?<=[a-z].)[013457@$!]*+(?=[a-z])|\$(?<=[a-z].)|\$[a-z]")
# Candidate words for leetspeak: runs of word characters and @ $ ! containing at least one of the
# substitutable characters. The callback decides.
_LEET_CANDIDATE = re.compile(r"(?<![\w@$!])[\w@$!]*?[013457@$!][\w@$!]*")
_HAS_LETTER = re.compile(r"[^\W\d_]")
# Left alone: ordinals, quantities, prices, names (1st, 10km, $15k, 4chan), version-like tails (covid19).
_LEET_KEEP = re.compile(r"\$?\d[\d.,]*[^\W\d_]+|[^\W\d_]{3,}\d{2,}")
_LEET_SPLIT = re.compile(r"(@?)(!*)(.*?)(!*)")

_SPACED_HINT = re.compile(r" [^\W\d_] [^\W\d_] [^\W\d_] ")
_SPACED = re.compile(r"(?<![^\W_])[^\W\d_](?:[ .\-_*][^\W\d_]){2,}(?![^\W_])")
_SPACED_SEP = re.compile(r"[ .\-_*]")
#: A letter or digit three times in a row: [^\W_] is exactly str.isalnum() (re's \w is isalnum or "_").
_TRIPLE_ALNUM = re.compile(r"([^\W_])\1\1")
_REPEAT3 = re.compile(r"([^\W\d_])\1{2,}")
_REPEAT2 = re.compile(r"([^\W\d_])\1+")
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# ASCII words without a regex: every byte that is not [a-z0-9'] becomes a space, then split.
_WORD_BYTES = bytes(b if (48 <= b <= 57 or 97 <= b <= 122 or b == 39) else 32 for b in range(256))

# Per non-ASCII character, its replacement: NFKD, our table (look-alikes, invisible characters,
# accents), NFKC, computed on first sight and cached. `str.translate` then applies it in C, which
# is several times cheaper than normalising whole texts twice. Mapping character by character
# equals whole-text NFKD -> table -> NFKC except where characters compose with their neighbours
# (Hangul jamo, some Indic marks): the result is then re-composed with NFKC.
_CHAR_MAP_MAX = 200_000


class _CharMap(dict[int, str]):
    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        out = (
            ch
            if cp < 128
            else unicodedata.normalize("NFKC", unicodedata.normalize("NFKD", ch).translate(_UNICODE_TABLE))
        )
        if len(self) < _CHAR_MAP_MAX:
            self[cp] = out
        return out


_CHAR_MAP = _CharMap()

# Per non-ASCII character (after mapping), what word splitting needs to know (cached):
_WORD_CHAR = 2  # a letter or digit (so words cannot be split with the ASCII fast path)
_SPACE_CHAR = 4  # Unicode whitespace (em space, ...)
_CHAR_INFO: dict[str, int] = {}
_CHAR_INFO_MAX = 100_000


def _char_info(ch: str) -> int:
    info = _CHAR_INFO.get(ch)
    if info is None:
        info = (_WORD_CHAR if ch.isalnum() else 0) | (_SPACE_CHAR if ch.isspace() else 0)
        if len(_CHAR_INFO) < _CHAR_INFO_MAX:
            _CHAR_INFO[ch] = info
    return info


def _non_ascii_info(text: str) -> int:
    info = 0
    for ch in set(_NON_ASCII.findall(text)):
        info |= _char_info(ch)
    return info


def _map_unicode(text: str) -> str:
    text = text.translate(_CHAR_MAP)
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return text


def _leet_word(match: re.Match[str]) -> str:
    word = match.group()
    if _HAS_LETTER.search(word) is None:
        return word  # a number, a price, "!!!"
    parts = _LEET_SPLIT.fullmatch(word)
    if parts is None:  # pragma: no cover - the pattern matches any string
        return word
    mention, lead, core, trail = parts.groups()
    if not core or _LEET_KEEP.fullmatch(core) is not None:
        return word
    return mention + lead + core.translate(_LEET_TABLE) + trail


def _join_spaced(match: re.Match[str]) -> str:
    return _SPACED_SEP.sub("", match.group())


def _split_words(text: str) -> list[str]:
    """Letter/digit runs with inner single apostrophes (``don't``): the `_TOKEN` regex's result."""
    if not text.isascii():
        return _TOKEN.findall(text)
    spaced = text.encode("ascii").translate(_WORD_BYTES).decode("ascii")
    words = spaced.split()
    if "'" in spaced and (" '" in spaced or "' " in spaced or "''" in spaced or spaced[0] == "'" or spaced[-1] == "'"):
        # Quotes at a word's edge or doubled are separators, not part of a word.
        words = [p for w in words for p in (x.strip("'") for x in w.split("''")) if p]
    return words


def _analyze(text: str) -> Analysis:
    info = 0
    if not text.isascii():
        text = _map_unicode(text)
        info = 0 if text.isascii() else _non_ascii_info(text)
    text = text.casefold()
    if _native_analyze_folded is not None and not info:
        done = _native_analyze_folded(text)
        if done is not None:
            normalized, words, elongated = done
            return Analysis(normalized, words, frozenset(words), elongated)
    return _analyze_folded(text, info)


def _analyze_reference(text: str) -> Analysis:
    """`_analyze` in Python alone: the reference the compiled fast path is tested against."""
    info = 0
    if not text.isascii():
        text = _map_unicode(text)
        info = 0 if text.isascii() else _non_ascii_info(text)
    return _analyze_folded(text.casefold(), info)


def _analyze_folded(text: str, info: int) -> Analysis:
    """Steps 2-5 of the normalisation on mapped, casefolded text; `info`: `_non_ascii_info`."""
    # Each step is guarded by a cheap test: most comments need none of them.
    if text.encode("utf-8", "ignore").translate(None, _NOT_LEET_BYTES) and _LEET_HINT.search(text) is not None:
        text = _LEET_CANDIDATE.sub(_leet_word, text)
    if (
        info & _SPACE_CHAR
        or text[:1].isspace()
        or text[-1:].isspace()
        or "  " in text
        or "\n" in text
        or "\t" in text
        or "\r" in text
        or "\x0b" in text
        or "\x0c" in text
    ):
        text = " ".join(text.split())
    elongated: frozenset[str] = frozenset()
    if _has_letter_triple(text):
        text, elongated = _collapse_triples(text, elongated)
    # Emoji and other non-letters do not need the (slower) Unicode word pattern.
    words = _split_words(text if info & _WORD_CHAR or text.isascii() else _NON_ASCII.sub(" ", text))
    if len(words) >= 3 and _SPACED_HINT.search(" " + " ".join(words) + " ") is not None:
        joined = _SPACED.sub(_join_spaced, text)
        if joined != text:
            text = joined
            # Joining can create a new elongated run ("s h i i i t").
            if _has_letter_triple(text):
                text, elongated = _collapse_triples(text, elongated)
            words = _split_words(text if info & _WORD_CHAR or text.isascii() else _NON_ASCII.sub(" ", text))
    tup = tuple(words)
    return Analysis(text, tup, frozenset(tup), elongated)


def _has_letter_triple(text: str) -> bool:
    # Most texts have no letter or digit three times in a row, and then the (costly) collapse
    # would change nothing. Superset of `_REPEAT3`.
    return _TRIPLE_ALNUM.search(text) is not None


def _collapse_triples(text: str, elongated: frozenset[str]) -> tuple[str, frozenset[str]]:
    collapsed = _REPEAT3.sub(r"\1\1", text)
    if collapsed == text:
        return text, elongated
    # Remember which words were stretched ("shiiiit" -> "shiit"): only those are worth trying
    # with single letters later.
    stretched = set(_split_words(text)) - set(_split_words(collapsed))
    return collapsed, elongated | {_REPEAT3.sub(r"\1\1", w) for w in stretched}


class Analysis(NamedTuple):
    """A text's normalised form and its words, computed once and shared (see `analyze`)."""

    normalized: str
    words: tuple[str, ...]
    wordset: frozenset[str]
    #: Words that had a letter repeated 3+ times ("shiiiit", here as "shiit"): matching also
    #: tries them with single letters ("shit").
    elongated: frozenset[str] = frozenset()


#: Texts longer than this are analysed without caching (bodies may be up to 1 MB); with 4096
#: entries the cache stays within a few tens of MB even when every body is this long.
CACHE_MAX_CHARS = 4096


@lru_cache(maxsize=4096)
def _analyze_cached(text: str) -> Analysis:
    return _analyze(text)


def analyze(text: str, *, cache: bool = True) -> Analysis:
    """`normalize` plus words, cached: the enrichment agent analyses each body for text
    features and again for flags, and the second call becomes a lookup. The cache holds the
    last 4096 texts; pass ``cache=False`` for one-off texts that should not evict bodies."""
    if not cache:
        return _analyze(text)
    if len(text) > CACHE_MAX_CHARS:
        return _analyze(text)
    return _analyze_cached(text)


def normalize(text: str) -> str:
    """Canonical matching form of `text` (see the module docstring). Idempotent in practice."""
    return analyze(text).normalized


def tokens_of_normalized(normalized: str) -> list[str]:
    """Words of already normalised text: letter/digit runs, inner apostrophes kept (``don't``)."""
    return _split_words(normalized)


def tokens(text: str) -> list[str]:
    """Words of `text` after `normalize`."""
    return list(analyze(text).words)


def collapse_repeats(word: str, keep: int = 2) -> str:
    """Collapse runs of a repeated letter to `keep` (1 or 2) letters: ``shiit`` -> ``shit`` for 1."""
    if keep == 1:
        return _REPEAT2.sub(r"\1", word)
    if keep == 2:
        return _REPEAT3.sub(r"\1\1", word)
    raise ValueError(f"keep must be 1 or 2, not {keep!r}")


class TermHit(NamedTuple):
    """A lexicon term found in a text, and the word(s) that matched it."""

    term: str
    matched: str


_WILDCARD_LETTERS = re.compile(r"[^\W\d_]")
# Possessive star runs: no backtracking on "****..." (which would be quadratic).
_MASKED = re.compile(r"(?<![\w*])[^\W\d_]*\*++[^\W\d_*]+(?:\*++[^\W\d_*]*)*|(?<![\w*])[^\W\d_]+\*++(?![^\W_*])")


def _in_text_order(words: AbstractSet[str], toks: Sequence[str]) -> Iterable[str]:
    """`words` in order of first occurrence in `toks` (words not in it last, alphabetically).

    Several words can match one term ("fucking" and "motherfuck" both match "*fuck"); the first
    in the text is the one reported, so results do not depend on set iteration order, which
    changes from process to process (string hashes are randomised).
    """
    if len(words) < 2:
        return words
    try:
        return sorted(words, key=toks.index)  # a few words, each found by a scan in C
    except ValueError:  # a word not among `toks` (an elongated form changed by joining)
        end = len(toks)
        return sorted(words, key=lambda w: (toks.index(w) if w in toks else end, w))


class TermMatcher:
    """Finds lexicon terms in normalised text.

    Terms are normalised like the text. A term may be one word (``moron``), several words
    (``piece of shit``), a prefix (``fuck*``: fucking, fucker) or a suffix (``*shit``: bullshit).
    Besides exact words it tries words with repeated letters collapsed to one (``shiit`` ->
    ``shit``, ``niigger``): by default every word with a double letter, from `analyze` only the
    words that were stretched (3+ repeats). A plain word that happens to equal a collapsed term
    (``niger``) never matches, since it has no double letter. Masked words (``f*ck``, ``sh**``)
    match a one-word term of the same length that agrees on every visible letter, when at least two
    letters are visible; the highest-priority (first listed) such term wins.
    """

    def __init__(self, terms: Iterable[str]) -> None:
        single: dict[str, str] = {}
        collapsed: dict[str, str] = {}
        multi: dict[str, list[tuple[str, tuple[str, ...], int]]] = {}
        prefixes: list[tuple[str, str]] = []
        suffixes: list[tuple[str, str]] = []
        ordered: dict[str, None] = {}
        for raw in terms:
            prefix = raw.endswith("*")
            suffix = raw.startswith("*")
            core = normalize(raw.strip("*"))
            if not core:
                continue
            term = ("*" if suffix else "") + core + ("*" if prefix else "")
            if term in ordered:
                continue
            ordered[term] = None
            words = tuple(tokens_of_normalized(core))
            if prefix or suffix:
                (prefixes if prefix else suffixes).append((core, term))
            elif len(words) == 1 and words[0] == core:
                single.setdefault(core, term)
                collapsed.setdefault(collapse_repeats(core, 1), term)
            elif words:
                # Indexed by the word least likely to be common (the longest; "piece of shit" by
                # "piece"), so "you" or "i" do not send every comment through the phrase check.
                anchor = max(range(len(words)), key=lambda k: (len(words[k]), k))
                multi.setdefault(words[anchor], []).append((term, words, anchor))
        self.terms: tuple[str, ...] = tuple(ordered)
        self._order = {t: i for i, t in enumerate(self.terms)}
        self._single = single
        self._collapsed = collapsed
        self._multi = multi
        # Words worth a look: one-word terms and anchor words of multi-word terms (one set test).
        self._interesting = frozenset(single) | frozenset(multi)
        self._prefixes = prefixes
        self._suffixes = suffixes
        # Affix terms are matched per distinct word, once: words already checked are remembered
        # (those that match in `_affix_words`), so a text costs two set operations.
        self._prefix_tuple = tuple(c for c, _ in prefixes)
        self._suffix_tuple = tuple(c for c, _ in suffixes)
        self._checked: set[str] = set()
        self._affix_words: dict[str, tuple[str, ...]] = {}
        # Masked lookups compare against one-word terms and affix stems by length.
        self._mask_terms: dict[str, str] = dict(single)
        for core, term in prefixes + suffixes:
            self._mask_terms.setdefault(core, term)
        self._unmasked: dict[str, str | None] = {}
        self._by_length: dict[int, list[str]] = {}
        for word in self._mask_terms:
            if " " not in word:
                self._by_length.setdefault(len(word), []).append(word)

    def find(
        self,
        normalized: str,
        words: Sequence[str] | None = None,
        wordset: AbstractSet[str] | None = None,
        *,
        collapse: bool | AbstractSet[str] = True,
    ) -> list[TermHit]:
        """Terms present in `normalized` (output of `normalize`), each once, in term order.

        `words` / `wordset` (the words of `normalized` and their set) may be passed when the
        caller has them already (see `analyze`). `collapse` says which words to also try with
        doubled letters collapsed: True for all, or a set of words (`Analysis.elongated`: the
        words that had a letter repeated 3+ times), or False for none.
        """
        toks = tokens_of_normalized(normalized) if words is None else words
        tokset = frozenset(toks) if wordset is None else wordset
        found: dict[str, str] = {}
        for word in tokset & self._interesting:
            term = self._single.get(word)
            if term is not None:
                found[term] = word
            parts_list = self._multi.get(word)
            if parts_list is not None:
                self._find_multi(toks, word, parts_list, found)
        if self._prefix_tuple or self._suffix_tuple:
            unknown = tokset - self._checked
            if unknown:
                self._check_affixes(unknown)
            if self._affix_words:
                for word in _in_text_order(tokset & self._affix_words.keys(), toks):
                    for term in self._affix_words[word]:
                        found.setdefault(term, word)
        if collapse:
            # Collapsed-repeat variants ("shiit" -> "shit", "fuucking" -> "fucking*").
            variants: dict[str, str] = {}
            for word in tokset if collapse is True else collapse:
                if len(word) < 3 or word in self._single:
                    continue
                key = _REPEAT2.sub(r"\1", word)
                if key != word:
                    variants[word] = key
            for word in _in_text_order(variants.keys(), toks):
                key = variants[word]
                term = self._collapsed.get(key)
                if term is not None:
                    found.setdefault(term, word)
                if (self._prefix_tuple and key.startswith(self._prefix_tuple)) or (
                    self._suffix_tuple and key.endswith(self._suffix_tuple)
                ):
                    for c, t in self._prefixes:
                        if key.startswith(c):
                            found.setdefault(t, word)
                    for c, t in self._suffixes:
                        if key.endswith(c):
                            found.setdefault(t, word)
        if "*" in normalized:
            for m in _MASKED.finditer(normalized):
                term = self._unmask(m.group())
                if term is not None:
                    found.setdefault(term, m.group())
        if len(found) > 1:
            order = self._order
            return [TermHit(t, found[t]) for t in sorted(found, key=order.__getitem__)]
        return [TermHit(t, w) for t, w in found.items()]

    #: Bound on remembered words (cleared when full; they are re-checked as they come).
    CHECKED_WORDS_MAX = 300_000

    def _check_affixes(self, words: Iterable[str]) -> None:
        if len(self._checked) > self.CHECKED_WORDS_MAX:
            self._checked.clear()
            self._affix_words.clear()
        prefixes, suffixes = self._prefix_tuple, self._suffix_tuple
        for word in words:
            self._checked.add(word)
            if (prefixes and word.startswith(prefixes)) or (suffixes and word.endswith(suffixes)):
                terms = [t for c, t in self._prefixes if word.startswith(c)]
                terms += [t for c, t in self._suffixes if word.endswith(c)]
                self._affix_words[word] = tuple(terms)

    @staticmethod
    def _find_multi(
        toks: Sequence[str], anchor_word: str, entries: list[tuple[str, tuple[str, ...], int]], found: dict[str, str]
    ) -> None:
        positions: list[int] = []
        start = -1
        for _ in range(toks.count(anchor_word)):
            start = toks.index(anchor_word, start + 1)
            positions.append(start)
        for term, parts, anchor in entries:
            n = len(parts)
            for i in positions:
                first = i - anchor
                if first >= 0 and tuple(toks[first : first + n]) == parts:
                    found.setdefault(term, " ".join(parts))
                    break

    def _unmask(self, masked: str) -> str | None:
        if masked in self._unmasked:
            return self._unmasked[masked]
        term = self._unmask_uncached(masked)
        if len(self._unmasked) > 10_000:
            self._unmasked.clear()
        self._unmasked[masked] = term
        return term

    def _unmask_uncached(self, masked: str) -> str | None:
        if len(_WILDCARD_LETTERS.findall(masked)) < 2:
            return None
        pattern = re.compile(re.escape(masked).replace(r"\*", "[^\\W\\d_]"))
        candidates = [w for w in self._by_length.get(len(masked), ()) if pattern.fullmatch(w)]
        if not candidates:
            return None
        return min((self._mask_terms[w] for w in candidates), key=self._order.__getitem__)
