"""`streams score`: moderation flags for a stream of comments, one JSON line out per line in.

Input is JSON lines, each an object with a string `body` and optionally a string `author`
(any event line from `streams parse` qualifies; other fields are ignored), or, with text mode,
plain text lines (each line is a body). Output, in input order, is one JSON object per line:

    {"comment_id": ..., "event_id": ..., "author": ...,      (each only when the input has it)
     "scores": {category: float}, "flags": [category, ...], "reasons": {category: [rule, ...]}}

or ``{..., "error": "..."}`` for a line that cannot be scored (not JSON, not an object, no string
`body`), with the same identifying fields when the line has them. No line is skipped and no input
makes it stop: the caller can zip input and output, or join on `comment_id` / `event_id`. The
command exits with status 1 when any line could not be scored (after writing every line).
Memory stays constant: lines are scored in batches of `batch_size` and written as each batch
completes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import msgspec
import orjson

from streams.enrich.flags import FlagScorer, ScoreInput
from streams.models import FlagResult

__all__ = ["run_score"]

_ENCODER = msgspec.json.Encoder()

#: Input fields copied to the output line (when present as a string or an integer), so results
#: can be joined back to their comments.
PASSTHROUGH = ("comment_id", "event_id", "author")

# One pending line: what to score (or why it cannot be scored), and the fields passed through.
_Pending = tuple[ScoreInput | str, dict[str, str | int]]


def _parse_json_line(line: bytes, number: int) -> _Pending:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"line {number}: invalid JSON: {exc}", {}
    if not isinstance(obj, dict):
        return f"line {number}: expected a JSON object, got {type(obj).__name__}", {}
    ids = {k: v for k in PASSTHROUGH if isinstance(v := obj.get(k), str | int) and not isinstance(v, bool)}
    body = obj.get("body")
    if not isinstance(body, str):
        what = "missing" if body is None else f"not a string ({type(body).__name__})"
        return f"line {number}: field 'body' is {what}", ids
    author = obj.get("author")
    return ScoreInput(body=body, author=author if isinstance(author, str) and author else None), ids


def _error(message: str, ids: dict[str, str | int]) -> bytes:
    return orjson.dumps({**ids, "error": message}) + b"\n"


def _result_line(result: FlagResult, ids: dict[str, str | int]) -> bytes:
    if not ids:
        return _ENCODER.encode(result) + b"\n"
    return orjson.dumps({**ids, "scores": result.scores, "flags": result.flags, "reasons": result.reasons}) + b"\n"


def _score_one(scorer: FlagScorer, item: ScoreInput) -> FlagResult | str:
    try:
        return scorer.score_many([item])[0]
    except Exception as exc:  # report it on that line, keep going
        return f"scoring failed: {type(exc).__name__}: {exc}"


def _score_batch(scorer: FlagScorer, batch: list[tuple[int, _Pending]]) -> tuple[list[bytes], int]:
    items = [p for _, (p, _) in batch if isinstance(p, ScoreInput)]
    scored: list[FlagResult | str]
    try:
        scored = list(scorer.score_many(items))
    except Exception:  # one bad body must not take the batch down: retry one by one
        scored = [_score_one(scorer, item) for item in items]
    results = iter(scored)
    lines: list[bytes] = []
    errors = 0
    for number, (pending, ids) in batch:
        if isinstance(pending, str):
            errors += 1
            lines.append(_error(pending, ids))
            continue
        result = next(results)
        if isinstance(result, str):
            errors += 1
            lines.append(_error(f"line {number}: {result}", ids))
        else:
            lines.append(_result_line(result, ids))
    return lines, errors


def run_score(
    inp: BinaryIO,
    out: BinaryIO,
    *,
    text_mode: bool,
    batch_size: int = 512,
    scorer: FlagScorer | None = None,
) -> int:
    """Score every line of `inp` into `out` (see the module docstring); returns the error lines."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    scorer = scorer if scorer is not None else FlagScorer()
    errors = 0
    batch: list[tuple[int, _Pending]] = []
    for number, raw in enumerate(_lines(inp), start=1):
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if text_mode:
            batch.append((number, (ScoreInput(body=line.decode("utf-8", errors="replace")), {})))
        else:
            batch.append((number, _parse_json_line(line, number)))
        if len(batch) >= batch_size:
            errors += _flush(scorer, batch, out)
            batch = []
    if batch:
        errors += _flush(scorer, batch, out)
    return errors


def _lines(inp: BinaryIO) -> Iterable[bytes]:
    # readline() rather than iteration: works the same for files, pipes and BytesIO.
    while True:
        raw = inp.readline()
        if not raw:
            return
        yield raw


def _flush(scorer: FlagScorer, batch: list[tuple[int, _Pending]], out: BinaryIO) -> int:
    lines, errors = _score_batch(scorer, batch)
    out.write(b"".join(lines))
    out.flush()
    return errors
