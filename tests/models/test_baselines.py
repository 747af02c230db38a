"""Grid baselines (U-Net, FNO): they learn, the U-Net is translation-equivariant where the task is, checkpoints
round-trip bitwise, PDE parameters reach the net, and a missing neuraloperator is a one-line user error."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ups.config.schema import UPSConfig
from ups.data.spec import ConservedQuantity, TaskSpec
from ups.errors import UserInputError
from ups.metrics import nrmse_per_step
from ups.models import MODELS, Surrogate
from ups.models.baseline import GridBaseline
from ups.models.unet import UNetBaseline
from ups.training.objectives import GridObjective

N_X, N_FRAMES, DT = 32, 9, 0.05
ADVECTION = TaskSpec(
    "advection1d",
    ("u",),
    (N_X,),
    (1.0,),
    DT,
    bc="periodic",
    conserved=(ConservedQuantity("mass", "u"),),
    param_names=("beta",),
)
SPEC_2D = TaskSpec("toy2d", ("u", "v"), (16, 12), (1.0, 1.0), 0.1, bc="neumann", param_names=("a", "b"))
SMALL = UPSConfig(data={"task": "advection1d"}, baseline={"width": 16, "modes": 12, "layers": 2})
NAMES = ["unet", "fno"]


def _needs(name: str) -> None:
    if name == "fno":
        pytest.importorskip("neuralop", reason="the fno extra is not installed (pip install 'ups[fno]')")


def advection(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact periodic advection u = Σ_k a_k sin(2πk(x − βt) + φ_k) + 0.3, β ∈ {0.5, 1}: ``[n, T, 1, X]``, ``[n, 1]``."""
    rng = np.random.default_rng(seed)
    x, t = np.arange(N_X) / N_X, np.arange(N_FRAMES) * DT
    beta = rng.choice([0.5, 1.0], size=n)
    amp, phase = rng.uniform(0.5, 1.0, size=(n, 2)), rng.uniform(0, 2 * np.pi, size=(n, 2))
    xi = x[None, None] - beta[:, None, None] * t[None, :, None]  # [n, T, X]
    u = sum(amp[:, k, None, None] * np.sin(2 * np.pi * (k + 1) * xi + phase[:, k, None, None]) for k in range(2))
    return torch.tensor(u[:, :, None] + 0.3, dtype=torch.float32), torch.tensor(beta[:, None], dtype=torch.float32)


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (the U-Net's zero-initialised output would make every test trivially pass)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _build(name: str, spec: TaskSpec = ADVECTION, cfg: UPSConfig = SMALL) -> GridBaseline:
    return MODELS.get(name).build(cfg, spec, {f: (0.3, 0.7) for f in spec.fields})


@pytest.mark.parametrize("name", NAMES)
def test_surrogate_contract_in_1d_and_2d(name):
    _needs(name)
    for spec in (ADVECTION, SPEC_2D):
        model = _randomise(_build(name, spec))
        assert isinstance(model, Surrogate) and model.n_input == 1
        inputs = torch.randn(3, 2, len(spec.fields), *spec.grid_shape, dtype=torch.float64)
        params = torch.rand(3, len(spec.param_names)) + 0.1
        out = model.rollout(inputs, 4, params)
        assert out.shape == (3, 4, len(spec.fields), *spec.grid_shape) and out.dtype == torch.float64
        assert torch.isfinite(out).all() and model.training  # rollout restores the mode
        # step k+1 continues from step k: a 2-step rollout is the first two frames of the 4-step one
        assert torch.allclose(model.rollout(inputs, 2, params), out[:, :2], atol=1e-5)
        assert model.num_parameters() > 0


def test_untrained_unet_is_persistence_and_default_sizes_are_small():
    model = MODELS.get("unet").build(None, ADVECTION, {"u": (0.3, 0.7)})
    inputs = torch.randn(2, 1, 1, N_X)
    out = model.rollout(inputs, 3, torch.ones(2, 1))
    assert torch.allclose(out, inputs.expand(-1, 3, -1, -1), atol=1e-6)  # zero-initialised output convolution
    assert model.config.baseline.width == 32 and model.config.baseline.levels == 2
    assert 100_000 < model.num_parameters() < 400_000  # CPU-sized default (249,697 on 1 field + 1 parameter)


@pytest.mark.parametrize("name", NAMES)
def test_learns_advection_well_below_persistence_in_100_steps(name):
    _needs(name)
    torch.manual_seed(0)
    u, beta = advection(32, seed=0)
    u_test, beta_test = advection(16, seed=1)
    model = _build(name)
    objective = GridObjective(model, SMALL.training.loss)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        traj, start = torch.randint(0, 32, (16,), generator=g), torch.randint(0, N_FRAMES - 1, (16,), generator=g)
        frames = u[traj[:, None], start[:, None] + torch.arange(2)]  # [16, 2, 1, X] one-step windows
        loss = objective(frames, beta[traj])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = u_test[:, :-1].flatten(0, 1)[:, None], u_test[:, 1:].flatten(0, 1)[:, None]  # every test pair
    pred = model.rollout(x, 1, beta_test.repeat_interleave(N_FRAMES - 1, 0))
    learned = nrmse_per_step(pred.numpy(), y.numpy()).mean()
    persistence = nrmse_per_step(x.numpy(), y.numpy()).mean()
    assert persistence > 0.3
    assert learned < 0.25 * persistence  # measured: U-Net 0.025, FNO 0.010 against persistence's 0.33


def test_grid_objective_terms_are_the_scoreboard_nrmse_of_the_free_rollout():
    model = _randomise(_build("unet"))
    u, beta = advection(4, seed=2)
    out = GridObjective(model, SMALL.training.loss)(u[:, :4], beta)
    with torch.no_grad():
        pred = model.rollout(u[:, :1], 3, beta)  # physical, from the window's first frame
    per_step = nrmse_per_step(pred.double().numpy(), u[:, 1:4].double().numpy())  # [B, 3, C]
    assert out["one_step"].item() == pytest.approx(per_step[:, 0].mean(), rel=1e-4)
    assert out["rollout"].item() == pytest.approx(per_step.mean(), rel=1e-4)
    assert out["task"].item() == pytest.approx((per_step[:, 0].mean() + per_step.mean()) / 2, rel=1e-4)
    w = SMALL.training.loss
    total = w.task * out["task"] + w.edge * out["edge"] + w.conservation * out["conservation"]
    assert out["loss"].item() == pytest.approx(total.item())
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_periodic_unet_is_translation_equivariant_and_walls_break_it():
    periodic = _randomise(_build("unet")).eval()
    walled = _build("unet", TaskSpec(**{**ADVECTION.__dict__, "bc": "neumann"})).eval()
    walled.load_state_dict(periodic.state_dict())  # the same weights; only the padding differs
    u, beta = advection(2, seed=3)
    x = u[:, 0]
    shift = 4  # equivariance is exact for multiples of 2**levels (the strided convolutions see every other cell)
    with torch.no_grad():
        out = periodic(periodic.normalise(x), beta)
        shifted = periodic(periodic.normalise(torch.roll(x, shift, dims=-1)), beta)
        assert torch.allclose(shifted, torch.roll(out, shift, dims=-1), atol=1e-5)
        wall_out = walled(walled.normalise(x), beta)
        wall_shifted = walled(walled.normalise(torch.roll(x, shift, dims=-1)), beta)
    assert (wall_shifted - torch.roll(wall_out, shift, dims=-1)).abs().max() > 1e-2


@pytest.mark.parametrize("name", NAMES)
def test_pde_parameters_change_the_prediction(name):
    _needs(name)
    model = _randomise(_build(name)).eval()
    x = advection(2, seed=4)[0][:, :1]
    a, b = model.rollout(x, 1, torch.full((2, 1), 0.5)), model.rollout(x, 1, torch.full((2, 1), -0.5))
    assert (a - b).abs().max() > 1e-3  # the sign channel
    with pytest.raises(ValueError, match="pass params"):
        model.rollout(x, 1, None)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_gives_bitwise_identical_rollouts(name):
    _needs(name)
    model = _randomise(_build(name, SPEC_2D)).eval()
    tensors, meta = model.to_checkpoint()
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())  # no neuralop "_metadata" dict
    restored = type(model).from_checkpoint(st_load(st_save(tensors)), meta)  # through safetensors bytes
    inputs, params = torch.randn(2, 1, 2, 16, 12), torch.rand(2, 2)
    assert torch.equal(model.rollout(inputs, 3, params), restored.rollout(inputs, 3, params))
    assert restored.config == model.config and restored.spec == model.spec and restored.stats == model.stats


def test_checkpoint_errors_are_one_line_user_errors():
    tensors, meta = _build("unet").to_checkpoint()
    with pytest.raises(UserInputError, match="expected 'ups.baseline/1'"):
        UNetBaseline.from_checkpoint(tensors, {**meta, "model": "fno"})
    with pytest.raises(UserInputError, match="tensors do not match"):
        UNetBaseline.from_checkpoint({k: v for k, v in tensors.items() if "lift" not in k}, meta)
    with pytest.raises(UserInputError, match="is steady"):
        MODELS.get("unet").build(None, TaskSpec(**{**SPEC_2D.__dict__, "steady": True}), {"u": (0, 1), "v": (0, 1)})


def test_fno_wraps_neuralop_with_complex_spectral_weights_counted_twice():
    pytest.importorskip("neuralop", reason="the fno extra is not installed (pip install 'ups[fno]')")
    from neuralop.models import FNO

    model = _build("fno")
    assert isinstance(model.net.fno, FNO)
    complex_params = [p for p in model.parameters() if p.is_complex()]
    assert complex_params  # the spectral weights
    real = sum(p.numel() for p in model.parameters() if not p.is_complex())
    assert model.num_parameters() == real + 2 * sum(p.numel() for p in complex_params)
    # n_modes capped at the grid: modes 12 on 32 cells keeps |k| <= 6, i.e. 7 rfft coefficients
    assert complex_params[0].shape[-1] == 12 // 2 + 1


def test_missing_neuraloperator_is_a_one_line_install_hint_not_an_import_error(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        sys.modules["neuralop"] = None  # as if the fno extra were not installed
        import ups, ups.models, ups.training
        from ups.data.spec import TaskSpec
        from ups.errors import UserInputError
        from ups.models import MODELS
        spec = TaskSpec("advection1d", ("u",), (8,), (1.0,), 0.1)
        try:
            MODELS.get("fno").build(None, spec, {"u": (0.0, 1.0)})
        except UserInputError as err:
            print(err)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith("run.model fno needs the neuraloperator package: pip install 'ups[fno]'")
