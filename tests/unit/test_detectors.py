"""Event-time detectors: each fires on a crafted scenario, stays quiet on a calm one, fires once per
episode, is deterministic under shuffles/redelivery/restart, and agrees with a naive oracle."""

from __future__ import annotations

import bisect
import copy
import json
import math
import random
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.windows import (
    Alert,
    DetectorConfig,
    DetectorConfigError,
    WindowConfig,
    WindowEngine,
    WindowInput,
    dt_to_ms,
    load_detector_config,
    route,
    route_key,
)
from streams.windows import detectors as detectors_module
from streams.windows.archive import generate_archive
from streams.windows.detectors import (
    AuthorFloodConfig,
    Member,
    PileOnConfig,
    SpamWaveConfig,
    ToxicitySpikeConfig,
    alert_id,
    scan_sliding,
    toxicity_spike_check,
)

MIN = 60_000
T0 = dt_to_ms(datetime(2018, 5, 1, 12, 0, tzinfo=UTC))
NOW = dt_to_ms(datetime(2025, 11, 25, 9, 0, tzinfo=UTC))
ROOT = Path(__file__).resolve().parents[2]


def item(
    cid: str,
    t: int,
    *,
    thread: str = "t1",
    author: str = "a1",
    parent: str | None = None,
    flags: Sequence[str] = (),
    fp: str = "",
) -> WindowInput:
    return WindowInput(
        comment_id=cid,
        thread_id=thread,
        author=author,
        parent_author=parent,
        posted_at_ms=t,
        flags=list(flags),
        toxicity=0.9 if flags else 0.1,
        depth=1 if parent else 0,
        fingerprint=fp,
    )


class Run:
    """Feed items (in the given order) through a WindowEngine; collect alerts."""

    def __init__(self, partitions: int = 1, config: WindowConfig | None = None, store: dict[str, Any] | None = None):
        self.store: dict[str, Any] = {} if store is None else store
        self.engine = WindowEngine(config or WindowConfig(), self.store)
        self.partitions = partitions
        self.now = NOW
        self.alerts: list[Alert] = []

    def feed(self, items: Iterable[WindowInput]) -> list[Alert]:
        new: list[Alert] = []
        for it in items:
            for kind, key in route(it):
                self.now += 1
                p = zlib.crc32(route_key(kind, key).encode()) % self.partitions
                new.extend(self.engine.process(p, kind, key, it, self.now).alerts)
        self.alerts.extend(new)
        return new

    def finish(self) -> list[Alert]:
        self.now += 2 * 86_400_000
        new = [a for p in range(self.partitions) for a in self.engine.tick(p, self.now).alerts]
        self.alerts.extend(new)
        return new


def alerts_for(items: Iterable[WindowInput], **kwargs: Any) -> list[Alert]:
    run = Run(**kwargs)
    run.feed(items)
    run.finish()
    return run.alerts


def by_detector(alerts: Iterable[Alert], detector: str) -> list[Alert]:
    return [a for a in alerts if a.detector == detector]


def every(start: int, n: int, step: int) -> list[int]:
    return [start + i * step for i in range(n)]


# ------------------------------------------------------------------------------------ author_flood


@pytest.mark.parametrize(("n", "fires"), [(9, False), (10, False), (11, True)])
def test_author_flood_fires_only_above_max_comments_within_a_minute(n: int, fires: bool) -> None:
    # n comments 5 s apart: all within 50 s
    items = [item(f"c{i}", t, thread=f"t{i % 2}") for i, t in enumerate(every(T0 + 3_000, n, 5_000))]
    floods = by_detector(alerts_for(items), "author_flood")
    assert len(floods) == int(fires)
    if fires:
        alert = floods[0]
        assert (alert.author, alert.thread_id) == ("a1", "t0")  # the 11th comment tipped it
        assert dt_to_ms(alert.window_start) == items[0].posted_at_ms == T0 + 3_000
        assert dt_to_ms(alert.window_end) == items[10].posted_at_ms + 1
        assert alert.severity == pytest.approx(1.1)
        evidence = json.loads(alert.evidence)
        assert evidence["comment_ids"] == [f"c{i}" for i in range(11)]
        assert evidence["threads"] == ["t0", "t1"]
        assert "11 comments" in alert.summary and "a1" in alert.summary


def test_author_flood_steady_rates_nine_per_minute_is_calm_eleven_is_one_episode() -> None:
    calm = [item(f"c{i}", t) for i, t in enumerate(every(T0, 90, 6_700))]  # 9 per sliding minute, 10 min
    assert not by_detector(alerts_for(calm), "author_flood")
    busy = [item(f"c{i}", t) for i, t in enumerate(every(T0, 110, 5_400))]  # 11-12 per minute, 10 min
    assert len(by_detector(alerts_for(busy), "author_flood")) == 1


def test_author_flood_eleven_comments_over_two_minutes_is_calm() -> None:
    items = [item(f"c{i}", t) for i, t in enumerate(every(T0, 11, 11_000))]
    assert not by_detector(alerts_for(items), "author_flood")


def test_author_flood_separate_bursts_are_separate_episodes() -> None:
    burst1 = [item(f"a{i}", t) for i, t in enumerate(every(T0, 12, 2_000))]
    burst2 = [item(f"b{i}", t) for i, t in enumerate(every(T0 + 50_000, 12, 2_000))]  # overlaps the 1st
    burst3 = [item(f"c{i}", t) for i, t in enumerate(every(T0 + 6 * MIN, 12, 2_000))]  # minutes later
    floods = by_detector(alerts_for(burst1 + burst2 + burst3), "author_flood")
    assert len(floods) == 2
    assert len({a.alert_id for a in floods}) == 2
    assert sorted(dt_to_ms(a.window_start) for a in floods) == [T0, T0 + 6 * MIN]


def test_detector_thresholds_come_from_the_config() -> None:
    config = WindowConfig(detectors=DetectorConfig(author_flood=AuthorFloodConfig(max_comments=3, minutes=2)))
    items = [item(f"c{i}", t) for i, t in enumerate(every(T0, 4, 35_000))]  # 4 within 105 s
    assert len(by_detector(alerts_for(items, config=config), "author_flood")) == 1
    assert not by_detector(alerts_for(items), "author_flood")


# ----------------------------------------------------------------------------------------- pile_on


def replies(
    authors: Sequence[str], times: Sequence[int], flagged: Sequence[bool], *, to: str = "vic"
) -> list[WindowInput]:
    return [
        item(f"r{i}", t, author=a, parent=to, thread="t7", flags=["insult"] if f else [])
        for i, (a, t, f) in enumerate(zip(authors, times, flagged, strict=True))
    ]


def test_pile_on_fires_for_three_authors_with_a_flagged_reply_within_ten_minutes() -> None:
    items = replies(["x", "y", "z"], [T0, T0 + 4 * MIN, T0 + 9 * MIN], [False, True, False])
    piles = by_detector(alerts_for(items), "pile_on")
    assert len(piles) == 1
    alert = piles[0]
    assert (alert.author, alert.thread_id) == ("vic", "t7")
    assert (dt_to_ms(alert.window_start), dt_to_ms(alert.window_end)) == (T0, T0 + 9 * MIN + 1)
    evidence = json.loads(alert.evidence)
    assert evidence["authors"] == ["x", "y", "z"] and evidence["flagged_comment_ids"] == ["r1"]
    assert "3 authors replied to vic" in alert.summary


@pytest.mark.parametrize(
    ("authors", "times", "flagged"),
    [
        (["x", "y", "z"], [T0, T0 + MIN, T0 + 2 * MIN], [False, False, False]),  # nothing flagged
        (["x", "y", "x", "y", "x", "y"], every(T0, 6, 30_000), [True] * 6),  # two authors only
        # the span is 10 min, not < 10 (off the minute grid, so the boundary is the sliding window's)
        (["x", "y", "z"], [T0 + 30_000, T0 + 5 * MIN, T0 + 10 * MIN + 30_000], [True, True, True]),
        (["vic", "vic", "y", "z"], every(T0, 4, 30_000), [True] * 4),  # self-replies never count
    ],
)
def test_pile_on_stays_quiet(authors: list[str], times: list[int], flagged: list[bool]) -> None:
    items = replies(authors, times, flagged)
    assert not by_detector(alerts_for(items), "pile_on")


def test_pile_on_boundary_one_millisecond_inside_ten_minutes_fires() -> None:
    items = replies(["x", "y", "z"], [T0, T0 + 5 * MIN, T0 + 10 * MIN - 1], [True, True, True])
    assert len(by_detector(alerts_for(items), "pile_on")) == 1


# --------------------------------------------------------------------------------------- spam_wave


def test_spam_wave_fires_for_three_authors_posting_the_same_text_within_five_minutes() -> None:
    items = [item(f"s{i}", T0 + i * 2 * MIN, author=a, thread=f"t{i}", fp="same") for i, a in enumerate("xyz")]
    waves = by_detector(alerts_for(items, partitions=3), "spam_wave")
    assert len(waves) == 1
    alert = waves[0]
    assert (alert.author, alert.thread_id) == ("z", "t2")  # the comment that tipped it
    evidence = json.loads(alert.evidence)
    assert (evidence["key"], evidence["authors"], evidence["threads"]) == ("same", ["x", "y", "z"], ["t0", "t1", "t2"])


@pytest.mark.parametrize(
    "posts",
    [
        [("x", 0, "same"), ("y", 1, "same")],  # two authors
        [("x", 0, "same"), ("x", 1, "same"), ("x", 2, "same"), ("y", 3, "same")],  # one author repeating
        [("x", 0, "same"), ("y", 3, "same"), ("z", 6, "same")],  # spread over six minutes
        [("x", 0, "f1"), ("y", 1, "f2"), ("z", 2, "f3")],  # different texts
    ],
)
def test_spam_wave_stays_quiet(posts: list[tuple[str, int, str]]) -> None:
    items = [item(f"s{i}", T0 + m * MIN, author=a, fp=fp) for i, (a, m, fp) in enumerate(posts)]
    assert not by_detector(alerts_for(items), "spam_wave")


# ---------------------------------------------------------------------------------- toxicity_spike


def minute_of(thread: str, minute: int, comments: int, flagged: int, tag: str = "") -> list[WindowInput]:
    return [
        item(
            f"{thread}{tag}-{minute}-{i}",
            T0 + minute * MIN + i * 1_000,
            thread=thread,
            author=f"u{i}",
            flags=["toxicity"] if i < flagged else [],
        )
        for i in range(comments)
    ]


def calm_history(thread: str = "t1", minutes: int = 10, flagged: int = 1) -> list[WindowInput]:
    return [x for m in range(minutes) for x in minute_of(thread, m, 10, flagged)]  # share 0.1


def test_toxicity_spike_fires_when_the_flagged_share_triples_its_baseline() -> None:
    items = calm_history() + minute_of("t1", 10, 10, 4)  # 0.4 > 3 x 0.1
    spikes = by_detector(alerts_for(items), "toxicity_spike")
    assert len(spikes) == 1
    alert = spikes[0]
    assert (alert.thread_id, alert.author) == ("t1", "")
    assert (dt_to_ms(alert.window_start), dt_to_ms(alert.window_end)) == (T0 + 10 * MIN, T0 + 11 * MIN)
    assert alert.severity == pytest.approx(0.4 / 0.3)
    evidence = json.loads(alert.evidence)
    assert evidence["share"] == pytest.approx(0.4) and evidence["baseline"] == pytest.approx(0.1)
    assert len(evidence["baseline_windows"]) == 10 and len(evidence["flagged_comment_ids"]) == 4


@pytest.mark.parametrize(
    ("history", "last_minute"),
    [
        (calm_history(), minute_of("t1", 10, 10, 3)),  # 0.3 is not MORE than 3 x 0.1
        (calm_history(), minute_of("t1", 10, 4, 3)),  # too few comments (min_comments = 5)
        ([], minute_of("t1", 10, 8, 6)),  # a brand-new thread has no baseline
        (calm_history(flagged=0), minute_of("t1", 10, 10, 1)),  # share 0.1 < min_flagged_share
        (calm_history(flagged=3), minute_of("t1", 10, 10, 8)),  # 0.8 < 3 x 0.3
    ],
)
def test_toxicity_spike_stays_quiet(history: list[WindowInput], last_minute: list[WindowInput]) -> None:
    assert not by_detector(alerts_for(history + last_minute), "toxicity_spike")


def test_toxicity_spike_over_a_clean_baseline_and_consecutive_spikes_are_one_episode() -> None:
    items = calm_history(flagged=0) + minute_of("t1", 10, 5, 1)  # 0.2 over a baseline of 0
    assert len(by_detector(alerts_for(items), "toxicity_spike")) == 1
    items = calm_history() + minute_of("t1", 10, 10, 5) + minute_of("t1", 11, 10, 6)
    assert len(by_detector(alerts_for(items), "toxicity_spike")) == 1
    items = calm_history() + minute_of("t1", 10, 10, 5) + [x for m in range(11, 25) for x in minute_of("t1", m, 10, 1)]
    items += minute_of("t1", 25, 10, 6)  # 15 minutes later: a new episode
    assert len(by_detector(alerts_for(items), "toxicity_spike")) == 2


def test_toxicity_spike_in_a_late_correction_uses_the_full_baseline() -> None:
    """Late flagged comments for an already-emitted minute, ~an hour later (still within retention)."""
    history = [x for m in range(5) for x in minute_of("t1", m, 10, 1)]  # share 0.1
    history += [x for m in range(5, 10) for x in minute_of("t1", m, 10, 2)]  # share 0.2 -> baseline 0.15
    run = Run()
    run.feed(history + minute_of("t1", 10, 6, 0))
    run.feed([item("push", T0 + 73 * MIN, thread="other", author="other")])  # W = 13:08 < 12:11 + 1 h
    assert not by_detector(run.alerts, "toxicity_spike")
    late = [item(f"late{i}", T0 + 10 * MIN + 30_000 + i, author=f"v{i}", flags=["toxicity"]) for i in range(6)]
    new = run.feed(late)  # 5 of 11 flagged: 0.45 > 3 x 0.15 (minutes 7-9 alone would need > 3 x 0.2)
    assert [(a.detector, dt_to_ms(a.window_start)) for a in new] == [("toxicity_spike", T0 + 10 * MIN)]
    assert json.loads(new[0].evidence)["baseline"] == pytest.approx(0.15)


def test_toxicity_spike_check_rules() -> None:
    cfg = ToxicitySpikeConfig()
    assert toxicity_spike_check(10, 4, [0.1] * 10, cfg).spiking
    assert not toxicity_spike_check(10, 3, [0.1] * 10, cfg).spiking  # 0.3 is not > 0.3
    assert not toxicity_spike_check(10, 1, [0.0] * 10, cfg).spiking  # > 0 x baseline, but below min share
    assert toxicity_spike_check(10, 2, [0.0], cfg).spiking
    assert not toxicity_spike_check(4, 4, [0.0] * 10, cfg).spiking  # too few comments
    assert not toxicity_spike_check(10, 9, [], cfg).spiking  # no baseline
    check = toxicity_spike_check(10, 5, [0.1, 0.2, 0.3], cfg)
    assert check.share == 0.5 and check.baseline == pytest.approx(0.2)


def test_scan_sliding_window_is_open_at_its_start_and_closed_at_its_end() -> None:
    members = [Member(t, f"c{t}", f"a{t}", False, "t") for t in (0, 1000, 2000, 2000)]
    members = sorted({m.comment_id: m for m in members}.values())
    # 1000 ms apart: never two in one window
    assert scan_sliding(members, 1000, 0, 10_000, lambda comments, _a, _f: comments >= 2) == []
    three = [Member(t, f"c{i}", "a", False, "t") for i, t in enumerate((0, 999, 1000, 1999))]
    hits = scan_sliding(three, 1000, 0, 10_000, lambda comments, _a, _f: comments >= 2)
    # (t - 1000, t]: at 999 -> {0, 999}; at 1000 -> {999, 1000} (0 is out); at 1999 -> {1000, 1999}
    assert [(h.t, [m.posted_at_ms for m in h.members]) for h in hits] == [
        (999, [0, 999]),
        (1000, [999, 1000]),
        (1999, [1000, 1999]),
    ]
    assert [h.t for h in scan_sliding(three, 1000, 1000, 1999, lambda c, _a, _f: c >= 2)] == [1000]


# -------------------------------------------------------------------------- episodes, determinism


def incident_mix() -> list[WindowInput]:
    flood = [item(f"f{i}", t, author="flooder", thread="t3") for i, t in enumerate(every(T0 + 2 * MIN, 15, 3_000))]
    pile = replies(["x", "y", "z", "w"], every(T0 + 5 * MIN, 4, 40_000), [True, False, True, False])
    spam = [item(f"s{i}", T0 + 7 * MIN + i * 30_000, author=a, fp="buy-now") for i, a in enumerate("pqrs")]
    tox = calm_history("t9") + minute_of("t9", 10, 10, 6)
    return flood + pile + spam + tox


def signature(alerts: Iterable[Alert]) -> list[tuple[Any, ...]]:
    return sorted(
        (a.alert_id, a.detector, a.thread_id, a.author, a.window_start, a.window_end, a.severity, a.summary, a.evidence)
        for a in alerts
    )


def shuffled_within(items: list[WindowInput], lateness_ms: int, seed: int) -> list[WindowInput]:
    rng = random.Random(seed)
    return sorted(items, key=lambda x: x.posted_at_ms + rng.random() * lateness_ms)


def test_alerts_are_identical_under_any_arrival_order_within_lateness_and_any_partitioning() -> None:
    items = incident_mix()
    reference = signature(alerts_for(sorted(items, key=lambda x: x.posted_at_ms)))
    assert {d for _id, d, *_ in reference} == {"author_flood", "pile_on", "spam_wave", "toxicity_spike"}
    assert len(reference) == 4
    for seed, partitions in [(1, 1), (2, 2), (3, 5)]:
        order = shuffled_within(items, 5 * MIN - 1, seed)
        assert signature(alerts_for(order, partitions=partitions)) == reference


def test_redelivery_and_restart_never_repeat_an_alert() -> None:
    items = sorted(incident_mix(), key=lambda x: x.posted_at_ms)
    run = Run(partitions=2)
    for it in items:
        run.feed([it, it])
    run.finish()
    assert len(run.alerts) == len({a.alert_id for a in run.alerts}) == 4

    half = len(items) // 2
    first = Run(partitions=2)
    first.feed(items[:half])
    restarted = Run(partitions=2, store=copy.deepcopy(first.store))
    restarted.now = first.now
    assert not restarted.feed(items[half - 30 : half])  # re-processing applied items: nothing new
    restarted.feed(items[half:])
    restarted.finish()
    combined = first.alerts + restarted.alerts
    assert signature(combined) == signature(alerts_for(items, partitions=2))


def test_a_late_item_within_retention_can_still_complete_a_past_episode() -> None:
    items = [item(f"c{i}", t) for i, t in enumerate(every(T0, 10, 5_000))]  # 10: calm
    run = Run()
    run.feed(items)
    run.feed([item("push", T0 + 30 * MIN, thread="other", author="other")])  # W = 12:25: all closed
    assert not by_detector(run.alerts, "author_flood")
    new = run.feed([item("late", T0 + 2_500)])
    assert [(a.detector, dt_to_ms(a.window_start), dt_to_ms(a.window_end)) for a in new] == [
        ("author_flood", T0, T0 + 45_000 + 1)
    ]
    assert run.now - 3 < dt_to_ms(new[0].detected_at) <= run.now  # detected when it arrived (wall clock)
    run.feed([item("push2", T0 + 3 * 60 * MIN, thread="other", author="other")])
    assert not run.feed([item("too-late", T0 + 3_000)])  # beyond retention: no alert, a LateEvent


def test_detector_state_is_bounded_and_json_serialisable() -> None:
    run = Run(partitions=2)
    run.feed(sorted(incident_mix(), key=lambda x: x.posted_at_ms))
    json.dumps(run.store)
    assert any(k.startswith("d:") for k in run.store)
    run.finish()
    assert sorted(run.store) == ["p:0", "p:1"]


def test_alert_id_is_deterministic_and_window_specific() -> None:
    assert alert_id("pile_on", "vic", 1, 2) == alert_id("pile_on", "vic", 1, 2)
    assert (
        len({alert_id("pile_on", "vic", 1, 2), alert_id("pile_on", "vic", 1, 3), alert_id("spam_wave", "vic", 1, 2)})
        == 3
    )


# --------------------------------------------------------------------------------- naive oracle


def naive_alerts(items: Iterable[WindowInput], cfg: DetectorConfig) -> set[tuple[str, str, int, int]]:
    """(detector, key, window_start, window_end) by brute force over the full item list."""
    unique = {it.comment_id: it for it in items}.values()
    out: set[tuple[str, str, int, int]] = set()
    sliding: list[tuple[str, Callable[[WindowInput], str | None], int, Callable[[list[WindowInput]], bool]]] = [
        (
            "author_flood",
            lambda x: x.author,
            cfg.author_flood.window_ms,
            lambda w: len(w) > cfg.author_flood.max_comments,
        ),
        (
            "pile_on",
            lambda x: x.parent_author if x.parent_author and x.parent_author != x.author else None,
            cfg.pile_on.window_ms,
            lambda w: (
                len({x.author for x in w}) >= cfg.pile_on.min_authors
                and sum(1 for x in w if x.flags) >= cfg.pile_on.min_flagged
            ),
        ),
        (
            "spam_wave",
            lambda x: x.fingerprint or None,
            cfg.spam_wave.window_ms,
            lambda w: len({x.author for x in w}) >= cfg.spam_wave.min_authors,
        ),
    ]
    for detector, key_of, window_ms, fires in sliding:
        groups: dict[str, list[WindowInput]] = defaultdict(list)
        for it in unique:
            key = key_of(it)
            if key:
                groups[key].append(it)
        for key, group in groups.items():
            group.sort(key=lambda x: (x.posted_at_ms, x.comment_id))
            times = [x.posted_at_ms for x in group]
            last_hot: int | None = None
            for t in sorted(set(times)):
                window = group[bisect.bisect_right(times, t - window_ms) : bisect.bisect_right(times, t)]
                if fires(window):
                    if last_hot is None or t - last_hot >= window_ms:
                        out.add((detector, key, window[0].posted_at_ms, t + 1))
                    last_hot = t
    tox = cfg.toxicity_spike
    threads: dict[str, dict[int, list[WindowInput]]] = defaultdict(lambda: defaultdict(list))
    for it in unique:
        threads[it.thread_id][it.posted_at_ms // MIN * MIN].append(it)
    for thread, minutes in threads.items():
        starts = sorted(minutes)
        last_spike: int | None = None
        for i, s in enumerate(starts):
            comments = len(minutes[s])
            share = sum(1 for x in minutes[s] if x.flags) / comments
            earlier = [m for m in starts[:i] if m >= s - tox.lookback_ms][-tox.baseline_windows :]
            if comments < tox.min_comments or len(earlier) < tox.min_baseline_windows:
                continue
            shares = [sum(1 for x in minutes[m] if x.flags) / len(minutes[m]) for m in earlier]
            baseline = math.fsum(shares) / len(shares)
            if share >= tox.min_flagged_share and share > tox.factor * baseline:
                if last_spike is None or s - last_spike >= tox.span_ms:
                    out.add(("toxicity_spike", thread, s, s + MIN))
                last_spike = s
    return out


def engine_alerts(alerts: Iterable[Alert]) -> set[tuple[str, str, int, int]]:
    got = [
        (a.detector, json.loads(a.evidence)["key"], dt_to_ms(a.window_start), dt_to_ms(a.window_end)) for a in alerts
    ]
    assert len(got) == len(set(got)), "an episode alerted twice"
    return set(got)


def test_generated_archive_alerts_match_the_naive_oracle() -> None:
    items = generate_archive(
        8_000,
        seed=99,
        start=datetime(2018, 3, 1, tzinfo=UTC),
        duration=timedelta(hours=8),
        threads=40,
        authors=800,
        shuffle_within=timedelta(minutes=4),
    )
    alerts = alerts_for(items, partitions=3)
    expected = naive_alerts(items, DetectorConfig())
    assert engine_alerts(alerts) == expected
    assert {d for d, *_ in expected} == {"author_flood", "pile_on", "spam_wave", "toxicity_spike"}


@st.composite
def bursts(draw: st.DrawFn) -> list[WindowInput]:
    n = draw(st.integers(1, 60))
    people = ["a", "b", "c", "d"]
    return [
        item(
            f"c{i}",
            # a coarse grid half the time, so items land exactly M apart or at the same instant
            T0 + draw(st.integers(0, 25 * MIN) | st.integers(0, 50).map(lambda k: k * 30_000)),
            thread=draw(st.sampled_from(["t1", "t2"])),
            author=draw(st.sampled_from(people)),
            parent=draw(st.none() | st.sampled_from(people)),
            flags=draw(st.sampled_from([[], [], ["insult"]])),
            fp=draw(st.sampled_from(["", "f1", "f2"])),
        )
        for i in range(n)
    ]


TIGHT = DetectorConfig(
    author_flood=AuthorFloodConfig(max_comments=3, minutes=2),
    pile_on=PileOnConfig(min_authors=2, minutes=3, min_flagged=1),
    spam_wave=SpamWaveConfig(min_authors=2, minutes=4),
)


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=bursts(), seed=st.integers(0, 1000), partitions=st.integers(1, 3))
def test_property_alerts_match_the_naive_oracle_under_shuffles(
    items: list[WindowInput], seed: int, partitions: int
) -> None:
    config = WindowConfig(detectors=TIGHT)
    order = shuffled_within(items, config.allowed_lateness_ms, seed)
    assert engine_alerts(alerts_for(order, partitions=partitions, config=config)) == naive_alerts(items, TIGHT)


# ------------------------------------------------------------------------------------------ config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "moderation.toml"
    path.write_text(text)
    return path


def test_config_defaults_when_the_packaged_file_is_absent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(detectors_module, "DEFAULT_CONFIG_PATH", tmp_path / "missing.toml")
    assert load_detector_config() == DetectorConfig()


def test_packaged_moderation_file_loads() -> None:
    path = ROOT / "streams/enrich/data/moderation.toml"
    if not path.exists():
        pytest.skip("moderation.toml not created yet")
    config = load_detector_config(path)
    assert config == load_detector_config()
    assert config.author_flood.max_comments >= 1


def test_config_reads_values_and_fills_in_missing_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[thresholds]\ntoxicity = 0.5\n[detectors]\n"
        "author_flood = { max_comments = 20 }\n"
        "toxicity_spike = { factor = 2.5, min_flagged_share = 0.1 }\n",
    )
    config = load_detector_config(path)
    assert (config.author_flood.max_comments, config.author_flood.minutes) == (20, 1.0)
    assert (config.toxicity_spike.factor, config.toxicity_spike.baseline_windows) == (2.5, 10)
    assert config.pile_on == PileOnConfig() and config.spam_wave == SpamWaveConfig()
    assert load_detector_config(write(tmp_path, "schema_version = 1\n")) == DetectorConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[detectors]\nauthor_flod = { max_comments = 3 }\n", "unknown detector(s) author_flod"),
        ("[detectors]\nauthor_flood = { max_coments = 3 }\n", "unknown field `max_coments`"),
        ("[detectors]\nauthor_flood = { max_comments = 2.5 }\n", "Expected `int`, got `float`"),
        ("[detectors]\npile_on = { min_authors = true }\n", "got `bool`"),
        ("[detectors]\nspam_wave = { minutes = 0 }\n", "Expected `float` > 0"),
        ("[detectors]\ntoxicity_spike = { min_flagged_share = 1.5 }\n", "<= 1"),
        ("[detectors]\ntoxicity_spike = { baseline_windows = 2, min_baseline_windows = 3 }\n", "exceeds"),
        ("[detectors]\npile_on = 3\n", "must be a table"),
        ("detectors = 3\n", "must be a table"),
        ("[detectors\n", "invalid TOML"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DetectorConfigError) as exc:
        load_detector_config(path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)


def test_config_explicit_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DetectorConfigError, match="not found"):
        load_detector_config(tmp_path / "nope.toml")
