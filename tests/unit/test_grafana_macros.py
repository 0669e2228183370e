"""streams.grafana_macros against the plugin's own test vectors and Grafana's documented formats.

Vectors come from grafana/clickhouse-datasource pkg/macros/macros_test.go (same time range,
interval and expected strings) and docs/sources/query-editor.md; variable formats from Grafana's
formatRegistry.ts; conditionalAll from CHDatasource.applyConditionalAll.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from streams.grafana_macros import ALL, MACROS, MacroError, expand, format_interval

# The range macros_test.go uses: 2014-11-12T11:45:26.371Z .. 2015-11-12T11:45:26.371Z (TestInterpolate
# uses .123 / .456 milliseconds for the _ms macros).
FROM = datetime(2014, 11, 12, 11, 45, 26, 123000, tzinfo=UTC)
TO = datetime(2015, 11, 12, 11, 45, 26, 456000, tzinfo=UTC)


def x(sql: str, interval_s: int = 20, **variables: str | list[str]) -> str:
    return expand(sql, time_from=FROM, time_to=TO, interval_s=interval_s, variables=variables)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "select * from foo where $__timeFilter(cast(sth as timestamp))",
            "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND "
            "cast(sth as timestamp) <= toDateTime(1447328726)",
        ),
        (
            "select * from foo where $__timeFilter(cast(sth as timestamp) )",
            "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND "
            "cast(sth as timestamp) <= toDateTime(1447328726)",
        ),
        (
            "select * from foo where $__timeFilter_ms(cast(sth as timestamp))",
            "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) AND "
            "cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)",
        ),
        (
            "select * from foo where ( date >= $__fromTime and date <= $__toTime ) limit 100",
            "select * from foo where ( date >= toDateTime(1415792726) and date <= toDateTime(1447328726) ) limit 100",
        ),
        (
            "select * from foo where ( date >= $__fromTime ) and ( date <= $__toTime ) limit 100",
            "select * from foo where ( date >= toDateTime(1415792726) ) and ( date <= toDateTime(1447328726) ) "
            "limit 100",
        ),
        (
            "select * from foo where ( date >= $__fromTime_ms and date <= $__toTime_ms ) limit 100",
            "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) and "
            "date <= fromUnixTimestamp64Milli(1447328726456) ) limit 100",
        ),
        ("$__dateFilter(dateCol)", "dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')"),
        (
            "$__dateTimeFilter(dateCol, timeCol)",
            "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
            "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
        ),
        (
            "$__dt(dateCol, timeCol)",
            "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
            "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
        ),
        (
            "select $__timeInterval(col) from foo",
            "select toStartOfInterval(toDateTime(col), INTERVAL 20 second) from foo",
        ),
        (
            "select $__timeInterval_ms(col) from foo",
            "select toStartOfInterval(toDateTime64(col, 3), INTERVAL 20000 millisecond) from foo",
        ),
        (
            "select toStartOfInterval(col, INTERVAL $__interval_s second) AS time from foo",
            "select toStartOfInterval(col, INTERVAL 20 second) AS time from foo",
        ),
        # Documented in the plugin's query-editor.md macro table.
        ("$__timeFrom(time)", "time >= toDateTime(1415792726)"),
        ("$__timeTo(time)", "time <= toDateTime(1447328726)"),
        ("$__timeGroup(column, '5m')", "toStartOfInterval(toDateTime(column), INTERVAL 300 second)"),
        ("$__timeGroup(column, 1h)", "toStartOfInterval(toDateTime(column), INTERVAL 3600 second)"),
    ],
)
def test_plugin_macro_vectors(sql: str, expected: str) -> None:
    assert x(sql) == expected


def test_interval_is_at_least_one_second() -> None:
    assert x("$__interval_s $__timeInterval(c)", interval_s=0) == (
        "1 toStartOfInterval(toDateTime(c), INTERVAL 1 second)"
    )


def test_naive_and_offset_datetimes_are_instants() -> None:
    naive = expand("$__fromTime", time_from=datetime(2018, 3, 21, 9), time_to=datetime(2018, 3, 21, 10),
                   interval_s=60, variables={})  # fmt: skip
    plus2 = expand("$__fromTime", time_from=datetime(2018, 3, 21, 11, tzinfo=timezone(timedelta(hours=2))),
                   time_to=datetime(2018, 3, 21, 12, tzinfo=UTC), interval_s=60, variables={})  # fmt: skip
    assert naive == plus2 == f"toDateTime({int(datetime(2018, 3, 21, 9, tzinfo=UTC).timestamp())})"


def test_date_filter_uses_utc_dates() -> None:
    late = datetime(2018, 3, 21, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 2018-03-22 in UTC
    out = expand("$__dateFilter(d)", time_from=late, time_to=late, interval_s=1, variables={})
    assert out == "d >= toDate('2018-03-22') AND d <= toDate('2018-03-22')"


def test_reversed_range_is_an_error() -> None:
    with pytest.raises(MacroError, match="ends before it starts"):
        expand("$__fromTime", time_from=TO, time_to=FROM, interval_s=1, variables={})


def test_macros_expand_inside_other_macro_arguments_and_repeat() -> None:
    out = x("$__timeFilter(a) OR $__timeFilter(a) AND $__timeInterval(toDateTime64(b, 3))")
    assert out.count("a >= toDateTime(1415792726)") == 2
    assert out.endswith("toStartOfInterval(toDateTime(toDateTime64(b, 3)), INTERVAL 20 second)")


# --------------------------------------------------------------------------------- conditionalAll


@pytest.mark.parametrize("value", [ALL, [ALL], "", []])
def test_conditional_all_is_true_when_all_or_empty(value: str | list[str]) -> None:
    assert x("WHERE $__conditionalAll(cat IN ($cat), $cat) AND z", cat=value) == "WHERE 1=1 AND z"


def test_conditional_all_keeps_the_condition_for_a_selection() -> None:
    sql = "WHERE $__conditionalAll(hasAny(flags, [${cat:singlequote}]), ${cat})"
    assert x(sql, cat=["toxicity", "spam"]) == "WHERE hasAny(flags, ['toxicity','spam'])"
    assert x(sql, cat="spam") == "WHERE hasAny(flags, ['spam'])"


def test_conditional_all_nested_and_repeated() -> None:
    sql = "$__conditionalAll(a IN ($a) AND $__conditionalAll(b = '$b', $b), $a) OR $__conditionalAll(b = 1, $b)"
    assert x(sql, a=["1"], b=ALL) == "a IN ('1') AND 1=1 OR 1=1"
    assert x(sql, a=ALL, b="x") == "1=1 OR b = 1"


def test_conditional_all_needs_the_variable_in_dollar_form() -> None:
    # applyConditionalAll's regex does not match ${var:format}, so the condition always stays (as in Grafana).
    assert x("$__conditionalAll(c IN ($v), ${v:csv})", v=["a"]) == "c IN ('a')"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__conditionalAll(a = 1)", "takes 2 arguments"),
        ("$__conditionalAll(a = 1, $v, $v)", "takes 2 arguments"),
        ("$__conditionalAll(a = (1, $v)", "missing '\\)'"),
        ("$__conditionalAll(a = 1, $nope)", "unknown template variable \\$nope"),
    ],
)
def test_conditional_all_errors(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        x(sql, v="1")


# --------------------------------------------------------------------------------- variables


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("$v", "it's", "it's"),  # the plugin's default format: a single value goes in raw
        ("$v", ["a", "b"], "'a','b'"),  # ... and a multi-value one as quoted list
        ("${v}", ["a"], "'a'"),
        ("[[v]]", "a", "a"),
        ("x${v}y", "a", "xay"),
        ("${v:raw}", ["a", "b"], "a,b"),
        ("${v:csv}", ["a", "b"], "a,b"),
        ("${v:csv}", "a", "a"),
        ("${v:pipe}", ["a", "b"], "a|b"),
        ("${v:singlequote}", ["it's", "b"], "'it\\'s','b'"),
        ("${v:singlequote}", "it's", "'it\\'s'"),
        ("${v:doublequote}", ['say "hi"'], '"say \\"hi\\""'),
        ("${v:sqlstring}", ["it's", "b"], "'it''s','b'"),
        ("${v:json}", ["a", "b"], '["a","b"]'),
        ("${v:json}", "a", '"a"'),
        ("${v:regex}", ["a.b", "c"], "(a\\.b|c)"),
        ("${v:regex}", ["a.b"], "a\\.b"),
        ("${v:glob}", ["a", "b"], "{a,b}"),
        ("${v:glob}", ["a"], "a"),
        ("${v:distributed}", ["a", "b", "c"], "a,v=b,v=c"),
        ("${v:percentencode}", "a b/c'", "a%20b%2Fc%27"),
        ("${v:queryparam}", ["a", "b c"], "var-v=a&var-v=b%20c"),
        ("${v:lucene}", ["a b", "c"], '("a\\ b" OR "c")'),
        ("${v:text}", "a", "a"),
    ],
)
def test_variable_formats(template: str, value: str | list[str], expected: str) -> None:
    assert x(template, v=value) == expected


def test_grafana_globals() -> None:
    start = datetime(2018, 3, 21, 9, tzinfo=UTC)
    out = expand(
        "$__from $__to ${__from:date:iso} ${__to:date:seconds} ${__from:date:ms} $__interval $__interval_ms "
        "$__range_s $__range_ms $__range",
        time_from=start,
        time_to=start + timedelta(hours=1),
        interval_s=60,
        variables={},
    )
    ms = int(start.timestamp()) * 1000
    assert out.split() == [
        str(ms), str(ms + 3600000), "2018-03-21T09:00:00.000Z", str(ms // 1000 + 3600), str(ms), "1m", "60000",
        "3600", "3600000", "3600s",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0005, "less than a millisecond"), (0.02, "20ms"), (1, "1s"), (20, "20s"), (60, "1m"), (90, "1m"),
     (3600, "1h"), (2 * 86400, "2d"), (3 * 31536000, "3y")],
)  # fmt: skip
def test_format_interval_matches_grafana_seconds_to_hms(seconds: float, expected: str) -> None:
    assert format_interval(seconds) == expected


def test_nested_array_literals_are_not_variables() -> None:
    assert x("SELECT [[1, 2]], [[a]]") == "SELECT [[1, 2]], [[a]]"


@pytest.mark.parametrize(
    ("sql", "variables", "message"),
    [
        ("WHERE a = $nope", {}, "unknown template variable \\$nope"),
        ("WHERE a = ${nope:csv}", {}, "unknown template variable \\$nope"),
        ("${v:bogus}", {"v": "a"}, "unknown format 'bogus'"),
        ("a IN ($v)", {"v": ALL}, "is All"),
        ("a IN (${v:csv})", {"v": [ALL]}, "is All"),
        ("${v.field}", {"v": "a"}, "field paths"),
        ("${__from:date:YYYY}", {}, "date:seconds formats are supported"),
    ],
)
def test_variable_errors(sql: str, variables: dict[str, str | list[str]], message: str) -> None:
    with pytest.raises(MacroError, match=message):
        expand(sql, time_from=FROM, time_to=TO, interval_s=20, variables=variables)


# ------------------------------------------------------------------------------------ macro errors


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__bogus(x)", "unknown macro \\$__bogus"),
        ("$__timeFilterEpoch(t)", "unknown macro \\$__timeFilterEpoch"),  # no prefix matching
        ("$__rate_interval", "unknown macro \\$__rate_interval"),  # Prometheus-only
        ("$__columns(t, k, v) FROM x", "statement macro"),
        ("$__timeFilter", "expects 1 argument\\(s\\), got 0"),
        ("$__timeFilter()", "expects 1 argument\\(s\\), got 0"),
        ("$__timeFilter(a, b)", "expects 1 argument\\(s\\), got 2"),
        ("$__dateTimeFilter(a)", "expects 2 argument\\(s\\), got 1"),
        ("$__timeFilter(a", "missing '\\)'"),
        ("$__timeGroup(c, 5 minutes)", "not a duration"),
        ("$__table", "pass table="),
        ("$__column", "pass column="),
    ],
)
def test_macro_errors_name_the_macro(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        x(sql)


def test_arguments_are_split_at_top_level_commas_only() -> None:
    # sqlutil's parseArgs: nested parentheses are one argument.
    assert x("$__timeFilter(toDateTime(a, 'UTC'))").startswith("toDateTime(a, 'UTC') >= toDateTime(")


def test_no_argument_macro_does_not_consume_a_later_parenthesis() -> None:
    # sqlds issue #82: "$__f > $__g" must not read arguments past a space.
    assert x("$__interval_s * (a + b)") == "20 * (a + b)"


def test_table_and_column_from_the_target() -> None:
    out = expand("SELECT $__column FROM $__table", time_from=FROM, time_to=TO, interval_s=1, variables={},
                 table="comments", column="author")  # fmt: skip
    assert out == "SELECT author FROM comments"


def test_every_macro_is_documented_with_its_source() -> None:
    for name, macro in MACROS.items():
        assert macro.example and macro.source, name


def test_no_macro_or_variable_survives_a_full_expansion() -> None:
    sql = (
        "SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) AND $__conditionalAll(a IN ($a), $a) "
        "AND b IN (${b:singlequote}) AND c > $__fromTime_ms GROUP BY time ORDER BY time WITH FILL STEP $__interval_s"
    )
    out = x(sql, a=ALL, b=["x"])
    assert "$" not in out
