"""Dataset facts in one frozen object, passed to metrics, guards and models instead of loose keyword arguments.

A :class:`TaskSpec` is read back from a store's attributes (``TaskSpec.from_attrs``) so everything downstream of the
data layer knows the grid, the time step, the field order, the boundary condition and the conserved quantities of the
data it is scoring, without re-deriving them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

BoundaryKind = Literal["periodic", "dirichlet", "neumann", "none"]


@dataclass(frozen=True)
class ConservedQuantity:
    """A quantity Q = ∫ density dV whose density is stored as channel ``field``."""

    name: str
    field: str


@dataclass(frozen=True)
class TaskSpec:
    """Static facts about a task's stored data.

    Attributes:
        task: registered task name, e.g. ``"burgers1d"``.
        fields: channel order of the ``C`` axis in ``[B, T, C, *S]`` arrays.
        grid_shape: number of cells along each spatial axis (``S``).
        domain: physical length of each spatial axis.
        dt: physical time between two stored frames.
        bc: boundary condition of the domain walls: ``periodic``, ``dirichlet``, ``neumann`` or ``none``.
        bc_value: prescribed wall value g (Dirichlet value, or Neumann normal derivative).
        conserved: conserved quantities, each the domain integral of one field.
        param_names: names of the per-trajectory PDE parameters stored in ``<split>/params``.
        steady: True for steady tasks (input field → output field, no rollout).
        velocity: fields holding the velocity components, in spatial-axis order (``u`` along axis 0, ...); empty when
            the task stores no velocity. Used by ``spectral_error`` (kinetic-energy spectrum) and ``div_free_error``.
        incompressible: the velocity is divergence-free (``div_free_error`` applies).
        shock_field: the field whose gradient marks shocks (the density of compressible flow); None when the task has
            no shocks (``shock_iou`` and ``shock_precision`` apply only when set).
        bc_fields: fields the wall boundary condition ``bc``/``bc_value`` applies to; empty means every field.
    """

    task: str
    fields: tuple[str, ...]
    grid_shape: tuple[int, ...]
    domain: tuple[float, ...]
    dt: float
    bc: BoundaryKind = "periodic"
    bc_value: float = 0.0
    conserved: tuple[ConservedQuantity, ...] = ()
    param_names: tuple[str, ...] = ()
    steady: bool = False
    velocity: tuple[str, ...] = ()
    incompressible: bool = False
    shock_field: str | None = None
    bc_fields: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def ndim(self) -> int:
        return len(self.grid_shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Cell size along each spatial axis (uniform grid, cell-centred or periodic nodes)."""
        return tuple(length / n for length, n in zip(self.domain, self.grid_shape, strict=True))

    @property
    def cell_volume(self) -> float:
        vol = 1.0
        for h in self.spacing:
            vol *= h
        return vol

    def channel(self, name: str) -> int:
        return self.fields.index(name)

    @property
    def conserved_channels(self) -> tuple[int, ...]:
        return tuple(self.channel(q.field) for q in self.conserved)

    @property
    def velocity_channels(self) -> tuple[int, ...]:
        return tuple(self.channel(name) for name in self.velocity)

    @property
    def bc_channels(self) -> tuple[int, ...]:
        """Channels the wall boundary condition applies to (every channel when ``bc_fields`` is empty)."""
        if not self.bc_fields:
            return tuple(range(len(self.fields)))
        return tuple(self.channel(name) for name in self.bc_fields)

    def for_split(self, split: str) -> TaskSpec:
        """The spec of one split: a split stored with other walls or another domain (``extra["split_bc"]``,
        ``extra["split_domain"]``, e.g. ``ood_bc``, ``ood_geometry``) is scored with its own BCs and cell size.

        Reflective walls (compressible flow) become what the scoreboard can check: in 1D, momentum vanishes at the
        wall (Dirichlet 0 on the momentum field) and momentum is no longer conserved (the walls push); in 2D the
        wall-normal component alternates between fields by wall, which one BC kind per field cannot say, so the
        walls are not scored (``bc="none"``) — mass and energy stay conserved in both.
        """
        changes: dict[str, Any] = {}
        domain = self.extra.get("split_domain", {}).get(split)
        if domain is not None:
            changes["domain"] = tuple(float(x) for x in domain)
        bc = self.extra.get("split_bc", {}).get(split)
        if bc == "reflective":
            momentum = [q for q in self.conserved if q.name.startswith("momentum")]
            changes["conserved"] = tuple(q for q in self.conserved if q not in momentum)
            if self.ndim == 1 and len(momentum) == 1:
                changes |= {"bc": "dirichlet", "bc_value": 0.0, "bc_fields": (momentum[0].field,)}
            else:
                changes["bc"] = "none"
        elif bc is not None:
            changes["bc"] = bc
        return replace(self, **changes) if changes else self

    def to_attrs(self) -> dict[str, Any]:
        """JSON-safe dict stored in the Zarr root attributes under ``spec``."""
        d = asdict(self)
        d["conserved"] = [asdict(q) for q in self.conserved]
        return d

    @classmethod
    def from_attrs(cls, d: dict[str, Any]) -> TaskSpec:
        d = dict(d)
        d["conserved"] = tuple(ConservedQuantity(**q) for q in d.get("conserved", ()))
        for key in ("fields", "grid_shape", "domain", "param_names", "velocity", "bc_fields"):
            d[key] = tuple(d.get(key, ()))
        return cls(**d)
