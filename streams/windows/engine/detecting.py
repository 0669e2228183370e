"""The engine's side of the detectors: running them on closed minutes and keeping their episodes.

The detectors themselves (`streams.windows.detectors`) are pure; this mixin reads their input from
the engine's buckets and keeps each key's episodes (``d:`` keys) in the engine's store, so that a
hot point joining an episode does not raise a second alert. `WindowEngine` inherits it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, MutableMapping
from datetime import datetime
from typing import Any

from streams.windows.detectors import (
    PILE_ON,
    TOXICITY_SPIKE,
    Member,
    Predicate,
    dt_to_ms,
    find_episode,
    prune_episodes,
    scan_sliding,
    sliding_alert,
    toxicity_alert,
    toxicity_spike_check,
)
from streams.windows.engine.kinds import _H, _SLIDING, THREAD_1M, _floor
from streams.windows.engine.records import EngineOutput, WindowConfig
from streams.windows.engine.store import _Buckets, _Series


class _Detecting:
    """Detector steps of `WindowEngine` (which sets these attributes in its ``__init__``)."""

    config: WindowConfig
    _store: MutableMapping[str, Any]
    _retention: int
    _sliding_ms: dict[str, int]
    _sliding_pred: dict[str, tuple[Predicate, int]]
    _det_span: dict[str, int]

    def _prune_detectors(self, partition: int, kind: str, key: str, closed: int) -> None:
        detector = TOXICITY_SPIKE if kind == THREAD_1M else _SLIDING.get(kind)
        if detector is None:
            return
        dkey = f"d:{partition}:{detector}:{key}"
        state: dict[str, list[Any]] | None = self._store.get(dkey)
        if state is None:
            return
        # Accepted items are newer than W - H - retention; an episode further back than its span
        # can no longer be joined by any future hot point.
        kept = prune_episodes(state["ep"], closed - _H - self._retention - self._det_span[detector])
        if not kept:
            del self._store[dkey]
        elif len(kept) != len(state["ep"]):
            self._store[dkey] = {"ep": kept}

    def _episodes(self, partition: int, detector: str, key: str) -> list[list[Any]]:
        """A fresh copy of a key's episodes (callers modify it, then write it back whole)."""
        state: dict[str, Any] | None = self._store.get(f"d:{partition}:{detector}:{key}")
        return [] if state is None else [list(e) for e in state["ep"]]

    def _detect_sliding(
        self,
        partition: int,
        detector: str,
        kind: str,
        key: str,
        lo: int,
        hi: int,
        now_ms: int,
        out: EngineOutput,
        buckets: _Buckets,
        present: list[int] | None = None,
    ) -> None:
        """Hot points in [lo, hi) of one key; a hot point not joining an episode raises an alert.

        ``present``: the minutes (ascending) the key has buckets in, when the caller knows them.
        """
        window_ms = self._sliding_ms[detector]
        predicate, min_items = self._sliding_pred[detector]
        first = lo - window_ms
        series = buckets.series(kind, key)
        minutes: Iterable[int]
        if present is None:
            minutes = range(_floor(first), hi, _H)
        else:
            minutes = present[bisect_left(present, _floor(first)) : bisect_left(present, hi)]
        found = [bucket for bucket in map(series.get, minutes) if bucket]
        if sum(map(len, found)) < min_items:
            return  # cheap: most keys (e.g. unique fingerprints) never get close
        items: dict[str, Member] = {}
        for bucket in found:
            for cid, (author, flags, _tox, _depth, t, thread) in bucket.items():
                if first < t < hi and not (detector == PILE_ON and author == key):
                    items[cid] = Member(t, cid, author, bool(flags), thread)
        if len(items) < min_items:
            return
        hits = scan_sliding(sorted(items.values()), window_ms, lo, hi, predicate)
        if not hits:
            return
        episodes = self._episodes(partition, detector, key)
        span = self._det_span[detector]
        changed = False
        for hit in hits:
            i = find_episode(episodes, hit.t, span)
            if i is None:
                alert = sliding_alert(detector, key, hit, self.config.detectors, now_ms)
                episodes.append([hit.t, hit.t, alert.alert_id])
                out.alerts.append(alert)
                changed = True
            else:
                first_ms, last_ms, aid = episodes[i]
                extended = [min(first_ms, hit.t), max(last_ms, hit.t), aid]
                if extended != episodes[i]:
                    episodes[i] = extended
                    changed = True
        if changed:
            episodes.sort()
            self._store[f"d:{partition}:{detector}:{key}"] = {"ep": episodes}

    def _detect_toxicity(
        self,
        partition: int,
        thread: str,
        start: int,
        values: list[Any],
        emitted_at: datetime,
        out: EngineOutput,
        series: _Series,
    ) -> None:
        cfg = self.config.detectors.toxicity_spike
        comments, flagged_comments = values[0], values[2]
        if comments < cfg.min_comments or flagged_comments / comments < cfg.min_flagged_share:
            return  # cheap pre-check before reading up to an hour of baseline buckets
        baseline: list[tuple[int, float]] = []
        b = start - _H
        while b >= start - cfg.lookback_ms and len(baseline) < cfg.baseline_windows:
            m = series.get(b)
            if m:
                baseline.append((b, sum(1 for e in m.values() if e[1]) / len(m)))
            b -= _H
        check = toxicity_spike_check(comments, flagged_comments, [s for _b, s in baseline], cfg)
        if not check.spiking:
            return
        episodes = self._episodes(partition, TOXICITY_SPIKE, thread)
        i = find_episode(episodes, start, self._det_span[TOXICITY_SPIKE])
        if i is not None:
            first_ms, last_ms, aid = episodes[i]
            extended = [min(first_ms, start), max(last_ms, start), aid]
            if extended == episodes[i]:
                return
            episodes[i] = extended
        else:
            members = series.get(start) or {}
            alert = toxicity_alert(
                thread,
                start,
                _H,
                list(members),
                [cid for cid, e in members.items() if e[1]],
                check,
                baseline,
                cfg,
                dt_to_ms(emitted_at),
            )
            episodes.append([start, start, alert.alert_id])
            episodes.sort()
            out.alerts.append(alert)
        self._store[f"d:{partition}:{TOXICITY_SPIKE}:{thread}"] = {"ep": episodes}
