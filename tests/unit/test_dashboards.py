"""The generated Grafana dashboards: current, valid JSON, internally consistent, portable SQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from streams import dashboards as d
from streams.grafana_macros import MACROS

DASHBOARDS = d.dashboards()
RENDERED = {dash.uid: d.render(dash) for dash in DASHBOARDS}
PROVISIONING = d.DASHBOARDS_DIR / "provisioning"
# Tables whose engine keeps superseded rows until a merge: reads must use FINAL.
REPLACING_TABLES = ("comments", "activity_windows", "alerts", "dead_letters", "late_events", "moderation_reviews")
GRAFANA_GLOBALS = {"__from", "__to", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
                   "__rate_interval", "__all", "__value"}  # fmt: skip


def _panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


def _sql_targets() -> list[tuple[str, str, str]]:
    out = []
    for uid, model in RENDERED.items():
        for p in _panels(model):
            for t in p["targets"]:
                if "rawSql" in t:
                    out.append((uid, p["title"], t["rawSql"]))
        for v in model["templating"]["list"]:
            if isinstance(v.get("query"), dict) and "rawSql" in v["query"]:
                out.append((uid, f"variable {v['name']}", v["query"]["rawSql"]))
    return out


def test_committed_json_is_current() -> None:
    assert d.stale() == [], "run `python -m streams.dashboards --write` and commit dashboards/*.json"
    assert d.main(["--check"]) == 0


def test_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert d.main(["--write", "--dir", str(tmp_path)]) == 0
    assert d.main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / DASHBOARDS[0].filename).write_text("{}\n", encoding="utf-8")
    assert d.main(["--check", "--dir", str(tmp_path)]) == 1
    assert "not current" in capsys.readouterr().err


@pytest.mark.parametrize("dash", DASHBOARDS, ids=lambda x: x.uid)
def test_json_file_is_valid_and_matches_the_model(dash: d.Dashboard) -> None:
    loaded = json.loads((d.DASHBOARDS_DIR / dash.filename).read_text(encoding="utf-8"))
    assert loaded == RENDERED[dash.uid]
    assert loaded["uid"] == dash.uid and loaded["title"] and loaded["schemaVersion"] >= 36


def test_uids_titles_and_panel_keys_are_unique() -> None:
    assert len({x.uid for x in DASHBOARDS}) == len(DASHBOARDS)
    assert len({x.title for x in DASHBOARDS}) == len(DASHBOARDS)
    keys = [p.key for dash in DASHBOARDS for p in dash.panels]
    assert len(keys) == len(set(keys))
    assert d.panel("comments_per_minute").title == "Comments per minute"
    with pytest.raises(KeyError):
        d.panel("nope")


@pytest.mark.parametrize("uid", RENDERED)
def test_panel_ids_unique_and_grid_positions_valid(uid: str) -> None:
    model = RENDERED[uid]
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in model["panels"]:
        pos = p["gridPos"]
        assert set(pos) == {"h", "w", "x", "y"} and all(isinstance(v, int) for v in pos.values()), p["title"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
        covered = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not covered & cells, f"{p['title']} overlaps another panel"
        cells |= covered


@pytest.mark.parametrize("uid", RENDERED)
def test_every_datasource_is_a_variable(uid: str) -> None:
    model = RENDERED[uid]
    expected = {d.CLICKHOUSE_TYPE: "${datasource}", d.PROMETHEUS_TYPE: "${prometheus}"}
    for p in _panels(model):
        refs = [p["datasource"], *(t["datasource"] for t in p["targets"])]
        for ref in refs:
            assert ref["uid"] == expected[ref["type"]], p["title"]
        assert p["targets"], p["title"]
    for v in model["templating"]["list"]:
        if "datasource" in v:
            assert v["datasource"]["uid"] == expected[v["datasource"]["type"]], v["name"]
    # No literal uid anywhere in the panels: only the datasource variables' defaults name one.
    assert d.CLICKHOUSE_UID not in json.dumps(model["panels"])
    assert d.PROMETHEUS_UID not in json.dumps(model["panels"])


def _references(text: str) -> set[str]:
    """Variable names referenced as $name, ${name...} or [[name]]."""
    return {name for groups in re.findall(r"\$\{(\w+)|\$(\w+)|\[\[(\w+)", text) for name in groups if name}


@pytest.mark.parametrize("uid", RENDERED)
def test_every_variable_is_used_and_every_reference_defined(uid: str) -> None:
    model = RENDERED[uid]
    variables = model["templating"]["list"]
    names = {v["name"] for v in variables}
    for v in variables:
        elsewhere = json.dumps(model["panels"]) + json.dumps([o for o in variables if o is not v])
        assert v["name"] in _references(elsewhere), f"variable {v['name']} is never used"
    used = _references(json.dumps(model["panels"]) + json.dumps(variables))
    undefined = {
        n for n in used - names - GRAFANA_GLOBALS if not n.startswith("__") or n[2:] not in {*MACROS, "conditionalAll"}
    }
    assert not undefined, f"references to undefined variables: {undefined}"


@pytest.mark.parametrize("uid", RENDERED)
def test_targets_use_the_plugin_formats(uid: str) -> None:
    for p in _panels(RENDERED[uid]):
        for t in p["targets"]:
            if t["datasource"]["type"] == d.CLICKHOUSE_TYPE:
                assert t["editorType"] == "sql" and t["rawSql"].strip()
                assert t["queryType"] in ("table", "timeseries")
                assert t["format"] == {"timeseries": 0, "table": 1}[t["queryType"]]
                assert tuple(int(n) for n in t["pluginVersion"].split(".")) >= (4, 0, 0)
            else:
                assert t["expr"].strip() and d.metric_names(t["expr"]), p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))


def test_clickhouse_panels_declare_columns() -> None:
    for _, p in d.clickhouse_panels():
        assert p.clickhouse is not None and p.clickhouse.columns, p.key
        assert len(set(p.clickhouse.columns)) == len(p.clickhouse.columns), p.key
        if p.clickhouse.query_type == "timeseries":
            assert p.clickhouse.columns[0] == "time", p.key
        if p.type == "stat":
            assert len(p.clickhouse.columns) == 1, p.key


@pytest.mark.parametrize(("uid", "title", "sql"), _sql_targets(), ids=lambda v: v if len(v) < 40 else "sql")
def test_sql_macros_are_known_and_portable(uid: str, title: str, sql: str) -> None:
    for match in re.finditer(r"\$__(\w+)", sql):
        name, rest = match[1], sql[match.end() :]
        assert name in MACROS or name == "conditionalAll", f"{title}: unknown macro $__{name}"
        takes_args = name == "conditionalAll" or MACROS[name].arity is not None
        if takes_args:
            assert rest.startswith("("), f"{title}: $__{name} needs its '(' right after the name"
            if name != "conditionalAll":
                args = rest[1 : rest.index(")")]
                # Older sqlutil versions split arguments at every comma.
                assert "," not in args and "(" not in args, f"{title}: keep $__{name}'s argument simple"
        else:
            # Older sqlutil versions read the next '(...)' as arguments unless a ')' comes first.
            parens = re.search(r"[()]", rest)
            assert parens is None or parens[0] == ")", f"{title}: wrap $__{name} in parentheses"


@pytest.mark.parametrize(("uid", "title", "sql"), _sql_targets(), ids=lambda v: v if len(v) < 40 else "sql")
def test_replacing_tables_are_read_with_final(uid: str, title: str, sql: str) -> None:
    for match in re.finditer(r"\b(?:FROM|JOIN)\s+(\w+)(\s+AS\s+\w+)?(\s+FINAL)?", sql):
        if match[1] in REPLACING_TABLES:
            assert match[3], f"{title}: {match[0]!r} must read with FINAL"


def test_category_variable_lists_every_flag_category() -> None:
    model = RENDERED["flagged-content"]
    category = next(v for v in model["templating"]["list"] if v["name"] == "category")
    assert category["query"].split(",") == list(d.FLAG_CATEGORIES)
    assert category["includeAll"] and category["multi"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (agent) (rate(streams_events_in_total{agent=~"$agent"}[$__rate_interval]))',
            {"streams_events_in_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (le, agent) (rate(streams_processing_seconds_bucket[5m])))",
            {"streams_processing_seconds_bucket"},
        ),
        ("sum(rate(a_sum[1m])) / sum(rate(a_count[1m]))", {"a_sum", "a_count"}),
        ("time() - max by (partition) (streams_window_watermark_seconds)", {"streams_window_watermark_seconds"}),
        ('up{job="x", instance=~"a|b"} offset 5m', {"up"}),
        ("a and on (x) b unless ignoring (y) c", {"a", "b", "c"}),
        ("label_values(streams_events_in_total, agent)", {"streams_events_in_total"}),
        ('label_values(up{job="a"}, instance)', {"up"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert d.metric_names(expr) == names


def test_provisioned_datasources_match_the_dashboards() -> None:
    text = (PROVISIONING / "datasources" / "datasources.yaml").read_text(encoding="utf-8")
    assert "apiVersion: 1" in text
    assert f"uid: {d.CLICKHOUSE_UID}" in text and f"type: {d.CLICKHOUSE_TYPE}" in text
    assert f"uid: {d.PROMETHEUS_UID}" in text and f"type: {d.PROMETHEUS_TYPE}" in text
    for var in ("CLICKHOUSE_HOST", "CLICKHOUSE_PORT", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "PROMETHEUS_URL"):
        assert f"${{{var}}}" in text, var
    # The password goes in secureJsonData, never in plain jsonData.
    secure = text.index("secureJsonData:")
    assert text.index("password: ${CLICKHOUSE_PASSWORD}") > secure
    assert "\t" not in text


def test_provisioned_dashboard_provider_points_at_the_dashboards() -> None:
    text = (PROVISIONING / "dashboards" / "dashboards.yaml").read_text(encoding="utf-8")
    assert "apiVersion: 1" in text and "type: file" in text
    assert "path: /var/lib/grafana/dashboards" in text
    assert "\t" not in text
