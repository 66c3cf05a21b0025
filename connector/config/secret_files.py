"""Secrets read from mounted files (Kubernetes secrets): each secret `<name>` has a `<name>_file` twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.config.problems import Problem


def read_secret_files(data: Any, names: tuple[str, ...]) -> Any:
    """Replace each `<name>_file` path by the secret it names (mounted Kubernetes secret files).

    The path stays in the model (it is not secret); the content goes to `<name>`. A trailing newline is
    stripped. Problems name the file, never its content.
    """
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for name in names:
        path = data.get(f"{name}_file")
        if path is None or path == "":
            continue
        if data.get(name) not in (None, ""):
            data[f"{name}_file"] = Problem(f"set either {name} or {name}_file, not both")
            continue
        try:
            content = Path(str(path)).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            data[f"{name}_file"] = Problem(f"cannot read secret file {path}: {reason}")
            data[name] = ""  # reported once, on the file
            continue
        if not content:
            data[f"{name}_file"] = Problem(f"secret file {path} is empty")
            data[name] = ""
            continue
        data[name] = content
    return data
