"""Start and stop a real single-node Apache Kafka broker (KRaft, broker+controller in one JVM).

Used by the test suite (tests/kafka_fixtures.py) and by `make demo`. The broker binds loopback ports
picked at start, keeps its data in a work directory (a fresh temporary one unless given) and writes its
log to `<work dir>/broker.log`.

Leaving nothing running matters (the demo promises it), so the JVM is stopped three ways: `stop()` (also
on leaving the context manager), an `atexit` hook, and - where util-linux `setpriv` exists - a Linux
parent-death signal, which covers the Python process being killed outright. The parent-death signal fires
when the *thread* that called `start()` ends, so start the broker from a long-lived thread (normally the
main thread), or pass `die_with_parent=False`.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import enum
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from string import Template
from types import TracebackType

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from connector.errors import BrokerError
from connector.testbed.broker import fetch
from connector.testbed.broker.security import MTLS_LISTENER, SASL_SSL_LISTENER, BrokerSecurity

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
_STORAGE_TOOL_CLASSES = ("kafka.tools.StorageTool", "org.apache.kafka.tools.StorageTool")
_START_ATTEMPTS = 3  # a free port can be taken by someone else between picking and binding it
_LOG_TAIL_LINES = 40


class BrokerState(enum.Enum):
    """Lifecycle of an EmbeddedKafka: NEW -> RUNNING -> STOPPED (stop() is idempotent)."""

    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback TCP ports nobody listens on right now (held open together while picking,
    so they differ; another process may still take one before the broker binds it)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def random_cluster_id() -> str:
    """A cluster id in Kafka's format (URL-safe base64 of 16 random bytes, no padding).

    Never one that starts with `-`: the storage tool would read `-t -abc...` as an unknown option and
    refuse to format ("argument --cluster-id: expected one argument"), one broker start in 64. Kafka's own
    `Uuid.randomUuid()` draws again in that case too.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def storage_tool_class(lib: Path) -> str:
    """The StorageTool main class present in the jars (Scala `kafka.tools` today; Java port as fallback)."""
    for jar in sorted(lib.glob("kafka*.jar")):
        with zipfile.ZipFile(jar) as zf:
            names = set(zf.namelist())
        for cls in _STORAGE_TOOL_CLASSES:
            if cls.replace(".", "/") + ".class" in names:
                return cls
    raise BrokerError(f"no StorageTool class ({' or '.join(_STORAGE_TOOL_CLASSES)}) in the jars of {lib}")


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ('' if it does not exist), for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int = 1,
    *,
    config: dict[str, str] | None = None,
    exist_ok: bool = False,
    timeout_s: float = 30.0,
) -> None:
    """Create a topic (replication factor 1) and wait until every partition has a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
    future = admin.create_topics([new], operation_timeout=timeout_s, request_timeout=timeout_s)[name]
    try:
        future.result(timeout=timeout_s)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if not (exist_ok and isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise BrokerError(f"cannot create topic {name!r} on {bootstrap_servers}: {exc}") from exc
    _wait_for_leaders(admin, name, timeout_s)


def _wait_for_leaders(admin: AdminClient, name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaException):
            topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
            partitions = {} if topic is None or topic.error is not None else topic.partitions
            if partitions and all(p.leader >= 0 for p in partitions.values()):
                return
        time.sleep(0.1)
    raise BrokerError(f"topic {name!r} has no leader for every partition after {timeout_s:.0f} s")


class EmbeddedKafka:
    """A real Kafka broker in a child JVM, for tests and the demo. Use as a context manager.

    >>> with EmbeddedKafka() as kafka:                       # doctest: +SKIP
    ...     kafka.create_topic("genesys.conversations", partitions=3)
    ...     print(kafka.bootstrap_servers)                    # 127.0.0.1:PORT

    With `security` (connector.testbed.broker.security.BrokerSecurity) the broker also listens with SASL_SSL
    (`sasl_ssl_bootstrap_servers`) and with mutual TLS (`mtls_bootstrap_servers`); `bootstrap_servers`
    stays PLAINTEXT for setting up and reading topics.
    """

    def __init__(
        self,
        lib_dir: Path | None = None,
        *,
        work_dir: Path | None = None,
        num_partitions: int = 1,
        heap: str = "512m",
        message_max_bytes: int = 10_485_760,
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 30.0,
        die_with_parent: bool = True,
        java: str = "java",
        security: BrokerSecurity | None = None,
    ) -> None:
        self._lib_dir = lib_dir
        self._work_dir = work_dir
        self._owns_work_dir = work_dir is None
        self._num_partitions = num_partitions
        self._heap = heap
        self._message_max_bytes = message_max_bytes
        self._startup_timeout_s = startup_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._die_with_parent = die_with_parent
        self._java = java
        self._security = security
        self._secure_ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._broker_port = 0
        self.state = BrokerState.NEW

    # --- public surface -------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:PORT` of the running broker."""
        if self.state is not BrokerState.RUNNING:
            raise BrokerError(f"the embedded Kafka broker is not running (state {self.state.value})")
        return f"127.0.0.1:{self._broker_port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        """`127.0.0.1:PORT` of the SASL_SSL listener (SCRAM users, server-side TLS only)."""
        return self._secure_address(SASL_SSL_LISTENER)

    @property
    def mtls_bootstrap_servers(self) -> str:
        """`127.0.0.1:PORT` of the SSL listener that requires a client certificate (mutual TLS)."""
        return self._secure_address(MTLS_LISTENER)

    def _secure_address(self, listener: str) -> str:
        if self.state is not BrokerState.RUNNING:
            raise BrokerError(f"the embedded Kafka broker is not running (state {self.state.value})")
        if listener not in self._secure_ports:
            raise BrokerError("the embedded Kafka broker was started without `security`: no secure listeners")
        return f"127.0.0.1:{self._secure_ports[listener]}"

    @property
    def work_dir(self) -> Path:
        """Where the config, data and `broker.log` live (created by `start()` when not given)."""
        if self._work_dir is None:
            raise BrokerError("the embedded Kafka broker has not been started")
        return self._work_dir

    @property
    def log_path(self) -> Path:
        """The broker's stdout/stderr and log4j output."""
        return self.work_dir / "broker.log"

    @property
    def pid(self) -> int | None:
        """Process id of the broker JVM while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def create_topic(
        self, name: str, partitions: int = 1, *, config: dict[str, str] | None = None, exist_ok: bool = False
    ) -> None:
        """Create a topic on this broker and wait for its partition leaders."""
        create_topic(self.bootstrap_servers, name, partitions, config=config, exist_ok=exist_ok)

    def start(self) -> EmbeddedKafka:
        """Format storage, start the JVM and return once a client sees the broker (or raise BrokerError)."""
        if self.state is not BrokerState.NEW:
            raise BrokerError(f"an EmbeddedKafka can be started once (state {self.state.value})")
        java = fetch.check_java(self._java)
        lib = self._lib_dir if self._lib_dir is not None else fetch.require_lib_dir()
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="embedded-kafka-"))
        self._work_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            self._start_with_retries(java, lib)
        except BaseException:
            self.stop()
            raise
        self.state = BrokerState.RUNNING
        log.info("embedded Kafka broker running at %s (pid %s)", self.bootstrap_servers, self.pid)
        return self

    def stop(self) -> None:
        """SIGTERM (controlled shutdown), wait up to stop_timeout_s, then SIGKILL. Idempotent."""
        atexit.unregister(self.stop)
        self._kill_process()
        self.state = BrokerState.STOPPED
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- internals ------------------------------------------------------------------------------
    def _start_with_retries(self, java: str, lib: Path) -> None:
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_once(java, lib)
                return
            except BrokerError:
                tail = log_tail(self.log_path, 400)
                busy = "Address already in use" in tail or "BindException" in tail
                self._kill_process()
                if not busy or attempt == _START_ATTEMPTS:
                    raise
                log.warning("embedded Kafka: port taken while starting, retrying with new ports")

    def _start_once(self, java: str, lib: Path) -> None:
        work = self.work_dir
        data_dir = work / "data"
        shutil.rmtree(data_dir, ignore_errors=True)
        secured = (SASL_SSL_LISTENER, MTLS_LISTENER) if self._security is not None else ()
        self._broker_port, controller_port, *extra_ports = free_ports(2 + len(secured))
        self._secure_ports = dict(zip(secured, extra_ports, strict=True))
        props = self._render(
            "server.properties",
            broker_port=self._broker_port,
            controller_port=controller_port,
            data_dir=data_dir,
            num_partitions=self._num_partitions,
            message_max_bytes=self._message_max_bytes,
            **self._security_values(),
        )
        log4j = self._render("log4j2.properties")
        classpath = str(lib / "*")
        base = [java, f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true", "-cp", classpath]
        self._format_storage(base, lib, props)
        self._launch(base, props, work)
        self._wait_ready(time.monotonic() + self._startup_timeout_s)

    def _security_values(self) -> dict[str, str]:
        """Template values adding the secured listeners (all empty for a plaintext-only broker)."""
        addresses = "".join(f",{name}://127.0.0.1:{port}" for name, port in self._secure_ports.items())
        return {
            "extra_listeners": addresses,
            "extra_advertised": addresses,
            "extra_protocols": "".join(f",{name}:{name}" for name in self._secure_ports),
            "security_properties": "" if self._security is None else self._security.properties(),
        }

    def _render(self, template: str, **values: object) -> Path:
        text = Template((_HERE / template).read_text(encoding="utf-8")).substitute(values)
        out = self.work_dir / template
        out.write_text(text, encoding="utf-8")
        return out

    def _format_storage(self, base: list[str], lib: Path, props: Path) -> None:
        cmd = [*base[:1], "-Xmx256m", *base[1:], storage_tool_class(lib)]
        cmd += ["format", "-t", random_cluster_id(), "-c", str(props), "--standalone"]
        if self._security is not None:
            cmd += self._security.format_arguments()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError("formatting the Kafka storage did not finish within 120 s") from exc
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr).strip()
            raise BrokerError(f"formatting the Kafka storage failed (exit {proc.returncode}):\n{out[-3000:]}")

    def _launch(self, base: list[str], props: Path, work: Path) -> None:
        cmd = [*base[:1], f"-Xmx{self._heap}", f"-Dkafka.logs.dir={work / 'logs'}", *base[1:]]
        cmd += ["kafka.Kafka", str(props)]
        setpriv = shutil.which("setpriv") if self._die_with_parent else None
        if setpriv is not None:  # SIGTERM the JVM if this process dies without running stop()/atexit
            cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
        with open(self.log_path, "wb") as out:  # one log per attempt: errors quote its tail
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _wait_ready(self, deadline: float) -> None:
        """Until an AdminClient sees >= 1 broker; fail fast with the log tail if the JVM exits."""
        admin: AdminClient | None = None
        address = ("127.0.0.1", self._broker_port)
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise BrokerError(f"the Kafka broker exited during startup (exit {code}):\n{self._tail()}")
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the Kafka broker was not ready within {self._startup_timeout_s:.0f} s:\n{self._tail()}"
                )
            if admin is None and _port_open(address):
                admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self._broker_port}"})
            if admin is not None:
                with contextlib.suppress(KafkaException):
                    if len(admin.list_topics(timeout=2).brokers) >= 1:
                        return
            time.sleep(0.2)

    def _tail(self) -> str:
        return f"--- last lines of {self.log_path} ---\n{log_tail(self.log_path)}"

    def _kill_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("embedded Kafka did not stop within %.0f s: killing it", self._stop_timeout_s)
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        else:
            proc.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the broker's process group (it is a session leader), falling back to the process."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _port_open(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False
