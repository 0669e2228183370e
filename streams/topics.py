"""Topic registry: names, keys and what travels on each (values are JSON bytes of streams.models types).

"envelope" = one message per destination partition per batch, ``{"v": 1, "items": [...]}``
(streams/batches.py); the partition is Kafka's murmur2 of the named key, the message has no key
(except comments.authored's retirement notices, keyed "retired": see streams.enrich.authors).

| topic             | partitioned by | value                                          | written by | read by        |
|-------------------|----------------|------------------------------------------------|------------|----------------|
| comments.raw      | key: thread_id | CommentEvent JSON (or anything: input)         | producers  | ingest         |
| comments.valid    | thread_id      | envelope of CommentEvent                       | ingest     | enrich         |
| comments.authored | author         | envelope of EnrichedComment (no author stats)  | enrich     | authors        |
|                   | author         | key "retired": envelope of RetiredComments     | enrich     | authors        |
| comments.enriched | input partition| envelope of EnrichedComment                    | authors    | sink           |
| comments.flagged  | key: thread_id | EnrichedComment with >= 1 flag, one per message| authors (*)| moderation     |
| comments.rescored | input partition| envelope of EnrichedComment (second stage)     | 2nd stage  | sink           |
| comments.dlq      | key: source key| DeadLetter (raw bytes + dl-* headers)          | any stage  | sink           |
| windows.input     | crc32(kind:key)| list of deliveries                             | enrich     | windows        |
| activity.windows  | kind:key       | envelope of WindowRow                          | windows    | sink           |
| alerts            | key: detector:key | Alert, one per message                      | windows    | sink, people   |
| windows.late      | key: thread_id | LateEvent, one per message                     | windows    | sink           |

(*) and the second stage (streams/agents/second_stage.py), for the verdicts it changed.
"""

from __future__ import annotations

RAW = "comments.raw"
VALID = "comments.valid"
AUTHORED = "comments.authored"
ENRICHED = "comments.enriched"
FLAGGED = "comments.flagged"
RESCORED = "comments.rescored"
DLQ = "comments.dlq"
WINDOWS_INPUT = "windows.input"
ACTIVITY_WINDOWS = "activity.windows"
ALERTS = "alerts"
LATE = "windows.late"

ALL = (RAW, VALID, AUTHORED, ENRICHED, FLAGGED, RESCORED, DLQ, WINDOWS_INPUT, ACTIVITY_WINDOWS, ALERTS, LATE)
