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

__all__ = ["SupernodalBlocks", "blocks", "solve", "solve_extended", "solve_lt", "worthwhile"]

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from adelia.runtime.selinv import (LevelGroup, Leaves, Supernodes, batched_mask, leaf_groups,
                                   level_groups)

#: the costs behind :func:`worthwhile`, measured on a 2-core x86 CPU with one BLAS thread:
#: a column solved by CHOLMOD (through cvxopt) costs about this many seconds per entry of L ...
CHOLMOD_S_PER_ENTRY = 2e-9
#: ... a column here about this many (dense BLAS-3 on the supernodal blocks) ...
BLOCK_S_PER_ENTRY = 5e-10
#: ... each supernode this many in Python overhead, for both sweeps together ...
SUPERNODE_S = 1.3e-5
#: ... and, on a factor's first solve here, each supernode this many for :func:`prepare` (the
#: inverses of the diagonal blocks, E as sparse matrices)
PREPARE_S = 1e-6


@dataclass(frozen=True, eq=False)
class _Sparse:
    """E of a set of batched supernodes as one CSR matrix: rows ``rows`` (global) by the set's
    columns (``cols``, flattened, padding included), values at ``pos`` of the value array."""

    rows: np.ndarray
    cols: np.ndarray
    pos: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray

    def matrix(self, x: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((x[self.pos], self.indices, self.indptr), shape=(len(self.rows), len(self.cols)))


def _sparse(cols: np.ndarray, parts) -> _Sparse:
    """``parts``: (row, column index into ``cols``, value position) arrays of the real entries."""
    rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    colidx = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    pos = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
    e_rows, local = np.unique(rows, return_inverse=True)
    order = np.lexsort((colidx, local))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(local, minlength=len(e_rows)))]).astype(np.int64)
    return _Sparse(e_rows, cols, pos[order], colidx[order], indptr)


@dataclass(frozen=True, eq=False)
class SupernodalBlocks:
    """Symbolic data of the solves, computed once per pattern: per supernode of the loop, its
    columns (c0, c1), the rows below its diagonal block and the offset of its block in the value
    array; the batched supernodes (:mod:`adelia.runtime.selinv`: exact-shape leaf groups, then
    padded level groups by height), with the sparse E of the leaf groups together and of each
    level group, for one sparse product per batch and sweep."""

    spans: list[tuple[int, int, int, int, np.ndarray]]     # (c0, c1, m, px, rows below)
    leaves: Leaves
    leaf_E: _Sparse
    levels: tuple[LevelGroup, ...]
    level_E: tuple[_Sparse, ...]

    @property
    def steps(self) -> int:
        """Python-level steps of a sweep (the cost model's unit)."""
        return _steps(len(self.spans), len(self.leaves.groups) + len(self.levels))


def _steps(loop: int, batches: int) -> int:
    return loop + 3 * batches


def blocks(S: Supernodes) -> SupernodalBlocks:
    spans = []
    for J in np.flatnonzero(~batched_mask(S)).tolist():
        c0, c1 = int(S.sup[J]), int(S.sup[J + 1])
        r = S.rows[S.pi[J]:S.pi[J + 1]]
        spans.append((c0, c1, len(r), int(S.px[J]), np.asarray(r[c1 - c0:], dtype=np.int64)))
    leaves = leaf_groups(S)
    groups = leaves.groups
    leaf_cols = np.concatenate([g.cols.ravel() for g in groups]) if groups else np.zeros(0, np.int64)
    parts, at = [], 0
    for g in groups:
        k = len(g.cols)
        col = at + np.arange(k * g.s).reshape(k, 1, g.s)          # index into leaf_cols of each E entry
        parts.append((np.broadcast_to(g.below[:, :, None], g.e_pos.shape).ravel(),
                      np.broadcast_to(col, g.e_pos.shape).ravel(), g.e_pos.ravel()))
        at += k * g.s
    levels = tuple(sorted(level_groups(S), key=lambda g: g.height))
    level_E = []
    for g in levels:
        k = len(g.cols)
        col = np.arange(k * g.s).reshape(k, 1, g.s)
        keep = g.e_keep
        level_E.append(_sparse(g.cols.ravel(), [(np.broadcast_to(g.below[:, :, None], g.e_pos.shape).ravel()[keep],
                                                 np.broadcast_to(col, g.e_pos.shape).ravel()[keep],
                                                 g.e_pos.ravel()[keep])]))
    return SupernodalBlocks(spans, leaves, _sparse(leaf_cols, parts), levels, tuple(level_E))


def worthwhile(S: Supernodes, k: int, prepared: bool = True) -> bool:
    """Whether k right-hand sides are solved faster here than column by column (``prepared``:
    whether this factor's :func:`prepare` is already made, as for its second solve here)."""
    nnz = S.nnz
    steps = S.__dict__.get("_solve_steps_cache")
    if steps is None:       # asked before every multi-column solve
        steps = _steps(int(np.sum(~batched_mask(S))), len(leaf_groups(S).groups) + len(level_groups(S)))
        object.__setattr__(S, "_solve_steps_cache", steps)
    setup = 0.0 if prepared else PREPARE_S * (len(S.sup) - 1)
    return k * nnz * (CHOLMOD_S_PER_ENTRY - BLOCK_S_PER_ENTRY) > SUPERNODE_S * steps + setup


def _views(b: SupernodalBlocks, x: np.ndarray):
    for c0, c1, m, p, below in b.spans:
        s = c1 - c0
        blk = x[p:p + m * s].reshape(s, m).T
        yield c0, c1, below, blk[:s], blk[s:]


@dataclass(frozen=True, eq=False)
class Prepared:
    """What the batches of one factor need in every solve (made once per factor, see
    :func:`prepare`): the inverses of their diagonal blocks and their E as sparse matrices."""

    leaf_inv: list[np.ndarray]
    leaf_E: sp.csr_matrix
    level_inv: list[np.ndarray]
    level_E: list[sp.csr_matrix]


def prepare(b: SupernodalBlocks, x: np.ndarray) -> Prepared:
    return Prepared(b.leaves.diagonal_inverses(x), b.leaf_E.matrix(x),
                    [g.diagonal_inverses(x) for g in b.levels], [E.matrix(x) for E in b.level_E])


def _trsm_rows(D: np.ndarray, YJ: np.ndarray, transposed: bool) -> None:
    """YJ := D⁻¹ YJ (or D⁻ᵀ YJ) in place, D lower triangular, YJ a C-ordered block of rows. BLAS
    sees YJᵀ, Fortran-ordered in the same memory, and solves from the right (YJᵀ := YJᵀ D⁻ᵀ, or
    YJᵀ D⁻¹): handed YJ itself, the wrapper copied it to Fortran order and back, twice the time
    of the solve."""
    out = blas.dtrsm(1.0, D, YJ.T, side=1, lower=1, trans_a=0 if transposed else 1, overwrite_b=1)
    if not np.shares_memory(out, YJ):      # YJ was not contiguous after all
        YJ[...] = out.T


def _forward(b: SupernodalBlocks, x: np.ndarray, Y: np.ndarray, P: Prepared) -> None:
    # batches first, lowest level first: no other supernode updates a leaf's rows, and a
    # batched supernode's descendants are all batched at lower levels
    for g, Di in zip(b.leaves.groups, P.leaf_inv):
        Y[g.cols] = Di @ Y[g.cols]
    if len(b.leaf_E.rows):
        Y[b.leaf_E.rows] -= P.leaf_E @ Y[b.leaf_E.cols]
    for g, Di, E, M in zip(b.levels, P.level_inv, b.level_E, P.level_E):
        Y[g.cols] = Di @ Y[g.cols]
        if len(E.rows):
            Y[E.rows] -= M @ Y[E.cols]
    for c0, c1, below, D, E in _views(b, x):
        YJ = Y[c0:c1]
        _trsm_rows(D, YJ, transposed=False)
        if len(below):
            Y[below] -= E @ YJ


def _backward(b: SupernodalBlocks, x: np.ndarray, Y: np.ndarray, P: Prepared) -> None:
    for c0, c1, below, D, E in reversed(list(_views(b, x))):
        if len(below):
            Y[c0:c1] -= E.T @ Y[below]
        _trsm_rows(D, Y[c0:c1], transposed=True)
    # batches last, highest level first: they read only their ancestors' unknowns, final by now
    for g, Di, E, M in reversed(list(zip(b.levels, P.level_inv, b.level_E, P.level_E))):
        if len(E.rows):
            Y[E.cols] -= M.T @ Y[E.rows]
        Y[g.cols] = np.swapaxes(Di, 1, 2) @ Y[g.cols]
    if len(b.leaf_E.rows):
        Y[b.leaf_E.cols] -= P.leaf_E.T @ Y[b.leaf_E.rows]
    for g, Di in zip(b.leaves.groups, P.leaf_inv):
        Y[g.cols] = np.swapaxes(Di, 1, 2) @ Y[g.cols]


def _extended(B: np.ndarray, n: int) -> np.ndarray:
    """B with a zero scratch row n appended (the level groups' padding points there): the
    layout :func:`solve_extended` works in."""
    Y = np.empty((n + 1,) + B.shape[1:])
    Y[:n] = B
    Y[n] = 0.0
    return Y


def solve_extended(b: SupernodalBlocks, x: np.ndarray, Y: np.ndarray, prepared: Prepared | None = None) -> np.ndarray:
    """(L Lᵀ)⁻¹ B in place, Y = B in the layout of :func:`_extended` ((n + 1, k), last row zero);
    returns the view of the solution's n rows."""
    P = prepare(b, x) if prepared is None else prepared
    _forward(b, x, Y, P)
    _backward(b, x, Y, P)
    return Y[:-1]


def solve(b: SupernodalBlocks, x: np.ndarray, B: np.ndarray, prepared: Prepared | None = None) -> np.ndarray:
    """(L Lᵀ)⁻¹ B in the permuted ordering, B of shape (n, k) (``prepared``: :func:`prepare`'s
    result for these values, when kept from an earlier solve)."""
    return solve_extended(b, x, _extended(np.asarray(B, dtype=np.float64), B.shape[0]), prepared)


def solve_lt(b: SupernodalBlocks, x: np.ndarray, Z: np.ndarray, prepared: Prepared | None = None) -> np.ndarray:
    """L⁻ᵀ Z in the permuted ordering, Z of shape (n, k)."""
    n = Z.shape[0]
    Y = _extended(np.asarray(Z, dtype=np.float64), n)
    _backward(b, x, Y, prepare(b, x) if prepared is None else prepared)
    return Y[:n]
