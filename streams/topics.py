"""Topic registry: names, keys and what travels on each (values are JSON bytes of streams.models types).

| topic             | key            | value                                  | written by | read by        |
|-------------------|----------------|----------------------------------------|------------|----------------|
| comments.raw      | thread_id      | CommentEvent JSON (or anything: input) | producers  | ingest         |
| comments.valid    | thread_id      | CommentEvent                           | ingest     | enrich         |
| comments.authored | author         | EnrichedComment (no author stats yet)  | enrich     | authors        |
| comments.enriched | thread_id      | EnrichedComment                        | authors    | sink, windows  |
| comments.flagged  | thread_id      | EnrichedComment with >= 1 flag         | enrich     | moderation     |
| comments.dlq      | source key     | DeadLetter                             | any stage  | sink           |
| windows.input     | kind:key       | WindowInput (re-keyed fan-out)         | windows    | windows        |
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
