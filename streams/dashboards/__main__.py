"""``python -m streams.dashboards``: see `streams.dashboards.cli`."""

from streams.dashboards.cli import main

raise SystemExit(main())
