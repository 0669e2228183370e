"""What the enrich step and the window engine write to their changelogs per comment, by key family
and batch size (run on demand: `python bench/state_writes.py`, never in `make test`).

Runs streams.steps.enrich, then the window engine on its fan-out (advancing per batch, as the
worker does), over the seeded workload of bench/pipeline.py in batches of each `--batch` size (raw
events per batch, as ingest cuts them), with the worker's write staging (one record per key per
batch: streams.windows.engine.WriteBuffer). Reports per key family (the prefix before the first
"|" or ":", see streams/enrich/thread.py and streams/windows/engine/store.py) the records, the
bytes and the encoding time per comment event, and the window engine's time and window rows per
event against the distinct windows they are (the share it emitted again as corrections). Families
whose values are whole sorted lists (`a`, `ba`, `rb`) are rewritten once per batch that touches
them, so their cost per event grows as batches shrink and as threads grow. Writes
bench/out/state_writes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import generate, machine  # noqa: E402

from streams.agents.tablestore import _faust_json  # noqa: E402
from streams.cli import freeze_long_lived_objects  # noqa: E402
from streams.enrich.flags import FlagScorer  # noqa: E402
from streams.settings import load_settings  # noqa: E402
from streams.steps import ingest  # noqa: E402
from streams.steps.enrich import EnrichStep  # noqa: E402
from streams.steps.windows import apply, window_config  # noqa: E402
from streams.windows.engine import EngineOutput, WindowEngine, WriteBuffer  # noqa: E402

OUT = ROOT / "bench" / "out" / "state_writes.json"


def persist(table: str, buffer: WriteBuffer, counts: Counter[str], sizes: Counter[str], seconds: Counter[str]) -> None:
    """Encode the batch's staged writes as `table`'s changelog would (tombstones cost no value), then
    apply them. Families are named with their table: the tables' prefixes overlap ("a|", "a:")."""
    for key, value in buffer.write_order():
        family = f"{table} {key.split('|', 1)[0].split(':', 1)[0]}"
        counts[family] += 1
        if value is not None:
            started = time.perf_counter()
            sizes[family] += len(_faust_json(value))
            seconds[family] += time.perf_counter() - started
    buffer.flush()


def one_size(values: list[bytes], batch: int, partitions: int, scorer: FlagScorer) -> dict[str, Any]:
    defaults = load_settings({"STREAMS_PARTITIONS": str(partitions)})
    tree, fingerprints, window_state = WriteBuffer({}), WriteBuffer({}), WriteBuffer({})
    engine = WindowEngine(window_config(defaults), window_state)
    step = EnrichStep(
        tree,
        fingerprints,
        scorer,
        partitions,
        retention_ms=int(defaults.state_retention_seconds * 1000),
        quiet_ms=int(defaults.state_quiet_seconds * 1000),
    )
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    window_seconds = 0.0
    window_rows = 0
    windows: set[tuple[str, str, Any]] = set()
    for start in range(0, len(values), batch):
        out = ingest.validate_batch(values[start : start + batch], partitions=partitions)
        now_ms = int(time.time() * 1000)
        enriched = step.run(sorted(out.valid.items()), now_ms=now_ms)
        persist("thread_state", tree, counts, sizes, seconds)
        persist("fingerprints", fingerprints, counts, sizes, seconds)
        fan_out = enriched.fan_out
        fan_out.add_progress(step.progress, set(), step.advanced_at, now_ms)
        emitted = EngineOutput()
        started = time.perf_counter()
        for partition, deliveries in fan_out.by_partition.items():
            apply(engine, partition, deliveries, now_ms, emitted)
        window_seconds += time.perf_counter() - started
        window_rows += len(emitted.windows)
        windows.update((row.kind, row.key, row.window_start) for row in emitted.windows)
        persist("window_state", window_state, counts, sizes, seconds)
    n = len(values)
    families = {
        family: {
            "records_per_event": round(counts[family] / n, 3),
            "bytes_per_event": round(sizes[family] / n, 1),
            "encode_us_per_event": round(seconds[family] * 1e6 / n, 2),
        }
        for family in sorted(counts, key=lambda f: -sizes[f])
    }
    return {
        "families": families,
        "window_engine_us_per_event": round(window_seconds * 1e6 / n, 1),
        "window_rows_per_event": round(window_rows / n, 4),
        "distinct_windows_per_event": round(len(windows) / n, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", "-n", type=int, default=100_000)
    parser.add_argument(
        "--batch", type=int, action="append", help="raw events per batch (repeatable; default 320, 2000)"
    )
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    values = [value for _, value in generate(args.events, 12).messages]
    scorer = FlagScorer()
    scorer.warm_up()
    freeze_long_lived_objects()  # the worker's garbage collection settings (streams.cli)
    by_batch: dict[str, Any] = {}
    for batch in args.batch or [320, 2000]:
        figures = by_batch[str(batch)] = one_size(values, batch, args.partitions, scorer)
        families = figures["families"]
        total_bytes = sum(f["bytes_per_event"] for f in families.values())
        total_us = sum(f["encode_us_per_event"] for f in families.values())
        print(
            f"batches of {batch:,} raw events: {total_bytes:,.0f} changelog bytes,"
            f" {total_us:.1f} us of encoding per event"
        )
        for family, each in families.items():
            print(
                f"  {family:16s} records {each['records_per_event']:5.2f}  bytes {each['bytes_per_event']:8.1f}"
                f"  encode us {each['encode_us_per_event']:6.2f}"
            )
        print(
            f"  window engine {figures['window_engine_us_per_event']} us per event;"
            f" {figures['window_rows_per_event']} window rows per event"
            f" for {figures['distinct_windows_per_event']} distinct windows"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "events": args.events,
        "partitions": args.partitions,
        "per_event_by_batch": by_batch,
        "machine": machine(),
    }
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
