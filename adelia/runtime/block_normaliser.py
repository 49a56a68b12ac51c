"""Prior normalisers of large latent blocks on a sparse Cholesky factor.

The log-prior of θ holds, for each latent block with Q(θ) = Σ_j c_j(θ) K_j, the θ-dependent part
of its log-normaliser. Most blocks have it in closed form (``LatentBlock.logdet``). Two kinds
do not:

* a block without a closed-form log|Q(θ)| (an SPDE on a mesh too large for its one-off
  eigendecomposition, ``matern2d``, ``rgeneric``): ½ log|Q|;
* a proper block under constraints C x = e (``iid`` or an SPDE with ``constr = TRUE``): the density
  lives on the affine set, and with Z an orthonormal basis of null(C)

      ½ log|ZᵀQZ| + ½ eᵀ(C Q⁻¹ Cᵀ)⁻¹ e
        = ½ log|Q| + ½ log|C Q⁻¹ Cᵀ| − ½ log|C Cᵀ| + ½ eᵀ(C Q⁻¹ Cᵀ)⁻¹ e

  (the Schur-complement identity for the block matrix [Q Cᵀ; C 0] written both ways, e.g.
  Rue & Held 2005, §2.3.3, for conditioning on C x = e).

A dense n × n Cholesky (and, for the second, a dense null-space basis) costs O(n³) at every
evaluation of the objective: seconds per evaluation at a few thousand nodes. :class:`SparseBlock`
evaluates both through :func:`adelia.runtime.sparse.sparse_logdet` and ``sparse_solve``
(CHOLMOD, with exact VJPs), k + 1 sparse solves for k constraints; the caller keeps the dense
forms for small blocks (:data:`DENSE_MAX`), where they are exact and cheaper.
"""

from __future__ import annotations

__all__ = ["DENSE_MAX", "SparseBlock", "sparse_block"]

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.runtime import sparse
from adelia.runtime.arrays import device

#: blocks up to this many nodes keep the dense normalisers (a 500 × 500 Cholesky is about a
#: millisecond; the sparse factor's set-up and callbacks cost more there)
DENSE_MAX = 500


class SparseBlock:
    """Q(θ) of one latent block on its own sparse pattern (the union of its K_j)."""

    def __init__(self, coefs, matrices, constraints: np.ndarray | None = None, rhs: np.ndarray | None = None):
        pattern = sum(abs(sp.csr_matrix(K, dtype=float)) for K in matrices)
        self.analysis = sparse.analyse(sp.csr_matrix(pattern))
        self.parts = [device(self.analysis.values_of(sp.csr_matrix(K, dtype=float))) for K in matrices]
        self.coefs = tuple(coefs)
        k = 0 if constraints is None else constraints.shape[0]
        self.C = None if not k else device(np.asarray(constraints, float))
        self.log_cct = 0.0 if not k else float(np.linalg.slogdet(constraints @ constraints.T)[1])
        self.e = None if rhs is None or not np.any(rhs) else device(np.asarray(rhs, float))

    def values(self, th: jax.Array) -> jax.Array:
        return sum(c(th) * v for c, v in zip(self.coefs, self.parts))

    def half_logdet(self, th: jax.Array) -> jax.Array:
        """½ log|Q(θ)|."""
        return 0.5 * sparse.sparse_logdet(self.values(th), self.analysis)

    def affine_normaliser(self, th: jax.Array) -> jax.Array:
        """½ log|ZᵀQZ| + ½ eᵀ(C Q⁻¹ Cᵀ)⁻¹ e (module docstring)."""
        v = self.values(th)
        W = sparse.sparse_solve(v, self.C.T, self.analysis)           # Q⁻¹Cᵀ, n × k
        M = self.C @ W
        out = 0.5 * sparse.sparse_logdet(v, self.analysis) + 0.5 * jnp.linalg.slogdet(M)[1] - 0.5 * self.log_cct
        if self.e is not None:
            out = out + 0.5 * self.e @ jnp.linalg.solve(M, self.e)
        return out


def sparse_block(s, *, constrained: bool) -> SparseBlock | None:
    """The :class:`SparseBlock` of latent block ``s`` where its normaliser is better computed on a
    sparse factor (more than :data:`DENSE_MAX` nodes and CHOLMOD available), else None."""
    if s.n <= DENSE_MAX or not sparse.available():
        return None
    if constrained:
        return SparseBlock(s.coefs, s.matrices, s.constraints, s.constraint_rhs)
    return SparseBlock(s.coefs, s.matrices)
