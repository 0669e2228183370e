"""Window kinds, their lengths in minutes, and minute arithmetic on event times (epoch ms UTC).

Every other module of the engine speaks in these: a window kind names what a bucket is keyed by,
`_H` is one bucket (a minute), `_floor` the minute an event time falls in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from streams.windows.detectors import AUTHOR_FLOOD, PILE_ON, SPAM_WAVE, ms_to_dt

MINUTE_MS: Final = 60_000

THREAD_1M: Final = "thread_1m"
AUTHOR_1M: Final = "author_1m"
CATEGORY_1M: Final = "category_1m"
THREAD_TREND_10M: Final = "thread_trend_10m"
#: Detector-only kinds: bucketed like windows, never emitted as activity_windows rows.
PILE_ON_KIND: Final = PILE_ON
SPAM_WAVE_KIND: Final = SPAM_WAVE

WINDOW_KINDS: Final = (THREAD_1M, AUTHOR_1M, CATEGORY_1M, THREAD_TREND_10M)
ROUTE_KINDS: Final = (*WINDOW_KINDS, PILE_ON_KIND, SPAM_WAVE_KIND)
#: Minutes (1-minute buckets) per window of each kind; 0 = detector-only kind.
KINDS: Final[dict[str, int]] = {
    THREAD_1M: 1,
    AUTHOR_1M: 1,
    CATEGORY_1M: 1,
    THREAD_TREND_10M: 10,
    PILE_ON_KIND: 0,
    SPAM_WAVE_KIND: 0,
}
#: Sliding detectors evaluated when a minute of their route kind closes.
_SLIDING: Final[dict[str, str]] = {AUTHOR_1M: AUTHOR_FLOOD, PILE_ON_KIND: PILE_ON, SPAM_WAVE_KIND: SPAM_WAVE}

_H: Final = MINUTE_MS
#: How far an idle partition's watermark jumps past its newest event: the longest window.
IDLE_FLUSH_MS: Final = max(KINDS.values()) * MINUTE_MS


def _floor(ms: int) -> int:
    return ms - ms % _H


_MINUTE_DT: dict[int, datetime] = {}


def _minute_dt(ms: int) -> datetime:
    """ms_to_dt for window boundaries, memoised: a sweep formats the same minutes many times."""
    dt = _MINUTE_DT.get(ms)
    if dt is None:
        if len(_MINUTE_DT) >= 50_000:
            _MINUTE_DT.clear()
        dt = _MINUTE_DT[ms] = ms_to_dt(ms)
    return dt
