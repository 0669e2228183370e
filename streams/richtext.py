"""Rich output of data that is not ours (comment bodies, author names, query results, file names).

Rich reads a plain string as console markup (`[bold]`, `[/]`) and emoji codes (`:x:`): a comment
containing `[/]` would crash the printer, and `:x:` would print as an emoji. Data therefore goes
into tables as `Text` objects (never parsed) and into messages through :func:`escape`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.markup import escape as _escape_markup
from rich.table import Table
from rich.text import Text


def literal(value: object, null: str = "NULL") -> Text:
    """`value` as text that Rich prints exactly (no markup, no emoji codes)."""
    return Text(null if value is None else str(value))


def escape(value: object) -> str:
    """`value` for use inside a markup string (`f"[red]{escape(x)}[/]"`): printed as is.

    Emoji codes are left alone here: print such strings on a console with ``emoji=False``.
    """
    return _escape_markup(str(value))


def data_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, null: str = "NULL", **options: Any) -> Table:
    """A table whose headers and cells are printed literally whatever they contain."""
    table = Table(**options)
    for column in columns:
        table.add_column(literal(column))
    for row in rows:
        table.add_row(*(literal(v, null) for v in row))
    return table
