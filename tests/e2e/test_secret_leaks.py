"""No secret leaks, whatever goes wrong: one connector life at DEBUG, searched for every secret it held.

The connector runs as a real subprocess against the simulator (real HTTP) and the real Kafka broker,
with distinctive secrets everywhere a secret can be configured, through: bad Genesys credentials, a SASL
failure, a healthy run (scraping /metrics, /healthz, /readyz), an unexpected exception raised inside a
window pass with the token and the secrets in its message, `check-config` and `status`. Then every byte
it printed and every file of its state directory is searched for each secret and for every bearer token
the simulator issued (`/_sim/tokens`).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from e2e_fixtures import ConnectorSetup, config_instant, wait_for

from connector.testbed.broker.launcher import free_ports
from connector.testbed.simulator import SimulatorConfig, start_simulator

CLIENT_ID = "leak-test-client"
CLIENT_SECRET = "e2e-Cl1ent-S3cret-zq8w"
WRONG_SECRET = "e2e-Wr0ng-S3cret-kx4p"
SASL_PASSWORD = "e2e-Sasl-Pa55-vr2n"
KEY_PASSWORD = "e2e-Key-Pa55-jj3t"
OAUTH_CONFIG = "principal=e2e-oauth-S3cret-mm7c"

#: Runs the connector with a deliberate bug: once `trigger` exists, the next page query raises a
#: RuntimeError (not a connector error) quoting the current bearer token and the configured secrets.
WRAPPER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path

    from connector.cli import main
    from connector.genesys.fetcher import WindowFetcher

    trigger = Path(sys.argv[1])
    original = WindowFetcher._query

    async def _query(self, window, page_number):
        if trigger.exists():
            token = await self._client.tokens.token()
            env = os.environ
            raise RuntimeError(
                f"surprise: bare {token}; Bearer {token}; secret {env['LEAK_CLIENT_SECRET']}; "
                f"key {env['LEAK_KEY_PASSWORD']}; oauth {env['LEAK_OAUTH_CONFIG']}"
            )
        return await original(self, window, page_number)

    WindowFetcher._query = _query
    sys.exit(main(["run"]))
    """
)


def _cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )


@pytest.mark.kafka
def test_no_secret_or_token_appears_in_any_output_or_state_file(
    tmp_path: Path, connector_setup: ConnectorSetup
) -> None:
    start = config_instant(datetime.now(UTC) - timedelta(hours=6))
    state = tmp_path / "state"
    port = free_ports(1)[0]
    outputs: dict[str, str] = {}
    with start_simulator(
        SimulatorConfig(seed=11, history_start=start, volume_per_hour=200, live_rate_per_minute=20)
    ) as sim:
        sim.control.add_client(CLIENT_ID, CLIENT_SECRET)
        _, env = connector_setup(
            sim.base_url,
            "e2e-leaks",
            {
                "genesys.client_id": CLIENT_ID,
                "genesys.client_secret": CLIENT_SECRET,
                "kafka.ssl_key_password": KEY_PASSWORD,
                "kafka.extra": orjson.dumps({"sasl.oauthbearer.config": OAUTH_CONFIG}).decode(),
                "kafka.delivery_timeout_ms": "5000",
                "logging.level": "DEBUG",
                "windows.start": start,
                "windows.length": "1m",
                "windows.max_catchup_length": "1m",
                "metrics.port": str(port),
            },
            state=state,
        )

        bad = _cli(
            ["-m", "connector", "run"], {**env, "GENESYS_CONNECTOR__GENESYS__CLIENT_SECRET": WRONG_SECRET}
        )
        outputs["bad credentials"] = bad.stdout + bad.stderr
        assert bad.returncode == 1, outputs["bad credentials"][-3000:]
        assert "credentials" in bad.stderr.lower()

        sasl_env = {
            **env,
            "GENESYS_CONNECTOR__KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "GENESYS_CONNECTOR__KAFKA__SASL_MECHANISM": "PLAIN",
            "GENESYS_CONNECTOR__KAFKA__SASL_USERNAME": "leak-user",
            "GENESYS_CONNECTOR__KAFKA__SASL_PASSWORD": SASL_PASSWORD,
        }
        sasl = _cli(["-m", "connector", "run"], sasl_env)
        outputs["sasl failure"] = sasl.stdout + sasl.stderr
        assert sasl.returncode == 1, outputs["sasl failure"][-3000:]

        wrapper = tmp_path / "buggy_connector.py"
        wrapper.write_text(WRAPPER)
        trigger = tmp_path / "raise-now"
        log_path = tmp_path / "buggy.log"
        buggy_env = {
            **os.environ,
            **env,
            "LEAK_CLIENT_SECRET": CLIENT_SECRET,
            "LEAK_KEY_PASSWORD": KEY_PASSWORD,
            "LEAK_OAUTH_CONFIG": OAUTH_CONFIG,
        }
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(wrapper), str(trigger)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=buggy_env,
            )
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_for(lambda: _body(base + "/readyz")[0] == 200, 60), log_path.read_text()[-3000:]
            assert wait_for(lambda: (state / "checkpoint.json").exists(), 60), log_path.read_text()[-3000:]
            for path in ("/metrics", "/healthz", "/readyz"):
                status, body = _body(base + path)
                assert status == 200, (path, body)
                outputs[path] = body
            trigger.touch()
            assert proc.wait(90) == 1, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        outputs["unexpected exception"] = log_path.read_text()
        assert (
            "surprise: bare ***; Bearer ***; secret ***; key ***; oauth ***"
            in outputs["unexpected exception"]
        )
        assert "unexpected error" in outputs["unexpected exception"]
        assert "Traceback" in outputs["unexpected exception"]

        check = _cli(["-m", "connector", "check-config"], env)
        outputs["check-config"] = check.stdout + check.stderr
        assert check.returncode == 0, outputs["check-config"]
        status_run = _cli(["-m", "connector", "status", "--json"], env)
        outputs["status"] = status_run.stdout + status_run.stderr
        assert status_run.returncode == 0, outputs["status"]
        last_error = orjson.loads(status_run.stdout)["last_error"]
        assert last_error is not None
        assert "surprise" in last_error["message"]

        tokens = sim.control.issued_tokens()

    assert tokens, "the run that reached Genesys obtained a token"
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    wrong_basic = base64.b64encode(f"{CLIENT_ID}:{WRONG_SECRET}".encode()).decode()
    secrets = [CLIENT_SECRET, WRONG_SECRET, SASL_PASSWORD, KEY_PASSWORD, OAUTH_CONFIG, basic, wrong_basic]
    searched = {name: text.encode() for name, text in outputs.items()}
    searched.update({str(p.relative_to(tmp_path)): p.read_bytes() for p in state.rglob("*") if p.is_file()})
    assert any("checkpoint.json" in name for name in searched)
    leaks = [
        (where, secret)
        for where, data in searched.items()
        for secret in [*secrets, *tokens]
        if secret.encode() in data
    ]
    assert not leaks, leaks


def _body(url: str) -> tuple[int, str]:
    try:
        response = httpx.get(url, timeout=5.0)
    except httpx.HTTPError:
        return 0, ""
    return response.status_code, response.text
