"""Read a config file into a validated :class:`UPSConfig`.

Order of operations in :func:`load_config`: safe-load YAML with limits (:mod:`ups.config.safe_yaml`) → resolve
``include:`` (deep merge, later wins) → map the playbook's reference-template vocabulary when present → apply
``UPS_<SECTION>__<KEY>`` environment overrides → validate. Every failure is a :class:`~ups.errors.UserInputError` with
one line: ``<file>: <dotted.path>: <reason>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ups.config.merge import deep_merge
from ups.config.reference import from_reference_template, is_reference_template
from ups.config.safe_yaml import BoundedLoader, read_text, safe_load_text
from ups.config.schema import FIELD_CHECK, UPSConfig
from ups.errors import UserInputError

__all__ = [
    "apply_env_overrides",
    "config_hash",
    "deep_merge",
    "dump_yaml",
    "format_validation_error",
    "from_reference_template",
    "load_config",
    "load_yaml",
    "resolve_includes",
    "validate_config",
]

ENV_PREFIX = "UPS_"
#: Files read for one config, includes of includes counted each time; the configs in configs/ read at most three.
#: Without a cap, a few files that each include the next one many times cost exponential time.
MAX_INCLUDE_FILES = 64


def load_yaml(path: str | Path) -> dict:
    """Safe-load one YAML file whose top level is a mapping (an empty file is ``{}``).

    Parsing is bounded (:mod:`ups.config.safe_yaml`): alias bombs, deep nesting and duplicate keys are errors.

    Raises:
        UserInputError: missing or non-UTF-8 file, invalid YAML, a Python tag or other unsafe construct, a YAML limit
            or duplicate key, or a non-mapping top level.
    """
    path = Path(path)
    data = safe_load_text(read_text(path, "config file"), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def default_root(path: str | Path) -> Path:
    """The include root of a top-level config: its nearest ``configs`` ancestor folder, else its own folder."""
    here = Path(path).resolve().parent
    return next((d for d in (here, *here.parents) if d.name == "configs"), here)


def resolve_includes(path: str | Path, root: str | Path | None = None) -> dict:
    """Load ``path`` with its ``include:`` files merged underneath it.

    ``include`` (top level) is a path or a list of paths relative to the including file. Included files (which may
    include others) are deep-merged in order, then the including file on top, so later wins.

    Args:
        path: the top-level config file.
        root: directory every include must stay inside; default: the nearest ancestor folder named ``configs``
            (so ``configs/small/x.yaml`` may include ``../presets/tiny.yaml``), else the top-level file's directory.

    Raises:
        UserInputError: an include cycle (named), an include outside ``root``, a missing include, more than
            ``MAX_INCLUDE_FILES`` files read, bad YAML.
    """
    path = Path(path)
    root_dir = Path(root).resolve() if root is not None else default_root(path)
    return _resolve(path, root_dir, stack=(), loaded=[])


def _resolve(path: Path, root: Path, stack: tuple[Path, ...], loaded: list[Path]) -> dict:
    loaded.append(path)
    if len(loaded) > MAX_INCLUDE_FILES:
        raise UserInputError(f"{loaded[0]}: includes read more than {MAX_INCLUDE_FILES} files")
    data = load_yaml(path)
    includes = data.pop("include", None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(p, str) for p in includes):
        raise UserInputError(f"{path}: include: must be a path or a list of paths")
    here = stack + (path.resolve(),)
    merged: dict = {}
    for entry in includes:
        target = (path.parent / entry).resolve()
        if not target.is_relative_to(root):
            raise UserInputError(f"{path}: include {entry!r} resolves outside the config root {root}")
        if target in here:
            cycle = " -> ".join(_show(p, root) for p in (*here[here.index(target) :], target))
            raise UserInputError(f"{path}: include cycle: {cycle}")
        if not target.is_file():
            raise UserInputError(f"{path}: include {entry!r} not found ({target})")
        merged = deep_merge(merged, _resolve(target, root, here, loaded))
    return deep_merge(merged, data)


def _show(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def apply_env_overrides(data: dict, environ: Mapping[str, str] | None = None) -> tuple[dict, dict[str, str]]:
    """Apply ``UPS_<SECTION>__<KEY>[__<KEY>…]=value`` overrides (values parsed as YAML scalars).

    Only variables whose first part names a config section count (``UPS_TRAINING__BATCH_SIZE=32`` sets
    ``training.batch_size``); other ``UPS_*`` variables belong to other tools and are left alone.

    Returns:
        The new data (input untouched) and ``{dotted path: variable name}`` of what was set, for error messages.
    """
    environ = os.environ if environ is None else environ
    sources: dict[str, str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if parts[0] not in UPSConfig.model_fields or not all(parts):
            continue
        try:
            value = yaml.load(environ[name], Loader=BoundedLoader)  # noqa: S506 - a bounded SafeLoader
        except yaml.YAMLError:
            value = environ[name]
        update: Any = value
        for key in reversed(parts):
            update = {key: update}
        if not _settable(data, parts):
            raise UserInputError(f"{name}: {'.'.join(parts[:-1])} is not a mapping, cannot set {parts[-1]}")
        data = deep_merge(data, update)
        sources[".".join(parts)] = name
    return data, sources


def _settable(data: Any, parts: list[str]) -> bool:
    for key in parts[:-1]:
        data = data.get(key) if isinstance(data, dict) else None
        if data is None:
            return True
        if not isinstance(data, dict):
            return False
    return True


def format_validation_error(err: ValidationError, env_sources: Mapping[str, str] | None = None) -> str:
    """One line for a pydantic error: ``<dotted.path>: <reason>`` of the first error, plus ``(+N more)``."""
    errors = err.errors(include_url=False)
    first = errors[0]
    loc = [str(p) for p in first["loc"]]
    ctx = first.get("ctx") or {}
    if first["type"] == FIELD_CHECK:
        loc += ctx["path"].split(".")
        reason = ctx["reason"]
    elif first["type"] == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        reason = "unknown key" + (f" (valid: {', '.join(valid)})" if valid else "")
    else:
        reason = first["msg"].removeprefix("Value error, ")
        if isinstance(first.get("input"), str | int | float | bool) and first["type"] != "missing":
            reason += f" (got {first['input']!r})"
    dotted = ".".join(loc)
    line = f"{dotted}: {reason}" if dotted else reason
    source = next((v for p, v in (env_sources or {}).items() if dotted == p or dotted.startswith(p + ".")), None)
    if source:
        line += f" (from {source})"
    if len(errors) > 1:
        line += f" (+{len(errors) - 1} more)"
    return line


def _fields_at(loc: list[str]) -> list[str]:
    """Field names of the section at ``loc`` (empty when ``loc`` is not a section)."""
    model: type[BaseModel] = UPSConfig
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return []
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        sections = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not sections:
            return []
        model = sections[0]
    return sorted(model.model_fields)


def validate_config(
    data: Mapping[str, Any], source: str = "<config>", env_sources: Mapping[str, str] | None = None
) -> UPSConfig:
    """Validate a plain mapping (UPS keys) into a :class:`UPSConfig`; errors become one ``UserInputError`` line."""
    try:
        return UPSConfig.model_validate(dict(data))
    except ValidationError as err:
        raise UserInputError(f"{source}: {format_validation_error(err, env_sources)}") from None


def load_config(path: str | Path, *, root: str | Path | None = None, env: bool = True) -> UPSConfig:
    """Load, merge, map, override and validate one config file.

    Args:
        path: the YAML file (UPS keys or the playbook's reference-template vocabulary).
        root: directory includes must stay inside; default: see :func:`resolve_includes`.
        env: apply ``UPS_<SECTION>__<KEY>`` environment overrides.

    Raises:
        UserInputError: one line, ``<path>: <dotted.path>: <reason>``.
    """
    data = resolve_includes(path, root)
    if is_reference_template(data):
        try:
            data = from_reference_template(data)
        except UserInputError as err:
            raise UserInputError(f"{path}: {err}") from None
    env_sources: dict[str, str] = {}
    if env:
        try:
            data, env_sources = apply_env_overrides(data)
        except UserInputError as err:
            raise UserInputError(f"{path}: {err}") from None
    return validate_config(data, source=str(path), env_sources=env_sources)


def config_hash(cfg: UPSConfig) -> str:
    """sha256 (hex) of the canonical JSON of the validated config: defaults filled, keys sorted, compact separators."""
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Dumper(yaml.SafeDumper):
    """Block style for mappings, flow style for lists of scalars (``depths: [1, 1, 1]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(item, dict | list) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_yaml(cfg: UPSConfig) -> str:
    """The validated config as YAML, in schema order, defaults filled."""
    return yaml.dump(cfg.model_dump(mode="json"), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
