"""Bounded YAML (ups.config.safe_yaml): limits on depth, aliases and expanded size; duplicate keys; ordinary YAML."""

from __future__ import annotations

import time

import pytest

from ups.config import safe_yaml
from ups.config.safe_yaml import read_text, safe_load_text
from ups.errors import UserInputError


def rejects(text: str, needle: str) -> str:
    t0 = time.perf_counter()
    with pytest.raises(UserInputError) as info:
        safe_load_text(text, "f.yaml")
    assert time.perf_counter() - t0 < 1.0
    msg = str(info.value)
    assert msg.startswith("f.yaml: ") and "\n" not in msg and needle in msg, msg
    return msg


def test_ordinary_yaml_loads_as_safe_load_does():
    text = "a: 1\nb: [x, 2.5, true, null]\nc: {d: e}\nf: &x {g: 1}\nh: *x\ni: {<<: *x, j: 2}\n"
    assert safe_load_text(text, "f.yaml") == {
        "a": 1,
        "b": ["x", 2.5, True, None],
        "c": {"d": "e"},
        "f": {"g": 1},
        "h": {"g": 1},
        "i": {"g": 1, "j": 2},
    }


def test_merge_key_may_be_overridden_without_a_duplicate_error():
    assert safe_load_text("base: &b {x: 1}\nover: {<<: *b, x: 2}\n", "f.yaml")["over"] == {"x": 2}


def test_duplicate_key_names_key_and_both_lines():
    rejects("a: 1\nb: 2\na: 3\n", "duplicate key 'a' at line 3 (first at line 1)")


def test_keys_equal_as_python_values_are_duplicates():
    rejects("{1: a, 0x1: b}\n", "duplicate key 1")


def test_depth_limit_counts_levels(monkeypatch):
    monkeypatch.setattr(safe_yaml, "MAX_DEPTH", 4)
    assert safe_load_text("[[[1]]]", "f.yaml") == [[[1]]]
    rejects("[[[[[1]]]]]", "nested deeper than 4 levels")
    rejects("a: {b: {c: {d: 1}}}\n", "nested deeper than 4 levels")


def test_alias_count_limit(monkeypatch):
    monkeypatch.setattr(safe_yaml, "MAX_ALIASES", 3)
    assert safe_load_text("a: &a 1\nb: [*a, *a, *a]\n", "f.yaml")["b"] == [1, 1, 1]
    rejects("a: &a 1\nb: [*a, *a, *a, *a]\n", "more than 3 aliases (line 2)")


def test_node_limit_counts_nodes_before_and_after_alias_expansion(monkeypatch):
    monkeypatch.setattr(safe_yaml, "MAX_NODES", 10)
    rejects("[" + ", ".join(["1"] * 20) + "]", "more than 10 nodes")
    rejects("a: &a [1, 2, 3]\nb: [*a, *a, *a]\n", "aliases expand to more than 10 nodes")


def test_billion_laughs_is_measured_not_expanded():
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 30)]  # 10**30 leaves
    rejects("\n".join(lines) + "\n", "aliases expand to more than 100000 nodes")


def test_recursive_alias_is_refused():
    rejects("a: &a {b: *a}\n", "recursive alias")


def test_python_tags_stay_refused():
    rejects("a: !!python/object/apply:os.system [ls]\n", "invalid YAML")


def test_read_text_refuses_non_utf8_with_the_line(tmp_path):
    (tmp_path / "f.yaml").write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(UserInputError, match=r"f.yaml: not UTF-8 text \(byte 0xff at line 2\)"):
        read_text(tmp_path / "f.yaml")
    with pytest.raises(UserInputError, match="gate file not found"):
        read_text(tmp_path / "missing.yaml", "gate file")
