"""The Grafana dashboard queries only metrics the server exports, and is well formed.

Every PromQL expression of every panel (and of the template variables) is scanned for
metric names, and each name must be one that ``sample_exposition()`` (a
``ManagerMetrics`` that has seen one event of every type) exports, or Prometheus'
own ``ALERTS`` / ``ALERTS_FOR_STATE``. Every ``ALERTS`` query must name an alert of
``deploy/prometheus/alerts.yml``, and every alert there must be on the dashboard.
``promtool check rules`` parses each expression (Grafana variables substituted), so a
syntax error fails too.

Why the metric-name extractor is hand-written: the one maintained PromQL parser on
PyPI, ``promql-parser``, is a compiled Rust extension (a new native test dependency,
its grammar pinned to an older Prometheus release), not pure Python; Pygments'
``PromQLLexer`` (installed with rich) is a highlighter that tokenises the label names
of ``by (...)`` like metric names, matches ``or``/``and`` inside identifiers and does
not know Grafana's ``$__rate_interval``; and the promtool shipped by Debian (2.42) has
no offline ``promql`` sub-command (``promtool query`` needs a server; ``check rules``
parses but reports no names). Metric names are the only thing needed, and PromQL's
lexical rules make them easy to find once strings, label matchers, ranges and
durations are removed: an identifier that is not a keyword, not a function or
aggregation call and not in a grouping clause is a metric name.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gemini_failover.observability.metrics import sample_exposition

ROOT: Final = Path(__file__).resolve().parents[2]
GRAFANA: Final = ROOT / "deploy" / "grafana"
DASHBOARD: Final = GRAFANA / "dashboards" / "gemini-failover.json"
ALERT_RULES: Final = ROOT / "deploy" / "prometheus" / "alerts.yml"

#: Series that Prometheus itself writes for alerting rules.
PROMETHEUS_SERIES: Final = frozenset({"ALERTS", "ALERTS_FOR_STATE"})


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: PromQL aggregation operators: followed by "(" or by a grouping clause.
AGGREGATIONS: Final = _words(
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
    limitk limit_ratio
    """
)
#: PromQL functions (Prometheus 2.x and 3.x): an identifier followed by "(" must be
#: one of these or an aggregation.
FUNCTIONS: Final = _words(
    """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil
    changes clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week
    day_of_year days_in_month deg delta deriv double_exponential_smoothing exp floor
    histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev
    histogram_stdvar histogram_sum holt_winters hour idelta increase info irate
    label_join label_replace last_over_time ln log10 log2 mad_over_time max_over_time
    min_over_time minute month pi predict_linear present_over_time quantile_over_time
    rad rate resets round scalar sgn sin sinh sort sort_by_label sort_by_label_desc
    sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time
    timestamp vector year
    """
)
#: Followed by a parenthesised list of label names, which are not metric names.
GROUPING: Final = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
#: Keywords and literals that are neither metrics nor calls.
KEYWORDS: Final = frozenset({"and", "or", "unless", "atan2", "bool", "offset", "inf", "nan"})
#: The "@" modifier's functions.
AT_FUNCTIONS: Final = frozenset({"start", "end"})

#: Grafana's interval macros, replaced by a duration before scanning or parsing.
_GRAFANA_INTERVAL = re.compile(r"\$__(?:rate_interval|interval|range)(?:_ms|_s)?\b")
#: Any other Grafana variable ($var, ${var}, ${var:format}, [[var]]).
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")

_TOKEN = re.compile(
    r"""
      (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<comment>\#[^\n]*)
    | (?P<range>\[[^\]]*\])
    | (?P<number>0x[0-9a-fA-F]+|(?:\d+(?:ms|[smhdwy]))+|\d*\.?\d+(?:[eE][+-]?\d+)?)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<punct>[(){},@]|=~|!~|!=|==|<=|>=|[-+*/%^<>=])
    | (?P<space>\s+)
    """,
    re.VERBOSE,
)


def substitute_grafana_variables(expr: str) -> str:
    """The expression with Grafana's macros made PromQL: intervals become ``5m``, other
    variables (which this dashboard uses only inside label values) become ``x``."""
    return _GRAFANA_VARIABLE.sub("x", _GRAFANA_INTERVAL.sub("5m", expr))


def _tokens(expr: str) -> Iterator[tuple[str, str]]:
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise ValueError(f"cannot scan PromQL at {expr[pos : pos + 20]!r} in {expr!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            yield kind, match.group()
        pos = match.end()


def metric_names(expr: str) -> set[str]:
    """Every metric name that *expr* selects (``__name__`` matchers included)."""
    tokens = list(_tokens(substitute_grafana_variables(expr)))
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text == "{":
            # A label matcher block: label names, operators and strings only; the
            # metric name may hide in a __name__ matcher.
            end = next(j for j in range(i, len(tokens)) if tokens[j][1] == "}")
            for j in range(i + 1, end - 1):
                if tokens[j][1] == "__name__" and tokens[j + 1][1] in ("=", "=="):
                    names.add(tokens[j + 2][1].strip("\"'`"))
            i = end + 1
            continue
        if kind == "ident":
            word = text.lower()
            if word in GROUPING:
                if following == "(":  # skip the label list
                    i = next(j for j in range(i, len(tokens)) if tokens[j][1] == ")") + 1
                    continue
            elif text in AGGREGATIONS and following.lower() in ("by", "without"):
                pass  # `sum by (...) (...)`
            elif following == "(":
                if text not in FUNCTIONS | AGGREGATIONS | AT_FUNCTIONS and word not in KEYWORDS:
                    raise ValueError(f"unknown PromQL function {text!r} in {expr!r}")
            elif word not in KEYWORDS:
                names.add(text)
        i += 1
    return names


def exported_names() -> set[str]:
    """Sample names the server exports: counters with ``_total``, histograms as
    ``_bucket`` / ``_sum`` / ``_count``, gauges as they are."""
    names: set[str] = set()
    for family in text_string_to_metric_families(sample_exposition()):
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def alert_names() -> list[str]:
    # alerts.yml is YAML and the project has no YAML parser among its dependencies;
    # `- alert: Name` is the only form the file uses, and the promtool test beside
    # this one checks the file itself.
    return re.findall(r"^\s*- alert:\s*(\S+)\s*$", ALERT_RULES.read_text(), re.MULTILINE)


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels of a collapsed row


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.*),\s*\w+\)", text.strip())
            assert match, f"variable {variable['name']}: unexpected query {text!r}"
            yield f"variable {variable['name']}", match.group(1)


def unknown_metrics(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    allowed = exported_names() | PROMETHEUS_SERIES
    unknown = {where: metric_names(expr) - allowed for where, expr in expressions(dashboard)}
    return {where: names for where, names in unknown.items() if names}


# -- the extractor -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (model, role) (foo_total{role!="primary", model=~"a|b"})', {"foo_total"}),
        ("sum(rate(foo_total[$__rate_interval])) without (instance)", {"foo_total"}),
        (
            'histogram_quantile(0.95, sum by (le) (rate(lat_bucket{x="$instance"}[5m])))',
            {"lat_bucket"},
        ),
        ('a / on (model) group_left (role) b{m="rate(decoy[5m])"} offset 1h30m', {"a", "b"}),
        ("max_over_time(g[1h:5m]) > bool 0 and c or d unless e", {"g", "c", "d", "e"}),
        ('{__name__="by_name", model="x"} @ start()', {"by_name"}),
        ('count_values("v", g) or on() vector(0) # a sum(comment) here', {"g"}),
        ('ALERTS{alertname="X"} * -1e3 + 0x1f', {"ALERTS"}),
        ("label_values_decoy:ratio_5m", {"label_values_decoy:ratio_5m"}),
    ],
)
def test_extractor_finds_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_extractor_rejects_an_unknown_function() -> None:
    with pytest.raises(ValueError, match="unknown PromQL function 'rates'"):
        metric_names("rates(foo_total[5m])")


# -- the dashboard against the exporter -----------------------------------------------


def test_every_dashboard_metric_is_exported() -> None:
    assert unknown_metrics(load_dashboard()) == {}


def test_the_dashboard_shows_every_exported_metric() -> None:
    # Also guards the check above, which an extractor that found nothing would pass.
    used: set[str] = set()
    for _, expr in expressions(load_dashboard()):
        used.update(re.sub(r"_(total|bucket|sum|count)$", "", n) for n in metric_names(expr))
    exported = {f.name for f in text_string_to_metric_families(sample_exposition())}
    assert len(exported) >= 20
    assert exported - used == set(), "exported metrics the dashboard does not show"


@pytest.mark.parametrize(
    ("bad_expr", "wrong_name"),
    [
        ("sum(rate(dualmodelmanager_failovers_total[5m]))", "dualmodelmanager_failovers_total"),
        ("rate(dualmodelmanager_requests[$__rate_interval])", "dualmodelmanager_requests"),
        (
            "histogram_quantile(0.9, sum by (le) "
            "(rate(dualmodelmanager_requests_total_bucket[5m])))",
            "dualmodelmanager_requests_total_bucket",
        ),
        (
            'dualmodelmanager_active_model{model="x"} * on (model) dualmodelmanager_breaker_state',
            "dualmodelmanager_breaker_state",
        ),
        (
            '{__name__="dualmodelmanager_circuit_breaker_status"}',
            "dualmodelmanager_circuit_breaker_status",
        ),
    ],
)
def test_an_unknown_metric_fails_the_check(bad_expr: str, wrong_name: str) -> None:
    dashboard = copy.deepcopy(load_dashboard())
    target = next(p for p in panels(dashboard) if p.get("targets"))["targets"][0]
    target["expr"] = bad_expr
    found = unknown_metrics(dashboard)
    assert list(found.values()) == [{wrong_name}], found


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run .ci/ensure-tools.sh"
    rules = [
        {"record": f"dashboard:expr_{n}", "expr": substitute_grafana_variables(expr)}
        for n, (_, expr) in enumerate(expressions(load_dashboard()))
    ]
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# -- the dashboard's structure ---------------------------------------------------------


def test_panels_have_unique_ids_and_a_place() -> None:
    dashboard = load_dashboard()
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), ids
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    assert dashboard["uid"] == "gemini-failover"


def test_panels_query_the_datasource_variable() -> None:
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    assert variables["instance"]["includeAll"] and variables["instance"]["multi"]
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue  # a row holds no queries
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]
            if "ALERTS" not in target["expr"]:  # alerts are evaluated on the aggregate
                assert 'instance=~"$instance"' in target["expr"], target["expr"]


def test_alert_panels_name_the_shipped_alerts() -> None:
    shipped = alert_names()
    assert len(shipped) >= 7
    named: set[str] = set()
    for _, expr in expressions(load_dashboard()):
        for op, value in re.findall(r'alertname\s*(=~|=)\s*"([^"]*)"', expr):
            named.update(value.split("|") if op == "=~" else [value])
    assert named - set(shipped) == set(), "ALERTS queries name unknown alerts"
    assert set(shipped) - named == set(), "alerts of alerts.yml missing from the dashboard"


def test_provisioning_points_at_the_dashboard() -> None:
    provider = (GRAFANA / "provisioning" / "dashboards" / "gemini-failover.yml").read_text()
    datasource = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "apiVersion: 1" in provider and "apiVersion: 1" in datasource
    assert re.search(r"^\s+path: /var/lib/grafana/dashboards/gemini-failover\s*$", provider, re.M)
    assert re.search(r"^\s+type: prometheus\s*$", datasource, re.M)
    assert "/var/lib/grafana/dashboards/gemini-failover" in (GRAFANA / "README.md").read_text()
