"""Named, documented analytics queries: schemas/queries/NAME.sql, run with parameters bound server-side.

Each file opens with a header of `--` comment lines, then the SQL:

    -- title: Toxicity by reply depth
    -- description: Mean and p90 toxicity at each reply depth ...
    --   (an indented `--` line continues the previous field)
    -- param: since | DateTime64(3, 'UTC') | 1970-01-01 00:00:00 | earliest posted_at included
    -- param: author | String | required | the author's name

A parameter line is `name | ClickHouse type | default | description`. The default is the text a
user would type on the command line; `required` means there is none, and `''` is the empty string.
The SQL refers to parameters as `{name:Type}` (ClickHouse server-side binding, so values are never
spliced into the SQL), with exactly the declared type; loading a query checks that they agree.

    query = load_query("toxicity_by_depth")
    sql, params = query.bind({"max_depth": "5"})
    client.query(sql, parameters=params)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

from streams import PROJECT_ROOT

QUERIES_DIR = PROJECT_ROOT / "schemas" / "queries"

__all__ = ["QUERIES_DIR", "NamedQuery", "QueryError", "QueryParam", "list_queries", "load_query"]


class QueryError(ValueError):
    """A named query is unknown or malformed, or a parameter value does not fit its type."""


_PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_INT_RANGES = {f"{sign}Int{bits}": bits for sign in ("", "U") for bits in (8, 16, 32, 64, 128, 256)}
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _normalize_type(type_: str) -> str:
    return re.sub(r"\s+", "", type_)


def _unwrap(type_: str) -> str:
    """The value type inside LowCardinality(...) / Nullable(...)."""
    match = re.fullmatch(r"(?:LowCardinality|Nullable)\((.*)\)", type_)
    return _unwrap(match[1]) if match else type_


def _parse_int(text: str, type_: str) -> int:
    bits = _INT_RANGES[type_]
    value = int(text.strip().replace("_", ""))
    low, high = (0, 2**bits - 1) if type_.startswith("U") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if not low <= value <= high:
        raise ValueError(f"out of range for {type_} ({low}..{high})")
    return value


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true/false, yes/no or 1/0")


def _parse_datetime(text: str) -> datetime:
    """ISO 8601 date or date-time; 'Z' or an offset accepted; without one it is UTC."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    parsed = datetime.fromisoformat(cleaned)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _converter(type_: str) -> Callable[[str], object]:
    inner = _unwrap(_normalize_type(type_))
    if inner in ("String", "UUID") or inner.startswith("FixedString("):
        return lambda text: text
    if inner in _INT_RANGES:
        return lambda text: _parse_int(text, inner)
    if inner in ("Float32", "Float64"):
        return lambda text: float(text.strip())
    if inner == "Bool":
        return _parse_bool
    if inner in ("Date", "Date32"):
        return lambda text: date.fromisoformat(text.strip())
    if inner == "DateTime" or inner.startswith(("DateTime(", "DateTime64(")):
        return _parse_datetime
    array = re.fullmatch(r"Array\((.*)\)", inner)
    if array:
        element = _converter(array[1])
        # Comma-separated on the command line; an empty string is the empty array.
        return lambda text: [element(part.strip()) for part in text.split(",")] if text.strip() else []
    raise QueryError(f"parameter type {type_!r} is not supported by named queries")


@dataclass(frozen=True)
class QueryParam:
    name: str
    type: str  # as written in the SQL placeholders, e.g. DateTime64(3, 'UTC')
    default: str | None  # command-line text; None when required
    description: str

    @property
    def required(self) -> bool:
        return self.default is None

    def convert(self, text: str) -> object:
        """The Python value for `text` (command-line form), checked against the declared type."""
        try:
            return _converter(self.type)(text)
        except QueryError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            raise QueryError(f"parameter {self.name}: {text!r} is not a valid {self.type} ({exc})") from None


@dataclass(frozen=True)
class NamedQuery:
    name: str
    title: str
    description: str
    params: tuple[QueryParam, ...]
    sql: str  # the body, without the header comments
    path: Path

    def param(self, name: str) -> QueryParam:
        for p in self.params:
            if p.name == name:
                return p
        raise QueryError(f"query {self.name} has no parameter {name!r} (parameters: {self._param_names()})")

    def bind(self, params: Mapping[str, str]) -> tuple[str, dict[str, object]]:
        """The SQL and the typed values of every parameter: given ones converted, the rest defaulted."""
        unknown = sorted(set(params) - {p.name for p in self.params})
        if unknown:
            raise QueryError(
                f"query {self.name} has no parameter {', '.join(unknown)} (parameters: {self._param_names()})"
            )
        values: dict[str, object] = {}
        for p in self.params:
            if p.name in params:
                values[p.name] = p.convert(params[p.name])
            elif p.default is not None:
                values[p.name] = p.convert(p.default)
            else:
                raise QueryError(f"query {self.name} needs --param {p.name}=<{p.type}>: {p.description}")
        return self.sql, values

    def _param_names(self) -> str:
        return ", ".join(p.name for p in self.params) or "none"


def _parse_default(text: str) -> str | None:
    if text == "required":
        return None
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return text


def _parse_param(value: str, path: Path, line: int, params: list[QueryParam]) -> QueryParam:
    parts = [part.strip() for part in value.split("|")]
    if len(parts) != 4 or not parts[0]:
        raise QueryError(f"{path}:{line}: a param line is `-- param: name | Type | default | description`")
    name, type_, default, description = parts
    if name in {p.name for p in params}:
        raise QueryError(f"{path}:{line}: parameter {name} declared twice")
    param = QueryParam(name, type_, _parse_default(default), description)
    try:
        _converter(param.type)
        if param.default is not None:
            param.convert(param.default)
    except QueryError as exc:
        raise QueryError(f"{path}:{line}: {exc}") from None
    return param


def parse(text: str, name: str, path: Path) -> NamedQuery:
    """Parse and validate one query file's text (see the module docstring for the format)."""
    fields: dict[str, str] = {}
    params: list[QueryParam] = []
    lines = text.splitlines()
    body_start = len(lines)
    last: str | None = None
    for i, line in enumerate(lines):
        if not line.startswith("--"):
            body_start = i
            break
        content = line[2:]
        if not content.strip():
            last = None
            continue
        if content.startswith("  ") and last is not None:
            # "--   more text": continues the previous field.
            if last == "param":
                params[-1] = replace(params[-1], description=f"{params[-1].description} {content.strip()}")
            else:
                fields[last] = f"{fields[last]} {content.strip()}"
            continue
        key, sep, value = content.strip().partition(":")
        if not sep:
            raise QueryError(f"{path}:{i + 1}: a header line is `-- key: value` (title, description, param)")
        key, value = key.strip(), value.strip()
        if key == "param":
            params.append(_parse_param(value, path, i + 1, params))
        else:
            fields[key] = value
        last = key
    sql = "\n".join(lines[body_start:]).strip()
    for required in ("title", "description"):
        if not fields.get(required):
            raise QueryError(f"{path}: the header needs a `-- {required}:` line")
    if not sql:
        raise QueryError(f"{path}: no SQL after the header")
    declared = {p.name: _normalize_type(p.type) for p in params}
    used: set[str] = set()
    for placeholder, type_ in _PLACEHOLDER.findall(sql):
        if placeholder not in declared:
            raise QueryError(f"{path}: {{{placeholder}:{type_}}} is used but not declared in the header")
        if _normalize_type(type_) != declared[placeholder]:
            raise QueryError(
                f"{path}: {{{placeholder}:{type_}}} does not match the declared type "
                f"{next(p.type for p in params if p.name == placeholder)}"
            )
        used.add(placeholder)
    unused = [p.name for p in params if p.name not in used]
    if unused:
        raise QueryError(f"{path}: declared but unused parameter(s): {', '.join(unused)}")
    return NamedQuery(name, fields["title"], fields["description"], tuple(params), sql, path)


def _path(name: str, directory: Path) -> Path:
    return directory / f"{name}.sql"


def list_queries(directory: Path = QUERIES_DIR) -> list[NamedQuery]:
    """Every named query, sorted by name."""
    return [load_query(path.stem, directory) for path in sorted(directory.glob("*.sql"))]


def load_query(name: str, directory: Path = QUERIES_DIR) -> NamedQuery:
    """The query in `directory/name.sql`; an unknown name lists the available ones."""
    path = _path(name, directory)
    if not _NAME.match(name) or not path.is_file():
        available = ", ".join(sorted(p.stem for p in directory.glob("*.sql"))) or "none"
        raise QueryError(f"no named query {name!r}; available: {available}")
    return parse(path.read_text(encoding="utf-8"), name, path)
