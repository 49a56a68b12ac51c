"""Triangular solves with a supernodal Cholesky factor and many right-hand sides, BLAS-3 per
supernode.

With P Q Pᵀ = L Lᵀ (the layout of :mod:`adelia.runtime.selinv`: supernode J owns columns
``sup[J]:sup[J+1]`` and rows ``rows[pi[J]:pi[J+1]]``, its own columns first, values the
column-major block ``x[px[J]:...]`` = [D_J; E_J], D_J lower triangular), the forward solve
L Y = B runs over the supernodes in order,

    Y_J = D_J⁻¹ B_J,        B_R −= E_J Y_J        (R: the rows of J below its diagonal block),

and the backward solve Lᵀ X = Y in reverse order,

    Y_J −= E_Jᵀ X_R,        X_J = D_J⁻ᵀ Y_J

(Rothberg & Gupta 1993, "An efficient block-oriented approach to parallel sparse Cholesky
factorization", for the supernodal organisation; Davis 2006, "Direct Methods for Sparse Linear
Systems", §4.10 for the solves).

Why here: CHOLMOD as bundled with cvxopt solves one column at a time, so k right-hand sides cost
k single solves; these loops do k columns per BLAS call for a Python overhead per supernode — per supernode with children: the
leaves of the elimination tree (most supernodes of models with per-observation or per-area iid
effects) are solved in batches of one shape and one sparse product per sweep.
:func:`worthwhile` says from a measured cost model when that wins (hundreds of columns on
S2-sized factors: the simplified-Laplace covariances A Σ, chunks of posterior draws).
"""

from __future__ import annotations

__all__ = ["SupernodalBlocks", "blocks", "solve", "solve_lt", "worthwhile"]

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from adelia.runtime.selinv import Leaves, Supernodes, leaf_groups, leaf_mask

#: the costs behind :func:`worthwhile`, measured on a 2-core x86 CPU with one BLAS thread:
#: a column solved by CHOLMOD (through cvxopt) costs about this many seconds per entry of L ...
CHOLMOD_S_PER_ENTRY = 2e-9
#: ... a column here about this many (dense BLAS-3 on the supernodal blocks) ...
BLOCK_S_PER_ENTRY = 4e-10
#: ... and each supernode this many in Python overhead, for both sweeps together
SUPERNODE_S = 1.1e-5


@dataclass(frozen=True, eq=False)
class SupernodalBlocks:
    """Symbolic data of the solves, computed once per pattern: per supernode that has children,
    its columns (c0, c1), the rows below its diagonal block and the offset of its block in the
    value array; the leaf supernodes batched by shape (:class:`adelia.runtime.selinv.LeafGroup`),
    and the CSR structure of E over all leaves (rows ``e_rows`` by leaf columns ``leaf_cols``,
    values at ``e_pos``) for one sparse product per sweep."""

    spans: list[tuple[int, int, int, int, np.ndarray]]     # (c0, c1, m, px, rows below)
    leaves: Leaves
    leaf_cols: np.ndarray
    e_rows: np.ndarray
    e_pos: np.ndarray
    e_indices: np.ndarray
    e_indptr: np.ndarray

    @property
    def steps(self) -> int:
        """Python-level steps of a sweep (the cost model's unit)."""
        return len(self.spans) + 3 * len(self.leaves.groups)

    def leaf_E(self, x: np.ndarray) -> sp.csr_matrix:
        """The leaves' below-diagonal blocks as one sparse matrix (rows e_rows, columns leaf_cols)."""
        return sp.csr_matrix((x[self.e_pos], self.e_indices, self.e_indptr),
                             shape=(len(self.e_rows), len(self.leaf_cols)))


def blocks(S: Supernodes) -> SupernodalBlocks:
    spans = []
    leaf = leaf_mask(S)
    for J in np.flatnonzero(~leaf).tolist():
        c0, c1 = int(S.sup[J]), int(S.sup[J + 1])
        r = S.rows[S.pi[J]:S.pi[J + 1]]
        spans.append((c0, c1, len(r), int(S.px[J]), np.asarray(r[c1 - c0:], dtype=np.int64)))
    leaves = leaf_groups(S)
    groups = leaves.groups
    leaf_cols = np.concatenate([g.cols.ravel() for g in groups]) if groups else np.zeros(0, np.int64)
    rows, cols, pos = [], [], []
    at = 0
    for g in groups:
        k = len(g.cols)
        col = at + np.arange(k * g.s).reshape(k, 1, g.s)          # index into leaf_cols of each E entry
        rows.append(np.broadcast_to(g.below[:, :, None], g.e_pos.shape).ravel())
        cols.append(np.broadcast_to(col, g.e_pos.shape).ravel())
        pos.append(g.e_pos.ravel())
        at += k * g.s
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    pos = np.concatenate(pos) if pos else np.zeros(0, np.int64)
    e_rows, local = np.unique(rows, return_inverse=True)
    order = np.lexsort((cols, local))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(local, minlength=len(e_rows)))]).astype(np.int64)
    return SupernodalBlocks(spans, leaves, leaf_cols, e_rows, pos[order], cols[order], indptr)


def worthwhile(S: Supernodes, k: int) -> bool:
    """Whether k right-hand sides are solved faster here than column by column."""
    nnz = S.nnz
    steps = int(np.sum(~leaf_mask(S))) + 3 * len(leaf_groups(S).groups)
    return k * nnz * (CHOLMOD_S_PER_ENTRY - BLOCK_S_PER_ENTRY) > SUPERNODE_S * steps


def _views(b: SupernodalBlocks, x: np.ndarray):
    for c0, c1, m, p, below in b.spans:
        s = c1 - c0
        blk = x[p:p + m * s].reshape(s, m).T
        yield c0, c1, below, blk[:s], blk[s:]


def _leaf_inverses(b: SupernodalBlocks, x: np.ndarray) -> list[np.ndarray]:
    return b.leaves.diagonal_inverses(x)


def _forward(b: SupernodalBlocks, x: np.ndarray, Y: np.ndarray, Dinv: list[np.ndarray]) -> None:
    # the leaves first: no other supernode updates their rows, and they update only ancestors'
    for g, Di in zip(b.leaves.groups, Dinv):
        Y[g.cols] = Di @ Y[g.cols]
    if len(b.e_rows):
        Y[b.e_rows] -= b.leaf_E(x) @ Y[b.leaf_cols]
    for c0, c1, below, D, E in _views(b, x):
        YJ = blas.dtrsm(1.0, D, Y[c0:c1], lower=1)
        Y[c0:c1] = YJ
        if len(below):
            Y[below] -= E @ YJ


def _backward(b: SupernodalBlocks, x: np.ndarray, Y: np.ndarray, Dinv: list[np.ndarray]) -> None:
    for c0, c1, below, D, E in reversed(list(_views(b, x))):
        if len(below):
            Y[c0:c1] -= E.T @ Y[below]
        Y[c0:c1] = blas.dtrsm(1.0, D, Y[c0:c1], lower=1, trans_a=1)
    # the leaves last: they read only their ancestors' unknowns, final by now
    if len(b.e_rows):
        Y[b.leaf_cols] -= b.leaf_E(x).T @ Y[b.e_rows]
    for g, Di in zip(b.leaves.groups, Dinv):
        Y[g.cols] = np.swapaxes(Di, 1, 2) @ Y[g.cols]


def solve(b: SupernodalBlocks, x: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(L Lᵀ)⁻¹ B in the permuted ordering, B of shape (n, k)."""
    Y = np.array(B, dtype=np.float64, order="C")
    Dinv = _leaf_inverses(b, x)
    _forward(b, x, Y, Dinv)
    _backward(b, x, Y, Dinv)
    return Y


def solve_lt(b: SupernodalBlocks, x: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """L⁻ᵀ Z in the permuted ordering, Z of shape (n, k)."""
    Y = np.array(Z, dtype=np.float64, order="C")
    _backward(b, x, Y, _leaf_inverses(b, x))
    return Y
