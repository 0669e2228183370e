"""How many BLAS threads the second-stage model should use (STREAMS_SECOND_STAGE_THREADS), with and
without other busy processes on the machine's cores (a worker beside it always is one).

Each measurement is a fresh process that re-scores the same N realistic bodies (bench/pipeline.py's
generator: 0-400 words, ~6% toxic, ~3% spam) in one call, as the second-stage agent does with a batch,
with its BLAS libraries limited to T threads; wall seconds and process CPU seconds are recorded. Busy
loops (pure Python, one process each) stand in for the worker and anything else on the cores.

    .venv/bin/python bench/second_stage_threads.py [--comments 400] [--repeats 3] [--loads 0,2,4]

Results: bench/out/second_stage_threads.json and a Markdown table on stdout (for bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "second_stage_threads.json"

#: One measurement, in a process of its own (the thread limit applies to the whole process).
PROBE = """
import json, sys, time
import threadpoolctl
sys.path.insert(0, {bench!r})
from pipeline import Body
import random
from streams.enrich.flags import load_moderation_config
from streams.enrich.flags.second_stage import SecondStageScorer
from streams.models import FlagResult

body = Body(random.Random(20261207))
texts = [t for t in (body.make("toxic" if i % 16 == 0 else "spam" if i % 33 == 0 else "clean")
         for i in range({n} * 2)) if t][:{n}]
scorer = SecondStageScorer(load_moderation_config())
empty = [FlagResult(scores={{}}, flags=[], reasons={{}}) for _ in texts]
scorer.rescore(texts[:8], empty[:8])  # load the model (and every BLAS library) first
threadpoolctl.threadpool_limits(limits={threads}, user_api="blas")
wall, cpu = time.perf_counter(), time.process_time()
scorer.rescore(texts, empty)
print(json.dumps({{"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "comments": len(texts)}}))
"""


def busy() -> None:  # pragma: no cover - a load generator
    while True:
        pass


def measure(threads: int, comments: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS_", "OMP_", "MKL_"))}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(bench=str(ROOT / "bench"), n=comments, threads=threads)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comments", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loads", default="0,2,4", help="busy processes beside the measurement, comma-separated")
    parser.add_argument("--threads", default="1,2", help="BLAS thread counts to compare, comma-separated")
    args = parser.parse_args()
    loads = [int(x) for x in args.loads.split(",")]
    thread_counts = [int(x) for x in args.threads.split(",")]
    rows = []
    for load in loads:
        loaders = [multiprocessing.Process(target=busy, daemon=True) for _ in range(load)]
        for p in loaders:
            p.start()
        try:
            for _ in range(args.repeats):  # interleaved, so that drift in the machine hits both alike
                for threads in thread_counts:
                    r = measure(threads, args.comments)
                    rows.append({"load": load, "threads": threads, **r})
                    print(f"load {load}, {threads} thread(s): {r['wall']:.2f} s wall", file=sys.stderr)
        finally:
            for p in loaders:
                p.terminate()
                p.join()
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "comments": args.comments,
        "rows": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    print(f"| busy processes | BLAS threads | wall s (median, min-max of {args.repeats}) | comments/s | CPU s |")
    print("|---:|---:|---|---:|---:|")
    for load in loads:
        for threads in thread_counts:
            walls = [r["wall"] for r in rows if r["load"] == load and r["threads"] == threads]
            cpus = [r["cpu"] for r in rows if r["load"] == load and r["threads"] == threads]
            median = statistics.median(walls)
            print(
                f"| {load} | {threads} | {median:.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
                f"{args.comments / median:,.0f} | {statistics.median(cpus):.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
