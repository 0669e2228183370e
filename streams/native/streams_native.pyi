def analyze_folded(text: str) -> tuple[str, tuple[str, ...], frozenset[str]] | None:
    """The rest of `streams.enrich.normalize._analyze` for a mapped, casefolded text without
    non-ASCII letters, digits or spaces; None where Python must run its reference code."""
