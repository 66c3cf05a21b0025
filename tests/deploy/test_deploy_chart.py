"""The Helm chart: lint, schema, Kubernetes validity and the shape of what it renders (offline)."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_render import (
    BAD_VALUES,
    CHART,
    CI_VALUES,
    EXAMPLES,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    Manifests,
    Render,
    chart_values,
    connector_container,
    expectations,
    find,
    kinds,
    rendered_config_text,
    run_helm,
    statefulset,
)

FULLNAME = f"{RELEASE}-genesys-kafka-connector"
DEFAULT = CHART / "ci" / "default-values.yaml"
EXISTING_SECRET = CHART / "ci" / "existing-secret-values.yaml"
MONITORING = CHART / "ci" / "monitoring-values.yaml"
NO_PERSISTENCE = CHART / "ci" / "no-persistence-values.yaml"
ALL_VALUE_SETS = CI_VALUES + EXAMPLES
PROM_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _pod_spec(manifests: Manifests) -> dict[str, Any]:
    spec: dict[str, Any] = statefulset(manifests)["spec"]["template"]["spec"]
    return spec


def _volume(manifests: Manifests, name: str) -> dict[str, Any]:
    volumes = {v["name"]: v for v in _pod_spec(manifests)["volumes"]}
    assert name in volumes, f"no volume {name!r}; volumes: {sorted(volumes)}"
    return volumes[name]


def _mounts(manifests: Manifests) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in connector_container(manifests)["volumeMounts"]}


def _env(manifests: Manifests) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in connector_container(manifests).get("env", [])}


def _config(manifests: Manifests) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(rendered_config_text(manifests))
    return data


def _checksum(manifests: Manifests, key: str) -> str | None:
    annotations = statefulset(manifests)["spec"]["template"]["metadata"].get("annotations", {})
    value: str | None = annotations.get(key)
    return value


# --------------------------------------------------------------------------------------------------------
# helm lint / schema


def test_ci_values_cover_the_required_scenarios() -> None:
    names = {p.name for p in CI_VALUES}
    required = {DEFAULT.name, EXISTING_SECRET.name, MONITORING.name, NO_PERSISTENCE.name}
    assert required <= names
    assert EXAMPLES, "expected at least one examples/*.yaml (one release per org)"


@pytest.mark.parametrize("values", ALL_VALUE_SETS, ids=_ids(ALL_VALUE_SETS))
def test_helm_lint_strict_passes(helm: Path, values: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


def test_helm_lint_strict_fails_on_bare_defaults(helm: Path) -> None:
    """Without credentials and bootstrap servers the chart refuses to install, and says why."""
    result = run_helm(helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "at '/auth/clientSecret': minLength: got 0, want 1" in output
    assert "at '/config/kafka/bootstrap_servers'" in output


@pytest.mark.parametrize("values", BAD_VALUES, ids=_ids(BAD_VALUES))
def test_bad_values_are_rejected_with_a_message_naming_the_field(helm: Path, values: Path) -> None:
    from chart_render import template_args

    expected = expectations(values)
    assert expected, f"{values.name} has no '# expect:' line"
    result = run_helm(helm, *template_args([values]))
    assert result.returncode != 0, f"{values.name} was accepted"
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"


def test_template_guard_names_missing_credentials_even_without_schema(helm: Path) -> None:
    from chart_render import template_args

    args = template_args(sets={"config.kafka.bootstrap_servers": "kafka:9092"})
    result = run_helm(helm, *args, "--skip-schema-validation")
    assert result.returncode != 0
    assert "auth.clientId is required (or set auth.existingSecret)" in result.stderr


def test_every_values_key_is_commented() -> None:
    """values.yaml is the documentation: every key has a comment right above it, except inside
    Kubernetes-native blocks (resources, security contexts) and list items (the block's comment covers them).
    """
    native_blocks = ("resources:", "podSecurityContext:", "securityContext:", "accessModes:")
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    native_indent: int | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if native_indent is not None and indent > native_indent:
            continue
        native_indent = None
        if stripped.startswith("- ") or not re.match(r"^[A-Za-z_][\w]*:", stripped):
            continue
        if stripped in native_blocks:
            native_indent = indent
        previous = lines[number - 2].strip() if number > 1 else ""
        if not previous.startswith("#"):
            undocumented.append(f"{number}: {stripped}")
    assert not undocumented, "values.yaml keys without a comment:\n" + "\n".join(undocumented)


# --------------------------------------------------------------------------------------------------------
# Kubernetes validity


def _check_service_monitor(sm: dict[str, Any]) -> None:
    """Minimal structure of a monitoring.coreos.com/v1 ServiceMonitor (no schema in kubernetes-validate)."""
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) <= {"apiVersion", "kind", "metadata", "spec"}
    spec = sm["spec"]
    assert set(spec) <= {"endpoints", "selector", "namespaceSelector", "jobLabel", "targetLabels"}
    assert isinstance(spec["selector"]["matchLabels"], dict)
    assert spec["selector"]["matchLabels"]
    assert isinstance(spec["namespaceSelector"]["matchNames"], list)
    allowed = {"port", "path", "interval", "scrapeTimeout", "relabelings", "metricRelabelings", "scheme"}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= allowed, set(endpoint) - allowed
        assert isinstance(endpoint["port"], str)
        assert PROM_DURATION.match(endpoint["interval"])
        assert PROM_DURATION.match(endpoint["scrapeTimeout"])


def _check_prometheus_rule(rule: dict[str, Any]) -> None:
    """Minimal structure of a PrometheusRule: groups of alerts with expr, for, severity and summary."""
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups = rule["spec"]["groups"]
    assert set(rule["spec"]) == {"groups"}
    assert groups
    for group in groups:
        assert set(group) <= {"name", "interval", "rules"}
        assert group["rules"]
        for r in group["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
            assert re.match(r"^[A-Z][A-Za-z0-9]+$", r["alert"])
            assert isinstance(r["expr"], str)
            assert r["expr"].strip()
            assert r["expr"].count("(") == r["expr"].count(")"), r["expr"]
            assert r["expr"].count("{") == r["expr"].count("}"), r["expr"]
            assert PROM_DURATION.match(r["for"]), r["for"]
            assert r["labels"]["severity"] in {"critical", "warning", "info", "none"}
            assert r["annotations"]["summary"]
            assert r["annotations"]["description"]
            assert all(isinstance(v, str) for v in r["labels"].values())


@pytest.mark.parametrize("values", ALL_VALUE_SETS, ids=_ids(ALL_VALUE_SETS))
def test_rendered_manifests_are_valid_kubernetes_objects(render: Render, values: Path) -> None:
    manifests = render(values)
    assert "StatefulSet" in kinds(manifests)
    for manifest in manifests:
        kind = manifest["kind"]
        if kind == "ServiceMonitor":
            _check_service_monitor(manifest)
        elif kind == "PrometheusRule":
            _check_prometheus_rule(manifest)
        else:
            assert kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True) == "1.33"
        assert manifest["metadata"]["namespace"] == NAMESPACE
        assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_strict_validation_catches_a_misspelt_field(render: Render) -> None:
    """Guard for the test above: the validator really is strict."""
    sts = copy.deepcopy(statefulset(render(DEFAULT)))
    sts["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, KUBE_VERSION, strict=True)


# --------------------------------------------------------------------------------------------------------
# What the chart renders


def test_statefulset_is_a_single_replica_with_a_retained_checkpoint_volume(render: Render) -> None:
    manifests = render(DEFAULT)
    sts = statefulset(manifests)
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in claim["spec"]  # "" = the cluster default
    assert _mounts(manifests)["state"]["mountPath"] == "/var/lib/genesys-connector"
    assert _config(manifests)["checkpoint"]["directory"] == "/var/lib/genesys-connector"
    service = find(manifests, "Service")
    assert spec["serviceName"] == service["metadata"]["name"] == FULLNAME
    assert service["spec"]["clusterIP"] == "None"


def test_pod_is_locked_down(render: Render) -> None:
    manifests = render(DEFAULT)
    pod = _pod_spec(manifests)
    assert pod["automountServiceAccountToken"] is False
    assert find(manifests, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = connector_container(manifests)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "emptyDir" in _volume(manifests, "tmp")
    assert _mounts(manifests)["tmp"]["mountPath"] == "/tmp"
    assert _mounts(manifests)["config"]["readOnly"] is True
    assert _mounts(manifests)["credentials"]["readOnly"] is True
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    assert pod["terminationGracePeriodSeconds"] >= 60  # 20 s in-flight grace + 30 s flush + checkpoint


def test_container_runs_the_connector_with_probes_on_the_metrics_port(render: Render) -> None:
    container = connector_container(render(DEFAULT))
    assert (
        container["image"]
        == f"genesys-kafka-connector:{yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}"
    )
    assert container["args"] == ["run", "--config", "/etc/genesys-connector/config.yaml"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    probes = {
        name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes == {
        "startupProbe": {"path": "/healthz", "port": "metrics"},
        "livenessProbe": {"path": "/healthz", "port": "metrics"},
        "readinessProbe": {"path": "/readyz", "port": "metrics"},
    }


def test_metrics_port_flows_to_container_service_and_config(render: Render) -> None:
    manifests = render(DEFAULT, sets={"metrics.port": 9999})
    assert connector_container(manifests)["ports"][0]["containerPort"] == 9999
    (port,) = find(manifests, "Service")["spec"]["ports"]
    assert port == {"name": "metrics", "port": 9999, "targetPort": "metrics", "protocol": "TCP"}
    assert _config(manifests)["metrics"] == {"host": "0.0.0.0", "port": 9999}


def test_service_selects_the_pod_even_when_not_ready(render: Render) -> None:
    manifests = render(DEFAULT)
    service = find(manifests, "Service")
    pod_labels = statefulset(manifests)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert statefulset(manifests)["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_config_or_secret_change_rolls_the_pod(render: Render) -> None:
    base = render(DEFAULT)
    other_topic = render(DEFAULT, sets={"config.kafka.topic": "other.topic"})
    other_secret = render(DEFAULT, sets={"auth.clientSecret": "rotated"})
    unrelated = render(DEFAULT, sets={"podAnnotations.team": "cc"})
    assert re.fullmatch(r"[0-9a-f]{64}", _checksum(base, "checksum/config") or "")
    assert _checksum(other_topic, "checksum/config") != _checksum(base, "checksum/config")
    assert _checksum(other_secret, "checksum/secret") != _checksum(base, "checksum/secret")
    assert _checksum(unrelated, "checksum/config") == _checksum(base, "checksum/config")


def test_chart_created_secret_is_mounted_as_files_and_never_in_the_configmap(render: Render) -> None:
    manifests = render(DEFAULT)
    secret = find(manifests, "Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"client-id": "ci-client-id", "client-secret": "ci-client-secret"}
    assert _env(manifests)["GENESYS_CONNECTOR__GENESYS__CLIENT_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"],
        "key": "client-id",
    }
    credentials = _volume(manifests, "credentials")["secret"]
    assert credentials["secretName"] == secret["metadata"]["name"]
    assert credentials["items"] == [{"key": "client-secret", "path": "client-secret"}]
    assert (
        _config(manifests)["genesys"]["client_secret_file"]
        == "/var/run/secrets/genesys-connector/client-secret"
    )
    assert "ci-client-secret" not in json.dumps([m for m in manifests if m["kind"] != "Secret"])
    assert "GENESYS_CONNECTOR__KAFKA__SASL_USERNAME" not in _env(manifests)
    assert "sasl_password_file" not in _config(manifests)["kafka"]


def test_existing_secret_with_sasl_is_referenced_not_created(render: Render) -> None:
    manifests = render(EXISTING_SECRET)
    assert "Secret" not in kinds(manifests)
    env = _env(manifests)
    assert env["GENESYS_CONNECTOR__GENESYS__CLIENT_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "genesys-org-credentials",
        "key": "oauth-client-id",
    }
    assert env["GENESYS_CONNECTOR__KAFKA__SASL_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "genesys-org-credentials",
        "key": "sasl-user",
    }
    credentials = _volume(manifests, "credentials")["secret"]
    assert credentials["secretName"] == "genesys-org-credentials"
    assert [i["key"] for i in credentials["items"]] == ["oauth-client-secret", "sasl-password"]
    config = _config(manifests)
    assert config["genesys"]["client_secret_file"] == "/var/run/secrets/genesys-connector/oauth-client-secret"
    assert config["kafka"]["sasl_password_file"] == "/var/run/secrets/genesys-connector/sasl-password"
    assert _checksum(manifests, "checksum/secret") is None


def test_persistence_off_uses_an_empty_dir(render: Render) -> None:
    manifests = render(NO_PERSISTENCE)
    spec = statefulset(manifests)["spec"]
    assert "volumeClaimTemplates" not in spec
    assert "persistentVolumeClaimRetentionPolicy" not in spec
    assert _volume(manifests, "state") == {"name": "state", "emptyDir": {}}
    assert _mounts(manifests)["state"]["mountPath"] == _config(manifests)["checkpoint"]["directory"]


def test_storage_class_dash_means_no_class(render: Render) -> None:
    manifests = render(DEFAULT, sets={"persistence.storageClassName": "-"})
    (claim,) = statefulset(manifests)["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == ""


def test_monitoring_is_off_by_default(render: Render) -> None:
    assert kinds(render(DEFAULT)) == ["ConfigMap", "Secret", "Service", "ServiceAccount", "StatefulSet"]


def test_monitoring_scenario_renders_service_monitor_rules_dashboard_and_pdb(render: Render) -> None:
    manifests = render(MONITORING)
    service = find(manifests, "Service")
    pod_labels = statefulset(manifests)["spec"]["template"]["metadata"]["labels"]

    monitor = find(manifests, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]

    rules = find(manifests, "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {
        "GenesysConnectorLagHigh",
        "GenesysConnectorNoWindowCompleted",
        "GenesysConnectorThrottled",
        "GenesysConnectorPaused",
        "GenesysConnectorBudgetNearlyExhausted",
        "GenesysConnectorAuthFailures",
        "GenesysConnectorKafkaDeliveryErrors",
        "GenesysConnectorSettledRangeMissing",
        "GenesysConnectorDataLakeLagHigh",
        "GenesysConnectorDown",
    }
    for rule in rules:
        assert f'job="{FULLNAME}",namespace="{NAMESPACE}"' in rule["expr"], rule["expr"]
        assert rule["labels"]["team"] == "contact-center"

    dashboard = find(manifests, "ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Genesys"}
    assert json.loads(dashboard["data"]["genesys-kafka-connector.json"])["uid"] == "genesys-kafka-connector"

    pdb = find(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_alerts_can_be_tuned_and_disabled(render: Render) -> None:
    manifests = render(
        MONITORING,
        sets={
            "metrics.prometheusRule.alerts.budgetNearlyExhausted.enabled": False,
            "metrics.prometheusRule.alerts.lagHigh.thresholdSeconds": 600,
            "metrics.prometheusRule.selector": 'service="custom"',
        },
    )
    rules = {r["alert"]: r for r in find(manifests, "PrometheusRule")["spec"]["groups"][0]["rules"]}
    assert "GenesysConnectorBudgetNearlyExhausted" not in rules
    assert "> 600" in rules["GenesysConnectorLagHigh"]["expr"]
    assert 'genesys_connector_lag_seconds{service="custom"}' in rules["GenesysConnectorLagHigh"]["expr"]


def test_defaults_document_the_images_user_and_paths() -> None:
    """values.yaml, the Dockerfile and the connector agree on user, port and checkpoint directory."""
    values = chart_values()
    dockerfile = (CHART.parents[1] / "Dockerfile").read_text()
    assert values["podSecurityContext"]["runAsUser"] == 10001
    assert f"USER {values['podSecurityContext']['runAsUser']}:" in dockerfile
    assert f"EXPOSE {values['metrics']['port']}" in dockerfile
    assert f'VOLUME ["{values["persistence"]["mountPath"]}"]' in dockerfile


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (DEFAULT, "The checkpoint lives on PVC state-org1-genesys-kafka-connector-0"),
        (NO_PERSISTENCE, "WARNING: persistence.enabled=false"),
        (EXISTING_SECRET, "(existing; keys oauth-client-id, oauth-client-secret, sasl-user, sasl-password)"),
    ],
    ids=["default", "no-persistence", "existing-secret"],
)
def test_install_notes_render(helm: Path, values: Path, expected: str) -> None:
    """NOTES.txt is only rendered by install; --dry-run=client needs no cluster."""
    result = run_helm(
        helm, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--dry-run=client", "-f", str(values)
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"StatefulSet {NAMESPACE}/{FULLNAME}" in notes
    assert expected in notes
    assert "ci-client-secret" not in notes
