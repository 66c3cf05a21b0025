"""Loading: read the YAML file and the environment, merge them, validate, and report every problem at once.

This is the only reader of the environment (`GENESYS_CONNECTOR__<SECTION>__<KEY>`, which wins over the
file). `load_config` also runs the librdkafka check that `run` would run, so a setting the producer would
refuse fails here; `load_status_config` reads only what `status` needs.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource
from pydantic_settings.exceptions import SettingsError

from connector.config.models import (
    ENV_DELIMITER,
    ENV_PREFIX,
    CheckpointSettings,
    KafkaSettings,
    Settings,
)
from connector.config.problems import describe, field_tree
from connector.errors import ConfigError
from connector.secrets import is_secret_name


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
        problems.extend(describe(error, field_tree(Settings)) for error in exc.errors())
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
    return _deep_merge(data, _prune(env_data, field_tree(Settings)))


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
        raise ConfigError([describe(error, field_tree(Settings)) for error in exc.errors()]) from None


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
    tree = field_tree(Settings)
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
