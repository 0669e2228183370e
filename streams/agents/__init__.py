"""Thin Faust agents: decode, call the pure step, send on. Importing this package registers them."""

from streams.agents import enrich, ingest, sink, web, windows

__all__ = ["enrich", "ingest", "sink", "web", "windows"]
