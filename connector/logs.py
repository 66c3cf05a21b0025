"""Logging setup: JSON lines for machines, readable lines for people, and no secret in either.

`configure_logging()` installs one handler on the root logger. Off a terminal (a pod, a pipe) each record
is one JSON object per line: `ts` (ISO-8601 UTC, ms), `level`, `logger`, `msg`, then every `extra=` field
(`correlation_id`, `window`, `pass`, `endpoint`, `status`...) and `exc` for exceptions. On a terminal the
same record is a short line with the extras as `key=value`.

Every record passes a `RedactionFilter` before it is formatted. It applies `connector.secrets.Redactor`
(the connector's one masking rule) to the message, its arguments, the extras, the exception text and the
stack: registered secrets (the client secret, SASL and key passwords, every OAuth token obtained), bearer
tokens, `Authorization` credentials and values of secret-named keys written as pairs.

When a record carries an exception with context attributes (the connector's `ApiError` family has
`correlation_id`, `status`, `code`, `endpoint`), those are added as fields, so the ININ-Correlation-Id of a
failed call is in the log line without parsing the message.

The registered secrets live in one process-wide `Redactor` because logging itself is process-wide; tests
and embedders can pass their own `Redactor` to `configure_logging()`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

import orjson

from connector.errors import ConfigError
from connector.secrets import MASK, Redactor

__all__ = [
    "MASK",
    "JsonFormatter",
    "RedactionFilter",
    "Redactor",
    "TextFormatter",
    "configure_logging",
    "process_redactor",
    "register_secret",
]

LogFormat = Literal["auto", "json", "text"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_NOISY_LIBRARIES = ("httpx", "httpcore")  # one INFO line per HTTP request: far too chatty above DEBUG
_CONTEXT_ATTRS = ("correlation_id", "status", "code", "endpoint", "window", "page", "retry_after_s")
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_CORE_KEYS = ("ts", "level", "logger", "msg", "exc", "stack")

_default_redactor = Redactor()


def process_redactor() -> Redactor:
    """The redactor `configure_logging()` uses unless given another one (logging is process-wide)."""
    return _default_redactor


def register_secret(value: str | None) -> None:
    """Never log `value`: mask it in every record handled by `configure_logging()`'s default handler."""
    _default_redactor.add(value)


class RedactionFilter(logging.Filter):
    """Rewrites each record so that nothing a handler prints can contain a secret.

    Runs once per handler; redaction is idempotent. The message is rendered (`msg % args`) before masking
    so a secret passed as an argument is caught too; exceptions are rendered to text and masked.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor
        self._renderer = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        r = self._redactor
        record.msg = r.redact(_render_message(record))
        record.args = None
        if record.exc_info:
            _add_exception_context(record, record.exc_info[1])
            record.exc_text = self._renderer.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = r.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = r.redact(record.stack_info)
        for key, value in _extras(record).items():
            setattr(record, key, r.redact_value(value, key=key))
        return True


def _render_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):
        return f"{record.msg!s} (log arguments did not match the message: {record.args!r})"


def _add_exception_context(record: logging.LogRecord, exc: BaseException | None) -> None:
    """Copy context attributes of the logged exception (correlation id, status...) onto the record."""
    if exc is None:
        return
    if not hasattr(record, "error"):
        record.error = type(exc).__name__
    for attr in _CONTEXT_ATTRS:
        value = getattr(exc, attr, None)
        if value is not None and not hasattr(record, attr):
            setattr(record, attr, value)


def _extras(record: logging.LogRecord) -> dict[str, object]:
    """The `extra=` fields of a record (everything that is not a standard LogRecord attribute)."""
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> datetime:
    return datetime.fromtimestamp(record.created, UTC)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the extras, then exc/stack when present."""

    def format(self, record: logging.LogRecord) -> str:
        ts = _timestamp(record).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        payload: dict[str, object] = {
            "ts": ts,
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            payload[f"{key}_" if key in _CORE_KEYS else key] = value
        exc_text = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if exc_text:
            payload["exc"] = exc_text
        if record.stack_info:
            payload["stack"] = record.stack_info
        return _dumps(payload)


def _dumps(payload: dict[str, object]) -> str:
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
    try:
        return orjson.dumps(payload, default=str, option=options).decode()
    except TypeError:  # e.g. an int beyond 64 bits: fall back to the slow, lenient encoder
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A short line for people: `12:00:00.123 INFO  connector.app: message key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        ts = _timestamp(record).strftime("%H:%M:%S.") + f"{int(record.msecs):03d}"
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{k}={_text_value(v)}" for k, v in _extras(record).items())
        if extras:
            line = f"{line}  {extras}"
        exc_text = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if exc_text:
            line = f"{line}\n{exc_text}"
        if record.stack_info:
            line = f"{line}\n{record.stack_info}"
        return line


def _text_value(value: object) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return json.dumps(text) if (not text or any(c.isspace() for c in text)) else text


class _ConnectorHandler(logging.StreamHandler[TextIO]):
    """Marks the handler `configure_logging()` installed, so calling it again replaces it."""


def configure_logging(
    level: str,
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
    *,
    redactor: Redactor | None = None,
) -> logging.Handler:
    """Send all logging to `stream` (default stderr) as JSON lines or text, with secrets masked.

    `fmt="auto"` picks text when `stream` is a terminal and JSON otherwise. Calling it again replaces the
    handler it installed before. Returns the installed handler. Raises ConfigError on an unknown level or
    format.
    """
    numeric = _parse_level(level)
    if fmt not in ("auto", "json", "text"):
        raise ConfigError([f"logging.format: {fmt!r} is not one of auto, json, text"])
    out: TextIO = stream if stream is not None else sys.stderr
    use_text = fmt == "text" or (fmt == "auto" and _is_tty(out))
    handler = _ConnectorHandler(out)
    handler.setFormatter(TextFormatter() if use_text else JsonFormatter())
    handler.addFilter(RedactionFilter(redactor if redactor is not None else _default_redactor))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ConnectorHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING)
    return handler


def _parse_level(level: str) -> int:
    name = level.strip().upper()
    name = "WARNING" if name == "WARN" else name
    if name not in _LEVELS:
        raise ConfigError([f"logging.level: {level!r} is not one of {', '.join(_LEVELS)}"])
    return int(getattr(logging, name))


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # closed stream
        return False
