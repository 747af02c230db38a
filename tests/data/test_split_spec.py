"""Per-split specs: OOD splits stored with other walls or another domain are scored with their own."""

import numpy as np

from ups.data.solvers.diffreact2d import DiffReact2D
from ups.data.solvers.euler1d import Euler1D
from ups.data.spec import TaskSpec
from ups.metrics import compute_scoreboard


def _value(rows, metric):
    return next(r.value for r in rows if r.metric == metric and r.horizon is None)


def test_ood_geometry_has_its_own_cell_size():
    spec = DiffReact2D.spec("small")
    ood = spec.for_split("ood_geometry")
    assert spec.for_split("test") is spec
    assert ood.domain != spec.domain and ood.grid_shape == spec.grid_shape
    assert np.isclose(ood.cell_volume / spec.cell_volume, (ood.domain[0] / spec.domain[0]) ** 2)


def test_reflective_walls_score_momentum_at_the_wall_and_drop_its_conservation():
    spec = Euler1D.spec("small")
    ood = spec.for_split("ood_bc")
    assert spec.bc == "periodic" and ood.bc == "dirichlet" and ood.bc_fields == ("mom",)
    assert [q.name for q in ood.conserved] == ["mass", "energy"]
    # a field with momentum 0.3 at the walls violates the reflective BC; the periodic spec does not see it
    n = spec.grid_shape[0]
    x = (np.arange(n) + 0.5) / n
    frame = np.stack([1 + 0 * x, 0.3 + 0 * x, 2.5 + 0 * x])
    pred = np.broadcast_to(frame, (1, 2, 3, n)).copy()
    assert _value(compute_scoreboard(pred, pred, ood, horizons=()), "bc_violation") > 0.1
    assert _value(compute_scoreboard(pred, pred, spec, horizons=()), "bc_violation") is None


def test_reflective_2d_walls_are_not_scored():
    spec = TaskSpec(
        task="t", fields=("rho", "mom_x", "mom_y", "E"), grid_shape=(8, 8), domain=(1.0, 1.0), dt=0.1,
        conserved=(), extra={"split_bc": {"ood_bc": "reflective"}},
    )  # fmt: skip
    assert spec.for_split("ood_bc").bc == "none"
