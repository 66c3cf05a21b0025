"""librdkafka's own log lines, relayed into Python logging: throttled, and capped at WARNING.

A broker that is down makes librdkafka log every reconnect at ERROR level, while the real outcome arrives
as a delivery report or a fatal error; so each facility logs at most one line per interval, and never
above WARNING. Lines known to be harmless (`_HARMLESS_CLIENT_LOGS`) are logged at INFO.
"""

from __future__ import annotations

import logging

from connector.clock import Clock

#: The logger librdkafka's lines go to (named after the publisher, which owns the producer).
CLIENT_LOGGER = "connector.kafka.publisher.librdkafka"
ERROR_LOG_INTERVAL_S = 30.0

#: librdkafka log lines that are expected and harmless, logged at INFO whatever librdkafka's level:
#: (facility, text in the line). A fresh broker answers the idempotent producer's first PID request with
#: "Coordinator load in progress" while its transaction coordinator loads; librdkafka retries and succeeds.
_HARMLESS_CLIENT_LOGS = (("GETPID", "Coordinator load in progress"),)


class LogThrottle:
    """At most one log line per key per interval; counts what it suppressed meanwhile."""

    def __init__(self, clock: Clock, interval_s: float = ERROR_LOG_INTERVAL_S) -> None:
        self._clock = clock
        self._interval_s = interval_s
        self._seen: dict[str, tuple[float, int]] = {}

    def admit(self, key: str) -> int | None:
        """None when `key` was logged less than interval_s ago; else how many lines were suppressed."""
        now = self._clock.monotonic()
        last, suppressed = self._seen.get(key, (None, 0))
        if last is not None and now - last < self._interval_s:
            self._seen[key] = (last, suppressed + 1)
            return None
        self._seen[key] = (now, 0)
        return suppressed


class ClientLogRelay:
    """The `logger` of a producer or admin client: librdkafka's lines (served by poll) into `CLIENT_LOGGER`.

    Throttled per facility and level, and capped at WARNING (see the module docstring).
    """

    def __init__(self, clock: Clock) -> None:
        self._logger = logging.getLogger(CLIENT_LOGGER)
        self._throttle = LogThrottle(clock)

    def log(self, level: int, msg: str, *args: object) -> None:
        relayed = relay_level(level, args)
        # per facility and level: a harmless INFO line must not hold back a real warning of its facility
        if self._throttle.admit(f"{args[0] if args else msg}/{relayed}") is not None:
            self._logger.log(relayed, msg, *args)


def relay_level(level: int, args: tuple[object, ...]) -> int:
    """The Python level of one librdkafka line; `args` are confluent-kafka's (facility, name, text)."""
    facility = str(args[0]) if args else ""
    text = " ".join(str(a) for a in args[1:])
    if any(facility == fac and needle in text for fac, needle in _HARMLESS_CLIENT_LOGS):
        return min(level, logging.INFO)
    return min(level, logging.WARNING)
