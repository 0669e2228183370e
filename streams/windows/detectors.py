"""Event-time abuse detectors: configuration, alert rows and the pure detection logic.

The detectors run inside :class:`streams.windows.engine.WindowEngine` (which owns their state in
the store and decides *when* they run); this module holds what they *compute*, so it can be tested
on plain lists.

Detectors (thresholds from the ``[detectors]`` table of ``streams/enrich/data/moderation.toml``):

``author_flood``   one author posts MORE than ``max_comments`` comments within ``minutes``.
``pile_on``        ``>= min_authors`` distinct authors reply to the same parent author within
                   ``minutes``, with ``>= min_flagged`` flagged replies among them. Self-replies
                   never count.
``spam_wave``      the same text fingerprint from ``>= min_authors`` distinct authors within
                   ``minutes``.
``toxicity_spike`` a thread's flagged share in an emitted 1-minute window is ``>=
                   min_flagged_share`` and MORE than ``factor`` x its baseline, the window has
                   ``>= min_comments`` comments. Baseline = mean flagged share of the thread's
                   latest ``baseline_windows`` earlier 1-minute windows that had comments and
                   started within ``lookback_minutes`` before it; at least
                   ``min_baseline_windows`` of them are required (a brand-new thread has no
                   baseline, so it cannot spike).

"Within M minutes" is event time: a set of comments whose posted_at values span less than M,
i.e. the sliding window ``(t - M, t]`` ending at a comment's time ``t``. A comment time at which
the condition holds is a *hot point*. Hot points closer than the detector's *span* (M; for
toxicity_spike ``baseline_windows`` minutes) to an existing episode join it; otherwise they open a
new episode, which emits exactly one :class:`Alert`. ``alert_id`` is a hash of detector, key and
the alert window, so a replay of the same data produces the same ids (ReplacingMergeTree dedups).

When: a sliding detector judges the comments of a minute once the watermark closes that minute,
so with arrival disorder within the allowed lateness its alerts do not depend on arrival order.
A later comment (still within retention) is judged when it arrives, against the windows it
falls in, and can raise an alert for the past (``detected_at`` tells). toxicity_spike judges each
emitted thread_1m row; a corrected row is judged again, later windows whose baseline it changed
are not.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, NamedTuple

import msgspec

__all__ = [
    "AUTHOR_FLOOD",
    "DEFAULT_CONFIG_PATH",
    "DETECTORS",
    "PILE_ON",
    "SPAM_WAVE",
    "TOXICITY_SPIKE",
    "Alert",
    "AuthorFloodConfig",
    "DetectorConfig",
    "DetectorConfigError",
    "Hit",
    "Member",
    "PileOnConfig",
    "SpamWaveConfig",
    "ToxicitySpikeConfig",
    "dt_to_ms",
    "load_detector_config",
    "ms_to_dt",
]

AUTHOR_FLOOD: Final = "author_flood"
PILE_ON: Final = "pile_on"
TOXICITY_SPIKE: Final = "toxicity_spike"
SPAM_WAVE: Final = "spam_wave"
DETECTORS: Final = (AUTHOR_FLOOD, PILE_ON, TOXICITY_SPIKE, SPAM_WAVE)

MINUTE_MS: Final = 60_000
#: Evidence lists are capped so one huge flood cannot produce a multi-megabyte alert row.
MAX_EVIDENCE_ITEMS: Final = 200

DEFAULT_CONFIG_PATH: Final = Path(__file__).resolve().parent.parent / "enrich" / "data" / "moderation.toml"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


# --------------------------------------------------------------------------------------------- time


def ms_to_dt(ms: int) -> datetime:
    """Epoch milliseconds -> aware UTC datetime (exact: no float round-trip)."""
    return _EPOCH + timedelta(milliseconds=ms)


def dt_to_ms(dt: datetime) -> int:
    """Aware datetime -> epoch milliseconds (floor). Naive datetimes are rejected: they are ambiguous."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: an event time needs a UTC offset")
    return (dt - _EPOCH) // _ONE_MS


def _minutes_to_ms(minutes: float) -> int:
    return round(minutes * MINUTE_MS)


# ------------------------------------------------------------------------------------------- config

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveMinutes = Annotated[float, msgspec.Meta(gt=0)]
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]


class DetectorConfigError(ValueError):
    """The ``[detectors]`` table of the moderation TOML is missing, malformed or out of range."""


class AuthorFloodConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_comments: NonNegativeInt = 10
    minutes: PositiveMinutes = 1.0

    @property
    def window_ms(self) -> int:
        return _minutes_to_ms(self.minutes)


class PileOnConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_authors: PositiveInt = 3
    minutes: PositiveMinutes = 10.0
    min_flagged: NonNegativeInt = 1

    @property
    def window_ms(self) -> int:
        return _minutes_to_ms(self.minutes)


class ToxicitySpikeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    factor: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    min_comments: PositiveInt = 5
    baseline_windows: PositiveInt = 10
    min_flagged_share: Share = 0.2
    #: Optional keys (not in the brief's TOML): how far back baseline windows may be, and how many
    #: are needed before a thread can spike at all.
    lookback_minutes: PositiveMinutes = 60.0
    min_baseline_windows: PositiveInt = 1

    def __post_init__(self) -> None:
        if self.min_baseline_windows > self.baseline_windows:
            raise ValueError(
                f"min_baseline_windows ({self.min_baseline_windows}) exceeds baseline_windows ({self.baseline_windows})"
            )

    @property
    def lookback_ms(self) -> int:
        return _minutes_to_ms(self.lookback_minutes)

    @property
    def span_ms(self) -> int:
        """Spiking windows closer than this to an episode belong to it."""
        return self.baseline_windows * MINUTE_MS


class SpamWaveConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_authors: PositiveInt = 3
    minutes: PositiveMinutes = 5.0

    @property
    def window_ms(self) -> int:
        return _minutes_to_ms(self.minutes)


class DetectorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    author_flood: AuthorFloodConfig = msgspec.field(default_factory=AuthorFloodConfig)
    pile_on: PileOnConfig = msgspec.field(default_factory=PileOnConfig)
    toxicity_spike: ToxicitySpikeConfig = msgspec.field(default_factory=ToxicitySpikeConfig)
    spam_wave: SpamWaveConfig = msgspec.field(default_factory=SpamWaveConfig)


def load_detector_config(path: Path | None = None) -> DetectorConfig:
    """Read the ``[detectors]`` table of the moderation TOML.

    ``path=None`` reads the packaged ``streams/enrich/data/moderation.toml`` and falls back to the
    built-in defaults when that file does not exist (yet). An explicit path must exist. A file
    without a ``[detectors]`` table, or a table that omits a detector or key, gets the defaults for
    what is missing. Unknown detectors/keys, wrong types and out-of-range values raise
    :class:`DetectorConfigError` naming the file and the offending key.
    """
    if path is None:
        path = DEFAULT_CONFIG_PATH
        if not path.exists():
            return DetectorConfig()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise DetectorConfigError(f"{path}: moderation config not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DetectorConfigError(f"{path}: invalid TOML: {exc}") from exc
    table = data.get("detectors", {})
    if not isinstance(table, dict):
        raise DetectorConfigError(f"{path}: [detectors] must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - set(DETECTORS))
    if unknown:
        raise DetectorConfigError(
            f"{path}: unknown detector(s) {', '.join(unknown)} in [detectors]; known: {', '.join(DETECTORS)}"
        )
    parts: dict[str, Any] = {}
    for name, typ in (
        (AUTHOR_FLOOD, AuthorFloodConfig),
        (PILE_ON, PileOnConfig),
        (TOXICITY_SPIKE, ToxicitySpikeConfig),
        (SPAM_WAVE, SpamWaveConfig),
    ):
        raw = table.get(name, {})
        if not isinstance(raw, dict):
            raise DetectorConfigError(f"{path}: [detectors.{name}] must be a table, got {raw!r}")
        try:
            parts[name] = msgspec.convert(raw, type=typ)
        except msgspec.ValidationError as exc:
            allowed = ", ".join(typ.__struct_fields__)
            raise DetectorConfigError(f"{path}: [detectors.{name}]: {exc} (keys: {allowed})") from exc
    return DetectorConfig(**parts)


# ------------------------------------------------------------------------------------------- alerts


class Alert(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One detector episode; fields are the columns of the ClickHouse ``alerts`` table.

    ``thread_id``/``author`` are those of the comment that tipped the detector over, except:
    pile_on's ``author`` is the parent author being piled on, toxicity_spike's ``author`` is "".
    The window is half-open like the activity windows: ``[earliest evidence, latest evidence + 1ms)``
    for the sliding detectors, the 1-minute window for toxicity_spike.
    """

    alert_id: str
    detector: str
    thread_id: str
    author: str
    window_start: datetime
    window_end: datetime
    severity: float
    summary: str
    evidence: str
    detected_at: datetime


def alert_id(detector: str, key: str, window_start_ms: int, window_end_ms: int) -> str:
    raw = f"{detector}\x1f{key}\x1f{window_start_ms}\x1f{window_end_ms}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _evidence(payload: dict[str, Any]) -> str:
    # sort_keys + fixed separators: a replay yields byte-identical evidence.
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _capped(values: Sequence[str]) -> list[str]:
    return list(values[:MAX_EVIDENCE_ITEMS])


# ------------------------------------------------------------------------------ sliding detection


class Member(NamedTuple):
    """What the sliding detectors need to know about one comment."""

    posted_at_ms: int
    comment_id: str
    author: str
    flagged: bool
    thread_id: str


class Hit(NamedTuple):
    """A hot point: the sliding window ``(t - M, t]`` ending at ``t`` met the condition."""

    t: int
    members: list[Member]


#: (comments, distinct authors, flagged comments) of a sliding window -> does it fire?
Predicate = Callable[[int, int, int], bool]


def scan_sliding(items: Sequence[Member], window_ms: int, lo: int, hi: int, predicate: Predicate) -> list[Hit]:
    """Hot points ``t`` in ``[lo, hi)`` among ``items`` (sorted by time, then comment id).

    Each distinct comment time is evaluated once with every comment in ``(t - window_ms, t]``;
    two pointers keep it linear.
    """
    hits: list[Hit] = []
    authors: dict[str, int] = {}
    flagged = 0
    left = right = 0
    n = len(items)
    while right < n:
        t = items[right].posted_at_ms
        while right < n and items[right].posted_at_ms == t:
            m = items[right]
            authors[m.author] = authors.get(m.author, 0) + 1
            flagged += m.flagged
            right += 1
        while items[left].posted_at_ms <= t - window_ms:
            m = items[left]
            left_count = authors[m.author] - 1
            if left_count:
                authors[m.author] = left_count
            else:
                del authors[m.author]
            flagged -= m.flagged
            left += 1
        if lo <= t < hi and predicate(right - left, len(authors), flagged):
            hits.append(Hit(t, list(items[left:right])))
    return hits


def sliding_predicate(detector: str, config: DetectorConfig) -> tuple[Predicate, int]:
    """The firing condition of a sliding detector and the minimum item count it can fire with."""
    if detector == AUTHOR_FLOOD:
        flood = config.author_flood
        return (lambda comments, _authors, _flagged: comments > flood.max_comments), flood.max_comments + 1
    if detector == PILE_ON:
        pile = config.pile_on
        return (lambda _comments, authors, flagged: authors >= pile.min_authors and flagged >= pile.min_flagged), max(
            pile.min_authors, pile.min_flagged
        )
    if detector == SPAM_WAVE:
        spam = config.spam_wave
        return (lambda _comments, authors, _flagged: authors >= spam.min_authors), spam.min_authors
    raise ValueError(f"{detector!r} is not a sliding detector")


def sliding_window_ms(detector: str, config: DetectorConfig) -> int:
    if detector == AUTHOR_FLOOD:
        return config.author_flood.window_ms
    if detector == PILE_ON:
        return config.pile_on.window_ms
    if detector == SPAM_WAVE:
        return config.spam_wave.window_ms
    raise ValueError(f"{detector!r} is not a sliding detector")


def sliding_alert(detector: str, key: str, hit: Hit, config: DetectorConfig, detected_at_ms: int) -> Alert:
    """The alert for a new episode opened by ``hit`` (``key``: author / parent author / fingerprint)."""
    members = hit.members
    trigger = members[-1]
    start = members[0].posted_at_ms
    end = hit.t + 1
    authors = sorted({m.author for m in members})
    ids = [m.comment_id for m in members]
    flagged_ids = [m.comment_id for m in members if m.flagged]
    threads = sorted({m.thread_id for m in members})
    evidence: dict[str, Any] = {
        "key": key,
        "comments": len(members),
        "comment_ids": _capped(ids),
        "authors": _capped(authors),
        "threads": _capped(threads),
    }
    if detector == AUTHOR_FLOOD:
        cfg_f = config.author_flood
        severity = len(members) / max(cfg_f.max_comments, 1)
        summary = (
            f"Author {key} posted {len(members)} comments within {cfg_f.minutes:g} min (limit {cfg_f.max_comments})."
        )
        thread_id, author = trigger.thread_id, key
    elif detector == PILE_ON:
        cfg_p = config.pile_on
        severity = len(authors) / cfg_p.min_authors
        summary = (
            f"{len(authors)} authors replied to {key} within {cfg_p.minutes:g} min; "
            f"{len(flagged_ids)} of {len(members)} replies were flagged."
        )
        evidence["flagged_comment_ids"] = _capped(flagged_ids)
        thread_id, author = trigger.thread_id, key
    elif detector == SPAM_WAVE:
        cfg_s = config.spam_wave
        severity = len(authors) / cfg_s.min_authors
        summary = f"{len(authors)} authors posted the same text (fingerprint {key[:16]}) within {cfg_s.minutes:g} min."
        thread_id, author = trigger.thread_id, trigger.author
    else:
        raise ValueError(f"{detector!r} is not a sliding detector")
    return Alert(
        alert_id=alert_id(detector, key, start, end),
        detector=detector,
        thread_id=thread_id,
        author=author,
        window_start=ms_to_dt(start),
        window_end=ms_to_dt(end),
        severity=severity,
        summary=summary,
        evidence=_evidence(evidence),
        detected_at=ms_to_dt(detected_at_ms),
    )


# ------------------------------------------------------------------------------------ toxicity spike


class SpikeCheck(NamedTuple):
    spiking: bool
    share: float
    baseline: float


def toxicity_spike_check(
    comments: int, flagged_comments: int, baseline_shares: Sequence[float], config: ToxicitySpikeConfig
) -> SpikeCheck:
    """Does a window with these counts spike over the flagged shares of its baseline windows?"""
    if comments < config.min_comments or comments == 0:
        return SpikeCheck(False, 0.0, 0.0)
    share = flagged_comments / comments
    if len(baseline_shares) < config.min_baseline_windows:
        return SpikeCheck(False, share, 0.0)
    # fsum: exactly rounded, so the verdict cannot depend on summation order.
    baseline = math.fsum(baseline_shares) / len(baseline_shares)
    spiking = share >= config.min_flagged_share and share > config.factor * baseline
    return SpikeCheck(spiking, share, baseline)


def toxicity_alert(
    thread_id: str,
    window_start_ms: int,
    window_ms: int,
    comment_ids: Sequence[str],
    flagged_ids: Sequence[str],
    check: SpikeCheck,
    baseline_windows: Sequence[tuple[int, float]],
    config: ToxicitySpikeConfig,
    detected_at_ms: int,
) -> Alert:
    end = window_start_ms + window_ms
    threshold = max(config.factor * check.baseline, config.min_flagged_share)
    evidence = {
        "key": thread_id,
        "comments": len(comment_ids),
        "comment_ids": _capped(sorted(comment_ids)),
        "flagged_comment_ids": _capped(sorted(flagged_ids)),
        "share": check.share,
        "baseline": check.baseline,
        "baseline_windows": [[ms_to_dt(s).isoformat(), share] for s, share in baseline_windows],
    }
    summary = (
        f"Thread {thread_id}: {len(flagged_ids)} of {len(comment_ids)} comments ({check.share:.0%}) flagged "
        f"in the minute from {ms_to_dt(window_start_ms):%Y-%m-%d %H:%M} UTC, over {config.factor:g}x its "
        f"baseline of {check.baseline:.0%} across {len(baseline_windows)} earlier windows."
    )
    return Alert(
        alert_id=alert_id(TOXICITY_SPIKE, thread_id, window_start_ms, end),
        detector=TOXICITY_SPIKE,
        thread_id=thread_id,
        author="",
        window_start=ms_to_dt(window_start_ms),
        window_end=ms_to_dt(end),
        severity=check.share / threshold if threshold > 0 else float(check.share > 0),
        summary=summary,
        evidence=_evidence(evidence),
        detected_at=ms_to_dt(detected_at_ms),
    )


# ---------------------------------------------------------------------------------------- episodes

#: Stored episode: [first hot point ms, last hot point ms, alert_id] (JSON-friendly list).
Episode = list[Any]


def find_episode(episodes: Sequence[Episode], hot_ms: int, span_ms: int) -> int | None:
    """Index of the episode a hot point belongs to (closer than ``span_ms`` to its hot points)."""
    for i, (first, last, _id) in enumerate(episodes):
        if first - span_ms < hot_ms < last + span_ms:
            return i
    return None


def prune_episodes(episodes: Sequence[Episode], older_than_ms: int) -> list[Episode]:
    """Drop episodes whose last hot point is at or before ``older_than_ms``."""
    return [list(e) for e in episodes if e[1] > older_than_ms]
