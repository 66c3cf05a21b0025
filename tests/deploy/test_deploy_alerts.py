"""The chart's alerts and the connector's /metrics, checked by Prometheus' own promtool (offline).

- `promtool check rules` on the rule groups the chart renders;
- `promtool test rules` with tests/deploy/alert-tests.yaml: every alert fires on its condition and stays
  silent otherwise (checked: each alert has both kinds of case);
- `promtool check metrics` on a live scrape of the connector's registry, served over HTTP by the
  connector's own HealthServer, and that scrape holds every series the alert tests feed promtool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chart_render import CHART, Render, find
from prometheus_client.parser import text_string_to_metric_families

from connector.clock import FakeClock
from connector.health import HealthServer, Heartbeat
from connector.metrics import ConnectorMetrics

MONITORING = CHART / "ci" / "monitoring-values.yaml"
ALERT_TESTS = Path(__file__).parent / "alert-tests.yaml"
DASHBOARD = CHART / "dashboards" / "genesys-kafka-connector.json"
#: Labels Prometheus attaches at scrape time; the connector itself never exports them.
TARGET_LABELS = {"job", "namespace", "pod", "instance"}
#: The connector's default number of re-scans (config windows.rescan_delays).
DEFAULT_RESCANS = 4
SERIES = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>[^}]*)\}$")
LABEL = re.compile(r'([a-zA-Z_]\w*)="([^"]*)"')


def _promtool(promtool: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def _rule_groups(render: Render, sets: dict[str, object] | None = None) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = find(render(MONITORING, sets=sets), "PrometheusRule")["spec"]["groups"]
    return groups


def _write_rules(groups: list[dict[str, Any]], directory: Path) -> Path:
    """rules.yaml as Prometheus loads it, without the prose `description` annotations (see alert-tests)."""
    for group in groups:
        for rule in group["rules"]:
            rule.get("annotations", {}).pop("description", None)
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def _run_alert_tests(
    promtool: Path, groups: list[dict[str, Any]], directory: Path
) -> subprocess.CompletedProcess[str]:
    _write_rules(groups, directory)
    tests = directory / ALERT_TESTS.name
    shutil.copyfile(ALERT_TESTS, tests)
    return _promtool(promtool, "test", "rules", str(tests))


def _alert_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        cases += test.get("alert_rule_test", [])
    return cases


def _input_series() -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of every input series in the alert tests."""
    found = []
    for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for item in test.get("input_series", []):
            match = SERIES.match(item["series"])
            assert match, item["series"]
            found.append((match["name"], dict(LABEL.findall(match["labels"]))))
    return found


# --------------------------------------------------------------------------------------------------------
# Rules


def test_rendered_rules_pass_promtool_check_rules(promtool: Path, render: Render, tmp_path: Path) -> None:
    rules = _write_rules(_rule_groups(render), tmp_path)
    result = _promtool(promtool, "check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout, result.stdout


def test_every_alert_has_a_firing_and_a_silent_case(render: Render) -> None:
    alerts = {rule["alert"] for group in _rule_groups(render) for rule in group["rules"]}
    cases = _alert_cases()
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts - firing == set(), "alerts without a case where they fire"
    assert alerts - silent == set(), "alerts without a case where they stay silent"
    assert (firing | silent) - alerts == set(), "cases for alerts the chart does not render"


def test_alerts_fire_on_their_condition_and_stay_silent_otherwise(
    promtool: Path, render: Render, tmp_path: Path
) -> None:
    result = _run_alert_tests(promtool, _rule_groups(render), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_alert_tests_catch_a_changed_rule(promtool: Path, render: Render, tmp_path: Path) -> None:
    """The harness can fail: a pause tolerated for 90 minutes no longer fires where the tests expect."""
    groups = _rule_groups(render, sets={"metrics.prometheusRule.alerts.paused.for": "90m"})
    result = _run_alert_tests(promtool, groups, tmp_path)
    assert result.returncode != 0
    assert "GenesysConnectorPaused" in result.stdout + result.stderr


# --------------------------------------------------------------------------------------------------------
# A live scrape


@pytest.fixture
def scrape() -> str:
    """/metrics of a freshly started connector registry, fetched over real HTTP from the HealthServer."""
    metrics = ConnectorMetrics(rescans=DEFAULT_RESCANS)
    metrics.info.info({"version": "0.0.0-test"})
    clock = FakeClock()
    with HealthServer(
        "127.0.0.1", 0, registry=metrics.registry, heartbeat=Heartbeat(clock, max_age_s=60)
    ) as server:
        response = httpx.get(server.url + "/metrics", timeout=10, trust_env=False)
    assert response.status_code == 200
    return response.text


def test_live_scrape_passes_promtool_check_metrics(promtool: Path, scrape: str) -> None:
    result = _promtool(promtool, "check", "metrics", stdin=scrape)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def test_promtool_check_metrics_flags_a_badly_named_metric(promtool: Path) -> None:
    """The check can fail: a counter without `_total` in milliseconds is reported."""
    bad = "# HELP x_milliseconds A thing.\n# TYPE x_milliseconds counter\nx_milliseconds 1\n"
    result = _promtool(promtool, "check", "metrics", stdin=bad)
    assert result.returncode != 0
    assert "_total" in result.stdout + result.stderr


def test_a_fresh_connector_exports_every_series_the_alert_tests_use(scrape: str) -> None:
    """Alerts on counters (no window completed, 401s) work only if the series exist before the first event."""
    exported = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
    }
    wanted = {
        (name, tuple(sorted((k, v) for k, v in labels.items() if k not in TARGET_LABELS)))
        for name, labels in _input_series()
        if name != "up"  # Prometheus' own series for the scrape target
    }
    assert wanted - exported.keys() == set()
    counters = {key for key in wanted if key[0].endswith("_total")}
    assert {key: exported[key] for key in counters} == dict.fromkeys(counters, 0.0)


# --------------------------------------------------------------------------------------------------------
# The dashboard's "Time since last error" panel


def _last_error_query() -> str:
    dashboard = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in dashboard["panels"] if "last error" in p["title"].lower()]
    assert panel["fieldConfig"]["defaults"]["noValue"] == "never"
    (target,) = panel["targets"]
    query: str = target["expr"]
    return query.replace("$namespace", "genesys").replace("$job", "org1-genesys-kafka-connector")


def test_last_error_panel_shows_never_for_a_pod_that_never_failed(promtool: Path, tmp_path: Path) -> None:
    """The gauge is 0 until the first error; `time() - 0` would read as ~57 years instead of "never"."""
    selector = 'job="org1-genesys-kafka-connector",namespace="genesys"'
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'genesys_connector_last_error_timestamp_seconds{{{selector},pod="p-0"}}',
                        "values": "0x10",
                    },
                    {
                        "series": f'genesys_connector_last_error_timestamp_seconds{{{selector},pod="p-1"}}',
                        "values": "0x8 480x2",  # an error logged at t=8m (unix time 480)
                    },
                ],
                "promql_expr_test": [
                    {"expr": _last_error_query(), "eval_time": "5m", "exp_samples": []},
                    {
                        "expr": _last_error_query(),
                        "eval_time": "10m",
                        "exp_samples": [{"labels": '{pod="p-1"}', "value": 120}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "last-error-tests.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = _promtool(promtool, "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
