"""Physics guards: pure tensor functions applied to decoded fields, batched, on any device (``torch.fft``).

- :func:`helmholtz_hodge_projection_grid`: the divergence-free part of a velocity field (Helmholtz–Hodge
  decomposition u = ∇φ + u_df; Chorin's projection step). Periodic grids: spectral projection
  ``û ← û − k (k·û) / |k|²``. Walled boxes: the same projection on the mirror-extended grid with the central-difference
  symbol ``sin(k h) / h``, which is the Poisson solve ``∇²φ = ∇·u`` with ``∂φ/∂n = 0`` on the walls (a DCT solve)
  and leaves no normal velocity through them.
- :func:`positify`: a non-negative field with the same domain integral (clip, then rescale the positive part).
- :func:`interface_flux_projection`: the smallest conservative correction that gives every subdomain its target
  budget, moving mass only as fluxes through the interfaces between subdomains.

The divergence the projection removes is the one :func:`ups.metrics.divergence` measures (spectral on periodic
grids, central differences with mirror ghost cells on walled ones), so a projected field scores round-off there.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import torch

WallBC = Literal["periodic", "walls", "dirichlet", "neumann"]
_WALLED = ("walls", "dirichlet", "neumann")


def _working_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32 (torch.fft has no bf16, f16 needs 2^n sizes)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _spectral_symbols(grid: Sequence[int], spacing: Sequence[float], device, dtype) -> list[torch.Tensor]:
    """``k_j = 2π · fftfreq(N_j, h_j)`` for the ``rfftn`` layout, Nyquist of even axes set to 0; broadcastable."""
    n_dim = len(grid)
    out = []
    for j, (n, h) in enumerate(zip(grid, spacing, strict=True)):
        last = j == n_dim - 1
        idx = torch.arange(n // 2 + 1, device=device) if last else torch.fft.fftfreq(n, 1.0 / n, device=device)
        k = (2 * math.pi / (n * h)) * idx.to(dtype)
        if n % 2 == 0:
            k = torch.where(idx.abs() == n // 2, torch.zeros_like(k), k)
        out.append(k.reshape([-1 if i == j else 1 for i in range(n_dim)]))
    return out


def _central_symbols(grid: Sequence[int], spacing: Sequence[float], device, dtype) -> list[torch.Tensor]:
    """Central-difference symbols ``sin(2π m / N_j) / h_j`` (integer m) of an ``rfftn`` layout; broadcastable."""
    n_dim = len(grid)
    out = []
    for j, (n, h) in enumerate(zip(grid, spacing, strict=True)):
        last = j == n_dim - 1
        idx = torch.arange(n // 2 + 1, device=device) if last else torch.fft.fftfreq(n, 1.0 / n, device=device)
        k = torch.sin(2 * math.pi * idx.to(dtype) / n) / h
        out.append(k.reshape([-1 if i == j else 1 for i in range(n_dim)]))
    return out


def _project_periodic(u: torch.Tensor, symbols: list[torch.Tensor], n_dim: int) -> torch.Tensor:
    """``û ← û − k (k·û) / |k|²`` on ``u [..., D, *S]`` (real symbols k; modes with k = 0 are left as they are)."""
    dims = tuple(range(-n_dim, 0))
    grid = u.shape[-n_dim:]
    f = torch.fft.rfftn(u, dim=dims)  # [..., D, *S']
    k_dot_f = sum(k * f.select(-n_dim - 1, i) for i, k in enumerate(symbols))
    k2 = sum(k**2 for k in symbols)
    inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))
    coef = k_dot_f * inv_k2  # the potential's spectrum, up to a factor i
    f = f - torch.stack([k * coef for k in symbols], dim=-n_dim - 1)
    return torch.fft.irfftn(f, s=grid, dim=dims)


def _mirror(x: torch.Tensor, dim: int, odd: bool) -> torch.Tensor:
    """Extend ``x`` to twice its length along ``dim`` by its mirror image about the far wall (negated when odd)."""
    flipped = torch.flip(x, dims=(dim,))
    return torch.cat([x, -flipped if odd else flipped], dim=dim)


def helmholtz_hodge_projection_grid(
    u: torch.Tensor, *, spacing: Sequence[float], bc: WallBC = "periodic"
) -> torch.Tensor:
    """Project a velocity field onto its discretely divergence-free part.

    Args:
        u: velocity ``[..., D, *S]``: D components on the axis before space, D == len(S), component i along axis i.
            Any leading batch axes; any device; float64 stays float64, other dtypes are computed in float32 and cast
            back.
        spacing: cell size per spatial axis.
        bc: ``"periodic"``, or a closed box (``"walls"``; ``"dirichlet"`` and ``"neumann"`` mean the same here).

    Periodic: spectral derivatives (``∂_j ↔ i k_j``, Nyquist of even axes zeroed), ``û ← (I − k kᵀ/|k|²) û``; the mean
    flow (k = 0) is kept. Walls: each component is extended to a 2N-periodic field, odd about the walls normal to it
    (no penetration) and even about the others, then projected with the central-difference symbol
    ``k̃_j = sin(k_j h_j) / h_j`` and cut back to the box. This is the exact discrete projection for second-order
    central differences with mirror ghost cells (``u_ghost = −u`` normal, ``+u`` tangential), i.e. the Poisson solve
    for φ with ``∂φ/∂n = 0`` on the walls by DCT. The collocated grid's 2h checkerboard mode, invisible to central
    differences, is kept, as on any collocated grid.

    Both are orthogonal projections: idempotent, the identity on divergence-free fields, and they leave the
    divergence at round-off under :func:`ups.metrics.divergence` with the same ``bc``.

    Returns:
        The projected field, same shape, dtype and device as ``u``.

    Raises:
        ValueError: if ``u`` is not ``[..., D, *S]`` with D == len(spacing), or ``bc`` is unknown.
    """
    n_dim = len(spacing)
    if u.ndim < n_dim + 1 or u.shape[-n_dim - 1] != n_dim:
        raise ValueError(f"velocity must be [..., D, *S] with D = {n_dim} components, got shape {tuple(u.shape)}")
    x = u.to(_working_dtype(u))
    if bc == "periodic":
        out = _project_periodic(x, _spectral_symbols(x.shape[-n_dim:], spacing, x.device, x.dtype), n_dim)
    elif bc in _WALLED:
        grid = x.shape[-n_dim:]
        comps = []
        for i in range(n_dim):
            c = x.select(-n_dim - 1, i)
            for j in range(n_dim):
                c = _mirror(c, c.ndim - n_dim + j, odd=i == j)
            comps.append(c)
        extended = torch.stack(comps, dim=-n_dim - 1)  # [..., D, *2S]
        symbols = _central_symbols(extended.shape[-n_dim:], spacing, x.device, x.dtype)
        out = _project_periodic(extended, symbols, n_dim)[(..., *(slice(0, n) for n in grid))]
    else:
        raise ValueError(f"unknown boundary condition {bc!r}; valid: periodic, {', '.join(_WALLED)}")
    return out.to(u.dtype)


def positify(x: torch.Tensor, *, cell_volume: float | torch.Tensor = 1.0, dims: Sequence[int]) -> torch.Tensor:
    """A non-negative field with the same integral over ``dims`` (e.g. density, energy).

    Formula, per slice over ``dims``: ``x⁺ = max(x, 0)``, ``out = x⁺ · I / I⁺`` with ``I = Σ x · V`` and
    ``I⁺ = Σ x⁺ · V``: the mass of the negative cells is taken from the positive cells in proportion to their own
    mass, so empty (zero) cells stay empty and the shape of the positive part is kept. ``0 ≤ I/I⁺ ≤ 1``. A field
    that is already non-negative is returned unchanged (I = I⁺ exactly).

    A slice whose integral is negative has no non-negative field with that integral: it becomes 0 and a
    ``RuntimeWarning`` says so (checking costs one device synchronisation).

    Args:
        x: field, any shape, any device.
        cell_volume: cell volume, a float or a tensor broadcastable to ``x`` (non-uniform cells).
        dims: the axes integrated over (the spatial axes).
    """
    dims = tuple(dims)
    total = (x * cell_volume).sum(dim=dims, keepdim=True)
    pos = x.clamp_min(0)
    pos_total = (pos * cell_volume).sum(dim=dims, keepdim=True)
    negative = total < 0
    if bool(negative.any()):
        warnings.warn(
            "positify: a slice has a negative integral; no non-negative field keeps it (set to 0)",
            RuntimeWarning,
            stacklevel=2,
        )
    ok = pos_total > 0
    scale = torch.where(ok & ~negative, total / torch.where(ok, pos_total, torch.ones_like(pos_total)), 0.0)
    return pos * scale


def subdomain_integrals(u: torch.Tensor, labels: torch.Tensor, n_sub: int, cell_volume: float = 1.0) -> torch.Tensor:
    """``Q[..., s] = Σ_{cells labelled s} u · V`` for ``u [..., *S]`` and integer ``labels [*S]``: ``[..., n_sub]``."""
    flat = u.reshape(*u.shape[: u.ndim - labels.ndim], -1)
    onehot = torch.nn.functional.one_hot(labels.reshape(-1).long(), n_sub).to(u.dtype)  # [N, K]
    return (flat @ onehot) * cell_volume


def _faces(labels: torch.Tensor, periodic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat cell indices ``(a, b)`` of every face between face-adjacent cells with different labels."""
    idx = torch.arange(labels.numel(), device=labels.device).reshape(labels.shape)
    a_all, b_all = [], []
    for d in range(labels.ndim):
        if periodic:
            a, b = idx, torch.roll(idx, -1, dims=d)
        else:
            n = labels.shape[d]
            a, b = idx.narrow(d, 0, n - 1), idx.narrow(d, 1, n - 1)
        a, b = a.reshape(-1), b.reshape(-1)
        flat = labels.reshape(-1)
        differ = flat[a] != flat[b]
        a_all.append(a[differ])
        b_all.append(b[differ])
    return torch.cat(a_all), torch.cat(b_all)


def _components(n_sub: int, edges: list[tuple[int, int]]) -> list[int]:
    """Connected-component id of every subdomain (union-find on the interface graph)."""
    parent = list(range(n_sub))

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for s, t in edges:
        parent[find(s)] = find(t)
    return [find(v) for v in range(n_sub)]


def interface_flux_projection(
    u: torch.Tensor,
    *,
    labels: torch.Tensor,
    target: torch.Tensor,
    cell_volume: float = 1.0,
    periodic: bool = False,
) -> torch.Tensor:
    """Correct ``u`` so that every subdomain holds its target budget, by fluxes through the interfaces.

    The domain is split into subdomains by ``labels`` (integer id per cell, 0..K−1); two subdomains share an
    interface where cells of each meet face to face (across the periodic seam too when ``periodic``). With
    ``Q_s = Σ_{s} u · V`` and the residual ``r_s = target_s − Q_s``:

    1. Whatever interfaces cannot supply — the net residual ``g_C = Σ_{s ∈ C} r_s`` of each connected group C of
       subdomains — is a source, spread uniformly over C's cells (for the whole domain, the minimal L2 correction of
       its total). When the targets sum to the current total (a closed system), this step does nothing.
    2. The rest moves between subdomains as interface fluxes: the minimum-norm fluxes ``F = Bᵀμ`` with
       ``B Bᵀ μ = −r'`` (B the subdomain–interface incidence matrix, ``B Bᵀ`` the graph Laplacian, solved by
       pseudo-inverse). Each flux is carried by the faces of its interface in equal parts: the cell on one side loses
       ``F / (n_faces · V)``, the cell on the other side gains it.

    So every subdomain ends with exactly its target, mass is only exchanged across interfaces (the total changes by
    ``Σ target − Σ Q`` only, through step 1), cells that touch no interface change only through step 1, and a field
    that already meets its targets is returned unchanged (the projection is idempotent).

    Args:
        u: field ``[..., *S]`` with ``S = labels.shape``; any device.
        labels: integer subdomain id of every cell, ``[*S]``, values in ``0..K−1``.
        target: the budget of every subdomain, ``[..., K]`` (leading axes as ``u``'s).
        cell_volume: volume of one cell (uniform grid).
        periodic: whether cells on opposite faces of the box are neighbours.

    Returns:
        The corrected field, same shape and dtype as ``u``.
    """
    n_space = labels.ndim
    lead = u.shape[: u.ndim - n_space]
    n_sub = target.shape[-1]
    if tuple(u.shape[u.ndim - n_space :]) != tuple(labels.shape) or tuple(target.shape[:-1]) != tuple(lead):
        shapes = f"{tuple(u.shape)}, {tuple(labels.shape)}, {tuple(target.shape)}"
        raise ValueError(f"need u [..., *S], labels [*S], target [..., K]; got {shapes}")
    labels = labels.to(u.device).long()
    if int(labels.min()) < 0 or int(labels.max()) >= n_sub:
        raise ValueError(f"labels must lie in 0..{n_sub - 1} (target has K = {n_sub} budgets)")
    work = u.to(_working_dtype(u))
    flat = work.reshape(*lead, -1).clone()  # [..., N]
    flat_labels = labels.reshape(-1)
    residual = target.to(work) - subdomain_integrals(work, labels, n_sub, cell_volume)  # [..., K]

    a, b = _faces(labels, periodic)
    s_a, s_b = flat_labels[a], flat_labels[b]
    lo, hi = torch.minimum(s_a, s_b), torch.maximum(s_a, s_b)
    edge_keys, face_edge = torch.unique(lo * n_sub + hi, return_inverse=True)
    edges = [(int(k) // n_sub, int(k) % n_sub) for k in edge_keys.tolist()]

    # step 1: the net residual of each connected group of subdomains, spread uniformly over its cells
    comp = torch.tensor(_components(n_sub, edges), device=u.device)
    comp_onehot = torch.nn.functional.one_hot(comp, n_sub).to(work.dtype)  # [K, K]: subdomain -> component
    cells_per_sub = torch.bincount(flat_labels, minlength=n_sub).to(work.dtype)
    cells_per_comp = cells_per_sub @ comp_onehot
    source = (residual @ comp_onehot) / torch.where(cells_per_comp > 0, cells_per_comp, 1.0)  # [..., K comps]
    per_cell = (source @ comp_onehot.T)[..., flat_labels] / cell_volume  # value added to each cell
    flat = flat + per_cell
    residual = residual - (source @ comp_onehot.T) * cells_per_sub

    # step 2: minimum-norm interface fluxes for the balanced remainder, deposited on the interface faces
    if edges:
        n_edges = len(edges)
        incidence = torch.zeros(n_sub, n_edges, dtype=work.dtype, device=u.device)
        e = torch.arange(n_edges, device=u.device)
        incidence[edge_keys // n_sub, e] = 1.0  # flux F_e > 0 flows from the lower id to the higher id
        incidence[edge_keys % n_sub, e] = -1.0
        laplacian = incidence @ incidence.T
        mu = -residual @ torch.linalg.pinv(laplacian).T  # B Bᵀ μ = −r'
        flux = mu @ incidence  # [..., E]
        faces_per_edge = torch.bincount(face_edge, minlength=n_edges).to(work.dtype)
        orient = torch.where(s_a < s_b, 1.0, -1.0).to(work.dtype)  # +1 where the face's a-cell is on the lower id
        per_face = flux[..., face_edge] * orient / faces_per_edge[face_edge] / cell_volume  # a-cell -> b-cell
        flat = flat.index_add(-1, a, -per_face).index_add(-1, b, per_face)
    return flat.reshape(u.shape).to(u.dtype)
