"""Settings: one frozen model, loaded from a YAML file and the environment, validated before connecting.

Sources, highest precedence first:

1. environment variables `GENESYS_CONNECTOR__<SECTION>__<KEY>` (e.g.
   `GENESYS_CONNECTOR__KAFKA__BOOTSTRAP_SERVERS`, `GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET`); lists take
   `a,b,c` or JSON, `kafka.extra` takes a JSON object;
2. the YAML file given with `--config`;
3. the defaults declared below.

`loading` is the only reader of the environment. Secrets (`genesys.client_secret`, `kafka.sasl_password`,
`kafka.ssl_key_password`) are `SecretStr`; each has a `*_file` twin naming a mounted file to read it from
(Kubernetes secrets). A secret never appears in `repr`, `str`, error messages or `Settings.redacted()`.

`load_config()` raises `ConfigError` with one line per wrong field, e.g. `genesys.page_size: must be <= 100
(got 500)` or `unknown field 'kafka.bootstrap_server' (did you mean 'kafka.bootstrap_servers'?)`.

Modules by role: `values` (durations, instants, lists), `regions` (Genesys hosts), `secret_files`,
`problems` (one line per wrong field), `models` (the sections and `Settings`), `loading` (sources, merge,
`load_config`). Import from `connector.config`.
"""

from __future__ import annotations

from connector.config.loading import StatusSettings, load_config, load_status_config
from connector.config.models import (
    ENV_DELIMITER,
    ENV_PREFIX,
    MEDIA_TYPES,
    CheckpointSettings,
    FilterSettings,
    GenesysSettings,
    JobsSettings,
    KafkaSettings,
    LoggingSettings,
    MetricsSettings,
    Settings,
    WindowsSettings,
)
from connector.config.regions import REGIONS
from connector.config.values import Duration, DurationList, Instant, format_duration, parse_duration

__all__ = [
    "ENV_DELIMITER",
    "ENV_PREFIX",
    "MEDIA_TYPES",
    "REGIONS",
    "CheckpointSettings",
    "Duration",
    "DurationList",
    "FilterSettings",
    "GenesysSettings",
    "Instant",
    "JobsSettings",
    "KafkaSettings",
    "LoggingSettings",
    "MetricsSettings",
    "Settings",
    "StatusSettings",
    "WindowsSettings",
    "format_duration",
    "load_config",
    "load_status_config",
    "parse_duration",
]
