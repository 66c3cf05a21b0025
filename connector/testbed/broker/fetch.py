"""Resolve the Apache Kafka broker's jars from Maven Central into a local, git-ignored cache.

`pom.xml` (next to this module) names one root artifact, `org.apache.kafka:kafka_2.13`, plus a log4j
slf4j binding; Maven copies its runtime dependency closure into `<cache>/<kafka version>/lib`. The cache
root is `$GENESYS_CONNECTOR_KAFKA_CACHE`, else `.cache/kafka` under the repository root. A manifest records
the jars and the POM's hash, so fetching is idempotent (nothing to do when the folder is complete) and a
POM change triggers a new fetch. On success the stamp file `<cache>/.fetched` is touched: the Makefile's
`kafka` target depends on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from connector.errors import BrokerError

log = logging.getLogger(__name__)

CACHE_ENV = "GENESYS_CONNECTOR_KAFKA_CACHE"
POM_PATH = Path(__file__).with_name("pom.xml")
STAMP_NAME = ".fetched"
MANIFEST_NAME = "manifest.json"
MIN_JAVA_MAJOR = 17
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MVN_TIMEOUT_S = 900.0
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


@dataclass(frozen=True)
class FetchResult:
    """What `fetch_jars` did: where the jars are, whether Maven ran, and how long it took."""

    lib_dir: Path
    fetched: bool
    jar_count: int
    seconds: float


def kafka_version(pom: Path = POM_PATH) -> str:
    """The `kafka.version` property of the POM: the single place the broker version is written."""
    root = ElementTree.parse(pom).getroot()  # noqa: S314 - our own packaged file, not untrusted input
    node = root.find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise BrokerError(f"{pom} has no <kafka.version> property")
    return (node.text or "").strip()


def default_cache_root(environ: Mapping[str, str] = os.environ) -> Path:
    """`$GENESYS_CONNECTOR_KAFKA_CACHE`, else `.cache/kafka` in the repository (or the working directory)."""
    override = environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    repo = Path(__file__).resolve().parents[3]
    base = repo if (repo / "pyproject.toml").is_file() else Path.cwd()
    return base / ".cache" / "kafka"


def lib_dir(cache_root: Path | None = None, version: str | None = None) -> Path:
    """The folder that holds (or will hold) every jar of the broker: `<cache>/<version>/lib`."""
    root = cache_root if cache_root is not None else default_cache_root()
    return root / (version or kafka_version()) / "lib"


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def is_complete(lib: Path, pom: Path = POM_PATH) -> bool:
    """True when `lib` holds every jar its manifest lists and the manifest was made from this POM."""
    manifest = lib.parent / MANIFEST_NAME
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if data.get("pom_sha256") != _pom_digest(pom):
        return False
    jars = data.get("jars") or []
    return bool(jars) and all((lib / name).is_file() and (lib / name).stat().st_size > 0 for name in jars)


def require_lib_dir(cache_root: Path | None = None) -> Path:
    """The complete jar folder, or a BrokerError that says how to get it (`make kafka`)."""
    lib = lib_dir(cache_root)
    if not is_complete(lib):
        raise BrokerError(
            f"the Kafka broker jars are missing or incomplete in {lib}: run `make kafka` "
            "(or `python -m connector.testbed.broker fetch`) first"
        )
    return lib


def check_java(java: str = "java") -> str:
    """Path of a Java >= 17 runtime (Kafka 4 needs it), or a BrokerError saying what is wrong."""
    path = shutil.which(java)
    if path is None:
        raise BrokerError(
            f"Java is not on PATH ({java!r} not found): install a Java {MIN_JAVA_MAJOR}+ runtime "
            "(e.g. apt-get install openjdk-17-jre-headless) to run the embedded Kafka broker"
        )
    out = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        raise BrokerError(f"cannot tell the Java version from `{path} -version`: {out.stderr.strip()[:200]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_x" style
        major = int(match.group(2))
    if major < MIN_JAVA_MAJOR:
        raise BrokerError(f"Kafka 4 needs Java {MIN_JAVA_MAJOR}+, but {path} is Java {major}")
    return path


def _find_mvn(mvn: str) -> str:
    path = shutil.which(mvn)
    if path is None:
        raise BrokerError(
            f"Maven is not on PATH ({mvn!r} not found): install Maven 3.8+ (e.g. apt-get install maven); "
            "it resolves the Kafka broker jars from Maven Central"
        )
    return path


def _run_maven(mvn: str, pom: Path, out_dir: Path) -> None:
    cmd = [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out_dir}",
    ]
    log.info("resolving Kafka broker jars with Maven: %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=MVN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"Maven did not finish within {MVN_TIMEOUT_S:.0f} s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BrokerError(f"Maven failed (exit {proc.returncode}) resolving the Kafka jars:\n{tail}")


def _check_broker_jar(lib: Path, version: str) -> None:
    jar = lib / f"kafka_2.13-{version}.jar"
    try:
        with zipfile.ZipFile(jar) as zf:
            zf.getinfo("kafka/Kafka.class")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise BrokerError(f"{jar} is missing or has no kafka.Kafka main class") from exc


def _write_manifest(version_dir: Path, version: str, pom: Path, lib: Path) -> int:
    jars = sorted(p.name for p in lib.glob("*.jar"))
    manifest = {"kafka_version": version, "pom_sha256": _pom_digest(pom), "jars": jars}
    tmp = version_dir / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, version_dir / MANIFEST_NAME)
    return len(jars)


def _touch_stamp(cache_root: Path, version: str) -> None:
    (cache_root / STAMP_NAME).write_text(f"{version}\n", encoding="utf-8")


def fetch_jars(
    cache_root: Path | None = None, *, force: bool = False, mvn: str = "mvn", java: str = "java"
) -> FetchResult:
    """Make `<cache>/<version>/lib` complete (running Maven only when needed) and touch the stamp.

    Maven writes into a staging folder that replaces `lib` only once every jar is there, so an
    interrupted fetch never leaves a folder that looks complete.
    """
    started = time.monotonic()
    root = cache_root if cache_root is not None else default_cache_root()
    version = kafka_version()
    lib = lib_dir(root, version)
    check_java(java)
    if not force and is_complete(lib):
        _touch_stamp(root, version)
        count = len(list(lib.glob("*.jar")))
        return FetchResult(lib, fetched=False, jar_count=count, seconds=time.monotonic() - started)
    mvn_path = _find_mvn(mvn)
    version_dir = lib.parent
    version_dir.mkdir(parents=True, exist_ok=True)
    staging = version_dir / f"lib.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (version_dir / MANIFEST_NAME).unlink(missing_ok=True)
    pom_copy = version_dir / "pom.xml"  # Maven may write next to the POM; keep the package dir clean
    shutil.copyfile(POM_PATH, pom_copy)
    try:
        _run_maven(mvn_path, pom_copy, staging)
        _check_broker_jar(staging, version)
        shutil.rmtree(lib, ignore_errors=True)
        os.replace(staging, lib)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    count = _write_manifest(version_dir, version, POM_PATH, lib)
    _touch_stamp(root, version)
    return FetchResult(lib, fetched=True, jar_count=count, seconds=time.monotonic() - started)
