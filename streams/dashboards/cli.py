"""`python -m streams.dashboards --write | --check`: write the dashboards' JSON files, or find stale ones."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from streams.dashboards.catalog import dashboards
from streams.dashboards.model import DASHBOARDS_DIR
from streams.dashboards.render import to_json


def write(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in dashboards():
        path = directory / dashboard.filename
        path.write_text(to_json(dashboard), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """Dashboard files that are missing or differ from what the builder generates."""
    out = []
    for dashboard in dashboards():
        path = directory / dashboard.filename
        if not path.exists() or path.read_text(encoding="utf-8") != to_json(dashboard):
            out.append(path)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from streams import dashboards as package  # its docstring describes the command

    description = (package.__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m streams.dashboards", description=description)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate dashboards/*.json")
    mode.add_argument("--check", action="store_true", help="fail when dashboards/*.json are not current")
    parser.add_argument("--dir", type=Path, default=DASHBOARDS_DIR, help="dashboards directory")
    args = parser.parse_args(argv)
    if args.write:
        for path in write(args.dir):
            print(f"wrote {path}")
        return 0
    out_of_date = stale(args.dir)
    for path in out_of_date:
        print(f"{path} is not current: run `python -m streams.dashboards --write`", file=sys.stderr)
    return 1 if out_of_date else 0
