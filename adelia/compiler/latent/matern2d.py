"""``matern2d``: a Matérn field (ν = 1) on a regular nrow × ncol lattice (R-INLA
``inla.doc("matern2d")``, ``rinla/R/models.R`` entry ``matern2d``, GMRFLib ``GMRFLib_matern2d``;
Lindgren, Rue & Lindström 2011 for the lattice GMRF; Rue & Held 2005, §5.1).

With κ = √(8ν)/r (r the range, where the correlation is about 0.1) and a = 4 + κ², the ν = 1
field is B x ~ N(0, (τ s)⁻¹ I) with B = aI − A on the infinite lattice (A: the four nearest
neighbours) and zeros outside the nrow × ncol lattice. Its precision is

    Q = τ s (a² I − 2a A + K₂),     s = κ^{−2ν}/(4πν) = 1/(4πκ²),

where K₂ holds 4 on the diagonal, 1 at straight distance 2 and 2 at the diagonal neighbours —
R-INLA's stencil (4 + a², −2a, 2, 1) at every node, the boundary included. s makes 1/τ about
the marginal variance. θ = (log τ, log r); priors loggamma(1, 5·10⁻⁵) (initial 4) and
loggamma(1, 0.01) on log r (initial 2). Labels "Precision for <name>", "Range for <name>"
(internal "Log precision for", "Range_intern for"). Proper; ``constr = FALSE`` by default.
Only ν = 1 (R-INLA's default) is implemented; ``cyclic`` is not supported. The index holds
R-INLA's node numbers 1..nrow·ncol (column-major, ``inla.lattice2node``) or 0-based ones.

log|Q| has no closed form here (K₂ differs from A² at the boundary): the runtime factorises Q,
as R-INLA's normalising constant does (inla.c, case F_MATERN2D).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput, precision_hyper
from adelia.compiler.latent.lattice import lattice_nodes, lattice_shape, path_adjacency
from adelia.compiler.likelihoods import HyperSpec
from adelia.errors import ModelError

HYPERS = (
    precision_hyper(),
    HyperSpec("range", "Range for {name}", "Range_intern for {name}", ("loggamma", (1.0, 0.01)), 2.0),
)


def matern2d_matrices(nrow: int, ncol: int) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """(I, −2A, K₂) in column-major node order."""
    Ar, Ac = path_adjacency(nrow), path_adjacency(ncol)
    Ir, Ic = sp.identity(nrow), sp.identity(ncol)
    A = sp.kron(Ic, Ar) + sp.kron(Ac, Ir)
    # B_extᵀB_ext restricted to the lattice: A² plus the squared weights of neighbours outside it
    deg = np.asarray(A.sum(axis=1)).ravel()
    K2 = A @ A + sp.diags(4.0 - deg)
    n = nrow * ncol
    return sp.identity(n, format="csr"), sp.csr_matrix(-2.0 * A), sp.csr_matrix(K2)


def _coefs():
    # κ² = 8/r², a = 4 + κ², c = τ/(4πκ²): Q = c a² I + c a (−2A) + c K₂
    def parts(th):
        kappa2 = 8.0 * jnp.exp(-2.0 * th[1])
        return jnp.exp(th[0]) / (4.0 * math.pi * kappa2), 4.0 + kappa2
    return (lambda th: parts(th)[0] * parts(th)[1] ** 2,
            lambda th: parts(th)[0] * parts(th)[1],
            lambda th: parts(th)[0])


def build(term: TermInput) -> Structure:
    nrow, ncol = lattice_shape(term, "matern2d")
    nu = term.args.get("nu", 1)
    if nu is not None and float(nu) != 1.0:
        raise ModelError(f"matern2d with nu = {nu!r} is not supported, only nu = 1", span=term.describe("nu"))
    if term.args.get("cyclic"):
        raise ModelError("the cyclic matern2d model is not supported", span=term.describe("cyclic"),
                         hint="drop cyclic = TRUE")
    values, node_of_obs = lattice_nodes(term, nrow, ncol)
    n = nrow * ncol
    constraints = np.ones((1, n)) if term.args.get("constr", False) else np.zeros((0, n))
    return Structure(n, matern2d_matrices(nrow, ncol), _coefs(), 0, constraints, values, node_of_obs,
                     logdet=None, logdet_star=0.0)


LATENT.register("matern2d")(LatentModel("matern2d", HYPERS, build, ("nrow", "ncol", "nu"), doc=__doc__))
