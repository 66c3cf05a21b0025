"""`check-config` and `status` at the command line: exit codes and messages, without connecting anywhere."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from fakes import offline_config

from connector.cli import main
from connector.errors import ExitCode

pytestmark = pytest.mark.usefixtures("no_connector_env")

SECRET = "cli-Client-S3cret-never-printed"
OAUTH_CONFIG = "principal=admin cli-oauthbearer-s3cret"


def _config(tmp_path: Path, port: int, *, kafka: str = "", page_size: str = "50") -> Path:
    """A configuration whose every endpoint is `port`; `kafka` adds lines to (or overrides in) its section."""
    return offline_config(
        tmp_path, port, client_secret=SECRET, genesys=f"  page_size: {page_size}\n", kafka=kafka
    )


def _assert_no_connection(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.accept()


@pytest.mark.parametrize(
    ("kafka_yaml", "expected"),
    [
        ("  extra:\n    acks: 1\n", "kafka.extra.acks: cannot override acks='all'"),
        ("  extra:\n    no.such.property: x\n", 'No such configuration property: "no.such.property"'),
        ("  bootstrap_servers: 'not a host::::'\n", "kafka.bootstrap_servers: expected a comma-separated"),
        ("  linger_ms: true\n", "kafka.linger_ms: expected an integer, not a boolean (got true)"),
    ],
)
def test_check_config_exits_2_on_what_run_rejects(
    tmp_path: Path,
    listener: socket.socket,
    capsys: pytest.CaptureFixture[str],
    kafka_yaml: str,
    expected: str,
) -> None:
    path = _config(tmp_path, listener.getsockname()[1], kafka=kafka_yaml)
    assert main(["check-config", "--config", str(path)]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert expected in err
    assert SECRET not in err
    _assert_no_connection(listener)
    assert not (tmp_path / "state").exists(), "nothing is created before the configuration is valid"


@pytest.mark.parametrize("case", ["page_size", "checkpoint_file"])
def test_check_config_page_size_and_checkpoint_file(
    tmp_path: Path, listener: socket.socket, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    port = listener.getsockname()[1]
    if case == "page_size":
        path = _config(tmp_path, port, page_size="true")
        expected = "genesys.page_size: expected an integer, not a boolean (got true)"
    else:
        path = _config(tmp_path, port)
        (tmp_path / "state").write_text("a file")
        expected = f"checkpoint.directory: {tmp_path / 'state'} is not a directory"
    assert main(["check-config", "--config", str(path)]) == ExitCode.CONFIG
    assert expected in capsys.readouterr().err
    _assert_no_connection(listener)


def test_check_config_without_any_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == ExitCode.CONFIG
    assert "no configuration file given" in capsys.readouterr().err


def test_check_config_prints_secret_extra_values_masked(
    tmp_path: Path, listener: socket.socket, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = f"  extra:\n    sasl.oauthbearer.config: '{OAUTH_CONFIG}'\n    linger.ms: 7\n"
    path = _config(tmp_path, listener.getsockname()[1], kafka=extra)
    assert main(["check-config", "--config", str(path)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert OAUTH_CONFIG not in out
    assert SECRET not in out
    shown = orjson.loads(out)
    assert shown["kafka"]["extra"] == {"sasl.oauthbearer.config": "***", "linger.ms": 7}
    _assert_no_connection(listener)


def test_status_needs_only_the_checkpoint_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "status.yaml"
    path.write_text(f"checkpoint:\n  directory: {tmp_path / 'state'}\n")
    assert main(["status", "--json", "--config", str(path)]) == ExitCode.OK
    report = orjson.loads(capsys.readouterr().out)
    assert report["checkpoint_directory"] == str(tmp_path / "state")
    assert "no checkpoint yet" in report["state"]


@pytest.mark.parametrize(
    "blocked",
    [("uvicorn", "starlette"), ("connector.testbed",)],
    ids=["testbed-extra-not-installed", "testbed-not-shipped-as-in-the-image"],
)
@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_testbed_commands_without_the_testbed_say_how_to_get_it(
    command: str, blocked: tuple[str, ...]
) -> None:
    """The worker runs without the test bed; `simulate` and `demo` then answer in one line (exit 2)."""
    block = "".join(f"sys.modules[{name!r}] = None; " for name in blocked)
    script = f"import sys; {block}from connector.cli import main; sys.exit(main([{command!r}, '--help']))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"genesys-connector {command}" in lines[0]
    assert "pip install 'genesys-kafka-connector[testbed]'" in lines[0]
    assert "Traceback" not in result.stderr
