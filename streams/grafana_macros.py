"""Expand a Grafana ClickHouse panel query the way Grafana and the official plugin do.

Grafana never shows us a query it ran, so to prove a dashboard works we expand each panel's
`rawSql` here and run it on ClickHouse ourselves. Expansion happens in three steps, in the
order Grafana applies them:

1. `$__conditionalAll(condition, $var)` -- the plugin's frontend (CHDatasource.applyConditionalAll
   in grafana/clickhouse-datasource src/data/CHDatasource.ts): the condition, or `1=1` when the
   variable's value is All (`$__all`) or empty.
2. Template variables -- Grafana's templateSrv: `$var`, `${var}`, `${var:format}`, `[[var]]` and the
   global `$__from`, `$__to`, `$__interval`, `$__interval_ms`, `$__range`, `$__range_s`, `$__range_ms`.
   Without a format, the plugin's own formatter applies: a multi-value variable becomes
   `'a','b'`, a single value is inserted as is. Formats follow Grafana's formatRegistry
   (public/app/features/templating/formatRegistry.ts).
3. Backend macros -- the plugin's pkg/macros/macros.go plus the sqlutil defaults
   (grafana-plugin-sdk-go data/sqlutil/macros.go): see `MACROS` for the table.

Deliberate differences, all stricter than Grafana so that a broken dashboard fails here:
an unknown macro, an unknown variable, an unknown format, a wrong argument count or an
unbalanced parenthesis raises `MacroError` (Grafana leaves unknown names in the SQL, where
ClickHouse then fails, or silently falls back to the `glob` format).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = ["ALL", "MACROS", "Macro", "MacroError", "VariableValue", "expand", "format_interval"]

#: The value Grafana gives a variable whose "All" option is selected.
ALL = "$__all"

VariableValue = str | Sequence[str]


class MacroError(ValueError):
    """A query cannot be expanded: unknown macro or variable, bad arguments."""


@dataclass(frozen=True)
class _Context:
    time_from: datetime
    time_to: datetime
    interval_s: int
    table: str | None
    column: str | None

    @property
    def from_s(self) -> int:
        return math.floor(self.time_from.timestamp())

    @property
    def to_s(self) -> int:
        return math.floor(self.time_to.timestamp())

    @property
    def from_ms(self) -> int:
        return math.floor(self.time_from.timestamp() * 1000)

    @property
    def to_ms(self) -> int:
        return math.floor(self.time_to.timestamp() * 1000)


@dataclass(frozen=True)
class Macro:
    """One backend macro: its arity (None: takes no arguments), expansion and documentation."""

    arity: int | None
    render: Callable[[_Context, list[str]], str]
    example: str
    source: str


def _date(t: datetime) -> str:
    return f"toDate('{t.astimezone(UTC):%Y-%m-%d}')"


def _time_filter(c: _Context, a: list[str]) -> str:
    return f"{a[0]} >= toDateTime({c.from_s}) AND {a[0]} <= toDateTime({c.to_s})"


def _time_filter_ms(c: _Context, a: list[str]) -> str:
    return f"{a[0]} >= fromUnixTimestamp64Milli({c.from_ms}) AND {a[0]} <= fromUnixTimestamp64Milli({c.to_ms})"


def _date_filter(c: _Context, a: list[str]) -> str:
    return f"{a[0]} >= {_date(c.time_from)} AND {a[0]} <= {_date(c.time_to)}"


def _date_time_filter(c: _Context, a: list[str]) -> str:
    return (
        f"({a[0]} >= {_date(c.time_from)} AND {a[0]} <= {_date(c.time_to)}) AND "
        f"({a[1]} >= toDateTime({c.from_s}) AND {a[1]} <= toDateTime({c.to_s}))"
    )


def _time_interval(c: _Context, a: list[str]) -> str:
    return f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {max(c.interval_s, 1)} second)"


def _time_interval_ms(c: _Context, a: list[str]) -> str:
    return f"toStartOfInterval(toDateTime64({a[0]}, 3), INTERVAL {max(c.interval_s * 1000, 1)} millisecond)"


def _time_group(c: _Context, a: list[str]) -> str:
    return f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {_duration_seconds(a[1])} second)"


def _table(c: _Context, a: list[str]) -> str:
    if c.table is None:
        raise MacroError("$__table expands to the target's `table` field: pass table=... to expand()")
    return c.table


def _column(c: _Context, a: list[str]) -> str:
    if c.column is None:
        raise MacroError("$__column expands to the target's `column` field: pass column=... to expand()")
    return c.column


_PLUGIN = "grafana/clickhouse-datasource pkg/macros/macros.go"
_DOCS = "grafana/clickhouse-datasource docs/sources/query-editor.md (Macros table; not in macros.go yet)"
_SQLUTIL = "grafana-plugin-sdk-go data/sqlutil/macros.go (DefaultMacros)"

#: Backend macros, keyed by name without the `$__` prefix. F/T: the range in unix seconds,
#: Fms/Tms: in milliseconds, I: the interval in seconds (at least 1).
MACROS: dict[str, Macro] = {
    "timeFilter": Macro(1, _time_filter, "c >= toDateTime(F) AND c <= toDateTime(T)", _PLUGIN),
    "timeFilter_ms": Macro(
        1, _time_filter_ms, "c >= fromUnixTimestamp64Milli(Fms) AND c <= fromUnixTimestamp64Milli(Tms)", _PLUGIN
    ),
    "dateFilter": Macro(1, _date_filter, "c >= toDate('YYYY-MM-DD') AND c <= toDate('YYYY-MM-DD')", _PLUGIN),
    "dateTimeFilter": Macro(
        2,
        _date_time_filter,
        "(d >= toDate(..) AND d <= toDate(..)) AND (t >= toDateTime(F) AND t <= toDateTime(T))",
        _PLUGIN,
    ),
    "dt": Macro(2, _date_time_filter, "alias of $__dateTimeFilter", _PLUGIN),
    "fromTime": Macro(None, lambda c, a: f"toDateTime({c.from_s})", "toDateTime(F)", _PLUGIN),
    "toTime": Macro(None, lambda c, a: f"toDateTime({c.to_s})", "toDateTime(T)", _PLUGIN),
    "fromTime_ms": Macro(
        None, lambda c, a: f"fromUnixTimestamp64Milli({c.from_ms})", "fromUnixTimestamp64Milli(Fms)", _PLUGIN
    ),
    "toTime_ms": Macro(
        None, lambda c, a: f"fromUnixTimestamp64Milli({c.to_ms})", "fromUnixTimestamp64Milli(Tms)", _PLUGIN
    ),
    "timeInterval": Macro(1, _time_interval, "toStartOfInterval(toDateTime(c), INTERVAL I second)", _PLUGIN),
    "timeInterval_ms": Macro(
        1, _time_interval_ms, "toStartOfInterval(toDateTime64(c, 3), INTERVAL I*1000 millisecond)", _PLUGIN
    ),
    "interval_s": Macro(None, lambda c, a: str(max(c.interval_s, 1)), "I", _PLUGIN),
    "timeFrom": Macro(1, lambda c, a: f"{a[0]} >= toDateTime({c.from_s})", "c >= toDateTime(F)", _DOCS),
    "timeTo": Macro(1, lambda c, a: f"{a[0]} <= toDateTime({c.to_s})", "c <= toDateTime(T)", _DOCS),
    "timeGroup": Macro(2, _time_group, "toStartOfInterval(toDateTime(c), INTERVAL <period in s> second)", _DOCS),
    "table": Macro(None, _table, "the target's `table` field", _SQLUTIL),
    "column": Macro(None, _column, "the target's `column` field", _SQLUTIL),
}

#: Statement macros rewrite the whole query; we do not reimplement them, so panels must not use them.
_UNSUPPORTED = {"columns", "rateColumns", "perSecondColumns", "increaseColumns", "lttb"}

#: Grafana's global variables, interpolated by the frontend before the plugin sees the query.
_GLOBALS = {"__from", "__to", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}

# Grafana's templateSrv variableRegex (ASCII \w, as in JavaScript).
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}", re.ASCII)
_MACRO = re.compile(r"\$__(\w+)", re.ASCII)
_CONDITIONAL_ALL = "$__conditionalAll("
# CHDatasource.applyConditionalAll's regex for the variable named in the second argument.
_CONDITIONAL_VAR = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", re.ASCII)
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def expand(
    sql: str,
    *,
    time_from: datetime,
    time_to: datetime,
    interval_s: int,
    variables: Mapping[str, VariableValue],
    table: str | None = None,
    column: str | None = None,
) -> str:
    """Return `sql` with conditionalAll, template variables and plugin macros expanded.

    `variables` maps a variable name to its current value: a string for a single-value variable,
    a list for a multi-value one, `ALL` ("$__all") when All is selected. Naive datetimes are UTC.
    `table`/`column` feed `$__table`/`$__column` (a target's builder fields; raw SQL has none).
    """
    ctx = _Context(_utc(time_from), _utc(time_to), int(interval_s), table, column)
    if ctx.time_to < ctx.time_from:
        raise MacroError(f"time range ends before it starts: {ctx.time_from} > {ctx.time_to}")
    sql = _apply_conditional_all(sql, variables)
    sql = _interpolate(sql, variables, ctx)
    return _apply_macros(sql, ctx)


def format_interval(seconds: float) -> str:
    """Grafana's rangeUtil.secondsToHms, which renders $__interval: the largest whole unit only."""
    years = math.floor(seconds / 31536000)
    if years:
        return f"{years}y"
    days = math.floor((seconds % 31536000) / 86400)
    if days:
        return f"{days}d"
    hours = math.floor((seconds % 31536000 % 86400) / 3600)
    if hours:
        return f"{hours}h"
    minutes = math.floor((seconds % 31536000 % 86400 % 3600) / 60)
    if minutes:
        return f"{minutes}m"
    whole = math.floor(seconds % 31536000 % 86400 % 3600 % 60)
    if whole:
        return f"{whole}s"
    ms = math.floor(seconds * 1000)
    return f"{ms}ms" if ms else "less than a millisecond"


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _duration_seconds(text: str) -> int:
    match = _DURATION.match(text.strip().strip("'\""))
    if not match:
        raise MacroError(f"$__timeGroup period {text!r} is not a duration like 30s, 5m, 1h, 1d")
    return max(int(int(match[1]) * _DURATION_SECONDS[match[2]]), 1)


def _split_args(sql: str, open_index: int, macro: str) -> tuple[list[str], int]:
    """Arguments of the call whose '(' is at `open_index`, split at top-level commas; and the index after ')'."""
    depth = 0
    start = open_index + 1
    args: list[str] = []
    for i in range(open_index, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise MacroError(f"{macro}: missing ')' after its arguments")


def _current(variables: Mapping[str, VariableValue], name: str) -> VariableValue:
    if name not in variables:
        known = ", ".join(sorted(variables)) or "none"
        raise MacroError(f"unknown template variable ${name} (variables given: {known})")
    return variables[name]


def _as_text(value: VariableValue) -> str:
    # JavaScript's Array.prototype.toString, which applyConditionalAll uses on the current value.
    return value if isinstance(value, str) else ",".join(value)


def _apply_conditional_all(sql: str, variables: Mapping[str, VariableValue]) -> str:
    # Innermost/last first, as the plugin does (lastIndexOf), so nested calls resolve inside out.
    index = sql.rfind(_CONDITIONAL_ALL)
    while index != -1:
        args, end = _split_args(sql, index + len(_CONDITIONAL_ALL) - 1, "$__conditionalAll")
        if len(args) != 2:
            raise MacroError(f"$__conditionalAll takes 2 arguments (condition, $variable), got {len(args)}")
        phrase = args[0]
        named = _CONDITIONAL_VAR.search(args[1].strip())
        if named and _as_text(_current(variables, named[0])) in ("", ALL):
            phrase = "1=1"
        sql = sql[:index] + phrase + sql[end:]
        index = sql.rfind(_CONDITIONAL_ALL)
    return sql


def _interpolate(sql: str, variables: Mapping[str, VariableValue], ctx: _Context) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[4]
        fmt = match[3] or match[6]
        if match[5]:
            raise MacroError(f"{match[0]}: field paths of object variables are not supported")
        if name.startswith("__") and name not in _GLOBALS:
            return match[0]  # a plugin macro: expanded by the backend step
        if name in _GLOBALS:
            return _format_global(name, fmt, ctx)
        if match[2] and name not in variables:
            return match[0]  # [[x]] may well be a ClickHouse nested array literal
        value = _current(variables, name)
        if _as_text(value) == ALL or (not isinstance(value, str) and ALL in value):
            raise MacroError(
                f"{match[0]}: ${name} is All; Grafana would substitute every option, which this "
                "expander does not know. Wrap the condition in $__conditionalAll(..., $" + name + ") "
                "or pass the concrete values."
            )
        return _format(value, fmt, name)

    return _VARIABLE.sub(replace, sql)


def _format_global(name: str, fmt: str | None, ctx: _Context) -> str:
    range_ms = ctx.to_ms - ctx.from_ms
    if name in ("__from", "__to"):
        ms = ctx.from_ms if name == "__from" else ctx.to_ms
        if not fmt:
            return str(ms)
        kind, _, arg = fmt.partition(":")
        if kind != "date":
            return _format(str(ms), fmt, name)
        if arg in ("", "iso"):
            moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        if arg == "ms":
            return str(ms)
        if arg == "seconds":
            return str(round(ms / 1000))
        raise MacroError(f"${{{name}:{fmt}}}: only the date, date:iso, date:ms and date:seconds formats are supported")
    value = {
        "__interval": format_interval(max(ctx.interval_s, 1)),
        "__interval_ms": str(max(ctx.interval_s, 1) * 1000),
        "__range": f"{range_ms // 1000}s",
        "__range_s": str(range_ms // 1000),
        "__range_ms": str(range_ms),
    }[name]
    return _format(value, fmt, name) if fmt else value


def _regex_escape(value: str) -> str:
    # kbn.regexEscape
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m[0], value)


def _percent_encode(value: str) -> str:
    # encodeURIComponent plus the sub-delims !'()* (Grafana's encodeURIComponentStrict).
    return quote(value, safe="-_.~")


def _lucene_escape(value: str) -> str:
    try:
        float(value)
        return value
    except ValueError:
        return re.sub(r'([!*+\-=<>\s&|()\[\]{}^~?:\\/"])', r"\\\1", value)


def _format(value: VariableValue, fmt: str | None, name: str) -> str:
    """Grafana's formatRegistry (explicit format) or the ClickHouse plugin's default formatter."""
    values = [value] if isinstance(value, str) else list(value)
    multi = not isinstance(value, str)
    if not fmt:
        # CHDatasource.format: arrays become 'a','b' (unescaped); a plain value goes in as is.
        return "'" + "','".join(values) + "'" if multi else values[0]
    kind = fmt.split(":", 1)[0]
    joined = ",".join(values)
    if kind == "raw" or kind == "text":
        return joined
    if kind == "csv":
        return joined
    if kind == "pipe":
        return "|".join(values)
    if kind == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if kind == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if kind == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if kind == "json":
        return json.dumps(value if isinstance(value, str) else values, separators=(",", ":"), ensure_ascii=False)
    if kind == "regex":
        escaped = [_regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if kind == "glob":
        return "{" + joined + "}" if multi and len(values) > 1 else joined
    if kind == "distributed":
        return ",".join(v if i == 0 else f"{name}={v}" for i, v in enumerate(values))
    if kind == "percentencode":
        return _percent_encode("{" + joined + "}" if multi else values[0])
    if kind == "queryparam":
        return "&".join(f"var-{name}={_percent_encode(v)}" for v in values)
    if kind == "lucene":
        if not multi:
            return _lucene_escape(values[0])
        if not values:
            return "__empty__"
        return "(" + " OR ".join('"' + _lucene_escape(v) + '"' for v in values) + ")"
    raise MacroError(f"${{{name}:{fmt}}}: unknown format {kind!r} (Grafana would silently fall back to glob)")


def _apply_macros(sql: str, ctx: _Context) -> str:
    out: list[str] = []
    pos = 0
    for match in _MACRO.finditer(sql):
        if match.start() < pos:
            continue  # inside the arguments of a macro already expanded
        name = match[1]
        token = f"$__{name}"
        if name in _UNSUPPORTED:
            raise MacroError(f"{token} is a statement macro this expander does not implement")
        macro = MACROS.get(name)
        if macro is None:
            known = ", ".join(f"$__{n}" for n in sorted(MACROS))
            raise MacroError(f"unknown macro {token} (known: {known}, $__conditionalAll)")
        end = match.end()
        args: list[str] = []
        # sqlutil reads arguments only from a '(' right after the name (parseArgs).
        if end < len(sql) and sql[end] == "(":
            raw_args, end = _split_args(sql, end, token)
            args = [a.strip() for a in raw_args]
            args = [] if args == [""] else args
        if macro.arity is not None:
            if len(args) != macro.arity:
                raise MacroError(f"{token} expects {macro.arity} argument(s), got {len(args)}")
            # Expand macros nested in the arguments first (e.g. $__timeInterval(...) inside one).
            args = [_apply_macros(a, ctx) for a in args]
        out.append(sql[pos : match.start()])
        out.append(macro.render(ctx, args))
        pos = end
    out.append(sql[pos:])
    return "".join(out)
