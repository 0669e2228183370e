"""`streams feed` throughput per source format: parse only, and produce into the broker (acks=all).

    KAFKA_PORT=9492 .venv/bin/python bench/sources_feed.py [--records 50000]

Each format gets a generated file of N records (built from the test fixtures' shapes, bodies of
about 200 characters). "parse" is `streams feed --dry-run` (parse + schema check, no Kafka);
"feed" runs streams.feed.feed into a running local broker (topics with a fresh prefix) and counts
only messages the broker acknowledged. Results go to bench/SOURCES_RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import zstandard

from streams import PROJECT_ROOT
from streams.feed import dry_run, feed
from streams.settings import load_settings
from streams.sources.registry import parse_source

BODY = ("A comment body of about two hundred characters, with some words &amp; an entity, " * 3)[:200]


def reddit(n: int) -> bytes:
    lines = []
    for i in range(n):
        parent = f"t3_th{i // 50}" if i % 3 == 0 else f"t1_c{i - 1}"
        lines.append(
            json.dumps(
                {
                    "id": f"c{i}",
                    "author": f"user{i % 997}",
                    "body": BODY,
                    "created_utc": 1706745600 + i,
                    "edited": False,
                    "link_id": f"t3_th{i // 50}",
                    "parent_id": parent,
                    "subreddit": "bench",
                    "permalink": f"/r/bench/comments/th{i // 50}/x/c{i}/",
                    "score": 1,
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def reddit_zst(n: int) -> bytes:
    params = zstandard.ZstdCompressionParameters(window_log=31, enable_ldm=True)
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(buf, closefd=False) as w:
        w.write(reddit(n))
    return buf.getvalue()


def hackernews(n: int) -> bytes:
    lines = []
    for i in range(n):
        if i % 50 == 0:
            item = {"id": i, "type": "story", "by": "op", "time": 1175714200 + i, "title": "Story"}
        else:
            parent = i - 1 if i % 3 else (i // 50) * 50
            item = {"id": i, "type": "comment", "by": f"u{i % 997}", "time": 1175714200 + i, "parent": parent}
            item["text"] = "<p>" + BODY.replace("&amp;", "&#x27;")
        lines.append(json.dumps(item))
    return ("\n".join(lines) + "\n").encode()


def disqus(n: int) -> bytes:
    out = ['<?xml version="1.0"?>\n<disqus xmlns="http://disqus.com" xmlns:dsq="http://disqus.com/disqus-internals">']
    for t in range(n // 50 + 1):
        out.append(f'<thread dsq:id="t{t}"><link>https://x.example/{t}</link><title>T{t}</title></thread>')
    for i in range(n):
        parent = f'<parent dsq:id="p{i - 1}"/>' if i % 3 else ""
        out.append(
            f'<post dsq:id="p{i}"><message><![CDATA[<p>{BODY}</p>]]></message>'
            f"<createdAt>2020-01-01T09:00:00Z</createdAt><isDeleted>false</isDeleted><isSpam>false</isSpam>"
            f'<author><name>user{i % 997}</name></author><thread dsq:id="t{i // 50}"/>{parent}</post>'
        )
    out.append("</disqus>\n")
    return "\n".join(out).encode()


def wordpress(n: int) -> bytes:
    out = [
        '<?xml version="1.0"?>\n<rss version="2.0" xmlns:wp="http://wordpress.org/export/1.2/"><channel>',
        "<link>https://blog.example</link>",
    ]
    for i in range(n):
        if i % 50 == 0:
            if i:
                out.append("</item>")
            out.append(f"<item><title>Post {i // 50}</title><wp:post_id>{i // 50}</wp:post_id>")
        out.append(
            f"<wp:comment><wp:comment_id>{i}</wp:comment_id><wp:comment_author>user{i % 997}</wp:comment_author>"
            f"<wp:comment_date_gmt>2019-01-02 12:00:00</wp:comment_date_gmt>"
            f"<wp:comment_content><![CDATA[{BODY}]]></wp:comment_content><wp:comment_approved>1</wp:comment_approved>"
            f"<wp:comment_parent>{i - 1 if i % 3 else 0}</wp:comment_parent></wp:comment>"
        )
    out.append("</item></channel></rss>\n")
    return "\n".join(out).encode()


def discourse(n: int) -> bytes:
    posts = [
        {
            "id": i,
            "post_number": i + 1,
            "username": f"u{i % 997}",
            "created_at": "2021-06-01T10:00:00.000Z",
            "cooked": f"<p>{BODY}</p>",
            "reply_to_post_number": i if i % 3 else None,
            "topic_id": 1,
            "version": 1,
        }
        for i in range(n)
    ]
    return json.dumps({"id": 1, "title": "Topic", "post_stream": {"posts": posts}}).encode()


def commento(n: int) -> bytes:
    comments = [
        {
            "commentHex": f"h{i}",
            "domain": "site.example",
            "url": f"/p/{i // 50}",
            "commenterHex": f"c{i % 97}",
            "markdown": BODY,
            "parentHex": f"h{i - 1}" if i % 3 else "root",
            "state": "approved",
            "creationDate": "2022-02-02T10:00:00Z",
            "deleted": False,
        }
        for i in range(n)
    ]
    commenters = [{"commenterHex": f"c{i}", "name": f"name{i}"} for i in range(97)]
    return json.dumps({"version": 1, "comments": comments, "commenters": commenters}).encode()


def mastodon(n: int) -> bytes:
    statuses = [
        {
            "id": str(1000 + i),
            "created_at": "2023-05-28T15:20:18.907Z",
            "in_reply_to_id": str(999 + i) if i else None,
            "uri": f"https://social.example/users/u/statuses/{1000 + i}",
            "url": f"https://social.example/@u/{1000 + i}",
            "content": f"<p>{BODY}</p>",
            "spoiler_text": "",
            "account": {"acct": f"u{i % 97}", "username": f"u{i % 97}"},
        }
        for i in range(n)
    ]
    return json.dumps({"ancestors": statuses[:1], "descendants": statuses[1:]}).encode()


def csv_rows(n: int) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "parent", "author", "body", "posted_at", "thread"])
    for i in range(n):
        w.writerow([i, i - 1 if i % 3 else "", f"u{i % 997}", BODY, 1680350400 + i, i // 50])
    return buf.getvalue().encode()


def jsonl(n: int) -> bytes:
    lines = [
        json.dumps(
            {
                "event_id": f"e-{i}",
                "source": "bench",
                "thread_id": f"t{i // 50}",
                "comment_id": f"c-{i}",
                "author": f"u{i % 997}",
                "posted_at": "2024-01-01T00:00:00Z",
                "body": BODY,
            }
        )
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


GENERATORS: dict[str, tuple[str, Callable[[int], bytes], dict[str, object]]] = {
    "reddit": ("RC.ndjson", reddit, {}),
    "reddit (.zst, --long=31)": ("RC.zst", reddit_zst, {}),
    "hackernews": ("hn.ndjson", hackernews, {}),
    "disqus": ("disqus.xml", disqus, {}),
    "wordpress": ("wxr.xml", wordpress, {}),
    "discourse": ("topic.json", discourse, {}),
    "commento": ("commento.json", commento, {}),
    "mastodon": ("context.json", mastodon, {}),
    "csv": (
        "comments.csv",
        csv_rows,
        {"column_map": {"comment_id": "id", "parent_id": "parent", "thread_id": "thread"}},
    ),
    "jsonl (reference)": ("events.jsonl", jsonl, {}),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    n = args.records
    port = os.environ.get("KAFKA_PORT", "9092")
    settings = load_settings(
        {
            "STREAMS_BROKER": f"127.0.0.1:{port}",
            "STREAMS_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:8]}.",
            "STREAMS_PARTITIONS": "2",
        }
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (name, make, kw) in GENERATORS.items():
            path = Path(tmp) / name
            path.write_bytes(make(n))
            size = path.stat().st_size
            started = time.perf_counter()
            parsed = dry_run(parse_source(path, **kw))  # type: ignore[arg-type]
            parse_s = time.perf_counter() - started
            assert parsed.sent == n and parsed.bad == 0, (label, parsed)
            started = time.perf_counter()
            stats = asyncio.run(feed(settings, parse_source(path, **kw)))  # type: ignore[arg-type]
            feed_s = time.perf_counter() - started
            assert stats.acked == n, (label, stats)
            rows.append((label, size, n / parse_s, n / feed_s))
            print(
                f"{label:26} {size / 1e6:7.1f} MB  parse {n / parse_s:9,.0f}/s  feed {n / feed_s:9,.0f}/s", flush=True
            )
    lines = [
        "# `streams feed` throughput per source format",
        "",
        f"Measured by `bench/sources_feed.py --records {n}` on {platform.machine()}, {os.cpu_count()} cores "
        f"(shared with other jobs; run under nice), Python {platform.python_version()}, one local broker "
        "(KRaft, 2 partitions), acks=all, idempotent producer. A record is one comment or post, bodies of "
        "~200 characters. 'parse' = `--dry-run` (parse + schema check); 'feed' = parse + produce until "
        "every message is acknowledged (includes producer start-up, ~0.1 s).",
        "",
        "| format | file size | parse (records/s) | feed into the broker (events/s) |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {size / 1e6:.1f} MB | {p:,.0f} | {f:,.0f} |" for label, size, p, f in rows],
        "",
    ]
    (PROJECT_ROOT / "bench" / "SOURCES_RESULTS.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
