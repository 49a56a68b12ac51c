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
k single solves; these loops do k columns per BLAS call for a Python overhead per supernode.
:func:`worthwhile` says from a measured cost model when that wins (hundreds of columns on
S2-sized factors: the simplified-Laplace covariances A Σ, chunks of posterior draws).
"""

from __future__ import annotations

__all__ = ["SupernodalBlocks", "blocks", "solve", "solve_lt", "worthwhile"]

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas

from adelia.runtime.selinv import Supernodes

#: the costs behind :func:`worthwhile`, measured on a 2-core x86 CPU with one BLAS thread:
#: a column solved by CHOLMOD (through cvxopt) costs about this many seconds per entry of L ...
CHOLMOD_S_PER_ENTRY = 2e-9
#: ... a column here about this many (dense BLAS-3 on the supernodal blocks) ...
BLOCK_S_PER_ENTRY = 4e-10
#: ... and each supernode this many in Python overhead, for both sweeps together
SUPERNODE_S = 1.1e-5


@dataclass(frozen=True, eq=False)
class SupernodalBlocks:
    """Per supernode: its columns (c0, c1), the rows below its diagonal block, and the offsets
    of its block in the value array (symbolic: computed once per pattern)."""

    spans: list[tuple[int, int, int, int, np.ndarray]]     # (c0, c1, m, px, rows below)


def blocks(S: Supernodes) -> SupernodalBlocks:
    spans = []
    for J in range(S.nsuper):
        c0, c1 = int(S.sup[J]), int(S.sup[J + 1])
        r = S.rows[S.pi[J]:S.pi[J + 1]]
        spans.append((c0, c1, len(r), int(S.px[J]), np.asarray(r[c1 - c0:], dtype=np.int64)))
    return SupernodalBlocks(spans)


def worthwhile(S: Supernodes, k: int) -> bool:
    """Whether k right-hand sides are solved faster here than column by column."""
    nnz = S.nnz
    return k * nnz * (CHOLMOD_S_PER_ENTRY - BLOCK_S_PER_ENTRY) > SUPERNODE_S * S.nsuper


def _views(b: SupernodalBlocks, x: np.ndarray):
    for c0, c1, m, p, below in b.spans:
        s = c1 - c0
        blk = x[p:p + m * s].reshape(s, m).T
        yield c0, c1, below, blk[:s], blk[s:]


def _forward(b: SupernodalBlocks, x: np.ndarray, Y: np.ndarray) -> None:
    for c0, c1, below, D, E in _views(b, x):
        YJ = blas.dtrsm(1.0, D, Y[c0:c1], lower=1)
        Y[c0:c1] = YJ
        if len(below):
            Y[below] -= E @ YJ


def _backward(b: SupernodalBlocks, x: np.ndarray, Y: np.ndarray) -> None:
    for c0, c1, below, D, E in reversed(list(_views(b, x))):
        if len(below):
            Y[c0:c1] -= E.T @ Y[below]
        Y[c0:c1] = blas.dtrsm(1.0, D, Y[c0:c1], lower=1, trans_a=1)


def solve(b: SupernodalBlocks, x: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(L Lᵀ)⁻¹ B in the permuted ordering, B of shape (n, k)."""
    Y = np.array(B, dtype=np.float64, order="C")
    _forward(b, x, Y)
    _backward(b, x, Y)
    return Y


def solve_lt(b: SupernodalBlocks, x: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """L⁻ᵀ Z in the permuted ordering, Z of shape (n, k)."""
    Y = np.array(Z, dtype=np.float64, order="C")
    _backward(b, x, Y)
    return Y
