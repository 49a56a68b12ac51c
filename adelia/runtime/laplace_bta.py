"""The Laplace problem on block-tridiagonal-arrowhead (BTA) precision matrices, in pure JAX.

Same objective, pattern and implicit-function VJP as
:class:`adelia.runtime.laplace_sparse.SparseLaplaceProblem` (Q_c + CᵀC given by its values on
a fixed pattern); only the factor handle changes. The latent nodes are permuted into the BTA
order of METHOD.md §3.1:

* **time blocks**: the components the compiler built as ``blocks`` contiguous, equal-size
  node blocks coupling only their neighbours (``group`` with a tridiagonal group model, ar1 /
  iid / rw1, and ``replicate``; :func:`adelia.compiler.kron.kronecker_structure`). Block t
  holds block t of every such component with the same number of blocks (several space–time
  fields share a time block, as the coregional models do);
* **the arrow**: everything else: fixed effects and small components (≤ :data:`ARROW_MAX` nodes).

The layout is accepted only if every entry of the pattern of Q_c + CᵀC (prior, AᵀA and
constraints) falls in a diagonal, sub-diagonal, arrow or tip block; else :func:`bta_layout`
returns None and the runtime uses the general sparse path.

Linear algebra: :mod:`adelia.runtime.bta` (``lax.scan`` over time blocks). ``logdet`` and
``solve`` are ``custom_vjp`` functions of the BTA blocks: log|Q|'s adjoint is the selected
inverse (Q̄ = ḡ Σ on the BTA pattern; Takahashi et al. 1973; METHOD.md §5–6) and x = Q⁻¹b's is
b̄ = u = Q⁻¹x̄, Q̄ = −sym(u xᵀ) restricted to the pattern (Giles 2008), so no reverse pass goes
through the scans. The factor is computed once per handle and shared by every solve.

References: Boudaoud et al., arXiv:2605.06392 (ADELIA) §3; METHOD.md §3–6.
"""

from __future__ import annotations

__all__ = ["BTALaplaceProblem", "BTALayout", "BTAFactor", "bta_layout", "MIN_BLOCKS", "ARROW_MAX"]

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.errors import ModelError
from adelia.runtime.problem import Problem, as_problem
from adelia.runtime.bta import (
    BTA,
    bta_cholesky,
    bta_logdet,
    bta_selected_inverse,
    bta_solve,
    bta_solve_upper,
)
from adelia.runtime.laplace_sparse import SparseLaplaceProblem, cubic_moments
from adelia.runtime import bta_partitioned as pbta

#: fewer time blocks than this is no BTA structure worth the name (the dense path handles it)
MIN_BLOCKS = 3
#: largest arrow: its nt·a·b blocks and a×a tip must stay cheap next to the time blocks
ARROW_MAX = 256


@dataclass(frozen=True)
class BTALayout:
    """Where each entry of a symmetric pattern lives in the BTA blocks.

    ``perm[k]`` is the model node at BTA position k (``iperm`` the inverse); ``index[e]`` the
    position of pattern entry e in the flat storage [diag; lower; arrow; tip] and ``weight[e]``
    its share: 1 in the diagonal and tip blocks (both triangles stored there), ½ for each of the
    two mirror entries of a sub-diagonal or arrow block (stored once).
    """

    nt: int
    b: int
    a: int
    perm: np.ndarray
    iperm: np.ndarray
    index: np.ndarray
    weight: np.ndarray

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        nt, b, a = self.nt, self.b, self.a
        return nt * b * b, (nt - 1) * b * b, nt * a * b, a * a

    def blocks(self, values: jax.Array) -> BTA:
        """The BTA blocks of the matrix with these pattern values (linear in the values)."""
        nt, b, a = self.nt, self.b, self.a
        flat = jnp.zeros(sum(self.sizes), values.dtype).at[self.index].add(self.weight * values)
        d, lo, ar, _ = np.cumsum(self.sizes)
        return BTA(flat[:d].reshape(nt, b, b), flat[d:lo].reshape(nt - 1, b, b),
                   flat[lo:ar].reshape(nt, a, b), flat[ar:].reshape(a, a))

    def pattern_values(self, S: BTA) -> jax.Array:
        """Entries of a symmetric BTA matrix (e.g. the selected inverse) at the pattern."""
        return jnp.concatenate([x.ravel() for x in S])[self.index]

    def flops(self) -> float:
        """Cholesky flops: (7/3)·nt·b³ for the time blocks (potrf, the sub-diagonal solve, the
        Schur update) plus the arrow's 2·nt·a·b² and the tip's a³/3."""
        nt, b, a = self.nt, self.b, self.a
        return 7.0 / 3.0 * nt * b ** 3 + 2.0 * nt * a * b ** 2 + a ** 3 / 3.0


def time_blocks(model: Problem) -> tuple[int, list[np.ndarray]] | None:
    """(nt, nodes of each time block) from the components with a time-block structure.

    The number of blocks is the one that covers the most nodes; every component with that many
    blocks contributes its block t to time block t.
    """
    cover: dict[int, int] = {}
    for c in model.components:
        if c.blocks >= MIN_BLOCKS:
            cover[c.blocks] = cover.get(c.blocks, 0) + c.n
    if not cover:
        return None
    nt = max(cover, key=lambda k: (cover[k], k))
    parts = []
    for t in range(nt):
        nodes = [c.offset + t * (c.n // nt) + np.arange(c.n // nt)
                 for c in model.components if c.blocks == nt]
        parts.append(np.concatenate(nodes))
    return nt, parts


def bta_layout(model: Problem, rows: np.ndarray, cols: np.ndarray) -> BTALayout | None:
    """The BTA layout of a symmetric pattern (entries ``rows[e], cols[e]`` over the model's
    nodes), or None when the model has no time blocks, the arrow would exceed :data:`ARROW_MAX`
    nodes, or an entry couples time blocks further apart than neighbours."""
    model = as_problem(model)
    tb = time_blocks(model)
    if tb is None:
        return None
    nt, parts = tb
    b = len(parts[0])
    in_time = np.zeros(model.N, dtype=bool)
    in_time[np.concatenate(parts)] = True
    arrow = np.flatnonzero(~in_time)
    a = len(arrow)
    if a > ARROW_MAX:
        return None
    perm = np.concatenate(parts + [arrow]).astype(np.int64)
    iperm = np.empty_like(perm)
    iperm[perm] = np.arange(model.N)
    p, q = iperm[np.asarray(rows)], iperm[np.asarray(cols)]
    nb = nt * b
    tp = np.where(p < nb, p // b, -1)
    tq = np.where(q < nb, q // b, -1)
    both = (tp >= 0) & (tq >= 0)
    if np.any(both & (np.abs(tp - tq) > 1)):
        return None
    sD, sB, sC, _ = nt * b * b, (nt - 1) * b * b, nt * a * b, a * a
    oB, oC, oT = sD, sD + sB, sD + sB + sC
    lp, lq = p % b, q % b
    index = np.empty(len(p), dtype=np.int64)
    weight = np.full(len(p), 0.5)
    same = both & (tp == tq)
    index[same] = tp[same] * b * b + lp[same] * b + lq[same]
    below = both & (tp == tq + 1)            # entry in Q[t+1, t]: stored as lower[t][p, q]
    index[below] = oB + tq[below] * b * b + lp[below] * b + lq[below]
    above = both & (tq == tp + 1)            # its mirror Q[t, t+1]
    index[above] = oB + tp[above] * b * b + lq[above] * b + lp[above]
    pa = (tp < 0) & (tq >= 0)                # Q[tip, t]: arrow[t][p − nb, q]
    index[pa] = oC + tq[pa] * a * b + (p[pa] - nb) * b + lq[pa]
    qa = (tp >= 0) & (tq < 0)
    index[qa] = oC + tp[qa] * a * b + (q[qa] - nb) * b + lp[qa]
    tip = (tp < 0) & (tq < 0)
    index[tip] = oT + (p[tip] - nb) * a + (q[tip] - nb)
    weight[same | tip] = 1.0
    return BTALayout(nt, b, a, perm, iperm, index, weight)


# --------------------------------------------------------------------------------------------
# log|Q| and Q⁻¹b with adjoints on the BTA blocks (L is a stop-gradient factor of Q)
# --------------------------------------------------------------------------------------------


# L is a single-device factor (BTA) or a time-partitioned one (bta_partitioned.PartitionedFactor,
# sharded over several devices); these four pick the kernels that match it
def _ld(L):
    return pbta.pbta_logdet(L) if isinstance(L, pbta.PartitionedFactor) else bta_logdet(L)


def _selinv(L):
    return pbta.pbta_selected_inverse(L) if isinstance(L, pbta.PartitionedFactor) else bta_selected_inverse(L)


def _sol(L, b):
    return pbta.pbta_solve(L, b) if isinstance(L, pbta.PartitionedFactor) else bta_solve(L, b)


def _sol_upper(L, z):
    return pbta.pbta_solve_upper(L, z) if isinstance(L, pbta.PartitionedFactor) else bta_solve_upper(L, z)


@jax.custom_vjp
def _logdet(Q: BTA, L: BTA) -> jax.Array:
    return _ld(L)


def _logdet_fwd(Q, L):
    return _ld(L), L


def _logdet_bwd(L, g):
    # d log|Q| = tr(Σ dQ): the diagonal and tip blocks carry Σ, the stored-once blocks 2Σ
    S = _selinv(L)
    Qbar = BTA(g * S.diag, 2.0 * g * S.lower, 2.0 * g * S.arrow, g * S.tip)
    return Qbar, jax.tree.map(jnp.zeros_like, L)


_logdet.defvjp(_logdet_fwd, _logdet_bwd)


@jax.custom_vjp
def _solve(Q: BTA, L: BTA, b: jax.Array) -> jax.Array:
    return _sol(L, b)


def _solve_fwd(Q, L, b):
    x = _sol(L, b)
    return x, (L, x)


def _solve_bwd(res, xbar):
    L, x = res
    u = _sol(L, xbar)
    nt, bs = L.nt, L.b
    U, X = _cols(u, nt, bs), _cols(x, nt, bs)
    Ut, Xt = _tip_cols(u, nt * bs), _tip_cols(x, nt * bs)
    # Q̄ = −½(u xᵀ + x uᵀ) on the pattern; blocks stored once carry both mirror halves
    diag = -0.5 * (jnp.einsum("tik,tjk->tij", U, X) + jnp.einsum("tik,tjk->tij", X, U))
    lower = -(jnp.einsum("tik,tjk->tij", U[1:], X[:-1]) + jnp.einsum("tik,tjk->tij", X[1:], U[:-1]))
    arrow = -(jnp.einsum("ik,tjk->tij", Ut, X) + jnp.einsum("ik,tjk->tij", Xt, U))
    tip = -0.5 * (Ut @ Xt.T + Xt @ Ut.T)
    return BTA(diag, lower, arrow, tip), jax.tree.map(jnp.zeros_like, L), u


_solve.defvjp(_solve_fwd, _solve_bwd)


def _cols(v, nt, b):
    v2 = v[:, None] if v.ndim == 1 else v
    return v2[: nt * b].reshape(nt, b, v2.shape[1])


def _tip_cols(v, nb):
    v2 = v[:, None] if v.ndim == 1 else v
    return v2[nb:]


class BTAFactor:
    """Factor handle of Q_c + CᵀC given by its pattern values, in the model's node order; with a
    ``mesh`` its time blocks are partitioned over the mesh's devices (:mod:`adelia.runtime.bta_partitioned`)."""

    def __init__(self, values: jax.Array, layout: BTALayout, mesh=None):
        self.layout = layout
        self.Q = layout.blocks(values)
        Q = jax.lax.stop_gradient(self.Q)
        self.L = bta_cholesky(Q) if mesh is None else pbta.pbta_cholesky(Q, mesh)
        self._perm, self._iperm = jnp.asarray(layout.perm), jnp.asarray(layout.iperm)

    def solve(self, b):
        return _solve(self.Q, self.L, b[self._perm])[self._iperm]

    def logdet(self):
        return _logdet(self.Q, self.L)

    def inverse(self):
        """The whole of Q⁻¹ (N solves: for simplified-Laplace coefficients of moderate N)."""
        return self.solve(jnp.eye(len(self._perm)))

    def sample_standard(self, z):
        """L⁻ᵀ z ~ N(0, Q⁻¹) in the BTA order, returned in the model's order."""
        return _sol_upper(self.L, z)[self._iperm]

    def cubic_moments(self, A, W, Z, a, c):
        return cubic_moments(self, A, W, Z, a, c)

    def sigma_pattern(self):
        return self.layout.pattern_values(_selinv(self.L))


class _PatternIndex:
    """A symmetric pattern's entries in sorted CSC order (the order of the values vectors)."""

    def __init__(self, pattern: sp.csc_matrix):
        P = sp.csc_matrix(pattern)
        P.sum_duplicates()
        P.sort_indices()
        self.n = P.shape[0]
        self.cols = np.repeat(np.arange(self.n), np.diff(P.indptr)).astype(np.int64)
        self.rows = P.indices.astype(np.int64)
        self.nnz = len(self.rows)


class BTALaplaceProblem(SparseLaplaceProblem):
    """:class:`SparseLaplaceProblem` with BTA factor handles (no CHOLMOD needed). ``devices`` (two or
    more): the time blocks are partitioned over them (fewer when nt < 2·len(devices),
    :func:`adelia.runtime.bta_partitioned.partitions`)."""

    def __init__(self, model, devices=None):
        self.devices = None if devices is None else list(devices)
        super().__init__(model)

    def _analyse(self, pattern):
        index = _PatternIndex(pattern)
        layout = bta_layout(self.model, index.rows, index.cols)
        if layout is None:
            raise ModelError("this model's precision matrix has no block-tridiagonal-arrowhead layout",
                             hint="solver = \"bta\" needs a space–time field (group with an ar1/iid/rw1 group "
                                  "model, or replicate) whose blocks couple only neighbouring time points, and at "
                                  f"most {ARROW_MAX} other latent nodes; use solver = \"sparse\" or \"auto\"")
        self.layout = layout
        self.mesh = None
        if self.devices is not None and len(self.devices) > 1:
            used, _ = pbta.partitions(layout.nt, len(self.devices))
            self.mesh = pbta.time_mesh(self.devices[:used]) if used > 1 else None
        return index

    def _make_factor(self, values):
        return BTAFactor(values, self.layout, self.mesh)


jax.tree_util.register_static(BTALaplaceProblem)
