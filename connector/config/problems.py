"""Configuration problems, one line each: a problem parked on a field, and pydantic's errors in our words.

Every line names the field in dotted form (`genesys.page_size: must be <= 100 (got 500)`), suggests a close
name for an unknown one (`unknown field 'kafka.bootstrap_server' (did you mean
'kafka.bootstrap_servers'?)`), and never shows the value of a secret-named field.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from connector.secrets import is_secret_name


class Problem:
    """A problem found while pre-processing a section, parked on the field it concerns.

    Raising from a model-level "before" validator would hide every other error of that section; parking
    the problem on a field lets pydantic report it together with the rest (see `models._Section._report`).
    """

    def __init__(self, message: str) -> None:
        self.message = message


def field_tree(model: type[BaseModel]) -> dict[str, Any]:
    """Field names of a model, nested for sub-models; a dict-typed field is open (`None`)."""
    tree: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            tree[name] = field_tree(annotation)
        else:
            tree[name] = None
    return tree


def _suggest(name: str, candidates: Mapping[str, Any], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def describe(error: Any, tree: Mapping[str, Any]) -> str:
    """One line for one pydantic error, e.g. `genesys.page_size: must be <= 100 (got 500)`.

    `tree` is the field tree of the model validated (`field_tree`), to suggest a close field name.
    """
    loc = [str(part) for part in error["loc"]]
    ctx = error.get("ctx") or {}
    if "loc" in ctx:
        loc.append(str(ctx["loc"]))
    dotted = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _lookup(tree, loc[:-1])
        hint = _suggest(loc[-1], parent, ".".join(loc[:-1]) + "." if len(loc) > 1 else "") if parent else ""
        return f"unknown field '{dotted}'{hint}"
    if kind == "missing":
        also = f" (or set {dotted}_file)" if loc and is_secret_name(loc[-1]) else ""
        return f"{dotted}: required{also}"
    message = _message(kind, ctx, error["msg"])
    if (loc and is_secret_name(loc[-1])) or kind == "problem":
        return f"{dotted}: {message}"
    got = error.get("input")
    if isinstance(got, dict | list) or got is None or "(got " in message:
        return f"{dotted}: {message}"
    shown = repr(got)
    return f"{dotted}: {message} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


def _message(kind: str, ctx: Mapping[str, Any], msg: str) -> str:
    bounds = {"less_than_equal": "<=", "less_than": "<", "greater_than_equal": ">=", "greater_than": ">"}
    if kind in bounds:
        limit = next(iter(v for k, v in ctx.items() if k in ("le", "lt", "ge", "gt")))
        return f"must be {bounds[kind]} {limit:g}"
    if kind == "value_error":
        return str(ctx.get("error", msg))
    return msg[0].lower() + msg[1:] if msg else kind


def _lookup(tree: Mapping[str, Any], path: list[str]) -> dict[str, Any] | None:
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) else None
