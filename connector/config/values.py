"""Typed values of the settings, from YAML scalars or environment text: durations, instants, lists, maps.

Durations read `30s`, `5m`, `2m30s`, `1h 30m`, `250ms`, ISO-8601 (`PT5M`) or a number of seconds; instants
are ISO-8601 with an offset (or a bare date, midnight UTC); lists from the environment are JSON or
comma-separated; mappings are JSON objects. `format_duration` writes a duration back the short way.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import orjson
from pydantic import BeforeValidator, TypeAdapter, ValidationError
from pydantic_settings import NoDecode

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


def parse_instant(value: object) -> datetime:
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


def parse_start(value: object) -> datetime | timedelta:
    """`windows.start`: an absolute instant, or `-<duration>` meaning that long before the first run."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return parse_duration(value.strip()[1:])
    if isinstance(value, str) and _DURATION_RE.match(value):
        raise ValueError(f"a relative start must be negative, e.g. -7d (got {value!r})")
    return parse_instant(value)


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
Instant = Annotated[datetime, BeforeValidator(parse_instant)]
StrList = Annotated[list[str], NoDecode, BeforeValidator(_parse_list)]
DurationList = Annotated[list[Duration], NoDecode, BeforeValidator(_parse_list)]
ScalarMap = Annotated[dict[str, str | int | float | bool], NoDecode, BeforeValidator(_parse_mapping)]
