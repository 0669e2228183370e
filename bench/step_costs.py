"""Cost of the pipeline's pure steps per comment, with no Kafka and no framework at all: the floor
under what `streams worker` can reach on one core (run on demand: `make bench-steps`).

Runs the steps of streams/steps/ (and the sink's row mapping) on the same seeded workload as
bench/pipeline.py, in one process, REPEATS times; reports the median and spread of microseconds
per comment per step and writes bench/out/step_costs.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import msgspec  # noqa: E402
from pipeline import generate, machine  # noqa: E402

from streams.cli import freeze_long_lived_objects  # noqa: E402
from streams.clickhouse.rows import comment_row  # noqa: E402
from streams.enrich.flags import FlagScorer  # noqa: E402
from streams.enrich.language import detect_languages  # noqa: E402
from streams.models import EnrichedComment  # noqa: E402
from streams.settings import load_settings  # noqa: E402
from streams.steps import authors, ingest  # noqa: E402
from streams.steps.enrich import EnrichStep  # noqa: E402
from streams.steps.windows import FanOut, WindowDelivery, apply, window_config  # noqa: E402
from streams.windows.engine import EngineOutput, WindowEngine  # noqa: E402

OUT = ROOT / "bench" / "out" / "step_costs.json"


def one_run(values: list[bytes], scorer: FlagScorer, partitions: int) -> tuple[int, dict[str, float]]:
    seconds: dict[str, float] = {}

    def clock(name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = fn()
        seconds[name] = time.perf_counter() - started
        return result

    out = clock("ingest (validate)", lambda: ingest.validate_batch(values, partitions=partitions))
    defaults = load_settings({"STREAMS_PARTITIONS": str(partitions)})
    step = EnrichStep(
        {},
        {},
        scorer,
        partitions,
        retention_ms=int(defaults.state_retention_seconds * 1000),
        quiet_ms=int(defaults.state_quiet_seconds * 1000),
    )
    enriched = clock(
        "enrich (tree, features, language, flags, fan-out)",
        lambda: step.run(sorted(out.valid.items()), now_ms=int(time.time() * 1000)),
    )
    rows = clock("authors", lambda: authors.count({}, enriched.rows))
    encoded = clock("envelope encode", lambda: msgspec.json.encode(rows))
    decoded = clock("envelope decode", lambda: msgspec.json.Decoder(list[EnrichedComment]).decode(encoded))
    clock("sink rows (comment_row)", lambda: [comment_row(r) for r in decoded])
    # The worker's window settings at their defaults, with this run's partition count.
    config = window_config(defaults)
    engine = WindowEngine(config, {})
    fan_out: FanOut = enriched.fan_out

    def windows() -> EngineOutput:
        emitted = EngineOutput()
        for partition, deliveries in fan_out.by_partition.items():
            apply(engine, partition, deliveries, 0, emitted)
        for partition in fan_out.by_partition:  # then idle: every window is emitted, as in the worker
            apply(engine, partition, [WindowDelivery(tick_ms=1)], 10**12, emitted)
        return emitted

    clock("windows (engine, every window emitted)", windows)
    return len(rows), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", "-n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    values = [value for _, value in generate(args.events, 12).messages]
    scorer = FlagScorer()
    scorer.warm_up()
    detect_languages(["warm up"])
    freeze_long_lived_objects()  # the worker's garbage collection settings (streams.cli)
    runs = [one_run(values, scorer, args.partitions) for _ in range(args.repeats)]
    comments = runs[0][0]
    steps = list(runs[0][1])
    per_step = {s: [r[1][s] * 1e6 / comments for r in runs] for s in steps}
    totals = [sum(r[1].values()) * 1e6 / comments for r in runs]
    print(f"{comments:,} comments from {args.events:,} events, {args.repeats} runs (median [min-max] us per comment)")
    for name, us in per_step.items():
        print(f"  {name:52s} {statistics.median(us):8.1f} [{min(us):.1f}-{max(us):.1f}]")
    total = statistics.median(totals)
    spread = f"[{min(totals):.1f}-{max(totals):.1f}]"
    print(f"  {'total':52s} {total:8.1f} {spread}  ->  {1e6 / total:,.0f} comments/s per core")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "events": args.events,
        "comments": comments,
        "repeats": args.repeats,
        "us_per_comment": {k: round(statistics.median(v), 1) for k, v in per_step.items()},
        "us_per_comment_total": round(total, 1),
        "spread_total": [round(min(totals), 1), round(max(totals), 1)],
        "machine": machine(),
    }
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
