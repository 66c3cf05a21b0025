"""The settings model: one frozen pydantic model per section, and `Settings`, the whole configuration.

Each section rejects unknown keys and validates its own fields and their relations; secrets are
`SecretStr` (with a `*_file` twin) and never appear in `repr`, errors or `Settings.redacted()`.
Reading the sources (YAML file, environment) is `loading`'s job; this module only validates.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connector.config.problems import Problem
from connector.config.regions import resolve_urls
from connector.config.secret_files import read_secret_files
from connector.config.values import (
    Duration,
    DurationList,
    Instant,
    ScalarMap,
    StrList,
    format_duration,
    parse_start,
)
from connector.secrets import MASK, mask_settings

ENV_PREFIX = "GENESYS_CONNECTOR__"
ENV_DELIMITER = "__"

#: One `kafka.bootstrap_servers` entry: `[protocol://]host[:port]`, host a name, IPv4 or [IPv6].
_BOOTSTRAP_ENTRY = re.compile(
    r"^(?:[A-Za-z_]+://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>\d{1,5}))?$"
)

#: Segment media types Genesys knows (segment dimension `mediaType`); a typo would silently match nothing.
MEDIA_TYPES = frozenset(
    {"voice", "callback", "chat", "email", "message", "cobrowse", "video", "screenshare", "unknown"}
)


class _Section(BaseModel):
    """Common model settings: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _report(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, Problem):
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
    # Share `genesys-connector verify` uses, so it can run next to the worker on the same OAuth client.
    verify_budget_share: float = Field(default=0.1, gt=0, le=1)
    max_concurrency: int = Field(default=8, ge=1, le=64)
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    max_retry_after_s: float = Field(default=180.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        data = read_secret_files(data, ("client_secret",))
        if isinstance(data, dict):
            data = resolve_urls(data)
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

    start: Annotated[datetime | timedelta, BeforeValidator(parse_start)] = timedelta(days=7)
    end: Instant | None = None
    length: Duration = timedelta(minutes=5)
    max_catchup_length: Duration = timedelta(days=1)
    lag: Duration = timedelta(minutes=2)
    poll_interval: Duration = timedelta(seconds=30)
    rescan_delays: DurationList = Field(
        default_factory=lambda: [
            timedelta(minutes=15),
            timedelta(hours=2),
        ]  # the late versions come from the settling job (jobs.settle; ARCHITECTURE.md "Jobs and the query")
    )
    # Open conversations are re-read by id this often from their first sighting until they end (null: never).
    follow_interval: Duration | None = timedelta(minutes=5)
    filters: FilterSettings = Field(default_factory=FilterSettings)

    @field_validator("length", "max_catchup_length", "poll_interval", "follow_interval")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
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
    # Optional topic for range-final events and watermark heartbeats (connector.kafka.control); None: off.
    control_topic: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,249}$")
    # How often the watermark heartbeat goes to the control topic (range-final events go at once).
    control_heartbeat_interval: Duration = timedelta(minutes=1)
    # repr=False: raw librdkafka properties may hold credentials (`sasl.oauthbearer.client.secret`...).
    extra: ScalarMap = Field(default_factory=dict, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        return read_secret_files(data, ("sasl_password", "ssl_key_password"))

    @field_validator("control_heartbeat_interval")
    @classmethod
    def _positive_interval(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be positive (got {format_duration(value)})")
        return value

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

    # Read the backlog the data lake holds through jobs (false: the details query reads everything).
    backfill: bool = True
    # Read every query-read window once more through a job once the data lake has passed it + settle_delay.
    settle: bool = True
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
