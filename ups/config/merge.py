"""Plain-dict helpers shared by the include resolver and the reference-template mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Merge ``override`` onto ``base``: mappings merge recursively; lists, scalars, None replace (inputs untouched)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def get_path(data: Any, keys: Sequence[str]) -> tuple[bool, Any]:
    """``(found, value)`` at a nested key path."""
    for key in keys:
        if not isinstance(data, Mapping) or key not in data:
            return False, None
        data = data[key]
    return True, data


def setdefault_path(data: dict, keys: Sequence[str], value: Any) -> dict:
    """Copy-on-write ``setdefault`` at a nested key path; a non-mapping on the way is left alone."""
    head, *rest = keys
    if not rest:
        return data if head in data else {**data, head: value}
    child = data.get(head, {})
    if not isinstance(child, Mapping):
        return data
    return {**data, head: setdefault_path(dict(child), rest, value)}


def set_path(data: dict, keys: list[str], value: Any) -> None:
    """Set a nested key path in place, creating mappings on the way."""
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = value


def flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    """Collect the leaves (non-mapping values) of ``value`` into ``out`` under dotted paths starting at ``prefix``."""
    if not isinstance(value, Mapping):
        out[prefix] = value
        return
    for key, child in value.items():
        flatten(child, f"{prefix}.{key}", out)
