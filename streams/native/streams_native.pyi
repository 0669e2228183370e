from collections.abc import Callable, Sequence

def analyze_folded(text: str) -> tuple[str, tuple[str, ...], frozenset[str]] | None:
    """The rest of `streams.enrich.normalize._analyze` for a mapped, casefolded text without
    non-ASCII letters, digits or spaces; None where Python must run its reference code."""

class Featurizer:
    """`WordFeaturizer.batch` over a model vocabulary and a secondary word vocabulary."""

    def __init__(self, features: list[str], secondary: dict[str, int]) -> None: ...
    def batch(
        self, texts: list[str], docs: list[Sequence[str]], noisy_words: Callable[[str], list[str]]
    ) -> list[bytes]: ...

def neither_word_nor_space_ranges() -> list[tuple[int, int]]: ...
