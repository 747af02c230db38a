"""Config loading: seed templates, includes, reference mapping, env overrides, safe YAML, config_hash, CLI."""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ups.config import UPSConfig, config_hash, load_config
from ups.config.cli import register
from ups.config.loader import apply_env_overrides, deep_merge, dump_yaml, load_yaml, resolve_includes
from ups.config.reference import from_reference_template
from ups.errors import UserInputError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def _no_ups_env(monkeypatch):
    """Keep the developer's own UPS_* variables out of these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("UPS_"):
            monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def leaves(data, prefix=()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, (*prefix, key))
    else:
        yield prefix, data


# --- seed templates -------------------------------------------------------------------------------------------------


def test_burgers_template_loads_unchanged_with_every_value_kept():
    raw = yaml.safe_load((CONFIGS / "train_burgers_32dim.yaml").read_text())
    dumped = load_config(CONFIGS / "train_burgers_32dim.yaml").model_dump(mode="json")
    for path, value in leaves(raw):
        got = dumped
        for key in path:
            got = got[key]
        assert got == value, ".".join(path)


def test_burgers_template_values():
    cfg = load_config(CONFIGS / "train_burgers_32dim.yaml")
    assert cfg.data.task == "burgers1d" and cfg.latent.dim == 32 and cfg.latent.tokens == 32
    assert cfg.operator.pdet.depths == (1, 1, 1) and cfg.operator.pdet.group_size == 12
    assert cfg.stages.operator.scheduler.name == "cosineannealinglr" and cfg.stages.operator.scheduler.t_max == 40
    assert cfg.ttc.enabled and cfg.ttc.sampler.tau_range == (0.15, 0.85)
    assert cfg.ttc.decoder.output_channels == {"rho": 1, "e": 1}
    assert cfg.latent.decoder.hidden_dim == 96  # TTC scores with the trained decoder, so it takes this architecture


def test_reference_template_loads_after_mapping():
    cfg = load_config(CONFIGS / "reference_template.yaml")
    assert cfg.run.seed == 1337 and cfg.run.mixed_precision == "bf16" and cfg.run.save_every == 1000
    assert (cfg.latent.dim, cfg.latent.tokens, cfg.latent.encoder) == (384, 512, "upt")
    pdet = cfg.operator.pdet
    assert pdet.depths == (8, 8, 8) and pdet.input_dim == 384 and pdet.channel_separated and pdet.mlp_ratio == 4
    assert cfg.operator.conditioning.inputs == ("Re", "dt", "bc_type", "geometry_id")
    assert cfg.data.fields == ("u", "v", "p")
    opt = cfg.stages.operator.optimizer
    assert (opt.lr, opt.betas, opt.weight_decay) == (3e-4, (0.9, 0.95), 0.02)
    assert cfg.stages.operator.scheduler.warmup_ratio == 0.05
    assert (cfg.training.grad_clip, cfg.training.ema_decay, cfg.training.batch_tokens) == (1.0, 0.9995, 256000)
    assert cfg.training.horizon_curriculum == (4, 8, 16, 32) and cfg.training.grow_every_steps == 2000
    assert (cfg.training.loss.task, cfg.training.loss.edge, cfg.training.loss.conservation) == (1.0, 1e-3, 1e-3)
    assert cfg.diffusion.enabled and (cfg.diffusion.cadence_steps, cfg.diffusion.steps) == (16, 2)
    assert cfg.physics.projections.hodge_div_free and cfg.physics.budgets_check
    assert (cfg.eval.small.time_budget_s, cfg.eval.small.rollout_steps) == (3600, 8)
    assert (cfg.eval.full.time_budget_s, cfg.eval.full.rollout_steps) == (8 * 3600, 32)
    assert any("eval.thresholds.min_delta_nrmse" in note for note in cfg.run.notes)
    assert cfg.logging.tensorboard and not cfg.logging.wandb


def test_reference_mapping_leaves_its_input_untouched():
    raw = yaml.safe_load((CONFIGS / "reference_template.yaml").read_text())
    before = copy.deepcopy(raw)
    from_reference_template(raw)
    assert raw == before


@pytest.mark.parametrize(
    "data, message",
    [
        ({"model": {"core": {"bogus": 1}}}, "model.core.bogus: unknown key"),
        (
            {"model": {"io": {"encoder": "CNN"}}},
            "model.io.encoder: unknown value 'CNN' (valid: UPTEncoder, GridEncoder)",
        ),
        (
            {"model": {"io": {"latent_dim": 64}}, "latent": {"dim": 32}},
            "model.io.latent_dim: 64 contradicts latent.dim",
        ),
        ({"train": {"objective": {"type": "operator"}}, "diffusion": {"enabled": True}}, "contradicts"),
        ({"model": {"core": {"depth": 2}}}, "model.core.depth: must be >= the number of U-stages (3)"),
    ],
)
def test_reference_mapping_errors_name_the_reference_key(data, message):
    with pytest.raises(UserInputError, match=re.escape(message)):
        from_reference_template(data)


def test_reference_curriculum_and_depth_split():
    out = from_reference_template(
        {"data": {"curriculum": {"start_horizon": 3, "max_horizon": 20}}, "model": {"core": {"depth": 32}}}
    )
    assert out["training"]["horizon_curriculum"] == [3, 6, 12, 20]
    assert out["operator"]["pdet"]["depths"] == [11, 11, 10]
    flat = from_reference_template({"model": {"core": {"depth": 6, "u_shape": False}}})
    assert flat["operator"]["pdet"]["depths"] == [6]
    staged = from_reference_template({"model": {"core": {"depth": 8}}, "operator": {"pdet": {"u_stages": [1, 2]}}})
    assert staged["operator"]["pdet"]["depths"] == [4, 4]


def test_reference_vocabulary_mixes_with_ups_keys_and_includes(tmp_path):
    write(tmp_path / "presets" / "tiny.yaml", (CONFIGS / "presets" / "tiny.yaml").read_text())
    cfg = write(
        tmp_path / "x.yaml", "include: presets/tiny.yaml\ntrain: {optimizer: {lr: 0.001}}\ndata: {task: ks1d}\n"
    )
    loaded = load_config(cfg)
    assert loaded.stages.operator.optimizer.lr == 1e-3 and loaded.data.task == "ks1d" and loaded.latent.tokens == 16


# --- includes -------------------------------------------------------------------------------------------------------


def test_include_deep_merges_dicts_replaces_lists_and_later_wins(tmp_path):
    write(
        tmp_path / "base.yaml", "training: {batch_size: 4, loss: {edge: 0.002, task: 2.0}}\neval: {horizons: [1, 2]}\n"
    )
    write(tmp_path / "mid.yaml", "training: {loss: {edge: 0.005}}\neval: {horizons: [4]}\nrun: {seed: 1}\n")
    top = write(tmp_path / "top.yaml", "include: [base.yaml, mid.yaml]\nrun: {seed: 7}\n")
    data = resolve_includes(top)
    assert data == {
        "training": {"batch_size": 4, "loss": {"edge": 0.005, "task": 2.0}},
        "eval": {"horizons": [4]},
        "run": {"seed": 7},
    }
    assert "include" not in data


def test_include_paths_are_relative_to_the_including_file(tmp_path):
    write(tmp_path / "presets" / "p.yaml", "include: ../common/c.yaml\nlatent: {tokens: 16}\n")
    write(tmp_path / "common" / "c.yaml", "latent: {dim: 48, tokens: 8}\n")
    top = write(tmp_path / "exp" / "run.yaml", "include: ../presets/p.yaml\nrun: {seed: 3}\n")
    data = resolve_includes(top, root=tmp_path)
    assert data == {"latent": {"dim": 48, "tokens": 16}, "run": {"seed": 3}}


def test_include_of_a_preset_file(tmp_path):
    for name in ("tiny", "S", "B", "L"):
        write(tmp_path / "presets" / f"{name}.yaml", (CONFIGS / "presets" / f"{name}.yaml").read_text())
    cfg = load_config(write(tmp_path / "run.yaml", "include: presets/S.yaml\noperator: {pdet: {group_size: 16}}\n"))
    assert (cfg.latent.dim, cfg.latent.tokens, cfg.operator.pdet.num_heads) == (384, 512, 8)
    assert sum(cfg.operator.pdet.depths) == 24 and cfg.operator.pdet.group_size == 16


@pytest.mark.parametrize("name", ["tiny", "S", "B", "L"])
def test_presets_validate(name):
    cfg = load_config(CONFIGS / "presets" / f"{name}.yaml")
    depth, dim, heads, window, tokens, latent_dim = {
        "tiny": (2, 32, 4, 8, 16, 32),
        "S": (24, 384, 8, 8, 512, 384),
        "B": (32, 512, 8, 12, 768, 512),
        "L": (40, 768, 12, 16, 1024, 512),
    }[name]
    pdet = cfg.operator.pdet
    assert (sum(pdet.depths), pdet.hidden_dim, pdet.num_heads, pdet.group_size) == (depth, dim, heads, window)
    assert (cfg.latent.tokens, cfg.latent.dim) == (tokens, latent_dim)
    if name == "L":
        assert pdet.u_stages == (1, 2, 4, 8)


def test_include_cycle_is_named(tmp_path):
    write(tmp_path / "a.yaml", "include: b.yaml\n")
    write(tmp_path / "b.yaml", "include: [a.yaml]\n")
    with pytest.raises(UserInputError, match=r"include cycle: a\.yaml -> b\.yaml -> a\.yaml"):
        load_config(tmp_path / "a.yaml")
    write(tmp_path / "self.yaml", "include: self.yaml\n")
    with pytest.raises(UserInputError, match=r"include cycle: self\.yaml -> self\.yaml"):
        load_config(tmp_path / "self.yaml")


def test_diamond_include_is_not_a_cycle(tmp_path):
    write(tmp_path / "shared.yaml", "run: {seed: 5}\n")
    write(tmp_path / "l.yaml", "include: shared.yaml\n")
    write(tmp_path / "r.yaml", "include: shared.yaml\n")
    assert resolve_includes(write(tmp_path / "top.yaml", "include: [l.yaml, r.yaml]\n")) == {"run": {"seed": 5}}


def test_include_outside_the_root_is_an_error(tmp_path):
    write(tmp_path / "outside.yaml", "run: {seed: 1}\n")
    top = write(tmp_path / "configs" / "x.yaml", "include: ../outside.yaml\n")
    with pytest.raises(UserInputError, match="outside the config root"):
        load_config(top)
    assert load_config(top, root=tmp_path).run.seed == 1


def test_missing_include_and_bad_include_value(tmp_path):
    with pytest.raises(UserInputError, match="include 'nope.yaml' not found"):
        load_config(write(tmp_path / "x.yaml", "include: nope.yaml\n"))
    with pytest.raises(UserInputError, match="include: must be a path or a list of paths"):
        load_config(write(tmp_path / "y.yaml", "include: {a: 1}\n"))


# --- files, errors --------------------------------------------------------------------------------------------------


def test_python_tags_are_rejected_without_running_anything(tmp_path):
    marker = tmp_path / "pwned"
    bad = write(tmp_path / "bad.yaml", f'run: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(UserInputError, match="invalid YAML"):
        load_config(bad)
    assert not marker.exists()
    with pytest.raises(UserInputError, match="invalid YAML"):
        load_yaml(write(tmp_path / "obj.yaml", "x: !!python/object:argparse.Namespace {}\n"))


def test_file_level_errors(tmp_path):
    with pytest.raises(UserInputError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(UserInputError, match="top level must be a mapping"):
        load_config(write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    assert load_config(write(tmp_path / "empty.yaml", "")) == UPSConfig()


def test_errors_are_one_line_prefixed_with_the_file(tmp_path):
    path = write(tmp_path / "x.yaml", "operator:\n  pdet:\n    num_heads: six\n")
    with pytest.raises(UserInputError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: operator.pdet.num_heads: Input should be a valid integer")
    assert "\n" not in message
    with pytest.raises(UserInputError, match=re.escape(f"{path}: training.bogus: unknown key")):
        load_config(write(path, "training: {bogus: 1}\n"))


# --- environment overrides ------------------------------------------------------------------------------------------


def test_env_overrides_apply_after_merge(tmp_path, monkeypatch):
    path = write(tmp_path / "x.yaml", "training: {batch_size: 4}\n")
    monkeypatch.setenv("UPS_TRAINING__BATCH_SIZE", "32")
    monkeypatch.setenv("UPS_OPERATOR__PDET__NUM_HEADS", "8")
    monkeypatch.setenv("UPS_EVAL__HORIZONS", "[1, 2]")
    monkeypatch.setenv("UPS_CACHE_DIR", "/elsewhere")  # not a config section: ignored
    cfg = load_config(path)
    assert (cfg.training.batch_size, cfg.operator.pdet.num_heads, cfg.eval.horizons) == (32, 8, (1, 2))
    assert load_config(path, env=False).training.batch_size == 4


def test_env_override_errors_name_the_variable(tmp_path, monkeypatch):
    path = write(tmp_path / "x.yaml", "")
    monkeypatch.setenv("UPS_TRAINING__BATCH_SIZE", "many")
    with pytest.raises(UserInputError, match=r"training\.batch_size: .*\(from UPS_TRAINING__BATCH_SIZE\)"):
        load_config(path)
    monkeypatch.delenv("UPS_TRAINING__BATCH_SIZE")
    monkeypatch.setenv("UPS_TRAINING__BATCH_SIZE__X", "1")
    with pytest.raises(UserInputError, match="UPS_TRAINING__BATCH_SIZE__X: training.batch_size is not a mapping"):
        load_config(write(path, "training: {batch_size: 4}\n"))


def test_apply_env_overrides_is_pure():
    data = {"training": {"batch_size": 4}}
    out, sources = apply_env_overrides(data, {"UPS_TRAINING__AMP": "false"})
    assert out == {"training": {"batch_size": 4, "amp": False}} and data == {"training": {"batch_size": 4}}
    assert sources == {"training.amp": "UPS_TRAINING__AMP"}


# --- config_hash ----------------------------------------------------------------------------------------------------


def test_config_hash_ignores_key_order_and_explicit_defaults(tmp_path):
    a = write(tmp_path / "a.yaml", "run: {seed: 3, device: cpu}\ntraining: {batch_size: 8, amp: false}\n")
    b = write(tmp_path / "b.yaml", "training: {amp: false, batch_size: 8}\nrun: {device: cpu, seed: 3}\n")
    assert config_hash(load_config(a)) == config_hash(load_config(b))
    assert re.fullmatch(r"[0-9a-f]{64}", config_hash(load_config(a)))
    full = write(tmp_path / "full.yaml", dump_yaml(load_config(a)))
    assert config_hash(load_config(full)) == config_hash(load_config(a))
    assert config_hash(load_config(write(tmp_path / "empty.yaml", ""))) == config_hash(UPSConfig())


def test_config_hash_changes_with_a_value(tmp_path):
    a = load_config(write(tmp_path / "a.yaml", "training: {batch_size: 8}\n"))
    b = load_config(write(tmp_path / "b.yaml", "training: {batch_size: 9}\n"))
    c = load_config(write(tmp_path / "c.yaml", "stages: {operator: {optimizer: {lr: 0.0003000001}}}\n"))
    assert len({config_hash(a), config_hash(b), config_hash(c), config_hash(UPSConfig())}) == 4


# --- deep merge properties ------------------------------------------------------------------------------------------

keys = st.sampled_from(["a", "b", "c", "d"])
scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.lists(st.integers(0, 3), max_size=3)
trees = st.recursive(scalars, lambda children: st.dictionaries(keys, children, max_size=4), max_leaves=12)
mappings = st.dictionaries(keys, trees, max_size=4)


def paths(tree, prefix=()):
    """Leaf paths of a mapping; an empty mapping counts as a leaf only when it replaces a non-mapping."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from paths(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


@given(mappings, mappings)
def test_merge_later_wins_on_every_leaf_and_keeps_other_keys(base, override):
    before = (copy.deepcopy(base), copy.deepcopy(override))
    merged = deep_merge(base, override)
    assert (base, override) == before  # inputs untouched
    for path, value in paths(override):
        if value == {}:
            assert isinstance(at(merged, path), dict)
        else:
            assert at(merged, path) == value  # lists and scalars replace, never concatenate
    assert set(merged) == set(base) | set(override)
    for key in set(base) - set(override):
        assert merged[key] == base[key]


@given(mappings, mappings)
def test_merge_has_empty_identity_and_reapplying_an_override_is_a_no_op(a, b):
    assert deep_merge(a, {}) == a == deep_merge({}, a)
    assert deep_merge(a, a) == a
    assert deep_merge(deep_merge(a, b), b) == deep_merge(a, b)


# --- CLI ------------------------------------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_validate_prints_the_hash(capsys):
    path = str(CONFIGS / "train_burgers_32dim.yaml")
    assert run_cli(["config", "validate", path]) == 0
    assert capsys.readouterr().out == f"ok {path} config_hash={config_hash(load_config(path))}\n"


def test_cli_show_prints_the_resolved_config(capsys, tmp_path):
    path = CONFIGS / "reference_template.yaml"
    assert run_cli(["config", "show", str(path)]) == 0
    shown = write(tmp_path / "shown.yaml", capsys.readouterr().out)
    assert config_hash(load_config(shown)) == config_hash(load_config(path))
    assert "model:" not in shown.read_text().split("run:", 1)[0]


def test_cli_bad_input_raises_user_input_error(tmp_path):
    with pytest.raises(UserInputError, match="training.bogus: unknown key"):
        run_cli(["config", "validate", str(write(tmp_path / "x.yaml", "training: {bogus: 1}\n"))])


def test_a_config_in_a_configs_subfolder_may_include_a_sibling_folder(tmp_path):
    write(tmp_path / "configs" / "presets" / "p.yaml", "run: {seed: 3}\n")
    top = write(tmp_path / "configs" / "small" / "x.yaml", "include: ../presets/p.yaml\n")
    assert load_config(top).run.seed == 3
    escape = write(tmp_path / "configs" / "small" / "y.yaml", "include: ../../outside.yaml\n")
    write(tmp_path / "outside.yaml", "run: {seed: 1}\n")
    with pytest.raises(UserInputError, match="outside the config root"):
        load_config(escape)
