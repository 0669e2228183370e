"""Is a SQL text a single read-only statement? Used before running ad-hoc SQL without --write."""

from __future__ import annotations

import re

READ_ONLY_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.S)


class WriteRefused(ValueError):
    pass


def check_read_only(sql: str) -> str:
    """Return the statement without a trailing ';' if it is one read-only statement, else raise."""
    bare = _STRINGS.sub("''", _COMMENTS.sub(" ", sql)).strip().rstrip(";").strip()
    if not bare:
        raise WriteRefused("empty query")
    if ";" in bare:
        raise WriteRefused("one statement at a time")
    keyword = bare.split(None, 1)[0].upper()
    if keyword not in READ_ONLY_KEYWORDS:
        raise WriteRefused(f"{keyword} changes data; pass --write to run it")
    if re.search(r"\bINTO\s+OUTFILE\b", bare, re.I):
        raise WriteRefused("INTO OUTFILE writes files; pass --write to run it")
    return sql.strip().rstrip(";").strip()
