"""Pure parsers that turn input files into CommentEvents (no Kafka, no I/O beyond reading)."""

from streams.sources.jsonlines import BadLine, ParsedLine, parse_jsonlines
from streams.sources.registry import SourceError, SourceItem, SourceResult, detect_format, parse_source
from streams.sources.threaddump import ThreadDump, ThreadDumpError, parse_thread_dump, resolve_parent_id

__all__ = [
    "BadLine",
    "ParsedLine",
    "SourceError",
    "SourceItem",
    "SourceResult",
    "ThreadDump",
    "ThreadDumpError",
    "detect_format",
    "parse_jsonlines",
    "parse_source",
    "parse_thread_dump",
    "resolve_parent_id",
]
