"""Topic registry: names, keys and what travels on each (values are JSON bytes of streams.models types).

| topic             | key            | value                                  | written by | read by        |
|-------------------|----------------|----------------------------------------|------------|----------------|
| comments.raw      | thread_id      | CommentEvent JSON (or anything: input) | producers  | ingest         |
| comments.valid    | thread_id      | CommentEvent                           | ingest     | enrich         |
| comments.authored | author         | EnrichedComment (no author stats yet)  | enrich     | authors        |
| comments.enriched | thread_id      | EnrichedComment                        | authors    | sink           |
| comments.flagged  | thread_id      | EnrichedComment with >= 1 flag         | authors    | moderation     |
| comments.dlq      | source key     | DeadLetter                             | any stage  | sink           |
| windows.input     | (partitioned)  | list of deliveries, crc32(kind:key)    | enrich     | windows        |
| activity.windows  | kind:key       | WindowRow                              | windows    | sink           |
| alerts            | detector:key   | Alert                                  | windows    | sink, people   |
| windows.late      | thread_id      | LateEvent                              | windows    | sink           |
"""

from __future__ import annotations

RAW = "comments.raw"
VALID = "comments.valid"
AUTHORED = "comments.authored"
ENRICHED = "comments.enriched"
FLAGGED = "comments.flagged"
DLQ = "comments.dlq"
WINDOWS_INPUT = "windows.input"
ACTIVITY_WINDOWS = "activity.windows"
ALERTS = "alerts"
LATE = "windows.late"

ALL = (RAW, VALID, AUTHORED, ENRICHED, FLAGGED, DLQ, WINDOWS_INPUT, ACTIVITY_WINDOWS, ALERTS, LATE)
