"""Bounded safe YAML: the one way UPS parses YAML text (configs; suite and gate files should use it too).

``yaml.safe_load`` builds no Python objects from tags, but it still accepts inputs that hang or crash us later:

- alias bombs ("billion laughs"): a few hundred bytes of nested ``&a`` / ``*a`` references build a small graph of
  shared objects that every later walk (merging, validation, printing an error) expands to billions of nodes;
- nesting deep enough (``[[[[…]]]]``) to overflow PyYAML's recursive composer with a ``RecursionError``;
- duplicate mapping keys, silently resolved to the last one.

:class:`BoundedLoader` checks all three on the node graph while composing, before a single object is constructed: the
number of nodes and aliases, the nesting depth, and the size and depth the document would have once every alias is
expanded (counted on the shared graph with memoisation, so a bomb is measured in time linear in its bytes, never
expanded). Every failure is one :class:`~ups.errors.UserInputError` line that names the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ups.errors import UserInputError

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_NODES", "BoundedLoader", "YAMLLimitError", "read_text", "safe_load_text"]

#: Nesting levels of the document, aliases expanded. UPS files nest about 6 deep; 64 keeps every later recursive walk
#: (deep merge, pydantic, JSON dump) far from Python's recursion limit.
MAX_DEPTH = 64
#: Alias references (``*name``) in one document. UPS files use none; a handful of anchors is all a person writes.
MAX_ALIASES = 1000
#: Nodes of the document once every alias is expanded. The largest UPS file has a few hundred.
MAX_NODES = 100_000

#: Key tags whose keys are not plain data: ``<<`` merges (later keys may override them) and ``=`` (a value key).
_SPECIAL_KEY_TAGS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")


class YAMLLimitError(yaml.YAMLError):
    """A :class:`BoundedLoader` check failed; ``str(err)`` is the reason with its line."""


def _line(node_or_mark: Any) -> int:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1 if mark is not None else 0


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with limits on depth, aliases and expanded size, and duplicate keys as an error."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._aliases = 0

    def fetch_flow_collection_start(self, token_class: type) -> None:
        # The scanner looks up to 1024 characters ahead for a possible simple key at every flow level, so a run of
        # ``[[[[…`` costs quadratic time before the composer sees any of it: stop at the bracket past the limit.
        if self.flow_level >= MAX_DEPTH:
            raise YAMLLimitError(f"nested deeper than {MAX_DEPTH} levels (line {_line(self.get_mark())})")
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                line = _line(self.peek_event().start_mark)
                raise YAMLLimitError(f"more than {MAX_ALIASES} aliases (line {line})")
            return super().compose_node(parent, index)  # the anchored node itself: nothing new to count
        self._nodes += 1
        self._depth += 1
        if self._depth > MAX_DEPTH:  # checked before recursing, so PyYAML's composer never nears the recursion limit
            raise YAMLLimitError(f"nested deeper than {MAX_DEPTH} levels (line {_line(self.peek_event().start_mark)})")
        if self._nodes > MAX_NODES:
            raise YAMLLimitError(f"more than {MAX_NODES} nodes (line {_line(self.peek_event().start_mark)})")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in _SPECIAL_KEY_TAGS:
                continue  # a non-scalar key fails at construction anyway (unhashable)
            key = self.construct_object(key_node)  # the key as the mapping will hold it: ``1`` and ``0x1`` collide
            try:
                first = seen.get(key)
            except TypeError:
                continue
            if first is not None:
                raise YAMLLimitError(f"duplicate key {key!r} at line {_line(key_node)} (first at line {first})")
            seen[key] = _line(key_node)
        return node

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _check_expansion(node, depth=1, memo={}, active=set())
        return node


def _check_expansion(node: yaml.Node, depth: int, memo: dict[int, tuple[int, int]], active: set[int]) -> int:
    """Expanded node count of ``node`` (aliases counted in full); raises past the limits or on a recursive alias.

    ``memo`` holds (expanded count, height) per node already measured, so a node shared by many aliases is walked
    once; recursion stops at ``MAX_DEPTH``, expanded depth included.
    """
    key = id(node)
    if key in memo:
        size, height = memo[key]
        if depth - 1 + height > MAX_DEPTH:
            raise YAMLLimitError(
                f"nested deeper than {MAX_DEPTH} levels once aliases are expanded (line {_line(node)})"
            )
        return size
    if key in active:
        raise YAMLLimitError(f"recursive alias: a node contains itself (line {_line(node)})")
    if depth > MAX_DEPTH:
        raise YAMLLimitError(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded (line {_line(node)})")
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    active.add(key)
    size, height = 1, 1
    for child in children:
        size += _check_expansion(child, depth + 1, memo, active)
        height = max(height, 1 + memo[id(child)][1])
        if size > MAX_NODES:
            raise YAMLLimitError(f"aliases expand to more than {MAX_NODES} nodes (line {_line(node)})")
    active.discard(key)
    memo[key] = (size, height)
    return size


def safe_load_text(text: str, where: str) -> Any:
    """Parse one YAML document with :class:`BoundedLoader`.

    Args:
        text: the document.
        where: what to name in the error, e.g. the file's path or ``gate file gates/small.yaml``.

    Raises:
        UserInputError: one line, ``<where>: <reason>``: invalid YAML, a Python tag or other unsafe construct, or a
            limit (depth, aliases, expanded size) or duplicate key, each with its line.
    """
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - BoundedLoader is a SafeLoader
    except YAMLLimitError as err:
        raise UserInputError(f"{where}: {err}") from None
    except yaml.YAMLError as err:
        reason = " ".join(str(err).split())
        raise UserInputError(f"{where}: invalid YAML ({reason})") from None


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or non-UTF-8 file is one ``UserInputError`` line.

    Args:
        path: the file.
        what: the noun for the error of a missing file (``config file`` → ``<path>: config file not found``).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserInputError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise UserInputError(f"{path}: is a directory, expected a {what}") from None
    except OSError as err:
        raise UserInputError(f"{path}: cannot read ({err.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UserInputError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at line {line})") from None
