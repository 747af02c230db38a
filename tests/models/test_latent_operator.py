"""LatentOperator: end-to-end gradients, any-point decoding, 1D/2D/point clouds, rollout contract, checkpoints."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ups.config.schema import UPSConfig
from ups.data.spec import TaskSpec
from ups.data.store import default_coords
from ups.errors import UserInputError
from ups.models import MODELS, Surrogate
from ups.models.dry_run import training_loss
from ups.models.latent_operator import LatentOperator

SPEC_1D = TaskSpec("burgers1d", ("u",), (64,), (1.0,), 0.05, bc="periodic", param_names=("nu",))
SPEC_2D = TaskSpec("toy2d", ("u", "v"), (16, 16), (2.0, 1.0), 0.1, bc="neumann", param_names=("a", "b"))


def _cfg(encoder="grid", channel_separated=False, **latent) -> UPSConfig:
    return UPSConfig(
        latent={
            "dim": 16,
            "tokens": 16,
            "encoder": encoder,
            "supernodes": 64,
            "decoder": {"hidden_dim": 16, "num_heads": 2, "num_layers": 1, "query_points": 48},
        }
        | latent,
        operator={
            "pdet": {
                "hidden_dim": 16,
                "depths": [1, 1],
                "u_stages": [1, 2],
                "group_size": 4,
                "num_heads": 2,
                "channel_separated": channel_separated,
            }
        },
    )


def _model(spec=SPEC_1D, seed=0, stats=None, **cfg) -> LatentOperator:
    torch.manual_seed(seed)
    stats = stats or {f: (0.0, 1.0) for f in spec.fields}
    return MODELS.get("latent_operator").build(_cfg(**cfg), spec, stats)


def _frames(spec, batch=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, len(spec.fields), *spec.grid_shape)
    params = torch.rand(batch, len(spec.param_names), generator=g) + 0.1
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g), params


def _train(model, spec, steps=3):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    u0, u1, p = _frames(spec)
    for _ in range(steps):
        opt.zero_grad()
        training_loss(model, u0, u1, p).backward()
        opt.step()
    opt.zero_grad()
    return u0, u1, p


def _physical_points(spec) -> torch.Tensor:
    axes = [torch.as_tensor(default_coords(spec, 1)[a], dtype=torch.float32) for a in "xy"[: spec.ndim]]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, spec.ndim)


@pytest.mark.parametrize(
    ("spec", "kw"),
    [(SPEC_1D, {}), (SPEC_2D, {"channel_separated": True}), (SPEC_2D, {"encoder": "upt"})],
    ids=["grid-1d", "grid-2d-channel-separated", "upt-2d"],
)
def test_gradients_reach_every_parameter_through_a_training_loss(spec, kw):
    model = _model(spec, **kw)
    # AdaLN-Zero and the zero-initialised output map block most gradients at step 0; after a few optimiser steps
    # every part must be on the gradient path.
    u0, u1, p = _train(model, spec)
    training_loss(model, u0, u1, p).backward()
    dead = [n for n, w in model.named_parameters() if w.grad is None or not w.grad.abs().sum() > 0]
    assert not dead
    parts = model.parameter_counts()
    assert all(parts[k] > 0 for k in ("encoder", "conditioner", "backbone", "decoder"))


@pytest.mark.parametrize("spec", [SPEC_1D, SPEC_2D], ids=["1d", "2d"])
def test_any_point_decoder_at_the_grid_points_equals_the_grid_decode(spec):
    model = _model(spec).eval()
    u0, _, _ = _frames(spec)
    with torch.no_grad():
        z = model.encode(u0)
        grid = model.decode(z)  # [B, C, *S]
        model.decoder.query_chunk = 37  # chunked, and not a divisor of the point count
        points = model.decode(z, _physical_points(spec))  # [B, Q, C]
    assert grid.shape == u0.shape
    torch.testing.assert_close(points, grid.flatten(2).transpose(1, 2), rtol=1e-5, atol=1e-6)


def test_the_model_runs_on_1d_2d_and_point_cloud_inputs():
    for spec in (SPEC_1D, SPEC_2D):
        model = _model(spec)
        u0, _, p = _frames(spec)
        out = model.rollout(u0[:, None], 2, p)
        assert out.shape == (3, 2, *u0.shape[1:]) and torch.isfinite(out).all()
    model = _model(SPEC_2D, encoder="upt", channel_separated=True)
    coords = torch.rand(90, 2) * torch.tensor([2.0, 1.0])  # irregular points in the 2 × 1 domain
    values = torch.randn(3, 90, 2)
    z = model.encode(values, coords)
    assert z.shape == (3, 2 * 16, 16)
    z_next = model.step(z, model.condition(3, params=torch.rand(3, 2)))
    assert model.decode(z_next, coords).shape == (3, 90, 2)
    assert model.decode(z_next, torch.rand(5, 2)).shape == (3, 5, 2)  # anywhere else too
    with pytest.raises(ValueError, match="upt"):
        _model(SPEC_2D).encode(values, coords)


def test_rollout_normalises_inside_and_returns_physical_fields():
    stats = {"u": (10.0, 2.0)}
    model = _model(SPEC_1D, stats=stats)
    _train(model, SPEC_1D, steps=2)
    model.train()
    u0, _, p = _frames(SPEC_1D)
    physical = 10.0 + 2.0 * u0
    out = model.rollout(physical[:, None].double(), 2, p)
    assert out.dtype == torch.float64 and model.training  # input dtype kept, training mode restored
    model.eval()
    with torch.no_grad():
        c = model.condition(3, params=p)
        z1 = model.step(model.encode(u0), c)
        z2 = model.step(z1, c)
        expect = 10.0 + 2.0 * torch.stack([model.decode(z1), model.decode(z2)], dim=1)
    torch.testing.assert_close(out.float(), expect, rtol=1e-5, atol=1e-5)


def test_an_untrained_operator_is_latent_persistence():
    model = _model(SPEC_2D)
    u0, _, p = _frames(SPEC_2D)
    out = model.rollout(u0[:, None], 3, p)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


@pytest.mark.parametrize("kw", [{}, {"encoder": "upt", "channel_separated": True}], ids=["grid", "upt"])
def test_checkpoint_round_trip_gives_identical_outputs(kw):
    model = _model(SPEC_2D, stats={"u": (1.0, 3.0), "v": (-2.0, 0.5)}, **kw)
    _train(model, SPEC_2D)
    tensors, meta = model.to_checkpoint()
    tensors, meta = st_load(st_save(tensors)), json.loads(json.dumps(meta))  # what the trainer writes and reads
    loaded = LatentOperator.from_checkpoint(tensors, meta)
    u0, _, p = _frames(SPEC_2D, seed=7)
    assert torch.equal(model.rollout(u0[:, None], 3, p), loaded.rollout(u0[:, None], 3, p))
    assert loaded.config == model.config and loaded.stats == model.stats
    meta["config"]["latent"]["dim"] = 32
    meta["config"]["operator"]["pdet"]["input_dim"] = 32
    with pytest.raises(UserInputError, match="checkpoint"):
        LatentOperator.from_checkpoint(tensors, meta)
    with pytest.raises(UserInputError, match="format"):
        LatentOperator.from_checkpoint(tensors, {"format": "pickle"})


def test_inverse_losses_are_finite_scalars_on_grids_and_points():
    model = _model(SPEC_2D, encoder="upt")
    u0, _, _ = _frames(SPEC_2D)
    z = model.encode(u0)
    for loss in (
        model.inverse_encoding_loss(u0, query_points=10),
        model.inverse_encoding_loss(torch.randn(3, 40, 2), torch.rand(40, 2)),
        model.inverse_decoding_loss(z),
    ):
        assert loss.ndim == 0 and torch.isfinite(loss) and loss >= 0


def test_config_and_data_mismatches_are_user_errors():
    stats = {"u": (0.0, 1.0)}
    with pytest.raises(UserInputError, match="latent.tokens"):
        MODELS.get("latent_operator").build(_cfg(tokens=24), SPEC_1D, stats)  # 24 tokens cannot tile 64 cells
    for inputs, match in [(["geometry_id"], "geometry ids"), (["Re"], "unknown input 'Re'")]:
        cfg = UPSConfig(latent={"dim": 16, "tokens": 16}, operator={"conditioning": {"inputs": inputs}})
        with pytest.raises(UserInputError, match=match):
            MODELS.get("latent_operator").build(cfg, SPEC_1D, stats)
    with pytest.raises(UserInputError, match="data.fields"):
        MODELS.get("latent_operator").build(UPSConfig(data={"fields": ["v"]}), SPEC_1D, stats)


def test_registered_model_builds_with_defaults_and_is_a_surrogate():
    model = MODELS.get("latent_operator").build(None, SPEC_1D, {"u": (0.0, 1.0)})
    assert isinstance(model, Surrogate) and model.n_input == 1
    assert model.num_parameters() == sum(model.parameter_counts().values())
    assert model.conditioner.params is not None and model.dt == pytest.approx(SPEC_1D.dt)


@pytest.mark.gpu
def test_cuda_uses_bf16_autocast_and_flash_attention():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = _model(SPEC_1D, encoder="upt").cuda()
    u0, u1, p = (t.cuda() for t in _frames(SPEC_1D))
    with model.autocast():
        assert torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.bfloat16
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # raises if any attention call cannot use flash
            loss = training_loss(model, u0, u1, p)
    loss.backward()
    assert torch.isfinite(loss)
    out = model.rollout(u0[:, None].cpu(), 2, p.cpu())
    assert out.device.type == "cpu" and out.dtype == torch.float32 and torch.isfinite(out).all()
    np.testing.assert_array_equal(out.shape, (3, 2, 1, 64))
