"""The named query library: file format and parameter binding, then every query on seeded data.

Expected values are computed in Python from tests.integration.seed_data.visible_comments(), not
copied from a query's output.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from streams.clickhouse.client import connect
from streams.clickhouse.migrations import migrate
from streams.clickhouse.readonly import ReadOnlyClient
from streams.queries import QUERIES_DIR, NamedQuery, QueryError, list_queries, load_query, parse
from tests.integration.seed_data import (
    BASE,
    DEAD_LETTERS,
    SeedComment,
    latest_reviews,
    model_version_of,
    seed_all,
    visible_comments,
)

REQUIRED = {"toxicity_by_depth", "most_replied_authors", "reply_latency_distribution", "flagged_share_by_hour",
            "toxicity_spread", "top_threads", "author_profile", "review_precision_recall",
            "reviewed_comments"}  # fmt: skip

# ------------------------------------------------------------------------------- format and binding


def test_library_has_the_documented_queries() -> None:
    queries = list_queries()
    assert {q.name for q in queries} >= REQUIRED
    assert [q.name for q in queries] == sorted(q.name for q in queries)
    for q in queries:
        assert q.title and len(q.description) > 40, q.name
        assert not q.sql.lstrip().startswith("--"), q.name
        for p in q.params:
            assert p.description, f"{q.name}.{p.name}"


def test_unknown_query_lists_the_available_ones() -> None:
    with pytest.raises(QueryError) as info:
        load_query("toxicity_by_depht")
    assert "toxicity_by_depth" in str(info.value) and "available:" in str(info.value)
    with pytest.raises(QueryError, match="no named query"):
        load_query("../clickhouse/0001_comments_and_dead_letters")


def test_bind_converts_cli_strings_to_declared_types() -> None:
    sql, params = load_query("most_replied_authors").bind(
        {"since": "2018-03-21T09:00:00Z", "until": "2018-03-21 10:00", "include_self_replies": "yes", "limit": "5"}
    )
    assert "{limit:UInt32}" in sql
    assert params == {
        "since": datetime(2018, 3, 21, 9, tzinfo=UTC),
        "until": datetime(2018, 3, 21, 10, tzinfo=UTC),
        "include_self_replies": True,
        "min_replies": 1,
        "limit": 5,
    }
    _, params = load_query("toxicity_spread").bind({"threshold": "0.5", "since": "2018-03-21T11:00:00+02:00"})
    assert params["threshold"] == 0.5
    assert params["since"] == datetime(2018, 3, 21, 9, tzinfo=UTC)
    assert params["until"] == datetime(2100, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("toxicity_by_depth", {"max_depth": "ten"}, "max_depth: 'ten' is not a valid UInt16"),
        ("toxicity_by_depth", {"max_depth": "70000"}, "out of range for UInt16"),
        ("toxicity_by_depth", {"max_depth": "-1"}, "out of range"),
        ("toxicity_by_depth", {"since": "yesterday"}, "since: 'yesterday' is not a valid DateTime64"),
        ("most_replied_authors", {"include_self_replies": "maybe"}, "expected true/false"),
        ("toxicity_spread", {"threshold": "high"}, "threshold: 'high' is not a valid Float32"),
        ("toxicity_by_depth", {"depth": "3"}, "has no parameter depth \\(parameters: since, until, max_depth\\)"),
        ("author_profile", {}, "needs --param author=<String>"),
    ],
)
def test_bind_errors_are_clear(name: str, given: dict[str, str], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        load_query(name).bind(given)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.sql"
    path.write_text(text, encoding="utf-8")
    return path


HEADER = "-- title: T\n-- description: D\n"


def test_header_format(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "q",
        "-- title: A title\n"
        "-- description: First line,\n"
        "--   continued.\n"
        "-- param: n | UInt8 | 3 | a number\n"
        "--   and more about it\n"
        "-- param: s | String | '' | empty by default\n"
        "-- param: who | String | required | must be given\n"
        "-- param: d | Date | 2018-03-21 | a day\n"
        "-- param: tags | Array(String) | a,b | a list\n"
        "--\n"
        "SELECT {n:UInt8}, {s:String}, {who:String}, {d:Date}, {tags:Array(String)}\n",
    )
    q = load_query("q", tmp_path)
    assert (q.title, q.description) == ("A title", "First line, continued.")
    assert [(p.name, p.default, p.required) for p in q.params] == [
        ("n", "3", False), ("s", "", False), ("who", None, True), ("d", "2018-03-21", False), ("tags", "a,b", False)
    ]  # fmt: skip
    assert q.params[0].description == "a number and more about it"
    assert q.sql.startswith("SELECT")
    _, params = q.bind({"who": "x", "tags": ""})
    assert params == {"n": 3, "s": "", "who": "x", "d": date(2018, 3, 21), "tags": []}
    assert [x.name for x in list_queries(tmp_path)] == ["q"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- description: D\nSELECT 1", "needs a `-- title:` line"),
        (HEADER, "no SQL after the header"),
        (HEADER + "SELECT {x:UInt8}", "is used but not declared"),
        (HEADER + "-- param: x | UInt8 | 1 | d\nSELECT {x:UInt16}", "does not match the declared type"),
        (HEADER + "-- param: x | UInt8 | 1 | d\nSELECT 1", "declared but unused"),
        (HEADER + "-- param: x | UInt8 | 1\nSELECT {x:UInt8}", "name \\| Type \\| default \\| description"),
        (HEADER + "-- param: x | Decimal(10, 2) | 1 | d\nSELECT {x:Decimal(10, 2)}", "not supported"),
        (HEADER + "-- param: x | UInt8 | 300 | d\nSELECT {x:UInt8}", "out of range"),
        (HEADER + "-- param: x | UInt8 | 1 | d\n-- param: x | UInt8 | 1 | d\nSELECT {x:UInt8}", "declared twice"),
        (HEADER + "-- oops\nSELECT 1", "a header line is `-- key: value`"),
    ],
)
def test_malformed_files_fail_at_load(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse(text, "bad", tmp_path / "bad.sql")


def test_placeholder_types_compare_ignoring_spaces(tmp_path: Path) -> None:
    q = parse(
        HEADER + "-- param: t | DateTime64(3, 'UTC') | 2018-01-01 | d\nSELECT {t:DateTime64(3,'UTC')}", "q", tmp_path
    )
    assert q.bind({})[1] == {"t": datetime(2018, 1, 1, tzinfo=UTC)}


# -------------------------------------------------------------------------------- on seeded data


@pytest.fixture(scope="module")
def seeded_dsn(chdb_root: Path) -> str:
    # Seeded once for the module: a fresh database in the session's one embedded directory.
    dsn = f"chdb://{chdb_root}?database=t_queries_{uuid.uuid4().hex[:8]}"
    client = connect(dsn)
    migrate(client)
    seed_all(client)
    client.close()
    return dsn


@pytest.fixture(scope="module")
def ch_seeded(seeded_dsn: str) -> Iterator[Client]:
    client = connect(seeded_dsn)
    yield client
    client.close()


def rows(client: Client, name: str, **given: str) -> list[dict[str, Any]]:
    sql, params = load_query(name).bind(given)
    result = client.query(sql, parameters=params)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _replies() -> list[tuple[SeedComment, SeedComment]]:
    """(reply, parent) pairs among the visible comments."""
    by_id = {c.comment_id: c for c in visible_comments()}
    return [(c, by_id[c.parent_id]) for c in visible_comments() if c.parent_id in by_id]


@pytest.mark.clickhouse
@pytest.mark.parametrize("query", list_queries(), ids=lambda q: q.name)
def test_every_query_runs_with_its_defaults(ch_seeded: Client, query: NamedQuery) -> None:
    given = {"author": "bob"} if query.name == "author_profile" else {}
    assert rows(ch_seeded, query.name, **given), query.name


@pytest.mark.clickhouse
def test_every_query_runs_read_only(seeded_dsn: str, ch_seeded: Client) -> None:
    """`streams query` runs on the read-only session: every named query must work there, unchanged."""
    reader = ReadOnlyClient(seeded_dsn)
    for query in list_queries():
        given = {"author": "bob"} if query.name == "author_profile" else {}
        sql, params = query.bind(given)
        assert reader.query(sql, params).result_rows == ch_seeded.query(sql, parameters=params).result_rows


@pytest.mark.clickhouse
def test_toxicity_by_depth(ch_seeded: Client) -> None:
    got = {r["depth_level"]: r for r in rows(ch_seeded, "toxicity_by_depth")}
    by_depth: dict[int, list[SeedComment]] = defaultdict(list)
    for c in visible_comments():
        by_depth[c.depth].append(c)
    assert set(got) == set(by_depth)
    for depth, comments in by_depth.items():
        assert got[depth]["comments"] == len(comments)
        assert got[depth]["mean_toxicity"] == pytest.approx(mean(c.toxicity for c in comments), abs=1e-4)
        assert got[depth]["flagged"] == sum(1 for c in comments if c.flags)
    # Toxicity climbs with depth in the seed's heated thread.
    assert got[0]["mean_toxicity"] < got[3]["mean_toxicity"]
    capped = rows(ch_seeded, "toxicity_by_depth", max_depth="2")
    assert [r["depth_level"] for r in capped] == [0, 1, 2]
    assert capped[-1]["comments"] == sum(len(v) for k, v in by_depth.items() if k >= 2)


@pytest.mark.clickhouse
def test_most_replied_authors(ch_seeded: Client) -> None:
    expected = Counter(p.author for r, p in _replies() if r.author != p.author)
    got = rows(ch_seeded, "most_replied_authors")
    assert {r["replied_author"]: r["replies"] for r in got} == dict(expected)
    assert [r["replies"] for r in got] == sorted((r["replies"] for r in got), reverse=True)
    bob = next(r for r in got if r["replied_author"] == "bob")
    assert bob["flagged_replies"] == sum(1 for r, p in _replies() if p.author == "bob" and r.flags)
    # marie answered herself once (f7): only counted when asked to.
    with_self = {
        r["replied_author"]: r["replies"] for r in rows(ch_seeded, "most_replied_authors", include_self_replies="true")
    }
    assert with_self["marie"] == expected["marie"] + 1
    assert len(rows(ch_seeded, "most_replied_authors", limit="2")) == 2
    assert all(r["replies"] >= 3 for r in rows(ch_seeded, "most_replied_authors", min_replies="3"))


@pytest.mark.clickhouse
def test_reply_latency_distribution(ch_seeded: Client) -> None:
    edges = [60, 300, 900, 3600, 21600, 86400]
    expected = Counter(sum(1 for e in edges if (r.posted_at - p.posted_at).total_seconds() >= e) for r, p in _replies())
    got = rows(ch_seeded, "reply_latency_distribution")
    assert [r["bucket"] for r in got] == ["< 1 min", "1-5 min", "5-15 min", "15-60 min", "1-6 h", "6-24 h", ">= 1 day"]
    assert [r["replies"] for r in got] == [expected.get(i, 0) for i in range(7)]
    assert sum(r["share"] for r in got) == pytest.approx(1, abs=1e-3)
    assert got[-1]["cumulative_share"] == pytest.approx(1)
    assert all(r["median_latency_s"] is None for r in got if r["replies"] == 0)
    one = rows(ch_seeded, "reply_latency_distribution", thread_id="t-fed-rates")
    assert sum(r["replies"] for r in one) == sum(1 for r, _ in _replies() if r.thread_id == "t-fed-rates")


@pytest.mark.clickhouse
def test_flagged_share_by_hour(ch_seeded: Client) -> None:
    got = rows(ch_seeded, "flagged_share_by_hour")
    comments = visible_comments()
    nine = [c for c in comments if c.posted_at.hour == 9]
    assert [r["hour"] for r in got] == [datetime(2018, 3, 21, 9), datetime(2018, 3, 21, 10)]
    assert (got[0]["comments"], got[0]["flagged"]) == (len(nine), sum(1 for c in nine if c.flags))
    assert got[0]["flagged_share"] == pytest.approx(got[0]["flagged"] / got[0]["comments"], abs=1e-4)
    assert got[0]["top_category"] == "toxicity"
    assert (got[1]["flagged"], got[1]["top_category"]) == (0, "")
    spam = rows(ch_seeded, "flagged_share_by_hour", category="spam")
    assert spam[0]["flagged"] == sum(1 for c in nine if "spam" in c.flags)
    later = rows(ch_seeded, "flagged_share_by_hour", since=(BASE.replace(hour=10)).isoformat())
    assert [r["hour"].hour for r in later] == [10]


@pytest.mark.clickhouse
def test_toxicity_spread(ch_seeded: Client) -> None:
    got = rows(ch_seeded, "toxicity_spread")
    # Only the Putin thread has toxic comments with toxic replies (c2->c3, c3->c5, c5->c7, c12->c13).
    assert [r["thread_id"] for r in got] == ["t-putin-call"]
    pairs = [(r, p) for r, p in _replies() if r.thread_id == "t-putin-call"]
    to_toxic = [(r, p) for r, p in pairs if p.toxicity >= 0.7]
    to_civil = [(r, p) for r, p in pairs if p.toxicity < 0.7]
    spread = sum(1 for r, _ in to_toxic if r.toxicity >= 0.7) / len(to_toxic)
    baseline = sum(1 for r, _ in to_civil if r.toxicity >= 0.7) / len(to_civil)
    row = got[0]
    assert row["toxic_parents"] == len({p.comment_id for _, p in to_toxic})
    assert (row["replies_to_toxic"], row["replies_to_civil"]) == (len(to_toxic), len(to_civil))
    assert row["spread_rate"] == pytest.approx(spread, abs=1e-4)
    assert row["baseline_rate"] == pytest.approx(baseline, abs=1e-4)
    assert row["lift"] == pytest.approx(spread / baseline, abs=1e-3)
    assert row["lift"] > 1  # toxicity begets toxicity here
    assert rows(ch_seeded, "toxicity_spread", threshold="0.95") == []
    assert rows(ch_seeded, "toxicity_spread", min_toxic_replies="5") == []


@pytest.mark.clickhouse
def test_top_threads(ch_seeded: Client) -> None:
    got = rows(ch_seeded, "top_threads")
    counts = Counter(c.thread_id for c in visible_comments())
    assert [r["thread_id"] for r in got][:1] == ["t-putin-call"]
    assert {r["thread_id"]: r["comments"] for r in got} == dict(counts)
    putin = got[0]
    assert putin["max_depth"] == max(c.depth for c in visible_comments() if c.thread_id == "t-putin-call")
    assert putin["authors"] == len({c.author for c in visible_comments() if c.thread_id == "t-putin-call"})
    assert len(rows(ch_seeded, "top_threads", limit="1")) == 1


@pytest.mark.clickhouse
def test_author_profile(ch_seeded: Client) -> None:
    bob = [c for c in visible_comments() if c.author == "bob"]
    [profile] = rows(ch_seeded, "author_profile", author="bob")
    assert profile["comments"] == len(bob)
    assert profile["flagged"] == sum(1 for c in bob if c.flags)
    assert profile["categories"] == ", ".join(sorted({f for c in bob for f in c.flags}))
    assert profile["replies_received"] == sum(1 for r, p in _replies() if p.author == "bob" and r.author != "bob")
    assert profile["top_level_comments"] == sum(1 for c in bob if c.parent_id is None)
    # alice's edited comment c8 counts once, with its latest (clean) version.
    [alice] = rows(ch_seeded, "author_profile", author="alice")
    assert alice["comments"] == sum(1 for c in visible_comments() if c.author == "alice")
    assert alice["flagged"] == 1  # c13 only
    assert rows(ch_seeded, "author_profile", author="nobody") == []
    assert rows(ch_seeded, "author_profile", author="o'brien") == []  # bound, not spliced


@pytest.mark.clickhouse
def test_dead_letter_summary(ch_seeded: Client) -> None:
    got = rows(ch_seeded, "dead_letter_summary")
    assert sum(r["dead_letters"] for r in got) == len(DEAD_LETTERS)
    assert {(r["stage"], r["reason_code"]) for r in got} == {(d[1], d[2]) for d in DEAD_LETTERS}


def expected_precision_recall() -> dict[tuple[str, str], tuple[int, int, int]]:
    """(category, model_version) -> (confirmed, rejected, missed), from the seed's latest verdicts."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in latest_reviews():
        counts[(r.category, model_version_of(r.thread_id))][("confirm", "reject", "missed").index(r.verdict)] += 1
    return {k: (v[0], v[1], v[2]) for k, v in counts.items()}


@pytest.mark.clickhouse
def test_review_precision_recall(ch_seeded: Client) -> None:
    got = rows(ch_seeded, "review_precision_recall")
    assert {r["day"] for r in got} == {date(2018, 3, 21)}
    expected = expected_precision_recall()
    assert {(r["category"], r["model_version"]): (r["confirmed"], r["rejected"], r["missed"]) for r in got} == expected
    for r in got:
        c, rej, m = expected[(r["category"], r["model_version"])]
        assert r["precision"] == (None if c + rej == 0 else pytest.approx(c / (c + rej), abs=1e-4))
        assert r["recall"] == (None if c + m == 0 else pytest.approx(c / (c + m), abs=1e-4))
    # c13's verdict changed from reject to confirm and c2's review was replayed: FINAL counts each once.
    toxicity = next(r for r in got if (r["category"], r["model_version"]) == ("toxicity", "seed-model-v1"))
    assert (toxicity["confirmed"], toxicity["rejected"], toxicity["missed"]) == (3, 1, 1)
    assert (toxicity["precision"], toxicity["recall"]) == (0.75, 0.75)
    profanity = next(r for r in got if r["category"] == "profanity")
    assert (profanity["precision"], profanity["recall"]) == (0.0, None)
    spam = rows(ch_seeded, "review_precision_recall", category="spam")
    assert {r["model_version"] for r in spam} == {"seed-model-v1", "seed-model-v2"}
    assert rows(ch_seeded, "review_precision_recall", since="2018-03-22") == []


@pytest.mark.clickhouse
def test_reviewed_comments_export(ch_seeded: Client) -> None:
    got = rows(ch_seeded, "reviewed_comments")
    bodies = {c.comment_id: c.body for c in visible_comments()}
    assert len(got) == len(latest_reviews())
    assert {(r["comment_id"], r["category"], r["verdict"]) for r in got} == {
        (r.comment_id, r.category, r.verdict) for r in latest_reviews()
    }
    assert all(r["body"] == bodies[r["comment_id"]] for r in got)


def test_query_files_live_in_schemas_queries() -> None:
    assert QUERIES_DIR.name == "queries" and QUERIES_DIR.parent.name == "schemas"
