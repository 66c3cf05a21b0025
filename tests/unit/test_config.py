"""Configuration: sources and precedence, validation messages, secrets, regions, the example file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from connector.config import (
    REGIONS,
    Settings,
    format_duration,
    load_config,
    load_status_config,
    parse_duration,
)
from connector.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Value-That-Must-Not-Leak"
BASE_ENV = {
    "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "client-123",
    "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": SECRET,
    "GENESYS_CONNECTOR__GENESYS__REGION": "us_east_1",
}


def write(tmp_path: Path, text: str, name: str = "connector.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path | None, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    return info.value.problems


# ---------------------------------------------------------------------------------------- sources


def test_environment_alone_is_enough_and_defaults_apply() -> None:
    settings = load_config(None, environ=BASE_ENV)
    assert settings.genesys.client_id == "client-123"
    assert settings.genesys.page_size == 100
    assert settings.windows.length == timedelta(minutes=5)
    assert settings.windows.rescan_delays == [
        timedelta(minutes=15),
        timedelta(hours=2),
    ]
    assert settings.jobs.backfill
    assert settings.jobs.settle
    assert settings.kafka.bootstrap_servers == "localhost:9092"


def test_environment_overrides_yaml_which_overrides_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
genesys:
  region: eu_west_1
  client_id: from-yaml
  client_secret: yaml-secret
  page_size: 50
kafka:
  bootstrap_servers: yaml:9092
  topic: from.yaml
""",
    )
    env = {
        "GENESYS_CONNECTOR__KAFKA__BOOTSTRAP_SERVERS": "env-broker:9092",
        "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "env-secret",
        "genesys_connector__genesys__page_size": "75",  # names are case-insensitive
    }
    settings = load_config(path, environ=env)
    assert settings.kafka.bootstrap_servers == "env-broker:9092"
    assert settings.genesys.client_secret.get_secret_value() == "env-secret"
    assert settings.genesys.page_size == 75
    assert settings.kafka.topic == "from.yaml"
    assert settings.genesys.client_id == "from-yaml"
    assert settings.kafka.linger_ms == 50  # default


def test_lists_and_mappings_from_the_environment() -> None:
    env = {
        **BASE_ENV,
        "GENESYS_CONNECTOR__WINDOWS__RESCAN_DELAYS": "10m, PT1H",
        "GENESYS_CONNECTOR__WINDOWS__FILTERS__MEDIA_TYPES": '["voice", "email"]',
        "GENESYS_CONNECTOR__WINDOWS__FILTERS__QUEUE_IDS": "q1,q2",
        "GENESYS_CONNECTOR__KAFKA__EXTRA": '{"acks": "all", "socket.keepalive.enable": true}',
        "GENESYS_CONNECTOR__WINDOWS__END": "null",
    }
    settings = load_config(None, environ=env)
    assert settings.windows.rescan_delays == [timedelta(minutes=10), timedelta(hours=1)]
    assert settings.windows.filters.media_types == ["voice", "email"]
    assert settings.windows.filters.queue_ids == ["q1", "q2"]
    assert settings.kafka.extra == {"acks": "all", "socket.keepalive.enable": True}
    assert settings.windows.end is None


def test_example_config_loads_and_documents_every_field() -> None:
    example = REPO / "config" / "connector.example.yaml"
    settings = load_config(example, environ={"GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "x"})
    assert settings.genesys.region == "us_east_1"
    text = example.read_text(encoding="utf-8")
    for section, model in Settings.model_fields.items():
        assert f"{section}:" in text
        sub = model.annotation
        assert isinstance(sub, type)
        for name in sub.model_fields:  # type: ignore[attr-defined]
            assert f"{name}" in text, f"{section}.{name} is not documented in the example"


def test_settings_are_frozen() -> None:
    settings = load_config(None, environ=BASE_ENV)
    with pytest.raises(ValidationError):
        settings.genesys.page_size = 10  # type: ignore[misc]


# ---------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("GENESYS__PAGE_SIZE", "500", "genesys.page_size: must be <= 100 (got '500')"),
        ("GENESYS__PAGE_SIZE", "0", "genesys.page_size: must be >= 1 (got '0')"),
        ("GENESYS__BUDGET_SHARE", "0", "genesys.budget_share: must be > 0 (got '0')"),
        ("GENESYS__LIVE_BUDGET_SHARE", "1.5", "genesys.live_budget_share: must be <= 1 (got '1.5')"),
        ("GENESYS__MAX_CONCURRENCY", "0", "genesys.max_concurrency: must be >= 1 (got '0')"),
        ("GENESYS__MAX_ATTEMPTS", "0", "genesys.max_attempts: must be >= 1 (got '0')"),
        ("GENESYS__REQUEST_TIMEOUT_S", "-1", "genesys.request_timeout_s: must be > 0 (got '-1')"),
        ("GENESYS__REQUESTS_PER_MINUTE", "0", "genesys.requests_per_minute: must be > 0 (got '0')"),
        ("WINDOWS__RESCAN_DELAYS", "2h,15m", "windows.rescan_delays: delays must be strictly increasing"),
        ("WINDOWS__RESCAN_DELAYS", "0s,15m", "windows.rescan_delays: every delay must be positive"),
        ("WINDOWS__LENGTH", "0s", "windows.length: must be positive"),
        (
            "WINDOWS__LENGTH",
            "soon",
            "windows.length: expected a duration like 30s, 5m, 2m30s, 2h, 3d or PT5M",
        ),
        ("WINDOWS__MAX_CATCHUP_LENGTH", "8d", "windows.max_catchup_length: must be <= 7d"),
        ("WINDOWS__LAG", "-1m", "windows.lag: expected a duration"),
        ("WINDOWS__START", "7d", "windows.start: a relative start must be negative, e.g. -7d"),
        ("WINDOWS__START", "2026-05-01T00:00:00", "windows.start: the instant needs a timezone"),
        ("WINDOWS__START", "yesterday", "windows.start: expected an ISO-8601 instant"),
        (
            "WINDOWS__FILTERS__MEDIA_TYPES",
            "voice,vioce",
            "windows.filters.media_types: unknown media type(s)",
        ),
        ("KAFKA__SECURITY_PROTOCOL", "TLS", "kafka.security_protocol: input should be 'PLAINTEXT'"),
        ("KAFKA__COMPRESSION_TYPE", "brotli", "kafka.compression_type: input should be"),
        ("METRICS__PORT", "70000", "metrics.port: must be <= 65535 (got '70000')"),
        ("LOGGING__LEVEL", "LOUD", "logging.level: input should be"),
        ("LOGGING__FORMAT", "xml", "logging.format: input should be"),
    ],
)
def test_one_clear_line_per_wrong_field(key: str, value: str, expected: str) -> None:
    found = problems(None, {**BASE_ENV, f"GENESYS_CONNECTOR__{key}": value})
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
genesys:
  region: us_east_1
  client_id: abc
  client_secret: x
  page_size: 500
  budget_share: 0
windows:
  rescan_delays: ["2h", "15m"]
kafka:
  bootstrap_server: typo:9092
""",
    )
    found = problems(path, {})
    assert found == [
        "genesys.page_size: must be <= 100 (got 500)",
        "genesys.budget_share: must be > 0 (got 0)",
        "windows.rescan_delays: delays must be strictly increasing (got ['2h', '15m'])",
        "unknown field 'kafka.bootstrap_server' (did you mean 'kafka.bootstrap_servers'?)",
    ]
    assert "invalid configuration" in str(ConfigError(found))


def test_unknown_keys_and_sections_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "genesys:\n  region: us_east_1\n  client_id: a\n  client_secret: b\nkafak: {}\n")
    assert problems(path, {}) == ["unknown field 'kafak' (did you mean 'kafka'?)"]


def test_unknown_environment_variables_are_named() -> None:
    found = problems(None, {**BASE_ENV, "GENESYS_CONNECTOR__KAFKA__BOOTSTRAP_SERVER": "x:1"})
    assert found == [
        "unknown environment variable GENESYS_CONNECTOR__KAFKA__BOOTSTRAP_SERVER "
        "(did you mean GENESYS_CONNECTOR__KAFKA__BOOTSTRAP_SERVERS?)"
    ]
    other = problems(None, {**BASE_ENV, "GENESYS_CONNECTOR__KAFK__TOPIC": "t"})
    assert other == [
        "unknown environment variable GENESYS_CONNECTOR__KAFK__TOPIC (did you mean GENESYS_CONNECTOR__KAFKA?)"
    ]


def test_unrelated_environment_variables_are_ignored() -> None:
    settings = load_config(None, environ={**BASE_ENV, "PATH": "/bin", "GENESYS_OTHER": "1"})
    assert settings.genesys.client_id == "client-123"


def test_client_id_and_secret_are_required() -> None:
    found = problems(None, {"GENESYS_CONNECTOR__GENESYS__REGION": "us_east_1"})
    assert found == [
        "genesys.client_id: required",
        "genesys.client_secret: required (or set genesys.client_secret_file)",
    ]


def test_empty_client_id_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, 'genesys:\n  region: us_east_1\n  client_id: ""\n  client_secret: x\n')
    assert problems(path, {}) == ["genesys.client_id: string should have at least 1 character (got '')"]


def test_the_genesys_section_is_required(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "kafka: {}\n"), {}) == ["genesys: required"]


def test_windows_relations() -> None:
    found = problems(
        None,
        {
            **BASE_ENV,
            "GENESYS_CONNECTOR__WINDOWS__LENGTH": "1h",
            "GENESYS_CONNECTOR__WINDOWS__MAX_CATCHUP_LENGTH": "30m",
        },
    )
    assert found == ["windows.max_catchup_length: must be >= windows.length (1h)"]
    found = problems(
        None,
        {
            **BASE_ENV,
            "GENESYS_CONNECTOR__WINDOWS__START": "2026-05-02T00:00:00Z",
            "GENESYS_CONNECTOR__WINDOWS__END": "2026-05-01T00:00:00Z",
        },
    )
    assert found == ["windows.end: must be after windows.start"]


def test_backoff_relation() -> None:
    found = problems(
        None,
        {
            **BASE_ENV,
            "GENESYS_CONNECTOR__GENESYS__BACKOFF_BASE_S": "10",
            "GENESYS_CONNECTOR__GENESYS__BACKOFF_MAX_S": "5",
        },
    )
    assert found == ["genesys.backoff_max_s: must be >= genesys.backoff_base_s (10.0)"]


def test_sasl_needs_mechanism_user_and_password() -> None:
    found = problems(None, {**BASE_ENV, "GENESYS_CONNECTOR__KAFKA__SECURITY_PROTOCOL": "SASL_SSL"})
    assert found == ["kafka.sasl_mechanism: required when kafka.security_protocol is SASL_SSL"]
    settings = load_config(
        None,
        environ={
            **BASE_ENV,
            "GENESYS_CONNECTOR__KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "GENESYS_CONNECTOR__KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "GENESYS_CONNECTOR__KAFKA__SASL_USERNAME": "svc",
            "GENESYS_CONNECTOR__KAFKA__SASL_PASSWORD": SECRET,
        },
    )
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == SECRET


def test_yaml_syntax_error_names_file_and_line_but_not_the_content(tmp_path: Path) -> None:
    path = write(tmp_path, f"genesys:\n  client_secret: {SECRET}\n  bad: [unclosed\n")
    found = problems(path, {})
    assert len(found) == 1
    assert str(path) in found[0]
    assert "line" in found[0]
    assert SECRET not in found[0]


def test_missing_or_non_mapping_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert problems(missing, BASE_ENV) == [f"cannot read config file {missing}: No such file or directory"]
    assert "expected a mapping" in problems(write(tmp_path, "- a\n- b\n"), BASE_ENV)[0]


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), environ=BASE_ENV).genesys.page_size == 100


# ---------------------------------------------------------------------------------------- secrets


def test_secret_file_is_read_and_trailing_newline_stripped(tmp_path: Path) -> None:
    secret_file = write(tmp_path, SECRET + "\n", name="client-secret")
    env = {k: v for k, v in BASE_ENV.items() if not k.endswith("CLIENT_SECRET")}
    env["GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET_FILE"] = str(secret_file)
    settings = load_config(None, environ=env)
    assert settings.genesys.client_secret.get_secret_value() == SECRET
    assert settings.redacted()["genesys"]["client_secret_file"] == str(secret_file)


def test_unreadable_secret_file_names_the_path(tmp_path: Path) -> None:
    env = {k: v for k, v in BASE_ENV.items() if not k.endswith("CLIENT_SECRET")}
    env["GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET_FILE"] = str(tmp_path / "missing")
    missing = tmp_path / "missing"
    found = problems(None, env)
    assert found == [
        f"genesys.client_secret_file: cannot read secret file {missing}: No such file or directory"
    ]


def test_empty_secret_file_and_both_forms_are_errors(tmp_path: Path) -> None:
    empty = write(tmp_path, "\n", name="empty")
    env = {k: v for k, v in BASE_ENV.items() if not k.endswith("CLIENT_SECRET")}
    assert problems(None, {**env, "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET_FILE": str(empty)}) == [
        f"genesys.client_secret_file: secret file {empty} is empty"
    ]
    both = problems(None, {**BASE_ENV, "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET_FILE": str(empty)})
    assert both == ["genesys.client_secret_file: set either client_secret or client_secret_file, not both"]


def test_kafka_secret_files(tmp_path: Path) -> None:
    password = write(tmp_path, "kafka-pw\n", name="kafka-pw")
    settings = load_config(
        None,
        environ={
            **BASE_ENV,
            "GENESYS_CONNECTOR__KAFKA__SASL_PASSWORD_FILE": str(password),
            "GENESYS_CONNECTOR__KAFKA__SSL_KEY_PASSWORD_FILE": str(password),
        },
    )
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.ssl_key_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "kafka-pw"
    assert settings.kafka.ssl_key_password.get_secret_value() == "kafka-pw"


def test_secrets_never_appear_in_repr_str_redacted_or_errors(tmp_path: Path) -> None:
    env = {
        **BASE_ENV,
        "GENESYS_CONNECTOR__KAFKA__SASL_PASSWORD": SECRET,
        "GENESYS_CONNECTOR__KAFKA__EXTRA": f'{{"sasl.oauthbearer.client.secret": "{SECRET}", "acks": "all"}}',
    }
    settings = load_config(None, environ=env)
    for text in (repr(settings), str(settings), str(settings.redacted()), repr(settings.genesys)):
        assert SECRET not in text
    redacted = settings.redacted()
    assert redacted["genesys"]["client_secret"] == "***"
    assert redacted["kafka"]["sasl_password"] == "***"
    assert redacted["kafka"]["ssl_key_password"] is None
    assert redacted["kafka"]["extra"] == {"sasl.oauthbearer.client.secret": "***", "acks": "all"}
    # A typo'd secret key, or a secret of the wrong type, is reported without its value.
    path = write(tmp_path, f"genesys:\n  client_secrett: {SECRET}\n  client_secret: [{SECRET}]\n")
    found = problems(path, BASE_ENV | {"GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": ""})
    assert found
    assert all(SECRET not in line for line in found)
    assert str(found).count("client_secret") >= 2


def test_redacted_renders_durations_and_instants() -> None:
    env = {
        **BASE_ENV,
        "GENESYS_CONNECTOR__WINDOWS__START": "-3d",
        "GENESYS_CONNECTOR__WINDOWS__END": "2026-06-01T12:00:00+02:00",
    }
    windows = load_config(None, environ=env).redacted()["windows"]
    assert windows["start"] == "-3d"
    assert windows["end"] == "2026-06-01T10:00:00Z"
    assert windows["length"] == "5m"
    assert windows["rescan_delays"] == ["15m", "2h"]


# ---------------------------------------------------------------------------------------- regions


@pytest.mark.parametrize("name", sorted(REGIONS))
def test_every_region_builds_both_urls(name: str) -> None:
    env = {**BASE_ENV, "GENESYS_CONNECTOR__GENESYS__REGION": name}
    genesys = load_config(None, environ=env).genesys
    api_host, login_host = REGIONS[name]
    assert genesys.api_base_url == f"https://{api_host}"
    assert genesys.login_base_url == f"https://{login_host}"


def test_regions_cover_the_reference_list() -> None:
    assert len(REGIONS) == 17
    assert REGIONS["eu_west_2"] == ("api.euw2.pure.cloud", "login.euw2.pure.cloud")
    assert REGIONS["ap_southeast_2"] == ("api.mypurecloud.com.au", "login.mypurecloud.com.au")
    assert REGIONS["us_east_2"] == ("api.use2.us-gov-pure.cloud", "login.use2.us-gov-pure.cloud")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("us-east-1", "us_east_1"),
        ("EU_WEST_1", "eu_west_1"),
        ("euw2.pure.cloud", "eu_west_2"),
        ("api.mypurecloud.de", "eu_central_1"),
    ],
)
def test_region_aliases(given: str, canonical: str) -> None:
    env = {**BASE_ENV, "GENESYS_CONNECTOR__GENESYS__REGION": given}
    assert load_config(None, environ=env).genesys.region == canonical


def test_unknown_region_lists_the_valid_ones() -> None:
    found = problems(None, {**BASE_ENV, "GENESYS_CONNECTOR__GENESYS__REGION": "mars_north_1"})
    assert len(found) == 1
    assert found[0].startswith("genesys.region: unknown region 'mars_north_1'; use one of us_east_1")


def test_explicit_urls_win_and_work_without_region() -> None:
    env = {
        "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "a",
        "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "b",
        "GENESYS_CONNECTOR__GENESYS__API_BASE_URL": "http://127.0.0.1:8080/",
        "GENESYS_CONNECTOR__GENESYS__LOGIN_BASE_URL": "http://127.0.0.1:8080",
    }
    genesys = load_config(None, environ=env).genesys
    assert genesys.api_base_url == "http://127.0.0.1:8080"
    assert genesys.login_base_url == "http://127.0.0.1:8080"
    with_region = load_config(
        None, environ={**env, "GENESYS_CONNECTOR__GENESYS__REGION": "eu_west_1"}
    ).genesys
    assert with_region.api_base_url == "http://127.0.0.1:8080"


def test_login_url_is_derived_from_an_api_url() -> None:
    env = {
        "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "a",
        "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "b",
        "GENESYS_CONNECTOR__GENESYS__API_BASE_URL": "https://api.example.pure.cloud",
    }
    assert load_config(None, environ=env).genesys.login_base_url == "https://login.example.pure.cloud"


def test_region_or_both_urls_are_required() -> None:
    env = {
        "GENESYS_CONNECTOR__GENESYS__CLIENT_ID": "a",
        "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": "b",
        "GENESYS_CONNECTOR__GENESYS__API_BASE_URL": "http://127.0.0.1:8080",
    }
    found = problems(None, env)
    assert found == [
        "genesys.region: set genesys.region (e.g. us_east_1) or both genesys.api_base_url and "
        "genesys.login_base_url (genesys.login_base_url is missing)"
    ]
    bad = problems(None, {**env, "GENESYS_CONNECTOR__GENESYS__LOGIN_BASE_URL": "ftp://x"})
    assert bad == [
        "genesys.login_base_url: expected an http(s) URL like https://api.mypurecloud.com (got 'ftp://x')"
    ]


# ---------------------------------------------------------------------------------------- durations, start


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("250ms", timedelta(milliseconds=250)),
        ("PT5M", timedelta(minutes=5)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        (90, timedelta(seconds=90)),
        ("2m30s", timedelta(minutes=2, seconds=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1s500ms", timedelta(seconds=1, milliseconds=500)),
    ],
)
def test_durations(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "5", "5 minutes", "PT", "-5m", True, None, "30s2m", "5m5m", "2m30", "m30s"]
)
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for value in ("90s", "5m", "26h", "3d", "1.5s"):
        assert format_duration(parse_duration(value)) == value


def test_relative_and_absolute_start() -> None:
    now = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
    relative = load_config(None, environ={**BASE_ENV, "GENESYS_CONNECTOR__WINDOWS__START": "-12h"}).windows
    assert relative.resolve_start(now) == datetime(2026, 5, 10, 0, 0, tzinfo=UTC)
    absolute = load_config(
        None, environ={**BASE_ENV, "GENESYS_CONNECTOR__WINDOWS__START": "2026-05-01T02:00:00+02:00"}
    ).windows
    assert absolute.resolve_start(now) == datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    a_date = load_config(
        None, environ={**BASE_ENV, "GENESYS_CONNECTOR__WINDOWS__START": "2026-05-03"}
    ).windows
    assert a_date.resolve_start(now) == datetime(2026, 5, 3, tzinfo=UTC)
    default = load_config(None, environ=BASE_ENV).windows
    assert default.resolve_start(now) == now - timedelta(days=7)


def test_compound_durations_in_the_configuration() -> None:
    env = {**BASE_ENV, "GENESYS_CONNECTOR__WINDOWS__POLL_INTERVAL": "2m30s"}
    env["GENESYS_CONNECTOR__WINDOWS__START"] = "-1d12h"
    windows = load_config(None, environ=env).windows
    assert windows.poll_interval == timedelta(seconds=150)
    assert windows.start == timedelta(hours=36)


# ------------------------------------------------------------------ what `run` would reject, found early

GENESYS_YAML = f"genesys:\n  region: us_east_1\n  client_id: c\n  client_secret: {SECRET}\n"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "kafka:\n  extra:\n    acks: 1\n",
            "kafka.extra.acks: cannot override acks='all' (delivery guarantee)",
        ),
        (
            "kafka:\n  extra:\n    enable.idempotence: false\n",
            "kafka.extra.enable.idempotence: cannot override enable.idempotence=True (delivery guarantee)",
        ),
        (
            "kafka:\n  extra:\n    error_cb: x\n",
            "kafka.extra.error_cb: set by the connector itself, cannot be configured",
        ),
        (
            "kafka:\n  extra:\n    no.such.property: 1\n",
            "kafka: the producer settings were rejected: _INVALID_ARG: No such configuration property: "
            '"no.such.property"',
        ),
        (
            "kafka:\n  extra:\n    batch.num.messages: -3\n",
            "kafka: the producer settings were rejected: _INVALID_ARG: Configuration property "
            '"batch.num.messages" value -3 is outside allowed range',
        ),
        (
            "kafka:\n  bootstrap_servers: 'not a host::::'\n",
            "kafka.bootstrap_servers: expected a comma-separated list of host:port, e.g. "
            "broker-1:9092,broker-2:9092 (got 'not a host::::')",
        ),
        (
            "kafka:\n  bootstrap_servers: 'broker-1:9092,,broker-2:9092'\n",
            "kafka.bootstrap_servers: expected a comma-separated list of host:port, e.g. "
            "broker-1:9092,broker-2:9092 (got '')",
        ),
        (
            "kafka:\n  bootstrap_servers: 'broker-1:99999'\n",
            "kafka.bootstrap_servers: expected a comma-separated list of host:port, e.g. "
            "broker-1:9092,broker-2:9092 (got 'broker-1:99999')",
        ),
        ("kafka:\n  linger_ms: true\n", "kafka.linger_ms: expected an integer, not a boolean (got true)"),
        ("metrics:\n  port: false\n", "metrics.port: expected an integer, not a boolean (got false)"),
        (
            "genesys:\n  page_size: true\n",
            "genesys.page_size: expected an integer, not a boolean (got true)",
        ),
        (
            "genesys:\n  request_timeout_s: true\n",
            "genesys.request_timeout_s: expected a number, not a boolean (got true)",
        ),
    ],
)
def test_check_config_rejects_what_run_would(tmp_path: Path, yaml_text: str, expected: str) -> None:
    merged = _merge_yaml(GENESYS_YAML, yaml_text)
    found = problems(write(tmp_path, merged), {})
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def _merge_yaml(base: str, extra: str) -> str:
    """`extra` below `base`; a second `genesys:` section is folded into the first."""
    if extra.startswith("genesys:\n"):
        return base + extra.removeprefix("genesys:\n")
    return base + extra


def test_checkpoint_directory_must_not_be_a_file(tmp_path: Path) -> None:
    blocker = write(tmp_path, "x", name="a-file")
    env = {**BASE_ENV, "GENESYS_CONNECTOR__CHECKPOINT__DIRECTORY": str(blocker)}
    assert problems(None, env) == [f"checkpoint.directory: {blocker} is not a directory"]
    env["GENESYS_CONNECTOR__CHECKPOINT__DIRECTORY"] = str(blocker / "state")
    assert problems(None, env) == [f"checkpoint.directory: {blocker} is not a directory (in {blocker}/state)"]
    env["GENESYS_CONNECTOR__CHECKPOINT__DIRECTORY"] = str(tmp_path / "new" / "state")
    assert load_config(None, environ=env).checkpoint.directory == tmp_path / "new" / "state"


def test_librdkafka_rejections_never_show_a_secret_value(tmp_path: Path) -> None:
    text = GENESYS_YAML + (
        "kafka:\n  extra:\n    sasl.oauthbearer.config: 'principal=admin secret-oauth-cfg'\n"
        "    ssl.key.password: 'also-secret'\n    nope.nope: 1\n"
    )
    found = problems(write(tmp_path, text), {})
    assert len(found) == 1, found
    assert "nope.nope" in found[0]
    assert "secret-oauth-cfg" not in found[0]
    assert "also-secret" not in found[0]


def test_no_configuration_at_all_says_so() -> None:
    assert problems(None, {"HOME": "/root"}) == [
        "no configuration file given: pass --config FILE or set GENESYS_CONNECTOR__<SECTION>__<KEY> variables"
    ]


def test_redacted_masks_secret_kafka_extra_values() -> None:
    env = {**BASE_ENV, "GENESYS_CONNECTOR__KAFKA__EXTRA": '{"sasl.oauthbearer.config": "principal=p x=y"}'}
    shown = load_config(None, environ=env).redacted()
    assert shown["kafka"]["extra"] == {"sasl.oauthbearer.config": "***"}


def test_status_needs_only_the_checkpoint_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    loaded = load_status_config(None, environ={"GENESYS_CONNECTOR__CHECKPOINT__DIRECTORY": str(state)})
    assert loaded.checkpoint.directory == state
    assert loaded.kafka.topic == "genesys.conversations"
    path = write(tmp_path, f"genesys:\n  client_secret: {SECRET}\nkafka:\n  topic: t1\n")
    loaded = load_status_config(path, environ={})
    assert loaded.kafka.topic == "t1"
    assert loaded.secrets == (SECRET,)
    assert SECRET not in repr(loaded)
    blocker = write(tmp_path, "x", name="a-file")
    with pytest.raises(ConfigError) as info:
        load_status_config(None, environ={"GENESYS_CONNECTOR__CHECKPOINT__DIRECTORY": str(blocker)})
    assert info.value.problems == [f"checkpoint.directory: {blocker} is not a directory"]
