"""Logging: JSON lines off a terminal, readable text on one, and secrets masked everywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from connector.errors import ConfigError, RateLimitedError
from connector.logs import (
    MASK,
    Redactor,
    configure_logging,
    register_secret,
)

CLIENT_SECRET = "s3cr3t-Cl!ent/Value+42"
SASL_PASSWORD = "kafka-pw-9f8e7d"


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    httpx_level = logging.getLogger("httpx").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(httpx_level)


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([CLIENT_SECRET, SASL_PASSWORD])


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_core_fields_and_extras(redactor: Redactor) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out, redactor=redactor)
    log = logging.getLogger("connector.test")
    log.info(
        "page %d fetched",
        3,
        extra={"correlation_id": "c0ffee", "window": "2026-05-01T12:00Z/12:05Z", "pass": 0, "status": 200},
    )
    log.debug("not shown at INFO")
    (line,) = json_lines(out)
    assert line["level"] == "INFO"
    assert line["logger"] == "connector.test"
    assert line["msg"] == "page 3 fetched"
    assert line["correlation_id"] == "c0ffee"
    assert line["pass"] == 0
    assert line["status"] == 200
    assert line["window"] == "2026-05-01T12:00Z/12:05Z"
    ts = str(line["ts"])
    assert ts.endswith("Z")
    assert len(ts) == len("2026-05-01T12:00:00.123Z")


def test_json_exception_is_one_line_with_the_error_context(redactor: Redactor) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out, redactor=redactor)
    try:
        raise RateLimitedError(
            "throttled", retry_after_s=7.0, status=429, correlation_id="abc-123", endpoint="details_query"
        )
    except RateLimitedError:
        logging.getLogger("connector.genesys.client").exception("call failed")
    assert len(out.getvalue().splitlines()) == 1
    (line,) = json_lines(out)
    assert line["correlation_id"] == "abc-123"
    assert line["status"] == 429
    assert line["endpoint"] == "details_query"
    assert line["retry_after_s"] == 7.0
    assert line["error"] == "RateLimitedError"
    assert "Traceback" in str(line["exc"])
    assert "throttled" in str(line["exc"])


def test_extras_cannot_overwrite_core_fields(redactor: Redactor) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out, redactor=redactor)
    logging.getLogger("connector.test").info("hello", extra={"level": "fake", "ts": "fake"})
    (line,) = json_lines(out)
    assert line["level"] == "INFO"
    assert line["level_"] == "fake"
    assert line["ts"] != "fake"


def test_auto_picks_json_off_a_terminal_and_text_on_one(redactor: Redactor) -> None:
    pipe, tty = io.StringIO(), TtyStream()
    configure_logging("INFO", "auto", pipe, redactor=redactor)
    logging.getLogger("connector.test").info("to a pipe")
    configure_logging("INFO", "auto", tty, redactor=redactor)
    logging.getLogger("connector.test").info("to a terminal")
    assert json.loads(pipe.getvalue())["msg"] == "to a pipe"
    assert "INFO    connector.test: to a terminal" in tty.getvalue()
    assert not tty.getvalue().startswith("{")
    assert "to a terminal" not in pipe.getvalue()  # the second call replaced the first handler


def test_text_lines_are_short_and_show_extras(redactor: Redactor) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "text", out, redactor=redactor)
    log = logging.getLogger("connector.app")
    log.warning("window done", extra={"window": "12:00/12:05", "pass": 1, "note": "two words"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.error("failed", exc_info=True)
    first, *rest = out.getvalue().splitlines()
    assert " WARNING connector.app: window done  " in first
    assert "window=12:00/12:05" in first
    assert "pass=1" in first
    assert 'note="two words"' in first
    assert any("ValueError: boom" in line for line in rest)


def test_bad_log_arguments_do_not_crash_the_caller(redactor: Redactor) -> None:
    out = io.StringIO()
    handler = configure_logging("INFO", "json", out, redactor=redactor)
    logging.getLogger().handlers[:] = [handler]  # pytest's own capture handler would raise on this record
    logging.getLogger("connector.test").info("count %d", "not a number")
    (line,) = json_lines(out)
    assert "count %d" in str(line["msg"])
    assert "did not match" in str(line["msg"])


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_never_reach_the_output(redactor: Redactor, fmt: str) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", fmt, out, redactor=redactor)  # type: ignore[arg-type]
    log = logging.getLogger("connector.test")
    # an httpx-style error that echoes request headers
    log.error(
        "request failed: POST https://login.mypurecloud.com/oauth/token headers="
        "{'Authorization': 'Basic Y2xpZW50LWlkOnMzY3IzdC1DbCFlbnQ=', 'content-type': 'x-www-form-urlencoded'}"
    )
    log.warning("raw header dump\r\nAuthorization: Bearer eyJhbGciOi.payload.sig\r\nAccept: */*")
    log.info("retrying with Bearer tok-abc.def_ghi", extra={"endpoint": "details_query"})
    log.info("connecting with password %s", SASL_PASSWORD)  # secret passed as an argument
    log.info(
        "token response: %s", '{"access_token":"opaque-token-xyz","token_type":"bearer","expires_in":86399}'
    )
    log.info("form body grant_type=client_credentials&client_secret=%s", "s3cr3t-Cl%21ent%2FValue%2B42")
    log.info(
        "extras",
        extra={"detail": {"nested": [f"pw={CLIENT_SECRET}"]}, "password": "anything", "sasl": SASL_PASSWORD},
    )
    try:
        raise RuntimeError(f"client rejected: secret {CLIENT_SECRET} invalid")
    except RuntimeError:
        log.exception("auth failed")
    text = out.getvalue()
    for leaked in (
        CLIENT_SECRET,
        SASL_PASSWORD,
        "s3cr3t-Cl%21ent%2FValue%2B42",
        "Y2xpZW50LWlkOnMzY3IzdC1DbCFlbnQ=",
        "eyJhbGciOi",
        "tok-abc",
        "opaque-token-xyz",
        "anything",
    ):
        assert leaked not in text, leaked
    assert MASK in text
    assert "expires_in" in text  # the rest of the line stays readable
    assert "86399" in text
    assert "endpoint" in text


def test_register_secret_applies_to_the_default_handler() -> None:
    secret = "default-registry-secret-7c1d"
    register_secret(secret)
    register_secret(None)  # an unset optional secret is ignored
    register_secret("")
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    logging.getLogger("connector.test").info("value is %s", secret)
    assert secret not in out.getvalue()
    assert json.loads(out.getvalue())["msg"] == f"value is {MASK}"


def test_redactor_keeps_ordinary_text() -> None:
    r = Redactor(["hunter2"])
    text = "Basic configuration loaded; authorization failed for user 42; token_expiry in 5m"
    assert r.redact(text) == text
    assert r.redact("a hunter2 b") == f"a {MASK} b"
    assert r.redact(r.redact("Authorization: Bearer abc")) == f"Authorization: {MASK}"


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "json"), ("INFO", "xml")])
def test_bad_settings_are_config_errors(level: str, fmt: str) -> None:
    with pytest.raises(ConfigError, match="logging"):
        configure_logging(level, fmt, io.StringIO())  # type: ignore[arg-type]


def test_http_client_chatter_is_quiet_unless_debugging(redactor: Redactor) -> None:
    configure_logging("info", "json", io.StringIO(), redactor=redactor)
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    configure_logging("DEBUG", "json", io.StringIO(), redactor=redactor)
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    handlers = [h for h in logging.getLogger().handlers if type(h).__name__ == "_ConnectorHandler"]
    assert len(handlers) == 1
