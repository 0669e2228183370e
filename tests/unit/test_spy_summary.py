"""bench/spy_summary.py: py-spy's folded samples counted per agent and thread."""

from __future__ import annotations

import sys

from streams import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "bench"))

from spy_summary import bucket_of, samples

RAW = "\n".join(
    [
        "_run_module_as_main (<frozen runpy>:198);run_batches (streams/agents/runner.py:81);"
        "Enrich.handle (streams/agents/enrich.py:185);EnrichStep.run (streams/steps/enrich.py:106) 7",
        "Thread._bootstrap (threading.py:1002);_WorkItem.run (concurrent/futures/thread.py:58);"
        "ClickHouseWriter._run (streams/clickhouse/writer.py:80) 3",
        "Thread._bootstrap (threading.py:1002);ServiceThread._start_thread (mode/threads.py:211);"
        "EpollSelector.select (selectors.py:468) 2",
        "_run_module_as_main (<frozen runpy>:198);BaseEventLoop._run_once (asyncio/base_events.py:1922) 4",
        " 5",
        "",
        "garbage line",
    ]
)


def test_samples_reads_each_stack_and_its_count_and_skips_what_is_not_a_sample() -> None:
    read = list(samples(RAW.splitlines()))
    assert [count for _, count in read] == [7, 3, 2, 4, 5]
    assert read[0][0][-1] == "EnrichStep.run (streams/steps/enrich.py:106)"


def test_each_sample_lands_in_the_bucket_of_its_thread_or_agent() -> None:
    names = [bucket_of(frames) for frames, _ in samples(RAW.splitlines())]
    assert names == [
        "agent enrich",
        "executor threads (ClickHouse inserts, /sql)",
        "consumer thread (Faust's fetch loop)",
        "main thread, other (Faust, aiokafka, asyncio)",
        "no Python frame",
    ]
