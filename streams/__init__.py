"""comment-streams: comment threads through Kafka and Faust into ClickHouse."""

from pathlib import Path

__version__ = "0.1.0"

#: The checkout this package runs from (an editable install): schemas/, dashboards/ and deploy/ live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
