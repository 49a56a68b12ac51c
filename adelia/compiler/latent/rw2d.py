"""``rw2d``: the second-order random walk on a regular nrow × ncol lattice, a thin-plate-spline
prior (Rue & Held 2005, §3.4.2; R-INLA ``inla.doc("rw2d")``, ``rinla/R/models.R`` entry ``rw2d``,
GMRFLib ``GMRFLib_rw2d``).

Q = τ K with K the discretised thin-plate energy ∫ f_xx² + 2 f_xy² + f_yy²:

    K = D₂ᵣᵀD₂ᵣ ⊕ D₂꜀ᵀD₂꜀ + 2 (D₁꜀ᵀD₁꜀) ⊗ (D₁ᵣᵀD₁ᵣ),

the sum of squared second differences along rows and columns and twice the squared mixed
differences over each 2 × 2 cell (D_k: k-th differences, ⊕ the Kronecker sum in R-INLA's
column-major node order). Interior rows carry R-INLA's stencil (20, −8, 2, 1) and the boundary
rows its corrections (diagonal 4 in the corners, 10/11/18/19 next to the edges), i.e. GMRFLib's
default boundary. Rank deficiency 3 (constant and the two linear trends). ``constr = TRUE``
(default) imposes Σx = 0 only, so the planar trends stay improper, as in R-INLA.
``scale.model = TRUE`` scales K to generalised variance 1 (the geometric mean of the marginal
variances under the three null-space constraints, ``GMRFLib_rw2d_scale``). The index holds
R-INLA's node numbers 1..nrow·ncol (``inla.lattice2node``), or 0-based ones. θ = log τ,
loggamma(1, 5·10⁻⁵), initial 4.

``cyclic = TRUE`` puts the field on a torus: the same K with circulant differences, i.e. the
stencil (20, −8, 2, 1) at every node and no boundary rows; only the constant is in the null
space (rank deficiency 1), and ``scale.model`` scales under Σx = 0 alone.

Normalising constant: R-INLA counts (n − 3)/2 log τ but not ½ log|K|* (inla.c, case F_RW2D).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import (LATENT, LatentModel, Structure, TermInput, precision_hyper,
                                         single_precision_structure)
from adelia.compiler.latent.lattice import difference, lattice_nodes, lattice_shape
from adelia.compiler.latent.rw import difference_matrix
from adelia.errors import ModelError


def rw2d_matrix(nrow: int, ncol: int, cyclic: bool = False) -> sp.csr_matrix:
    Ir, Ic = sp.identity(nrow), sp.identity(ncol)
    diff = (lambda n, k: difference_matrix(n, k, True)) if cyclic else difference
    D2r, D2c = diff(nrow, 2), diff(ncol, 2)
    D1r, D1c = diff(nrow, 1), diff(ncol, 1)
    K = sp.kron(Ic, D2r.T @ D2r) + sp.kron(D2c.T @ D2c, Ir) + 2.0 * sp.kron(D1c.T @ D1c, D1r.T @ D1r)
    return sp.csr_matrix(K)


def rw2d_null_basis(nrow: int, ncol: int) -> np.ndarray:
    i, j = np.meshgrid(np.arange(nrow), np.arange(ncol), indexing="ij")
    i, j = i.ravel(order="F"), j.ravel(order="F")          # column-major node order
    return np.column_stack([np.ones(nrow * ncol), i - (nrow - 1) / 2.0, j - (ncol - 1) / 2.0])


def build(term: TermInput) -> Structure:
    nrow, ncol = lattice_shape(term, "rw2d")
    if nrow < 3 or ncol < 3:
        raise ModelError(f"rw2d needs a lattice of at least 3 × 3, f({term.name}) has {nrow} × {ncol}",
                         span=term.describe("nrow"))
    cyclic = bool(term.args.get("cyclic", False))
    values, node_of_obs = lattice_nodes(term, nrow, ncol)
    n = nrow * ncol
    constr = np.ones((1, n)) if term.args.get("constr", True) else np.zeros((0, n))
    null = np.ones((n, 1)) if cyclic else rw2d_null_basis(nrow, ncol)
    return single_precision_structure(rw2d_matrix(nrow, ncol, cyclic), rank_def=null.shape[1], constraints=constr,
                                      values=values, node_of_obs=node_of_obs,
                                      scale_model=bool(term.args.get("scale.model", False)), null_basis=null)


LATENT.register("rw2d")(LatentModel("rw2d", (precision_hyper(),), build, ("nrow", "ncol"), doc=__doc__))
