"""Settings: one frozen model, loaded from a YAML file and the environment, validated before connecting.

Sources, highest precedence first:

1. environment variables `GENESYS_CONNECTOR__<SECTION>__<KEY>` (e.g.
   `GENESYS_CONNECTOR__KAFKA__BOOTSTRAP_SERVERS`, `GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET`); lists take
   `a,b,c` or JSON, `kafka.extra` takes a JSON object;
2. the YAML file given with `--config`;
3. the defaults declared below.

This module is the only reader of the environment. Secrets (`genesys.client_secret`, `kafka.sasl_password`,
`kafka.ssl_key_password`) are `SecretStr`; each has a `*_file` twin naming a mounted file to read it from
(Kubernetes secrets). A secret never appears in `repr`, `str`, error messages or `Settings.redacted()`.

`load_config()` raises `ConfigError` with one line per wrong field, e.g. `genesys.page_size: must be <= 100
(got 500)` or `unknown field 'kafka.bootstrap_server' (did you mean 'kafka.bootstrap_servers'?)`.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

from connector.errors import ConfigError
from connector.secrets import MASK, is_secret_name, mask_settings

ENV_PREFIX = "GENESYS_CONNECTOR__"
ENV_DELIMITER = "__"

#: Genesys Cloud regions (genesys-api.md §4.2): name -> (API host, login host).
REGIONS: dict[str, tuple[str, str]] = {
    "us_east_1": ("api.mypurecloud.com", "login.mypurecloud.com"),
    "us_east_2": ("api.use2.us-gov-pure.cloud", "login.use2.us-gov-pure.cloud"),
    "us_west_2": ("api.usw2.pure.cloud", "login.usw2.pure.cloud"),
    "ca_central_1": ("api.cac1.pure.cloud", "login.cac1.pure.cloud"),
    "sa_east_1": ("api.sae1.pure.cloud", "login.sae1.pure.cloud"),
    "mx_central_1": ("api.mxc1.pure.cloud", "login.mxc1.pure.cloud"),
    "eu_west_1": ("api.mypurecloud.ie", "login.mypurecloud.ie"),
    "eu_west_2": ("api.euw2.pure.cloud", "login.euw2.pure.cloud"),
    "eu_central_1": ("api.mypurecloud.de", "login.mypurecloud.de"),
    "eu_central_2": ("api.euc2.pure.cloud", "login.euc2.pure.cloud"),
    "me_central_1": ("api.mec1.pure.cloud", "login.mec1.pure.cloud"),
    "ap_south_1": ("api.aps1.pure.cloud", "login.aps1.pure.cloud"),
    "ap_southeast_1": ("api.apse1.pure.cloud", "login.apse1.pure.cloud"),
    "ap_southeast_2": ("api.mypurecloud.com.au", "login.mypurecloud.com.au"),
    "ap_northeast_1": ("api.mypurecloud.jp", "login.mypurecloud.jp"),
    "ap_northeast_2": ("api.apne2.pure.cloud", "login.apne2.pure.cloud"),
    "ap_northeast_3": ("api.apne3.pure.cloud", "login.apne3.pure.cloud"),
}

#: Segment media types Genesys knows (segment dimension `mediaType`); a typo would silently match nothing.
#: One `kafka.bootstrap_servers` entry: `[protocol://]host[:port]`, host a name, IPv4 or [IPv6].
_BOOTSTRAP_ENTRY = re.compile(
    r"^(?:[A-Za-z_]+://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>\d{1,5}))?$"
)

MEDIA_TYPES = frozenset(
    {"voice", "callback", "chat", "email", "message", "cobrowse", "video", "screenshare", "unknown"}
)


# ---------------------------------------------------------------------------------------------------------
# Durations, instants, lists


_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_DURATION_PART = r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)"
#: One or more `<number><unit>` parts, largest unit first: `30s`, `5m`, `2m30s`, `1h 30m`, `1d12h`.
_DURATION_RE = re.compile(rf"^\s*(?:{_DURATION_PART}\s*)+$", re.IGNORECASE)
_DURATION_PARTS = re.compile(_DURATION_PART, re.IGNORECASE)
_UNIT_ORDER = list(_UNIT_SECONDS)
_DURATION_HINT = "expected a duration like 30s, 5m, 2m30s, 2h, 3d or PT5M"
_TIMEDELTA = TypeAdapter(timedelta)


def parse_duration(value: object) -> timedelta:
    """Parse `30s`, `5m`, `2m30s`, `2h`, `3d`, `1w`, `250ms`, ISO-8601 (`PT5M`, `P1DT2H`) or seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{_DURATION_HINT} (got {value!r})")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        if _DURATION_RE.match(value):
            seconds = _compound_seconds(value)
            if seconds is not None:
                return timedelta(seconds=seconds)
        elif value.strip().upper().startswith("P"):
            try:
                return _TIMEDELTA.validate_python(value.strip().upper())
            except ValidationError:
                pass
    raise ValueError(f"{_DURATION_HINT} (got {value!r})")


def _compound_seconds(text: str) -> float | None:
    """Seconds of `2m30s`; None when the units are not in decreasing order (`30s2m`, `5m5m`)."""
    total = 0.0
    last = -1
    for number, unit in _DURATION_PARTS.findall(text):
        rank = _UNIT_ORDER.index(unit.lower())
        if rank <= last:
            return None
        last = rank
        total += float(number) * _UNIT_SECONDS[unit.lower()]
    return total


def format_duration(value: timedelta) -> str:
    """Shortest exact rendering in the units `parse_duration` reads: 90 s -> `90s`, 2 h -> `2h`."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _parse_instant(value: object) -> datetime:
    """An absolute instant: ISO-8601 with an offset (or `Z`), or a bare date meaning midnight UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"expected an ISO-8601 instant like 2026-05-01T00:00:00Z (got {value!r})"
            ) from None
        if len(text) == 10:  # a date alone
            parsed = parsed.replace(tzinfo=UTC)
    else:
        raise ValueError(f"expected an ISO-8601 instant like 2026-05-01T00:00:00Z (got {value!r})")
    if parsed.tzinfo is None:
        raise ValueError(f"the instant needs a timezone, e.g. 2026-05-01T00:00:00Z (got {value!r})")
    return parsed.astimezone(UTC)


def _parse_start(value: object) -> datetime | timedelta:
    """`windows.start`: an absolute instant, or `-<duration>` meaning that long before the first run."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return parse_duration(value.strip()[1:])
    if isinstance(value, str) and _DURATION_RE.match(value):
        raise ValueError(f"a relative start must be negative, e.g. -7d (got {value!r})")
    return _parse_instant(value)


def _parse_list(value: object) -> object:
    """Lists from the environment: JSON (`["a","b"]`) or comma-separated (`a,b`)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def _parse_mapping(value: object) -> object:
    """Mappings from the environment are JSON objects."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError("expected a JSON object") from None
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Instant = Annotated[datetime, BeforeValidator(_parse_instant)]
StrList = Annotated[list[str], NoDecode, BeforeValidator(_parse_list)]
DurationList = Annotated[list[Duration], NoDecode, BeforeValidator(_parse_list)]
ScalarMap = Annotated[dict[str, str | int | float | bool], NoDecode, BeforeValidator(_parse_mapping)]


class _Problem:
    """A problem found while pre-processing a section, parked on the field it concerns.

    Raising from a model-level "before" validator would hide every other error of that section; parking
    the problem on a field lets pydantic report it together with the rest (see `_Section._report`).
    """

    def __init__(self, message: str) -> None:
        self.message = message


def _read_secret_files(data: Any, names: tuple[str, ...]) -> Any:
    """Replace each `<name>_file` path by the secret it names (mounted Kubernetes secret files).

    The path stays in the model (it is not secret); the content goes to `<name>`. A trailing newline is
    stripped. Problems name the file, never its content.
    """
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for name in names:
        path = data.get(f"{name}_file")
        if path is None or path == "":
            continue
        if data.get(name) not in (None, ""):
            data[f"{name}_file"] = _Problem(f"set either {name} or {name}_file, not both")
            continue
        try:
            content = Path(str(path)).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            data[f"{name}_file"] = _Problem(f"cannot read secret file {path}: {reason}")
            data[name] = ""  # reported once, on the file
            continue
        if not content:
            data[f"{name}_file"] = _Problem(f"secret file {path} is empty")
            data[name] = ""
            continue
        data[name] = content
    return data


# ---------------------------------------------------------------------------------------------------------
# Sections


class _Section(BaseModel):
    """Common model settings: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _report(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, _Problem):
            raise PydanticCustomError("problem", value.message)
        if isinstance(value, bool) and info.field_name is not None:
            kind = _number_kind(cls.model_fields[info.field_name].annotation)
            if kind is not None:  # pydantic's lax mode would take `true` as 1
                raise PydanticCustomError(
                    "problem",
                    "expected {kind}, not a boolean (got {value})",
                    {"kind": kind, "value": str(value).lower()},
                )
        return value


def _number_kind(annotation: Any) -> str | None:
    """ "an integer" / "a number" for int / float fields (also `int | None`), else None."""
    args = getattr(annotation, "__args__", None) or (annotation,)
    if int in args:
        return "an integer"
    if float in args:
        return "a number"
    return None


class GenesysSettings(_Section):
    """How to reach Genesys Cloud, who we are, and how hard we may push it.

    `api_base_url` and `login_base_url` always hold the resolved URLs: the explicit setting if given,
    else the region's hosts. `login_base_url` may also be derived from an explicit `https://api.<domain>`.
    """

    region: str | None = None
    api_base_url: str = ""
    login_base_url: str = ""
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    client_secret_file: Path | None = None
    page_size: int = Field(default=100, ge=1, le=100)
    request_timeout_s: float = Field(default=30.0, gt=0)
    requests_per_minute: int = Field(default=300, gt=0)
    budget_share: float = Field(default=1.0, gt=0, le=1)
    live_budget_share: float = Field(default=0.5, gt=0, le=1)
    max_concurrency: int = Field(default=8, ge=1, le=64)
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    max_retry_after_s: float = Field(default=180.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        data = _read_secret_files(data, ("client_secret",))
        if isinstance(data, dict):
            data = _resolve_urls(data)
        return data

    @model_validator(mode="after")
    def _check_backoff(self) -> GenesysSettings:
        if self.backoff_max_s < self.backoff_base_s:
            raise PydanticCustomError(
                "backoff",
                "must be >= genesys.backoff_base_s ({base})",
                {"base": self.backoff_base_s, "loc": "backoff_max_s"},
            )
        return self


def _normalise_region(region: str) -> str | None:
    """Accept `us_east_1`, `us-east-1`, or a region's domain (`euw2.pure.cloud`, `api.mypurecloud.ie`)."""
    key = region.strip().lower().replace("-", "_")
    if key in REGIONS:
        return key
    host = region.strip().lower().removeprefix("https://").removeprefix("api.").removeprefix("login.")
    for name, (api_host, _) in REGIONS.items():
        if api_host.removeprefix("api.") == host:
            return name
    return None


def _resolve_urls(data: dict[str, Any]) -> dict[str, Any]:
    """Fill `api_base_url` / `login_base_url` from the region unless given explicitly."""
    data = {k: v for k, v in data.items() if not (k.endswith("_base_url") and v in (None, ""))}
    api, login = data.get("api_base_url"), data.get("login_base_url")
    region = data.get("region") or None
    if region is not None:
        name = _normalise_region(str(region))
        if name is None:
            data["region"] = _Problem(
                f"unknown region {region!r}; use one of {', '.join(REGIONS)}, "
                "or set genesys.api_base_url and genesys.login_base_url"
            )
            return data
        data["region"] = name
        api = api or f"https://{REGIONS[name][0]}"
        login = login or f"https://{REGIONS[name][1]}"
    if api is not None and login is None and "//api." in str(api):
        login = str(api).replace("//api.", "//login.", 1)
    if api is None or login is None:
        missing = "genesys.api_base_url" if api is None else "genesys.login_base_url"
        data["region"] = _Problem(
            "set genesys.region (e.g. us_east_1) or both genesys.api_base_url and genesys.login_base_url "
            f"({missing} is missing)"
        )
        return data
    for key, url in (("api_base_url", api), ("login_base_url", login)):
        if re.match(r"^https?://[^/\s]+", str(url)):
            data[key] = str(url).rstrip("/")
        else:
            data[key] = _Problem(f"expected an http(s) URL like https://api.mypurecloud.com (got {url!r})")
    return data


class FilterSettings(_Section):
    """Optional query filters. Empty lists mean "everything the OAuth client may see"."""

    division_ids: StrList = Field(default_factory=list)
    media_types: StrList = Field(default_factory=list)
    queue_ids: StrList = Field(default_factory=list)

    @field_validator("media_types")
    @classmethod
    def _known_media(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in MEDIA_TYPES]
        if unknown:
            raise ValueError(f"unknown media type(s) {unknown}; known: {', '.join(sorted(MEDIA_TYPES))}")
        return value


class WindowsSettings(_Section):
    """Which time range to read, in which slices, and when to re-read it."""

    start: Annotated[datetime | timedelta, BeforeValidator(_parse_start)] = timedelta(days=7)
    end: Instant | None = None
    length: Duration = timedelta(minutes=5)
    max_catchup_length: Duration = timedelta(days=1)
    lag: Duration = timedelta(minutes=2)
    poll_interval: Duration = timedelta(seconds=30)
    rescan_delays: DurationList = Field(
        default_factory=lambda: [
            timedelta(minutes=15),
            timedelta(hours=2),
            timedelta(hours=26),
            timedelta(hours=74),
        ]
    )
    filters: FilterSettings = Field(default_factory=FilterSettings)

    @field_validator("length", "max_catchup_length", "poll_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be positive (got {format_duration(value)})")
        return value

    @field_validator("max_catchup_length")
    @classmethod
    def _at_most_a_week(cls, value: timedelta) -> timedelta:
        if value > timedelta(days=7):
            raise ValueError(
                f"must be <= 7d, the longest interval Genesys accepts (got {format_duration(value)})"
            )
        return value

    @field_validator("lag")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError(f"must not be negative (got {value})")
        return value

    @field_validator("rescan_delays")
    @classmethod
    def _sorted_positive(cls, value: list[timedelta]) -> list[timedelta]:
        if any(d <= timedelta(0) for d in value):
            raise ValueError("every delay must be positive")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(
                f"delays must be strictly increasing (got {[format_duration(d) for d in value]})"
            )
        return value

    @model_validator(mode="after")
    def _check_relations(self) -> WindowsSettings:
        if self.max_catchup_length < self.length:
            raise PydanticCustomError(
                "relation",
                "must be >= windows.length ({length})",
                {"length": format_duration(self.length), "loc": "max_catchup_length"},
            )
        if self.end is not None and isinstance(self.start, datetime) and self.end <= self.start:
            raise PydanticCustomError("relation", "must be after windows.start", {"loc": "end"})
        return self

    def resolve_start(self, now: datetime) -> datetime:
        """The configured start as an instant: absolute as given, relative counted back from `now`."""
        if isinstance(self.start, datetime):
            return self.start
        return now - self.start


class KafkaSettings(_Section):
    """The producer's connection and tuning (names follow librdkafka's properties)."""

    bootstrap_servers: str = Field(default="localhost:9092", min_length=1)
    topic: str = Field(default="genesys.conversations", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    client_id: str = "genesys-connector"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    ssl_key_password_file: Path | None = None
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    linger_ms: int = Field(default=50, ge=0)
    queue_max_messages: int = Field(default=100000, ge=1)
    queue_max_kbytes: int = Field(default=262144, ge=1)
    delivery_timeout_ms: int = Field(default=300000, ge=1)
    message_max_bytes: int = Field(default=4194304, ge=1000)
    # A conversation over a size limit: stop (fail) or publish it without its largest parts (truncate).
    oversized_records: Literal["fail", "truncate"] = "fail"
    # repr=False: raw librdkafka properties may hold credentials (`sasl.oauthbearer.client.secret`...).
    extra: ScalarMap = Field(default_factory=dict, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        return _read_secret_files(data, ("sasl_password", "ssl_key_password"))

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for entry in value.split(","):
            match = _BOOTSTRAP_ENTRY.match(entry.strip())
            if match is None or not 0 < int(match.group("port") or 9092) <= 65535:
                raise PydanticCustomError(
                    "problem",
                    "expected a comma-separated list of host:port, e.g. broker-1:9092,broker-2:9092 "
                    "(got {entry})",
                    {"entry": repr(entry.strip())},
                )
        return value

    @model_validator(mode="after")
    def _check_sasl(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_"):
            for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
                if getattr(self, name) is None:
                    raise PydanticCustomError(
                        "sasl",
                        "required when kafka.security_protocol is {protocol}",
                        {"protocol": self.security_protocol, "loc": name},
                    )
        return self


class JobsSettings(_Section):
    """Async details jobs: backfill and settlement from the data lake (genesys-api.md §2).

    Genesys documents none of these limits (§2.5: concurrent jobs, job interval, results lifetime, how the
    data lake advances), so each is a setting with a cautious default. A job's interval is whole UTC days
    (see docs/ARCHITECTURE.md, "Jobs and the query").
    """

    page_size: int = Field(default=1000, ge=1, le=1000)
    max_concurrent: int = Field(default=2, ge=1, le=50)
    span: Duration = timedelta(days=1)
    poll_initial: Duration = timedelta(seconds=1)
    poll_max: Duration = timedelta(seconds=30)
    capacity_wait: Duration = timedelta(seconds=30)
    job_timeout: Duration = timedelta(hours=1)
    max_failures: int = Field(default=5, ge=1)
    results_lifetime: Duration = timedelta(hours=6)
    availability_check_interval: Duration = timedelta(minutes=5)
    settle_delay: Duration = timedelta(hours=24)

    @field_validator("span")
    @classmethod
    def _whole_days(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1) or value > timedelta(days=31) or value % timedelta(days=1):
            raise ValueError(f"must be whole days from 1d to 31d (got {format_duration(value)})")
        return value

    @field_validator(
        "poll_initial",
        "poll_max",
        "capacity_wait",
        "job_timeout",
        "results_lifetime",
        "availability_check_interval",
    )
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be positive (got {format_duration(value)})")
        return value

    @field_validator("settle_delay")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError(f"must not be negative (got {format_duration(value)})")
        return value

    @model_validator(mode="after")
    def _check_relations(self) -> JobsSettings:
        if self.poll_max < self.poll_initial:
            raise PydanticCustomError(
                "relation",
                "must be >= jobs.poll_initial ({initial})",
                {"initial": format_duration(self.poll_initial), "loc": "poll_max"},
            )
        return self


class CheckpointSettings(_Section):
    """Where the checkpoint and the change store live (a persistent volume in Kubernetes)."""

    directory: Path = Path("./state")
    # Checked at start-up, before anything is fetched or produced: room for the checkpoint and the change
    # store's growth, so a worker on a nearly full volume stops instead of re-publishing on every restart.
    min_free_bytes: int = Field(default=64 * 1024 * 1024, ge=0)

    @field_validator("directory")
    @classmethod
    def _directory_or_creatable(cls, value: Path) -> Path:
        """The path, or its nearest existing ancestor, must be a directory (a file there fails only later)."""
        probe = value
        while not probe.exists():
            if probe.parent == probe:
                return value
            probe = probe.parent
        if not probe.is_dir():
            where = "" if probe == value else f" (in {value})"
            raise PydanticCustomError(
                "problem", "{path} is not a directory{where}", {"path": str(probe), "where": where}
            )
        return value


class MetricsSettings(_Section):
    """The `/metrics`, `/healthz`, `/readyz` HTTP server."""

    host: str = "0.0.0.0"
    port: int = Field(default=9464, ge=0, le=65535)


class LoggingSettings(_Section):
    """Log level and format (`auto`: readable on a TTY, JSON lines otherwise)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """The whole configuration. Build it with `load_config()`; it is frozen once built."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        env_parse_none_str="null",
        env_ignore_empty=True,
    )

    genesys: GenesysSettings
    windows: WindowsSettings = Field(default_factory=WindowsSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only explicit arguments: `load_config` reads the YAML file and the environment in one place."""
        return (init_settings,)

    def redacted(self) -> dict[str, Any]:
        """Plain data for `check-config` / `status`: secrets "***", durations like `5m`, instants ISO-8601."""
        plain: dict[str, Any] = _plain(self.model_dump(), key="")
        return plain


def _plain(value: Any, *, key: str) -> Any:
    """Turn a model dump into JSON/YAML-friendly data with secrets masked."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        shown = mask_settings(value) if key == "extra" else value
        return {k: _plain(v, key=str(k)) for k, v in shown.items()}
    if isinstance(value, list):
        return [_plain(v, key=key) for v in value]
    if isinstance(value, timedelta):
        return ("-" if key == "start" else "") + format_duration(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------------------
# Loading


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env source reading an explicit mapping instead of `os.environ` (testable)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): (None if v == "null" else v) for k, v in self._environ.items() if v != ""}


def load_config(path: str | os.PathLike[str] | None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the configuration; raise `ConfigError` listing every problem at once.

    `path` is the YAML file (None: environment and defaults only). `environ` defaults to `os.environ`.
    """
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = list(_unknown_env_vars(env))
    merged = _merged_sources(path, env, problems)
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        problems.extend(_describe(error) for error in exc.errors())
    else:
        problems.extend(_producer_problems(settings.kafka))
    if problems:
        raise ConfigError(problems)
    return settings


def _merged_sources(path: str | os.PathLike[str] | None, env: Mapping[str, str], problems: list[str]) -> Any:
    """The YAML file's data with the environment's values merged over it (not validated yet)."""
    if path is None and not any(name.upper().startswith(ENV_PREFIX) for name in env):
        raise ConfigError(
            [f"no configuration file given: pass --config FILE or set {ENV_PREFIX}<SECTION>__<KEY> variables"]
        )
    data = _read_yaml(path) if path is not None else {}
    try:
        env_data = _MappingEnvSource(Settings, env)()
    except SettingsError as exc:
        raise ConfigError([*problems, f"environment: {exc}"]) from None
    return _deep_merge(data, _prune(env_data, _field_tree(Settings)))


def _producer_problems(kafka: KafkaSettings) -> list[str]:
    """What `run` would reject when it builds the producer: overridden guarantees, unknown properties."""
    from connector.librdkafka import check_producer_settings  # confluent_kafka: loaded only when needed

    try:
        check_producer_settings(kafka)
    except ConfigError as exc:
        return exc.problems
    return []


class _TopicOnly(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    topic: str = KafkaSettings.model_fields["topic"].default


class StatusSettings(BaseModel):
    """What `status` needs: the checkpoint directory (and the topic, shown for orientation).

    `secrets` are the secret-named values found in the configuration, so that `status` can mask them in
    an old checkpoint's `last_error` without the rest of the configuration having to be valid.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    kafka: _TopicOnly = Field(default_factory=_TopicOnly)
    secrets: tuple[str, ...] = Field(default=(), repr=False)


def load_status_config(
    path: str | os.PathLike[str] | None, *, environ: Mapping[str, str] | None = None
) -> StatusSettings:
    """The `checkpoint` section alone (for `status`): other sections are neither required nor checked."""
    env = dict(os.environ if environ is None else environ)
    merged = _merged_sources(path, env, [])
    section = merged.get("checkpoint", {})
    kafka = merged.get("kafka") if isinstance(merged.get("kafka"), dict) else {}
    try:
        return StatusSettings(
            checkpoint=section,
            kafka=_TopicOnly(topic=str(kafka.get("topic", _TopicOnly().topic))),
            secrets=tuple(_secret_values(merged)),
        )
    except ValidationError as exc:
        raise ConfigError([_describe(error) for error in exc.errors()]) from None


def _secret_values(data: Any, key: str = "") -> list[str]:
    """Every string under a secret-named key of raw configuration data."""
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in _secret_values(v, str(k))]
    if isinstance(data, str) and data and is_secret_name(key):
        return [data]
    return []


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The YAML file as a mapping; a missing file or a syntax error is a ConfigError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read config file {os.fspath(path)}: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        # Only the parser's problem text and position: the offending line could hold a secret.
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError([f"invalid YAML in {os.fspath(path)}{where}: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{os.fspath(path)}: expected a mapping of sections at the top level"])
    return data


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` wins; nested mappings merge key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _field_tree(model: type[BaseModel]) -> dict[str, Any]:
    """Field names of a model, nested for sub-models; a dict-typed field is open (`None`)."""
    tree: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            tree[name] = _field_tree(annotation)
        else:
            tree[name] = None
    return tree


def _prune(data: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    """Drop keys the model does not know (`_unknown_env_vars` reports them under the variable's name)."""
    pruned: dict[str, Any] = {}
    for key, value in data.items():
        if key not in tree:
            continue
        sub = tree[key]
        pruned[key] = _prune(value, sub) if isinstance(sub, dict) and isinstance(value, dict) else value
    return pruned


def _unknown_env_vars(environ: Mapping[str, str]) -> list[str]:
    """Typo detection for `GENESYS_CONNECTOR__...` variables, which pydantic would silently ignore."""
    tree = _field_tree(Settings)
    problems = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        node: dict[str, Any] | None = tree
        path: list[str] = []
        for part in name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER):
            if node is None:
                break  # below a scalar or mapping field: that field's own validation reports it
            if part not in node:
                prefix = ENV_PREFIX + "".join(p.upper() + ENV_DELIMITER for p in path)
                close = difflib.get_close_matches(part, list(node), n=1, cutoff=0.75)
                hint = f" (did you mean {prefix}{close[0].upper()}?)" if close else ""
                problems.append(f"unknown environment variable {name}{hint}")
                break
            path.append(part)
            node = node[part]
    return problems


def _suggest(name: str, candidates: Mapping[str, Any], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def _describe(error: Any) -> str:
    """One line for one pydantic error, e.g. `genesys.page_size: must be <= 100 (got 500)`."""
    loc = [str(part) for part in error["loc"]]
    ctx = error.get("ctx") or {}
    if "loc" in ctx:
        loc.append(str(ctx["loc"]))
    dotted = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _lookup(loc[:-1])
        hint = _suggest(loc[-1], parent, ".".join(loc[:-1]) + "." if len(loc) > 1 else "") if parent else ""
        return f"unknown field '{dotted}'{hint}"
    if kind == "missing":
        also = f" (or set {dotted}_file)" if loc and is_secret_name(loc[-1]) else ""
        return f"{dotted}: required{also}"
    message = _message(kind, ctx, error["msg"])
    if (loc and is_secret_name(loc[-1])) or kind == "problem":
        return f"{dotted}: {message}"
    got = error.get("input")
    if isinstance(got, dict | list) or got is None or "(got " in message:
        return f"{dotted}: {message}"
    shown = repr(got)
    return f"{dotted}: {message} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


def _message(kind: str, ctx: Mapping[str, Any], msg: str) -> str:
    bounds = {"less_than_equal": "<=", "less_than": "<", "greater_than_equal": ">=", "greater_than": ">"}
    if kind in bounds:
        limit = next(iter(v for k, v in ctx.items() if k in ("le", "lt", "ge", "gt")))
        return f"must be {bounds[kind]} {limit:g}"
    if kind == "value_error":
        return str(ctx.get("error", msg))
    return msg[0].lower() + msg[1:] if msg else kind


def _lookup(path: list[str]) -> dict[str, Any] | None:
    node: Any = _field_tree(Settings)
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None
