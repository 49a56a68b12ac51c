"""Random walks ``rw1`` and ``rw2``, on equally or unequally spaced values, optionally ``cyclic``.

Q = τ Dᵀ W D (Rue & Held 2005, §3.3; R-INLA ``inla.doc("rw1")``, ``inla.doc("rw2")``). The nodes
sit at the sorted distinct index values s_1 < … < s_n (or ``values``), with spacings
δ_i = s_{i+1} − s_i. As in R-INLA (GMRFLib ``GMRFLib_crw``, layout "simple"; Lindgren & Rue 2008
for the second order):

* rw1: rows (x_{i+1} − x_i), weights w_i = 1/δ_i;
* rw2: for each interior node, the second divided difference
  d_i = (x_{i+1} − x_i)/δ_i − (x_i − x_{i−1})/δ_{i−1}, with weight w_i = 2/(δ_{i−1} + δ_i).

With unit spacing these are the usual D₁ᵀD₁ and D₂ᵀD₂; the spacing's unit matters (values in
[0, 1] give a much larger structure than 1..n), exactly as in R-INLA. Non-numeric index values
are placed at 1..n. ``cyclic = TRUE`` uses the regular cyclic stencils whatever the spacing
(R-INLA's ``GMRFLib_rw``). Rank deficiency: 1 for rw1 and cyclic models; 2 for rw2 (constant
and linear trend in s). ``constr = TRUE`` (default) imposes Σx = 0 only, so rw2's linear trend
stays improper.

``scale.model = TRUE`` multiplies the structure by R-INLA's factor: for cyclic models the
geometric mean of the marginal variances under Σx = 0 (``GMRFLib_rw_scale``); otherwise the
length-weighted version of ``GMRFLib_crw_scale`` (constraints Σ ℓ_i x_i = 0 and, for rw2,
Σ L_i x_i = 0 with ℓ the node lengths and L their cumulative sums), which is the plain geometric
mean for unit spacing.

Normalising constant: R-INLA counts (n − r)/2 · log τ and −(n − r)/2 · log 2π, but not ½ log|K|*
(inla.c, case F_RW1/F_RW2), so ``logdet_star`` is 0 here to reproduce its marginal likelihood.
Default prior log τ ~ loggamma(1, 5·10⁻⁵), initial 4.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput, precision_hyper
from adelia.compiler.latent.indexing import nodes_from_values
from adelia.errors import ModelError


def difference_matrix(n: int, order: int, cyclic: bool) -> sp.csr_matrix:
    """Rows of the order-th difference operator (n rows when cyclic, n − order otherwise)."""
    stencil = {1: [-1.0, 1.0], 2: [1.0, -2.0, 1.0]}[order]
    rows = n if cyclic else n - order
    r = np.repeat(np.arange(rows), len(stencil))
    c = (np.arange(rows)[:, None] + np.arange(len(stencil))[None, :]) % n
    D = sp.coo_matrix((np.tile(stencil, rows), (r, c.ravel())), shape=(rows, n))
    return D.tocsr()


def rw_structure_matrix(positions: np.ndarray, order: int) -> sp.csr_matrix:
    """K = Dᵀ W D for a non-cyclic rw1/rw2 at sorted ``positions`` (R-INLA ``GMRFLib_crw``)."""
    s = np.asarray(positions, dtype=float)
    n = len(s)
    delta = np.diff(s)
    if order == 1:
        D = sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))
        w = 1.0 / delta
    else:
        a, b = 1.0 / delta[:-1], 1.0 / delta[1:]            # 1/δ_{i−1}, 1/δ_i for interior i
        D = sp.diags([a, -(a + b), b], [0, 1, 2], shape=(n - 2, n))
        w = 2.0 / (delta[:-1] + delta[1:])
    return (D.T @ sp.diags(w) @ D).tocsr()


def null_basis(positions: np.ndarray, order: int, cyclic: bool) -> np.ndarray:
    n = len(positions)
    if cyclic or order == 1:
        return np.ones((n, 1))
    s = np.asarray(positions, dtype=float)
    return np.column_stack([np.ones(n), (s - s.mean()) / (np.ptp(s) or 1.0)])


def constrained_variances(K: np.ndarray, V: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Marginal variances of the intrinsic GMRF with structure K (null space spanned by V)
    conditioned on A x = 0 (A V invertible): diag(P K⁺ Pᵀ), P = I − V (A V)⁻¹ A."""
    w, U = np.linalg.eigh(K)
    keep = np.argsort(w)[V.shape[1]:]
    Kplus = (U[:, keep] / w[keep]) @ U[:, keep].T
    P = np.eye(K.shape[0]) - V @ np.linalg.solve(A @ V, A)
    return np.einsum("ij,jk,ik->i", P, Kplus, P)


def rinla_scale(K: np.ndarray, positions: np.ndarray, order: int, cyclic: bool) -> float:
    """R-INLA's ``scale.model`` factor c (the model uses c·K)."""
    n = K.shape[0]
    V = null_basis(positions, order, cyclic)
    if cyclic:                                   # GMRFLib_rw_scale: geometric mean under Σx = 0
        v = constrained_variances(K, V, np.ones((1, n)))
        return float(np.exp(np.mean(np.log(v))))
    s = np.asarray(positions, dtype=float)       # GMRFLib_crw_scale
    ln = np.empty(n)
    ln[0], ln[-1] = s[1] - s[0], s[-1] - s[-2]
    ln[1:-1] = (s[2:] - s[:-2]) / 2.0
    A = ln[None, :] if order == 1 else np.vstack([ln, np.cumsum(ln)])
    v = constrained_variances(K, V, A)
    # R-INLA works with K·guess, guess = (Σℓ)^order, and returns exp(Σ ℓ log v_guess / D)·guess
    guess = ln.sum() ** order
    D = (s[-1] - s[0]) * n / (n - 1.0)
    return float(np.exp(np.sum(ln * np.log(v / guess)) / D) * guess)


def rw_structure(positions: np.ndarray, order: int, *, cyclic: bool, scale_model: bool, constr: bool,
                 values: np.ndarray, node_of_obs: np.ndarray) -> Structure:
    n = len(positions)
    if cyclic:
        D = difference_matrix(n, order, True)
        K = (D.T @ D).tocsr()
    else:
        K = rw_structure_matrix(positions, order)
    rank_def = 1 if cyclic else order
    if scale_model:
        K = (K * rinla_scale(K.toarray(), positions, order, cyclic)).tocsr()
    constraints = np.ones((1, n)) if constr else np.zeros((0, n))
    return Structure(n, (K,), (lambda th: jnp.exp(th[0]),), rank_def, constraints, values, node_of_obs,
                     logdet=lambda th: (n - rank_def) * th[0], logdet_star=0.0)


def _build(order: int):
    def build(term: TermInput) -> Structure:
        values, node_of_obs = nodes_from_values(term)
        n = len(values)
        cyclic = bool(term.args.get("cyclic", False))
        if n < order + 2:
            raise ModelError(f"rw{order} needs at least {order + 2} distinct index values, f({term.name}) has {n}")
        v = np.asarray(values)
        if np.issubdtype(v.dtype, np.number) and not np.issubdtype(v.dtype, np.bool_):
            positions = v.astype(float)
            if np.any(np.diff(positions) <= 0):
                raise ModelError(f"the values of f({term.name}, model = \"rw{order}\") must be strictly increasing",
                                 span=term.describe("values"), hint="sort values = [...] and drop duplicates")
        else:
            positions = np.arange(1.0, n + 1.0)
        return rw_structure(positions, order, cyclic=cyclic, scale_model=bool(term.args.get("scale.model", False)),
                            constr=bool(term.args.get("constr", True)), values=values, node_of_obs=node_of_obs)

    return build


LATENT.register("rw1")(LatentModel("rw1", (precision_hyper(),), _build(1), ("cyclic",), doc=__doc__))
LATENT.register("rw2")(LatentModel("rw2", (precision_hyper(),), _build(2), ("cyclic",), doc=__doc__))
