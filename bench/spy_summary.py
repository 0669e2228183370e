"""Where a worker's time went, from a py-spy recording (run on demand, never in `make test`).

Record a running worker (`pip install py-spy` into the virtualenv first), e.g. during
`make bench-pipeline`:

    py-spy record -p <worker pid> -d 60 -r 50 -f raw -o worker.spy --gil --idle --nonblocking

then `python bench/spy_summary.py worker.spy --seconds 60 --rate 50`. With `--gil` py-spy keeps
only the thread holding the GIL, so the samples over the ones it could have taken say how busy the
worker's one core of Python was. Prints the share of each agent and thread, and the frames that
were on top most often (bench/RESULTS.md, sessions 18-19, has a reading of one).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

#: Where a sample is counted: the first of these its stack holds (threads first, then the agents).
BUCKETS: tuple[tuple[str, str], ...] = (
    ("ServiceThread._start_thread", "consumer thread (Faust's fetch loop)"),
    ("_WorkItem.run", "executor threads (ClickHouse inserts, /sql)"),
    ("Thread._bootstrap", "other threads"),
    ("Enrich.handle", "agent enrich"),
    ("Windows.handle", "agent windows"),
    ("Authors.handle", "agent authors"),
    ("clickhouse_sink.<locals>.handle", "agent sinks (row mapping)"),
    ("ingest (streams/agents/ingest.py", "agent ingest"),
)
_PATH_PREFIX = re.compile(r"\s*\(/[^)]*/(?:site-packages|streams|bench)/")


def samples(lines: Iterable[str]) -> Iterable[tuple[list[str], int]]:
    """(frames, count) per line of py-spy's raw (folded) output: `frame;frame;... count`."""
    for line in lines:
        line = line.rstrip()
        if not line or " " not in line:
            continue
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            yield stack.split(";"), int(count)


def bucket_of(frames: list[str]) -> str:
    stack = ";".join(frames)
    for needle, name in BUCKETS:
        if needle in stack:
            return name
    return "main thread, other (Faust, aiokafka, asyncio)" if any(f.strip() for f in frames) else "no Python frame"


def short(frame: str) -> str:
    return _PATH_PREFIX.sub(" (", frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", type=Path, help="py-spy record -f raw output")
    parser.add_argument("--seconds", type=float, default=0.0, help="how long it sampled (for the busy share)")
    parser.add_argument("--rate", type=float, default=100.0, help="py-spy's -r (samples per second)")
    parser.add_argument("--top", type=int, default=20, help="how many top-of-stack frames to list")
    args = parser.parse_args()
    buckets: Counter[str] = Counter()
    on_top: Counter[str] = Counter()
    total = 0
    with args.recording.open() as lines:
        for frames, count in samples(lines):
            total += count
            buckets[bucket_of(frames)] += count
            on_top[short(frames[-1]) if frames[-1].strip() else "(no Python frame)"] += count
    if not total:
        print("no samples")
        return 1
    if args.seconds > 0:
        possible = args.seconds * args.rate
        busy = f"{total / possible:.0%}"
        print(f"{total:,} samples of {possible:,.0f} possible: {busy} (the GIL's busy share with --gil)")
    print("share of the samples:")
    for name, count in buckets.most_common():
        print(f"  {count / total:6.1%}  {name}")
    print(f"top of stack (the {args.top} most frequent):")
    for frame, count in on_top.most_common(args.top):
        print(f"  {count / total:6.1%}  {frame[:150]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
