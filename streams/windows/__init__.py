"""Event-time windows and detectors over the comment stream (pure code; Faust wiring lives elsewhere).

See :mod:`streams.windows.engine` for the semantics (watermark, lateness, retention, versions, idle).
"""

from streams.windows.detectors import (
    Alert,
    AuthorFloodConfig,
    DetectorConfig,
    DetectorConfigError,
    PileOnConfig,
    SpamWaveConfig,
    ToxicitySpikeConfig,
    dt_to_ms,
    load_detector_config,
    ms_to_dt,
)
from streams.windows.engine import (
    KINDS,
    ROUTE_KINDS,
    WINDOW_KINDS,
    EngineOutput,
    LateEvent,
    WindowConfig,
    WindowEngine,
    WindowInput,
    WindowRow,
    WriteBuffer,
    parse_route_key,
    route,
    route_key,
)

__all__ = [
    "KINDS",
    "ROUTE_KINDS",
    "WINDOW_KINDS",
    "Alert",
    "AuthorFloodConfig",
    "DetectorConfig",
    "DetectorConfigError",
    "EngineOutput",
    "LateEvent",
    "PileOnConfig",
    "SpamWaveConfig",
    "ToxicitySpikeConfig",
    "WindowConfig",
    "WindowEngine",
    "WindowInput",
    "WindowRow",
    "WriteBuffer",
    "dt_to_ms",
    "load_detector_config",
    "ms_to_dt",
    "parse_route_key",
    "route",
    "route_key",
]
