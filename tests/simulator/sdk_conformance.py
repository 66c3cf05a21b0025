"""Check raw Genesys JSON against the models of the official Python SDK (PureCloudPlatformClientV2).

Why not just let the SDK deserialize and look at the result: its deserializer is lenient in three ways that
hide exactly the discrepancies we want to find (read in `api_client.py` and `models/*.py`, SDK 269.0.0):

- Unknown keys are dropped: `__deserialize_model` only reads the keys named in the model's `attribute_map`.
- Primitives are coerced: `__deserialize_primitive` calls `int(value)`, so a decimal score 87.5 silently
  becomes 87 and a string "12" becomes 12.
- Enum setters compare case-insensitively against a literal `allowed_values` list and, on a miss, neither
  log nor raise (the `print` is commented out): they store the sentinel "outdated_sdk_version" instead.

So `check` walks the raw JSON next to the model classes (`swagger_types`, `attribute_map`) and reports every
unknown key, every value whose JSON type is not the declared one, and every enum value that is not exactly
(case included) in the setter's `allowed_values`, which it reads from the setter's source. `sentinels` walks
the SDK's own deserialized objects for "outdated_sdk_version": a cross-check that the allowed-values reading
did not miss an enum the SDK itself rejects.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from dateutil.parser import isoparse
from PureCloudPlatformClientV2 import models

SENTINEL = "outdated_sdk_version"
_LIST = re.compile(r"^list\[(.*)\]$")
_DICT = re.compile(r"^dict\(([^,]*), (.*)\)$")


@dataclass
class Findings:
    """Discrepancies between raw JSON and the SDK models, deduplicated across all records.

    Each entry names the SDK model and the JSON key ("AnalyticsEvaluation.oTotalScore ..."), so one
    discrepancy repeated in a thousand records is one entry.
    """

    unknown_keys: set[str] = field(default_factory=set)
    unknown_enum_values: set[str] = field(default_factory=set)
    type_mismatches: set[str] = field(default_factory=set)

    def empty(self) -> bool:
        return not (self.unknown_keys or self.unknown_enum_values or self.type_mismatches)

    def report(self) -> str:
        """One line per discrepancy, grouped by kind (the assertion message)."""
        lines: list[str] = []
        for title, items in (
            ("unknown keys", self.unknown_keys),
            ("unknown enum values", self.unknown_enum_values),
            ("type mismatches", self.type_mismatches),
        ):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend(f"  {item}" for item in sorted(items))
        return "\n".join(lines)


@functools.cache
def allowed_values(model: type, attr: str) -> tuple[str, ...] | None:
    """The `allowed_values` literal in the setter of `model.attr`, or None if the setter does not validate."""
    prop = getattr(model, attr, None)
    if not isinstance(prop, property) or prop.fset is None:
        return None
    tree = ast.parse(textwrap.dedent(inspect.getsource(prop.fset)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "allowed_values" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    return None


def _json_type(value: Any) -> str:
    return type(value).__name__


def _primitive_ok(value: Any, sdk_type: str) -> bool:
    """Does a JSON value have the type the SDK declares (before the SDK coerces it)?"""
    if sdk_type == "object":
        return True
    if sdk_type == "bool":
        return isinstance(value, bool)
    if sdk_type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if sdk_type == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if sdk_type == "str":
        return isinstance(value, str)
    if sdk_type in ("datetime", "date", "LocalDateTime"):
        if not isinstance(value, str):
            return False
        try:
            isoparse(value)
        except ValueError:
            return False
        return True
    raise AssertionError(f"sdk_conformance does not know the SDK type {sdk_type!r}")


def check(value: Any, sdk_type: str, findings: Findings, where: str = "") -> None:
    """Walk `value` (raw JSON) as the SDK type `sdk_type` ("AnalyticsConversation", "list[str]", ...)."""
    if value is None:
        return
    if m := _LIST.match(sdk_type):
        if not isinstance(value, list):
            findings.type_mismatches.add(f"{where}: {_json_type(value)} where the SDK expects {sdk_type}")
            return
        for item in value:
            check(item, m.group(1), findings, where)
        return
    if m := _DICT.match(sdk_type):
        if not isinstance(value, dict):
            findings.type_mismatches.add(f"{where}: {_json_type(value)} where the SDK expects {sdk_type}")
            return
        for item in value.values():
            check(item, m.group(2), findings, where)
        return
    model = getattr(models, sdk_type, None)
    if model is None:
        if not _primitive_ok(value, sdk_type):
            findings.type_mismatches.add(f"{where}: {_json_type(value)} where the SDK expects {sdk_type}")
        return
    _check_model(value, model, findings, where)


def _check_model(value: Any, model: type, findings: Findings, where: str) -> None:
    name = model.__name__
    if not isinstance(value, dict):
        findings.type_mismatches.add(f"{where}: {_json_type(value)} where the SDK expects {name}")
        return
    instance = model()
    attr_of = {key: attr for attr, key in instance.attribute_map.items()}
    for key, item in value.items():
        attr = attr_of.get(key)
        here = f"{name}.{key}"
        if attr is None:
            findings.unknown_keys.add(here)
            continue
        sdk_type = instance.swagger_types[attr]
        allowed = allowed_values(model, attr) if sdk_type == "str" else None
        if allowed is not None and isinstance(item, str) and item not in allowed:
            hint = " (differs only in case)" if item.lower() in map(str.lower, allowed) else ""
            findings.unknown_enum_values.add(f"{here} = {item!r}{hint}")
        check(item, sdk_type, findings, here)


def sentinels(obj: Any, where: str = "") -> set[str]:
    """Paths in a deserialized SDK object where an enum setter stored "outdated_sdk_version"."""
    found: set[str] = set()
    if isinstance(obj, list):
        for item in obj:
            found |= sentinels(item, where)
    elif isinstance(obj, dict):
        for item in obj.values():
            found |= sentinels(item, where)
    elif hasattr(obj, "swagger_types"):
        for attr in obj.swagger_types:
            item = getattr(obj, attr)
            here = f"{type(obj).__name__}.{obj.attribute_map[attr]}"
            if isinstance(item, str) and item == SENTINEL:  # model __eq__ breaks on non-models
                found.add(here)
            else:
                found |= sentinels(item, here)
    return found
