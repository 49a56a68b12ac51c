"""``crw2``: the continuous second-order random walk, exact at irregular locations through
augmentation with the derivative (Rue & Held 2005, §3.5, the integrated Wiener process of
Wecker & Ansley 1983; R-INLA ``inla.doc("crw2")``, ``rinla/R/models.R`` entry ``crw2``, GMRFLib
``GMRFLib_crw`` with ``GMRFLib_CRW_LAYOUT_BLOCK``).

At sorted locations s_1 < … < s_n with spacings δ_i = s_{i+1} − s_i, the pair z_i = (x_i, x'_i)
(value and derivative) follows

    z_{i+1} | z_i ~ N(T_i z_i, Σ_i/τ),   T_i = [[1, δ_i], [0, 1]],   Σ_i = [[δ³/3, δ²/2], [δ²/2, δ]],

so Q = τ Σ_i L_iᵀ Σ_i⁻¹ L_i with L_i z = z_{i+1} − T_i z_i and Σ_i⁻¹ = [[12/δ³, −6/δ²], [−6/δ², 4/δ]].
The latent vector has length 2n in R-INLA's block layout: x_1..x_n, then x'_1..x'_n
(``summary_random`` rows 1..2n); observations use the first n. Rank deficiency 2 (x_1 and x'_1
are improper: a constant and a linear trend). ``constr = TRUE`` (default) puts Σx = 0 on the
values (R-INLA's ``aug.constr = 1``). θ = log τ, loggamma(1, 5·10⁻⁵), initial 4.
``scale.model`` is not supported here.

Normalising constant: R-INLA counts (N − r)/2 log τ with N = 2n, r = 2, and not ½ log|K|*
(inla.c, case F_CRW2; inla.doc("crw2"), Notes).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import (LATENT, LatentModel, Structure, TermInput, precision_hyper,
                                         single_precision_structure)
from adelia.compiler.latent.indexing import nodes_from_values
from adelia.errors import ModelError


def crw2_matrix(positions: np.ndarray) -> sp.csr_matrix:
    """K (2n × 2n, block layout) with Q = τ K."""
    s = np.asarray(positions, dtype=float)
    n = len(s)
    rows, cols, vals = [], [], []
    for i, d in enumerate(np.diff(s)):
        # L_i picks (x_i, x_{i+1}, x'_i, x'_{i+1}): L_i z = [x_{i+1} − x_i − δ x'_i, x'_{i+1} − x'_i]
        idx = [i, i + 1, n + i, n + i + 1]
        L = np.array([[-1.0, 1.0, -d, 0.0], [0.0, 0.0, -1.0, 1.0]])
        Sinv = np.array([[12.0 / d**3, -6.0 / d**2], [-6.0 / d**2, 4.0 / d]])
        block = L.T @ Sinv @ L
        for a in range(4):
            for b in range(4):
                rows.append(idx[a])
                cols.append(idx[b])
                vals.append(block[a, b])
    return sp.csr_matrix(sp.coo_matrix((vals, (rows, cols)), shape=(2 * n, 2 * n)))


def build(term: TermInput) -> Structure:
    values, node_of_obs = nodes_from_values(term)
    n = len(values)
    v = np.asarray(values)
    if not (np.issubdtype(v.dtype, np.number) and not np.issubdtype(v.dtype, np.bool_)):
        positions = np.arange(1.0, n + 1.0)
    else:
        positions = v.astype(float)
    if n < 3:
        raise ModelError(f"crw2 needs at least 3 distinct index values, f({term.name}) has {n}")
    if np.any(np.diff(positions) <= 0):
        raise ModelError(f"the values of f({term.name}, model = \"crw2\") must be strictly increasing",
                         span=term.describe("values"), hint="sort values = [...] and drop duplicates")
    if term.args.get("scale.model"):
        raise ModelError("scale.model is not supported for crw2", span=term.describe("scale.model"),
                         hint="use model = \"rw2\" with scale.model = TRUE")
    constr = np.zeros((0, 2 * n))
    if term.args.get("constr", True):
        constr = np.concatenate([np.ones((1, n)), np.zeros((1, n))], axis=1)
    all_values = np.concatenate([positions, positions])     # values, then their derivatives
    return single_precision_structure(crw2_matrix(positions), rank_def=2, constraints=constr,
                                      values=all_values, node_of_obs=node_of_obs)


LATENT.register("crw2")(LatentModel("crw2", (precision_hyper(),), build, doc=__doc__))
