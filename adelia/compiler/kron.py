"""``group`` and ``replicate``: Kronecker extensions of a latent component (R-INLA ``f()``).

* ``replicate = r``: independent copies sharing the hyperparameters, Q = I_R ⊗ Q_main.
* ``group = g`` with ``control.group = list(model = ...)``: Q = Q_group(ρ) ⊗ Q_main, the
  separable space–time construction (RINLA.md §2). Group models: ``exchangeable`` (R-INLA's
  default), ``ar1`` and ``iid`` (marginal precision 1, so τ stays the main model's), and the
  intrinsic ``rw1``, ``rw2`` (``cyclic``) and ``besag`` (``graph``), scaled by default.

The latent vector is ordered group-major (x = [x_group1; x_group2; ...]), i.e. time-major when
the group is time, the order the BTA layout wants (METHOD.md §3.1). With Q_main = Σ_j c_j K_j
and Q_group = Σ_l g_l M_l, Q = Σ_{j,l} c_j g_l (M_l ⊗ K_j), and since Q_group is proper,
log|Q|* = n_G·log|Q_main|* + (n − r)·log|Q_group| (rank deficiency n_G·r).
"""

from __future__ import annotations

__all__ = ["GROUP_MODELS", "INTRINSIC_GROUP_MODELS", "GroupModel", "kronecker_structure", "group_nodes",
           "intrinsic_group_model"]

INTRINSIC_GROUP_MODELS = ("rw1", "rw2", "besag")

import math
from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import Structure
from adelia.compiler.likelihoods import HyperSpec
from adelia.compiler.priors import CORRELATION
from adelia.errors import DataError, ModelError


def _rho_ar1(th):
    """ρ from R-INLA's internal log((1 + ρ)/(1 − ρ))."""
    return jnp.tanh(th / 2.0)


@dataclass(frozen=True)
class GroupModel:
    name: str
    hypers: Callable[[int], tuple[HyperSpec, ...]]                 # G -> hyperparameters
    pieces: Callable[[int], list[tuple[Callable, sp.spmatrix]]]   # G -> [(g_l(θ), M_l)]
    logdet: Callable[[int], Callable]                              # G -> (θ -> log|Q_group|*)
    rank_def: int = 0                                              # intrinsic group models (rw1, rw2, besag)
    constraints: np.ndarray | None = None                          # their sum-to-zero rows (k_G × G)


def _iid_pieces(G):
    return [(lambda th: jnp.ones(()), sp.identity(G, format="csr"))]


def _ar1_pieces(G):
    """Q = [I + ρ² diag(0,1,…,1,0) − ρ (sub + super diagonal)] / (1 − ρ²)."""
    inner = sp.diags(np.r_[0.0, np.ones(G - 2), 0.0]) if G > 1 else sp.csr_matrix((1, 1))
    off = sp.diags([np.ones(G - 1), np.ones(G - 1)], [-1, 1]) if G > 1 else sp.csr_matrix((1, 1))
    return [
        (lambda th: 1.0 / (1.0 - _rho_ar1(th[0]) ** 2), sp.identity(G, format="csr")),
        (lambda th: _rho_ar1(th[0]) ** 2 / (1.0 - _rho_ar1(th[0]) ** 2), sp.csr_matrix(inner)),
        (lambda th: -_rho_ar1(th[0]) / (1.0 - _rho_ar1(th[0]) ** 2), sp.csr_matrix(off)),
    ]


def _ar1_logdet(G):
    return lambda th: -(G - 1) * jnp.log1p(-_rho_ar1(th[0]) ** 2)


def _exch_rho(G):
    # ρ ∈ (−1/(G−1), 1) from θ = log((1 + (G−1)ρ) / (1 − ρ))
    return lambda t: (jnp.exp(t) - 1.0) / (jnp.exp(t) + G - 1.0)


def _exch_pieces(G):
    """Q = R⁻¹, R = (1 − ρ) I + ρ J:  Q = I/(1 − ρ) − ρ J / ((1 − ρ)(1 + (G − 1)ρ))."""
    rho = _exch_rho(G)
    return [
        (lambda th: 1.0 / (1.0 - rho(th[0])), sp.identity(G, format="csr")),
        (lambda th: -rho(th[0]) / ((1.0 - rho(th[0])) * (1.0 + (G - 1) * rho(th[0]))),
         sp.csr_matrix(np.ones((G, G)))),
    ]


def _exch_logdet(G):
    rho = _exch_rho(G)
    return lambda th: -((G - 1) * jnp.log1p(-rho(th[0])) + jnp.log1p((G - 1) * rho(th[0])))


def _rho_hyper(to_natural):
    """R-INLA's group correlation: "GroupRho for <name>", prior normal(0, 0.15) on the internal scale."""
    return (HyperSpec("rho", "GroupRho for {name}", "Group rho_intern for {name}", ("normal", (0.0, 0.15)), 0.0,
                      CORRELATION, to_natural),)


GROUP_MODELS = {
    "iid": GroupModel("iid", lambda G: (), _iid_pieces, lambda G: (lambda th: jnp.zeros(()))),
    "ar1": GroupModel("ar1", lambda G: _rho_hyper(_rho_ar1), _ar1_pieces, _ar1_logdet),
    "exchangeable": GroupModel("exchangeable", lambda G: _rho_hyper(_exch_rho(G)), _exch_pieces, _exch_logdet),
}


def group_nodes(values, ngroup: int | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Group labels -> (levels, group index per observation); 1..ngroup when ngroup is given."""
    v = np.asarray(values)
    if ngroup is not None:
        levels = np.arange(1, int(ngroup) + 1)
    else:
        levels = np.unique(v[~_nan(v)])
    pos = {x: i for i, x in enumerate(levels.tolist())}
    idx = np.full(len(v), -1, dtype=np.int64)
    for i, x in enumerate(v.tolist()):
        if isinstance(x, float) and math.isnan(x):
            continue
        if x not in pos:
            raise DataError(f"{what}: value {x!r} in row {i} is not among the levels 1..{len(levels)}")
        idx[i] = pos[x]
    return levels, idx


def _nan(v):
    return np.isnan(v) if v.dtype.kind == "f" else np.zeros(v.shape, dtype=bool)


def kronecker_structure(main: Structure, n_main_theta: int, G: int, group_index: np.ndarray,
                        model: GroupModel, group_levels, kind: str) -> Structure:
    """Q = Q_group ⊗ Q_main over G copies; θ_local = (θ_main, θ_group)."""
    k = n_main_theta
    gpieces = model.pieces(G)
    matrices, coefs = [], []
    for c_main, K in zip(main.coefs, main.matrices):
        for g, M in gpieces:
            matrices.append(sp.kron(M, K, format="csr"))
            coefs.append(lambda th, c_main=c_main, g=g: c_main(th[:k]) * g(th[k:]))
    n, r, rg = main.n, main.rank_def, model.rank_def
    glogdet = model.logdet(G)
    # log|Q_G ⊗ Q_main|* = (n − r) log|Q_G|* + (G − r_G) log|Q_main|*
    if main.logdet is not None:
        logdet = lambda th: (G - rg) * main.logdet(th[:k]) + (n - r) * glogdet(th[k:])
    else:
        logdet = None
    rows = [np.kron(np.eye(G), main.constraints)] if main.constraints.size else []
    if model.constraints is not None and model.constraints.size:
        rows.append(np.kron(model.constraints, np.eye(n)))     # sum over groups, node by node
    constraints = _independent_rows(np.vstack(rows)) if rows else np.zeros((0, G * n))
    node = np.where((main.node_of_obs >= 0) & (group_index >= 0), group_index * n + main.node_of_obs, -1)
    values = np.array([f"{v}|{kind}{g}" for g in group_levels for v in main.values])
    projector = None
    if main.projector is not None:        # row i = e_{group[i]} ⊗ P[i] (space–time SPDE)
        P = sp.csr_matrix(main.projector)
        gsel = sp.csr_matrix((np.ones((group_index >= 0).sum()),
                              (np.flatnonzero(group_index >= 0), group_index[group_index >= 0])), shape=(len(group_index), G))
        projector = sp.csr_matrix(sp.hstack([sp.diags(gsel[:, g].toarray().ravel()) @ P for g in range(G)]))
    return Structure(G * n, tuple(matrices), tuple(coefs), G * r + n * rg - r * rg, constraints, values, node,
                     logdet, (G - rg) * main.logdet_star, projector=projector, prior_context=main.prior_context,
                     blocks=_time_blocks(main.blocks, G, [M for _, M in gpieces]))


def _time_blocks(main_blocks: int, G: int, group_matrices) -> int:
    """How many contiguous blocks of I/Q_group ⊗ Q_main couple only their neighbours: G·main_blocks
    for a diagonal group model (iid, replicate), G for a tridiagonal one (ar1, rw1), else 1."""
    band = max((int(np.max(np.abs(np.subtract(*sp.coo_matrix(M).nonzero())), initial=0)) for M in group_matrices),
               default=0)
    if band == 0:
        return G * main_blocks
    return G if band == 1 else 1


def _independent_rows(C: np.ndarray) -> np.ndarray:
    """Drop constraint rows implied by the others (e.g. the grand sum, present in both families)."""
    keep: list[int] = []
    for i in range(C.shape[0]):
        if np.linalg.matrix_rank(C[keep + [i]]) == len(keep) + 1:
            keep.append(i)
    return C[keep]


def intrinsic_group_model(name: str, G: int, args: dict) -> GroupModel:
    """rw1 / rw2 (optionally cyclic) or besag on the groups, scaled (control.group scale.model
    defaults to TRUE in R-INLA) and without hyperparameters of its own: Q = R_G ⊗ Q_main.
    Constraints: Σ over groups = 0 for every main node (the group null space), with the main
    model's own constraints in each group."""
    if name == "besag":
        from adelia.compiler.graphs import as_adjacency
        from adelia.compiler.latent.besag import besag_structure

        if args.get("graph") is None:
            raise ModelError("control.group = list(model = \"besag\") needs graph = <adjacency>")
        W = as_adjacency(args["graph"], "of control.group")
        if W.shape[0] != G:
            raise ModelError(f"the group graph has {W.shape[0]} nodes but there are {G} groups")
        K, rank, C = besag_structure(W, bool(args.get("scale.model", True)))
        R = sp.csr_matrix(K)
    else:
        from adelia.compiler.latent.rw import rw_structure

        order = int(name[-1])
        s = rw_structure(np.arange(1.0, G + 1), order, cyclic=bool(args.get("cyclic", False)),
                         scale_model=bool(args.get("scale.model", True)), constr=True,
                         values=np.arange(G), node_of_obs=np.zeros(0, dtype=np.int64))
        R, rank, C = s.matrices[0], s.rank_def, s.constraints
    return GroupModel(name, lambda G: (), lambda G: [(lambda th: jnp.ones(()), R)],
                      lambda G: (lambda th: jnp.zeros(())), rank, C)
