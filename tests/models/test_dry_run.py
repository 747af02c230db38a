"""``ups dry-run``: preset parameter counts against the architecture's formula, estimates, and user errors."""

import argparse
import math
import re
from pathlib import Path

import pytest

from ups.config import load_config
from ups.config.schema import UPSConfig
from ups.data.solvers import TASKS
from ups.errors import UserInputError
from ups.models.cli import register
from ups.models.dry_run import batch_size_of, estimate, format_report

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "presets"


def _run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ups")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


def _lin(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def expected_parameters(cfg: UPSConfig) -> dict[str, int]:
    """Parameter count of the latent operator with a grid encoder, written from the architecture, not the code."""
    spec = TASKS.get(cfg.data.task).spec(cfg.data.size)
    assert spec.ndim == 1 and cfg.latent.encoder == "grid"
    n_ch, n_par, e = len(spec.fields), len(spec.param_names), cfg.latent.dim
    pd, dec = cfg.operator.pdet, cfg.latent.decoder
    sep, d, heads = pd.channel_separated, pd.hidden_dim, pd.num_heads
    streams = n_ch if sep else 1
    # GridEncoder: patch embedding, one linear map from r patches to s tokens, channel embedding when separated
    patches, tokens = spec.grid_shape[0] // cfg.data.patch_size, cfg.latent.tokens
    r, s = max(patches // tokens, 1), max(tokens // patches, 1)
    encoder = _lin((1 if sep else n_ch) * cfg.data.patch_size, e) + _lin(r * e, s * e) + (n_ch * e if sep else 0)
    # Conditioner: base vector + Δt and parameter embeddings (16 log-Fourier frequencies each, learned) + BC table
    n_freq = 16

    def scalar(k: int) -> int:
        return k * n_freq + _lin(2 * n_freq * k + k, d) + _lin(d, d)

    conditioner = d + scalar(1) + scalar(n_par) + 4 * d
    # Backbone: lift, blocks (window attention [+ channel attention] + MLP + AdaLN-Zero map), U-stage merge/split/fuse,
    # final AdaLN (shift, scale) and output map
    attention = _lin(d, 3 * d) + _lin(d, d) + (2 * (d // heads) if pd.qk_rmsnorm else 0)
    mlp = _lin(d, pd.mlp_ratio * d) + _lin(pd.mlp_ratio * d, d)
    channel = sep and n_ch > 1
    block = attention * (2 if channel else 1) + mlp + _lin(d, (9 if channel else 6) * d)
    ratios = [b // a for a, b in zip(pd.u_stages, pd.u_stages[1:], strict=False)]
    stages = sum(_lin(q * d, d) + _lin(d, q * d) + _lin(2 * d, d) for q in ratios)
    backbone = _lin(e, d) + sum(pd.depths) * block + stages + _lin(d, 2 * d) + _lin(d, e)
    # Decoder: query MLP on Fourier features, latent and anchor projections, Perceiver layers, head
    h, n_feat = dec.hidden_dim, 2 * spec.ndim * len(dec.frequencies)
    layer = 3 * 2 * h + _lin(h, h) + _lin(h, 2 * h) + _lin(h, h) + _lin(h, 4 * h) + _lin(4 * h, h)
    decoder = _lin(n_feat, h) + _lin(h, h) + _lin(e, h) + _lin(n_feat, h) + (streams * h if streams > 1 else 0)
    decoder += dec.num_layers * layer + 2 * h + _lin(h, n_ch)
    return {"encoder": encoder, "conditioner": conditioner, "backbone": backbone, "decoder": decoder}


@pytest.mark.parametrize("preset", ["tiny", "S", "B", "L"])
def test_preset_parameter_counts_printed_by_dry_run_match_the_formula(preset, capsys):
    path = PRESETS / f"{preset}.yaml"
    _run(["dry-run", str(path), "--estimate-only", "--params-only"])
    out = capsys.readouterr().out
    printed = int(re.search(r"^parameters: ([\d,]+)", out, re.M).group(1).replace(",", ""))
    parts = expected_parameters(load_config(path))
    assert printed == sum(parts.values())
    for part, n in parts.items():
        assert f"{part} {n:,}" in out


def test_depth_and_width_of_the_presets_follow_the_playbook():
    for name, depth, dim, heads, window, tokens in [("S", 24, 384, 8, 8, 512), ("B", 32, 512, 8, 12, 768)]:
        pd = load_config(PRESETS / f"{name}.yaml").operator.pdet
        assert (sum(pd.depths), pd.hidden_dim, pd.num_heads, pd.group_size) == (depth, dim, heads, window)
        assert load_config(PRESETS / f"{name}.yaml").latent.tokens == tokens


def test_estimate_reports_flops_memory_and_time_per_epoch(tmp_path):
    cfg = load_config(PRESETS / "tiny.yaml")
    report = estimate(cfg, probe_steps=1, probe_batch=2, device="cpu")
    assert report.batch_size == batch_size_of(cfg) == cfg.training.batch_size
    assert report.flops_train_step > 3 * report.batch_size * report.flops_forward_per_sample > 0
    assert report.activation_bytes > 0 and report.peak_memory_bytes is None
    counts = TASKS.get("burgers1d").solver_config("small")
    assert report.samples_per_epoch == counts["counts"]["train"] * (counts["n_frames"] - 1)
    assert report.steps_per_epoch == math.ceil(report.samples_per_epoch / report.batch_size)
    assert report.seconds_per_epoch == pytest.approx(report.seconds_per_step * report.steps_per_epoch)
    text = format_report(report, "tiny.yaml")
    for key in ("parameters:", "FLOPs/step:", "activation memory:", "time/epoch:"):
        assert key in text


def test_activation_checkpointing_cuts_the_estimated_activation_memory():
    base = {"latent": {"dim": 16, "tokens": 32}, "operator": {"pdet": {"depths": [2, 2], "u_stages": [1, 2]}}}
    plain = estimate(UPSConfig(**base), probe_steps=0)
    ckpt = estimate(UPSConfig(**base, training={"activation_checkpointing": True}), probe_steps=0)
    assert ckpt.activation_bytes < plain.activation_bytes
    assert ckpt.flops_train_step > plain.flops_train_step  # the blocks run forward twice


def test_bad_configs_are_one_line_user_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("latent: {dim: 32, tokens: 24}\n")  # 24 tokens cannot tile burgers1d's 256 cells
    with pytest.raises(UserInputError, match="latent.tokens") as err:
        _run(["dry-run", str(bad), "--estimate-only", "--no-probe"])
    assert "\n" not in str(err.value)
    bad.write_text("operator: {pdet: {num_heads: 5}}\n")
    with pytest.raises(UserInputError, match="num_heads"):
        _run(["dry-run", str(bad), "--estimate-only"])


@pytest.mark.gpu
def test_cuda_probe_measures_peak_memory():
    report = estimate(load_config(PRESETS / "tiny.yaml"), probe_steps=2, device="cuda")
    assert report.probe_device == "cuda" and report.peak_memory_bytes > 0 and report.seconds_per_epoch > 0
