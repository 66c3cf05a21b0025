"""Chart <-> code contracts, so the Helm chart and the connector never drift apart:

- the config.yaml the chart renders (plus the secret files and env it wires) is accepted by the
  connector's own loader, `connector.config.load_config`, and means what the values say;
- the chart's default `config:` block equals the connector's defaults, and values.schema.json knows
  exactly the connector's config keys (minus the ones the chart owns);
- every metric and label the PrometheusRule and the Grafana dashboard use is one the connector exposes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import (
    CHART,
    CI_VALUES,
    EXAMPLES,
    Manifests,
    Render,
    connector_container,
    find,
    rendered_config_text,
    statefulset,
)
from prometheus_client.metrics import MetricWrapperBase
from pydantic import BaseModel

from connector.config import MEDIA_TYPES, REGIONS, Settings, load_config
from connector.metrics import ConnectorMetrics, metric_names

ALL_VALUE_SETS = CI_VALUES + EXAMPLES
MONITORING = CHART / "ci" / "monitoring-values.yaml"
DASHBOARD = CHART / "dashboards" / "genesys-kafka-connector.json"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
#: Connector config keys the chart sets itself (from persistence/metrics/auth values), so `config:` in
#: values must not carry them (secrets must never reach the ConfigMap).
CHART_OWNED = {
    "genesys.client_id",
    "genesys.client_secret",
    "genesys.client_secret_file",
    "kafka.sasl_username",
    "kafka.sasl_password",
    "kafka.sasl_password_file",
    "kafka.ssl_key_password",
    "checkpoint.directory",
    "metrics.host",
    "metrics.port",
}
#: Labels Prometheus / the operator attach to every scraped series.
TARGET_LABELS = {"job", "namespace", "pod", "instance", "service", "container", "endpoint"}
METRIC_TOKEN = re.compile(r"\bgenesys_connector_[a-zA-Z0-9_]+")


# --------------------------------------------------------------------------------------------------------
# The rendered ConfigMap, loaded by the connector


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _secret_data(manifests: Manifests) -> dict[str, str]:
    """What the Secret holds: decoded from the chart's Secret, or made up for an existingSecret."""
    secrets = [m for m in manifests if m["kind"] == "Secret"]
    if secrets:
        return {k: base64.b64decode(v).decode() for k, v in secrets[0]["data"].items()}
    pod = statefulset(manifests)["spec"]["template"]["spec"]
    keys = [
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in connector_container(manifests)["env"]
        if "valueFrom" in e
    ]
    keys += [
        item["key"] for v in pod["volumes"] if v["name"] == "credentials" for item in v["secret"]["items"]
    ]
    return {key: f"value-of-{key}" for key in keys}


def _materialise_pod(manifests: Manifests, tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """Do what the kubelet would: write config.yaml and the secret files, resolve the env."""
    secret = _secret_data(manifests)
    pod = statefulset(manifests)["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in connector_container(manifests)["volumeMounts"]}
    (credentials,) = [v["secret"] for v in pod["volumes"] if v["name"] == "credentials"]
    secret_dir = Path(mounts["credentials"])
    secret_dir.mkdir(parents=True, exist_ok=True)
    for item in credentials["items"]:
        (secret_dir / item["path"]).write_text(secret[item["key"]] + "\n")
    env = {}
    for var in connector_container(manifests).get("env", []):
        env[var["name"]] = (
            secret[var["valueFrom"]["secretKeyRef"]["key"]] if "valueFrom" in var else var["value"]
        )
    config_file = tmp_path / "config.yaml"
    config_file.write_text(rendered_config_text(manifests))
    return config_file, env, secret


def _render_into(render: Render, values: Path, tmp_path: Path, **sets: object) -> Manifests:
    """Render with the secret and state mounts redirected under tmp_path (absolute paths either way)."""
    overrides = {
        "auth.mountPath": str(tmp_path / "secrets"),
        "persistence.mountPath": str(tmp_path / "state"),
    }
    return render(values, sets={**overrides, **sets})


@pytest.mark.parametrize("values", ALL_VALUE_SETS, ids=_ids(ALL_VALUE_SETS))
def test_rendered_config_is_accepted_by_the_connectors_loader(
    render: Render, values: Path, tmp_path: Path
) -> None:
    manifests = _render_into(render, values, tmp_path)
    config_file, env, secret = _materialise_pod(manifests, tmp_path)
    settings = load_config(config_file, environ=env)

    values_data = yaml.safe_load(values.read_text())
    keys = {"clientId": "client-id", "clientSecret": "client-secret"}
    keys |= {"kafkaSaslUsername": "kafka-sasl-username", "kafkaSaslPassword": "kafka-sasl-password"}
    keys |= values_data.get("auth", {}).get("secretKeys", {})
    assert settings.genesys.client_id == secret[keys["clientId"]]
    assert settings.genesys.client_secret.get_secret_value() == secret[keys["clientSecret"]]
    assert settings.checkpoint.directory == tmp_path / "state"
    assert settings.metrics.port == 9464
    rendered = yaml.safe_load(rendered_config_text(manifests))
    assert settings.kafka.topic == rendered["kafka"]["topic"]
    assert settings.kafka.bootstrap_servers == values_data["config"]["kafka"]["bootstrap_servers"]
    assert settings.genesys.region == rendered["genesys"].get("region")
    if settings.kafka.security_protocol.startswith("SASL_"):
        assert settings.kafka.sasl_username == secret[keys["kafkaSaslUsername"]]
        assert settings.kafka.sasl_password is not None
        assert settings.kafka.sasl_password.get_secret_value() == secret[keys["kafkaSaslPassword"]]


def test_the_loader_would_catch_a_chart_that_dropped_the_client_id(render: Render, tmp_path: Path) -> None:
    """Guard for the test above: without the env the chart wires in, the connector refuses the config."""
    from connector.errors import ConfigError

    manifests = _render_into(render, CI_VALUES[0], tmp_path)
    config_file, _, _ = _materialise_pod(manifests, tmp_path)
    with pytest.raises(ConfigError, match=r"genesys\.client_id: required"):
        load_config(config_file, environ={})


def test_chart_defaults_are_the_connectors_defaults(render: Render, tmp_path: Path) -> None:
    manifests = _render_into(render, CHART / "ci" / "default-values.yaml", tmp_path)
    config_file, env, _ = _materialise_pod(manifests, tmp_path)
    rendered = yaml.safe_load(config_file.read_text())
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text(
        yaml.safe_dump(
            {
                "genesys": {
                    "region": "us_east_1",
                    "client_secret_file": rendered["genesys"]["client_secret_file"],
                },
                "kafka": {"bootstrap_servers": rendered["kafka"]["bootstrap_servers"]},
                "checkpoint": rendered["checkpoint"],
                "metrics": {"host": "0.0.0.0", "port": 9464},
            }
        )
    )
    from_chart = load_config(config_file, environ=env).model_dump()
    from_code = load_config(minimal, environ=env).model_dump()
    assert from_chart == from_code


def _model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _model_keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _schema_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, sub in node.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            keys |= _schema_keys(sub, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_schema_knows_exactly_the_connectors_config_keys() -> None:
    config_schema = SCHEMA["properties"]["config"]
    assert config_schema["additionalProperties"] is False
    connector_keys = _model_keys(Settings)
    assert connector_keys >= CHART_OWNED
    assert _schema_keys(config_schema) == connector_keys - CHART_OWNED


def test_schema_enums_match_the_connector() -> None:
    genesys = SCHEMA["properties"]["config"]["properties"]["genesys"]["properties"]
    assert genesys["region"]["enum"] == list(REGIONS)
    filters = SCHEMA["properties"]["config"]["properties"]["windows"]["properties"]["filters"]["properties"]
    assert set(filters["media_types"]["items"]["enum"]) == set(MEDIA_TYPES)
    assert (
        genesys["page_size"]["maximum"]
        == Settings.model_fields["genesys"]
        .annotation.model_fields[  # type: ignore[union-attr]
            "page_size"
        ]
        .metadata[-1]
        .le
    )


# --------------------------------------------------------------------------------------------------------
# Metrics used by alerts and the dashboard


def exposed_series() -> dict[str, set[str]]:
    """Every sample name the connector can expose -> its label names.

    `metric_names()` lists samples that exist right now; a labelled counter has none until first use, so
    its `_total` (and a histogram's `_bucket`/`_sum`/`_count`) are added from the family's type.
    """
    metrics = ConnectorMetrics()
    labels = {
        wrapper._name: set(wrapper._labelnames)  # prometheus_client has no public accessor for these
        for wrapper in vars(metrics).values()
        if isinstance(wrapper, MetricWrapperBase)
    }
    suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"]}
    suffixes |= {"info": ["_info"], "gauge": [""]}
    series: dict[str, set[str]] = {name: set() for name in metric_names(metrics)}
    for family in metrics.registry.collect():
        family_labels = labels.get(family.name, set())
        for suffix in suffixes.get(family.type, [""]):
            series[family.name + suffix] = family_labels | ({"le"} if suffix == "_bucket" else set())
        series[family.name] = family_labels
    return series


def promql_problems(expr: str, series: dict[str, set[str]]) -> list[str]:
    """Loose PromQL check: unknown genesys_connector_* names, unknown labels in selectors and by()."""
    problems = [f"unknown metric {name}" for name in METRIC_TOKEN.findall(expr) if name not in series]
    used = [name for name in METRIC_TOKEN.findall(expr) if name in series]
    for match in re.finditer(r"(genesys_connector_[a-zA-Z0-9_]+)\{([^}]*)\}", expr):
        name, body = match.groups()
        for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", body):
            if name in series and label not in series[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {label!r}")
    known = set().union(*(series[n] for n in used)) | TARGET_LABELS if used else TARGET_LABELS
    for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        for label in filter(None, (part.strip() for part in clause.split(","))):
            if label not in known:
                problems.append(f"grouping by unknown label {label!r}")
    return problems


def test_promql_check_flags_unknown_metrics_and_labels() -> None:
    series = exposed_series()
    assert (
        promql_problems(
            'sum by (pass) (rate(genesys_connector_windows_completed_total{pass="0"}[5m]))', series
        )
        == []
    )
    assert promql_problems("genesys_connector_nope_total", series) == [
        "unknown metric genesys_connector_nope_total"
    ]
    assert promql_problems('genesys_connector_lag_seconds{code="1"}', series) == [
        "genesys_connector_lag_seconds has no label 'code'"
    ]
    assert promql_problems("sum by (reason) (genesys_connector_paused)", series) == [
        "grouping by unknown label 'reason'"
    ]


def _alert_rules(manifests: Manifests) -> list[dict[str, Any]]:
    rule = find(manifests, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_alert_expressions_use_only_metrics_the_connector_exposes(render: Render) -> None:
    series = exposed_series()
    rules = _alert_rules(render(MONITORING))
    assert len(rules) >= 8
    for rule in rules:
        assert promql_problems(rule["expr"], series) == [], f"{rule['alert']}: {rule['expr']}"
        uses_connector_metric = bool(METRIC_TOKEN.search(rule["expr"]))
        assert uses_connector_metric or rule["alert"] == "GenesysConnectorDown", rule["alert"]


def _dashboard_queries(node: Any) -> Iterator[str]:
    """Every PromQL string in the dashboard: panel target `expr`s and templating queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"expr", "definition"} and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                yield value["query"]
            else:
                yield from _dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_queries(item)


def test_dashboard_queries_use_only_metrics_the_connector_exposes() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    series = exposed_series()
    queries = list(_dashboard_queries(dashboard))
    assert len(queries) >= 20
    for query in queries:
        assert METRIC_TOKEN.search(query), query
        assert promql_problems(query, series) == [], query
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["targets"] for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_dashboard_covers_the_alerted_metrics(render: Render) -> None:
    """An on-call engineer paged by an alert finds its metrics on the dashboard."""
    on_dashboard = set(METRIC_TOKEN.findall(DASHBOARD.read_text()))
    in_alerts = {
        name for rule in _alert_rules(render(MONITORING)) for name in METRIC_TOKEN.findall(rule["expr"])
    }
    assert in_alerts <= on_dashboard, in_alerts - on_dashboard


def test_stat_panels_colour_by_their_own_meaning() -> None:
    """Grafana's default thresholds (red from 80) would paint a normal five-minute lag red."""
    grafana_default = [{"color": "green", "value": None}, {"color": "red", "value": 80}]
    dashboard = json.loads(DASHBOARD.read_text())
    stats = [p for p in dashboard["panels"] if p["type"] == "stat"]
    assert len(stats) >= 7
    for panel in stats:
        thresholds = panel["fieldConfig"]["defaults"].get("thresholds")
        assert thresholds, f"{panel['title']}: no thresholds (Grafana would use red from 80)"
        steps = thresholds["steps"]
        assert steps != grafana_default, panel["title"]
        assert steps[0]["value"] is None, panel["title"]
        values = [step["value"] for step in steps[1:]]
        assert values == sorted(values), panel["title"]
