"""A small, realistic, deterministic data set for the ClickHouse tables, shared by integration tests.

Four threads from 2018-03-21 (the sample feed's era), ten authors, 29 visible comments in four
languages, with moderation flags, scores and reasons, plus rows that only FINAL hides:
an edited comment (c8: flagged in version 1, clean in version 2), a deleted one (r8), and a
replayed duplicate (c2). Window aggregates (all four kinds), detector alerts, dead letters and late
events are derived from the same comments, some with a superseded version or a replayed row.
Moderator reviews (`REVIEWS`) judge some flags, with a changed verdict and a replayed review; the
comments carry one of two model versions (`model_version_of`).

Tests compute their expectations from `visible_comments()` in Python, independently of SQL.
Usage: `summary = seed_all(client)`; `SEED_RANGE` covers every timestamp seeded.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from streams.clickhouse.rows import COMMENT_COLUMNS, DEAD_LETTER_COLUMNS
from streams.reviews import REVIEW_COLUMNS
from streams.windows.detectors import Alert
from streams.windows.engine import LateEvent, WindowRow

BASE = datetime(2018, 3, 21, 9, 0, tzinfo=UTC)
#: A time range that contains every seeded row (for $__timeFilter and report windows).
SEED_RANGE = (BASE - timedelta(hours=1), BASE + timedelta(hours=3))
CATEGORIES = ("toxicity", "profanity", "identity_attack", "threat", "spam", "username")
TOXIC = 0.7  # the threshold the seed's flags were "computed" with

THREADS = {
    "t-putin-call": "Trump Calls Putin To Congratulate Him On Re-election Victory",
    "t-fed-rates": "Fed Raises Interest Rates For The First Time In 2018",
    "t-world-cup": "World Cup Draw: Group Stage Preview",
    "t-recipes": "Spring Recipes: Asparagus Season",
}

_REASONS = {
    "toxicity": ["model score above 0.70"],
    "profanity": ["lexicon match: damn", "lexicon match: idiota"],
    "identity_attack": ["phrase: 'your kind'"],
    "threat": ["phrase: 'see what happens'"],
    "spam": ["link to a known spam domain", "repeated promotional text"],
    "username": ["username looks auto-generated (leetspeak, digits)"],
}


@dataclass(frozen=True)
class SeedComment:
    comment_id: str
    thread_id: str
    parent_id: str | None
    author: str
    minute: float  # minutes after BASE
    language: str
    toxicity: float
    flags: tuple[str, ...]
    body: str
    version: int = 1
    is_deleted: bool = False
    edited: bool = False
    depth: int = 0
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def posted_at(self) -> datetime:
        return BASE + timedelta(minutes=self.minute)

    @property
    def url(self) -> str:
        return f"https://news.example.com/{self.thread_id}#comment-{self.comment_id}"


def _c(
    cid: str,
    thread: str,
    parent: str | None,
    author: str,
    minute: float,
    lang: str,
    tox: float,
    flags: Iterable[str] = (),
    body: str = "",
) -> SeedComment:
    return SeedComment(cid, thread, parent, author, minute, lang, tox, tuple(flags), body or f"Comment {cid}.")


_P, _F, _W, _R = "t-putin-call", "t-fed-rates", "t-world-cup", "t-recipes"

# Latest visible version of every comment (c8's edit and r8's deletion are added in `_all_versions`).
_COMMENTS = [
    _c("c1", _P, None, "alice", 0, "en", 0.05, body="Interesting that the call happened at all."),
    _c("c2", _P, "c1", "bob", 2, "en", 0.82, ["toxicity"], "Only an idiot would believe this was friendly."),
    _c("c3", _P, "c2", "carol", 3, "en", 0.88, ["toxicity", "profanity"], "You're the idiot here, damn troll."),
    _c("c4", _P, "c2", "dave", 5, "en", 0.10, body="Let's keep it civil, please."),
    _c("c5", _P, "c3", "bob", 6, "en", 0.91, ["toxicity", "threat"], "Say that again and see what happens."),
    _c("c6", _P, "c1", "erin", 8, "en", 0.02, body="Diplomacy is usually boring, which is good."),
    _c("c7", _P, "c5", "frank", 9, "en", 0.76, ["toxicity", "identity_attack"], "People like your kind ruin it."),
    _c("c8", _P, "c6", "alice", 12, "en", 0.03, body="Agreed, boring is fine."),
    _c("c9", _P, None, "carol", 14, "en", 0.15, body="What did the Kremlin actually say?"),
    _c("c10", _P, "c9", "dave", 15, "en", 0.05, body="Peskov said to 'sleep on it'."),
    _c("c11", _P, None, "spammer99", 16, "en", 0.20, ["spam"], "Cheap watches at http://spam.example/w"),
    _c("c12", _P, "c9", "bob", 20, "en", 0.79, ["toxicity"], "Nobody cares, clown."),
    _c("c13", _P, "c12", "alice", 22, "en", 0.71, ["toxicity"], "The only clown here is you."),
    _c("c14", _P, "c11", "erin", 25, "en", 0.04, body="Reported as spam."),
    _c("r1", _F, None, "gunther", 1, "de", 0.03, body="Die Zinsen steigen endlich."),
    _c("r2", _F, "r1", "alice", 4, "en", 0.02, body="About time, savers have waited years."),
    _c("r3", _F, "r2", "hector", 7, "en", 0.05, body="Mortgages will hurt though."),
    _c("r4", _F, "r3", "gunther", 11, "de", 0.04, body="Das war zu erwarten."),
    _c("r5", _F, None, "dave", 13, "en", 0.08, body="Three more hikes expected this year."),
    _c("r6", _F, "r5", "frank", 18, "en", 0.60, body="The Fed is clueless as usual."),
    _c("r7", _F, "r5", "xX_h4x0r_Xx", 19, "en", 0.10, ["username"], "Great analysis."),
    _c("f1", _W, None, "hector", 2, "es", 0.05, body="¡Qué sorteo tan interesante!"),
    _c("f2", _W, "f1", "marie", 3, "fr", 0.04, body="Le groupe de la France est facile."),
    _c("f3", _W, "f1", "gunther", 6, "de", 0.06, body="Deutschland hat eine schwere Gruppe."),
    _c("f4", _W, "f2", "spammer99", 8, "en", 0.30, ["spam"], "Free tickets!!! http://spam.example/t"),
    _c("f5", _W, "f3", "spammer99", 9, "en", 0.30, ["spam"], "Free tickets!!! http://spam.example/t"),
    _c("f6", _W, "f4", "hector", 21, "es", 0.85, ["toxicity", "profanity"], "¡Basta de spam, idiota!"),
    _c("f7", _W, "f2", "marie", 40, "fr", 0.02, body="Je me réponds: on verra en juin."),
    _c("p1", _R, None, "carol", 75, "en", 0.01, body="Asparagus season is here."),
]


def _with_depth_and_scores(comments: list[SeedComment]) -> list[SeedComment]:
    by_id = {c.comment_id: c for c in comments}

    def depth(c: SeedComment) -> int:
        return 0 if c.parent_id is None else depth(by_id[c.parent_id]) + 1

    out = []
    for c in comments:
        scores = {cat: (0.9 if cat in c.flags else 0.05) for cat in CATEGORIES}
        scores["toxicity"] = c.toxicity
        out.append(replace(c, depth=depth(c), scores=scores))
    return out


def visible_comments() -> list[SeedComment]:
    """The comments a FINAL read returns: latest version of each, deleted ones left out."""
    return _with_depth_and_scores(list(_COMMENTS))


def _version_batches() -> list[list[SeedComment]]:
    """Every row inserted, as separate inserts: first versions, then updates, then a replay.

    Separate inserts matter: ClickHouse applies the Replacing logic within one inserted block
    (optimize_on_insert), so only rows in different parts show whether a query reads with FINAL.
    """
    visible = {c.comment_id: c for c in visible_comments()}
    c8 = visible["c8"]
    c8_v1 = replace(
        c8,
        body="Agreed, boring is damn fine.",
        toxicity=0.65,
        flags=("profanity",),
        scores={**c8.scores, "profanity": 0.9, "toxicity": 0.65},
    )
    r8 = _with_depth_and_scores([*_COMMENTS, _c("r8", _F, "r6", "erin", 30, "en", 0.05, body="Clueless? Hardly.")])[-1]
    first = [c for c in visible.values() if c.comment_id != "c8"] + [c8_v1, r8]
    updates = [replace(c8, version=2, edited=True), replace(r8, version=2, is_deleted=True)]
    replay = [visible["c2"]]  # an identical row, as a replayed topic produces
    return [first, updates, replay]


# Columns added later (unknown_fields, migration 0004) take their defaults in the seed.
_COMMENT_COLUMNS = [c for c in COMMENT_COLUMNS if c != "unknown_fields"]


def _comment_rows(rows: list[SeedComment]) -> list[list[object]]:
    every = {c.comment_id: c for batch in _version_batches() for c in batch}

    def root(cid: str) -> str:
        c = every[cid]
        return cid if c.parent_id is None else root(c.parent_id)

    first_seen: dict[str, datetime] = {}
    for c in sorted(visible_comments(), key=lambda c: c.posted_at):
        first_seen.setdefault(c.author, c.posted_at)
    out: list[list[object]] = []
    for c in rows:
        parent = every.get(c.parent_id) if c.parent_id else None
        earlier = [v for v in visible_comments() if v.author == c.author and v.posted_at <= c.posted_at]
        event_type = "comment.deleted" if c.is_deleted else ("comment.edited" if c.edited else "comment.created")
        out.append(
            [
                c.thread_id,
                c.comment_id,
                f"{c.comment_id}-v{c.version}",
                event_type,
                "seed",
                THREADS[c.thread_id],
                c.parent_id,
                parent.author if parent else None,
                c.author,
                c.posted_at,
                c.posted_at + timedelta(minutes=2) if c.edited else None,
                c.body,
                c.url,
                root(c.comment_id),
                c.depth,
                0,
                len(c.body),
                len(c.body.split()),
                c.body.count("http"),
                0,
                sum(ch.isupper() for ch in c.body) / max(len(c.body), 1),
                0,
                f"fp-{c.comment_id}",
                c.language,
                list(c.flags),
                c.scores,
                {cat: _REASONS[cat] for cat in c.flags},
                c.toxicity,
                len(earlier),
                sum(1 for v in earlier if v.flags),
                len({v.thread_id for v in earlier}),
                first_seen.get(c.author, c.posted_at),
                c.posted_at + timedelta(seconds=1),
                c.version,
                int(c.is_deleted),
                "",  # source_state: seed events are v1
                "",  # source_kind
                model_version_of(c.thread_id),
            ]
        )
    return out


def model_version_of(thread_id: str) -> str:
    """The World Cup thread was scored by a newer model than the rest."""
    return "seed-model-v2" if thread_id == _W else "seed-model-v1"


@dataclass(frozen=True)
class SeedReview:
    comment_id: str
    category: str
    verdict: str
    reviewer: str
    minute: float  # reviewed_at, minutes after BASE

    @property
    def thread_id(self) -> str:
        return next(c.thread_id for c in _COMMENTS if c.comment_id == self.comment_id)

    def row(self) -> list[object]:
        return [
            f"rv-{self.comment_id}-{self.category}-{self.reviewer}",
            self.thread_id,
            self.comment_id,
            self.category,
            self.verdict,
            self.reviewer,
            "",
            model_version_of(self.thread_id),
            BASE + timedelta(minutes=self.minute),
        ]


# Verdicts agree with the flags (confirm/reject: flagged in the category; missed: not flagged).
REVIEWS = [
    SeedReview("c2", "toxicity", "confirm", "mod-a", 30),
    SeedReview("c3", "toxicity", "confirm", "mod-a", 31),
    SeedReview("c3", "profanity", "reject", "mod-a", 31),
    SeedReview("c12", "toxicity", "reject", "mod-a", 32),
    SeedReview("c13", "toxicity", "reject", "mod-a", 33),  # changed to confirm below
    SeedReview("r6", "toxicity", "missed", "mod-a", 34),
    SeedReview("c11", "spam", "confirm", "mod-b", 35),
    SeedReview("f4", "spam", "confirm", "mod-b", 36),
    SeedReview("f6", "toxicity", "confirm", "mod-b", 37),
]
#: Inserted after REVIEWS: a changed verdict (replaces c13's) and a replayed identical review (c2).
LATER_REVIEWS = [
    SeedReview("c13", "toxicity", "confirm", "mod-a", 50),
    SeedReview("c2", "toxicity", "confirm", "mod-a", 30),
]


def latest_reviews() -> list[SeedReview]:
    """The reviews a FINAL read returns: each reviewer's latest verdict per comment and category."""
    latest: dict[tuple[str, str, str], SeedReview] = {}
    for r in [*REVIEWS, *LATER_REVIEWS]:
        key = (r.comment_id, r.category, r.reviewer)
        if key not in latest or r.minute >= latest[key].minute:
            latest[key] = r
    return list(latest.values())


def _windows() -> list[list[object]]:
    """thread_1m, author_1m, category_1m and thread_trend_10m windows of the visible comments."""
    rows: list[list[object]] = []
    comments = visible_comments()

    def group(kind: str, key_of: str, minutes: int) -> dict[tuple[str, datetime], list[SeedComment]]:
        groups: dict[tuple[str, datetime], list[SeedComment]] = defaultdict(list)
        for c in comments:
            start = BASE + timedelta(minutes=(int(c.minute) // minutes) * minutes)
            keys = list(c.flags) if key_of == "category" else [getattr(c, key_of)]
            for key in keys:
                groups[(key, start)].append(c)
        return groups

    def row(
        kind: str,
        key: str,
        start: datetime,
        minutes: int,
        members: list[SeedComment],
        version: int,
        velocity: float = 0.0,
        acceleration: float = 0.0,
    ) -> list[object]:
        flagged: dict[str, int] = defaultdict(int)
        for c in members:
            for cat in c.flags:
                flagged[cat] += 1
        return [
            kind,
            key,
            start,
            start + timedelta(minutes=minutes),
            len(members),
            len({c.author for c in members}),
            sum(1 for c in members if c.flags),
            dict(flagged),
            sum(c.toxicity for c in members) / len(members),
            max(c.depth for c in members),
            velocity,
            acceleration,
            version,
            start + timedelta(minutes=minutes, seconds=30 * version),
        ]

    for kind, key_of in (("thread_1m", "thread_id"), ("author_1m", "author"), ("category_1m", "category")):
        for (key, start), members in sorted(group(kind, key_of, 1).items()):
            rows.append(row(kind, key, start, 1, members, 1, velocity=float(len(members))))
    # thread_trend_10m hops every minute (a comment is in 10 windows, as in streams/windows/engine/):
    # velocity = comments / 10, acceleration = velocity - velocity of the window a minute earlier.
    per_minute: dict[tuple[str, int], list[SeedComment]] = defaultdict(list)
    for c in comments:
        per_minute[(c.thread_id, int(c.minute))].append(c)
    for thread in sorted({c.thread_id for c in comments}):
        minutes = [m for t, m in per_minute if t == thread]
        previous = 0.0
        for first in range(min(minutes) - 9, max(minutes) + 1):
            members = [c for m in range(first, first + 10) for c in per_minute.get((thread, m), [])]
            velocity = len(members) / 10
            if members:
                start = BASE + timedelta(minutes=first)
                late = [c for c in members if c.comment_id == "c7"]
                if late:
                    # Emitted before the late c7 arrived; version 2 corrects it (FINAL keeps version 2).
                    early = [c for c in members if c.comment_id != "c7"]
                    if early:
                        rows.append(row("thread_trend_10m", thread, start, 10, early, 1, len(early) / 10, 0.0))
                rows.append(
                    row("thread_trend_10m", thread, start, 10, members, 2 if late else 1, velocity, velocity - previous)
                )
            previous = velocity
    return rows


_WINDOW_COLUMNS = list(WindowRow.__struct_fields__)

ALERTS = [
    [
        "a-tox-spike-1",
        "toxicity_spike",
        _P,
        "",
        BASE,
        BASE + timedelta(minutes=10),
        0.9,
        "Thread t-putin-call: 4 of 7 comments flagged, over 3x its usual share",
        json.dumps({"comment_ids": ["c2", "c3", "c5", "c7"]}),
        BASE + timedelta(minutes=11),
    ],
    [
        "a-spam-1",
        "spam_wave",
        _W,
        "spammer99",
        BASE,
        BASE + timedelta(minutes=10),
        0.6,
        "2 authors posted the same text (fingerprint fp-f4) within 10 min.",
        json.dumps({"fingerprint": "fp-f4", "comment_ids": ["f4", "f5"]}),
        BASE + timedelta(minutes=10, seconds=5),
    ],
    [
        "a-pile-on-1",
        "pile_on",
        _P,
        "carol",
        BASE + timedelta(minutes=10),
        BASE + timedelta(minutes=20),
        0.7,
        "3 authors replied to carol within 10 min; 2 replies flagged",
        json.dumps({"comment_ids": ["c5", "c12"]}),
        BASE + timedelta(minutes=21),
    ],
]
_ALERT_COLUMNS = list(Alert.__struct_fields__)

DEAD_LETTERS = [
    [
        "dl-1",
        "validate",
        "invalid_json",
        "Expecting value: line 1 column 1",
        "comments.raw",
        0,
        17,
        "{not json",
        BASE + timedelta(minutes=3),
    ],
    [
        "dl-2",
        "validate",
        "schema_violation",
        "Object missing required field `author`",
        "comments.raw",
        2,
        41,
        '{"comment_id": "x9", "thread_id": "t-fed-rates"}',
        BASE + timedelta(minutes=7),
    ],
    [
        "dl-3",
        "enrich",
        "parent_cycle",
        "comment is its own ancestor",
        "comments.valid",
        1,
        5,
        '{"comment_id": "z1", "parent_id": "z1"}',
        BASE + timedelta(minutes=12),
    ],
]
_DEAD_LETTER_COLUMNS = list(DEAD_LETTER_COLUMNS[: DEAD_LETTER_COLUMNS.index("received_at") + 1])

LATE_EVENTS = [
    [
        "f7",
        _W,
        "marie",
        BASE + timedelta(minutes=40),
        BASE + timedelta(hours=2),
        "thread_1m",
        BASE + timedelta(hours=2, minutes=1),
    ],
    [
        "f7",
        _W,
        "marie",
        BASE + timedelta(minutes=40),
        BASE + timedelta(hours=2),
        "author_1m",
        BASE + timedelta(hours=2, minutes=1),
    ],
    [
        "c14",
        _P,
        "erin",
        BASE + timedelta(minutes=25),
        BASE + timedelta(hours=1, minutes=30),
        "thread_trend_10m",
        BASE + timedelta(hours=1, minutes=31),
    ],
]
_LATE_COLUMNS = list(LateEvent.__struct_fields__)


@dataclass(frozen=True)
class SeedSummary:
    comments: int  # visible
    comment_rows: int  # inserted, including superseded versions and replays
    flagged: int
    threads: int
    authors: int
    windows: int  # latest versions
    alerts: int
    dead_letters: int
    late_events: int
    reviews: int = 0  # latest verdicts


def seed_all(client: Client) -> SeedSummary:
    """Insert the whole data set into the (migrated, empty) database `client` points at."""
    comment_rows = 0
    for batch in _version_batches():
        client.insert("comments", _comment_rows(batch), column_names=_COMMENT_COLUMNS)
        comment_rows += len(batch)
    windows = _windows()
    # Superseded window versions first, then the latest ones, then a replayed window: three parts.
    superseded = {(w[0], w[1], w[2]) for w in windows if w[12] == 2}
    latest = [w for w in windows if not (w[12] == 1 and (w[0], w[1], w[2]) in superseded)]
    client.insert("activity_windows", [w for w in windows if w not in latest], column_names=_WINDOW_COLUMNS)
    client.insert("activity_windows", latest, column_names=_WINDOW_COLUMNS)
    client.insert("activity_windows", [latest[0]], column_names=_WINDOW_COLUMNS)
    client.insert("alerts", ALERTS, column_names=_ALERT_COLUMNS)
    client.insert("alerts", ALERTS[:1], column_names=_ALERT_COLUMNS)  # a replayed detector
    client.insert("dead_letters", DEAD_LETTERS, column_names=_DEAD_LETTER_COLUMNS)
    client.insert("late_events", LATE_EVENTS, column_names=_LATE_COLUMNS)
    client.insert("moderation_reviews", [r.row() for r in REVIEWS], column_names=list(REVIEW_COLUMNS))
    client.insert("moderation_reviews", [r.row() for r in LATER_REVIEWS], column_names=list(REVIEW_COLUMNS))
    visible = visible_comments()
    return SeedSummary(
        comments=len(visible),
        comment_rows=comment_rows,
        flagged=sum(1 for c in visible if c.flags),
        threads=len({c.thread_id for c in visible}),
        authors=len({c.author for c in visible}),
        windows=len(latest),
        alerts=len(ALERTS),
        dead_letters=len(DEAD_LETTERS),
        late_events=len(LATE_EVENTS),
        reviews=len(latest_reviews()),
    )
