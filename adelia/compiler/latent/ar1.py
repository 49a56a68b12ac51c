"""``ar1``: first-order autoregressive process (R-INLA ``inla.doc("ar1")``; Rue & Held 2005, §1.2).

x_1 ~ N(0, 1/τ), x_t = ρ x_{t−1} + ε_t with Var ε_t = (1 − ρ²)/τ, so τ is the *marginal*
precision. The precision is tridiagonal,

    Q = τ/(1 − ρ²) · [ I + ρ² D_int − ρ (S + Sᵀ) ],

with D_int the identity on the interior nodes 2..n−1 and S the shift; log|Q| = n log τ −
(n − 1) log(1 − ρ²). θ = (log τ, log((1 + ρ)/(1 − ρ))), i.e. ρ = tanh(θ₂/2). Defaults
(R-INLA): log τ ~ loggamma(1, 5·10⁻⁵), initial 4; θ₂ ~ normal(0, precision 0.15), initial 2.
Proper, so rank deficiency 0 and no constraint unless ``constr = TRUE`` (Σx = 0). The nodes are
the sorted distinct index values taken in order (their spacing is ignored, as in R-INLA).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput, precision_hyper
from adelia.compiler.latent.indexing import nodes_from_values
from adelia.compiler.likelihoods import HyperSpec
from adelia.compiler.priors import CORRELATION
from adelia.errors import ModelError

HYPERS = (
    precision_hyper(),
    HyperSpec("rho", "Rho for {name}", "Rho_intern for {name}", ("normal", (0.0, 0.15)), 2.0,
              CORRELATION, lambda t: jnp.tanh(t / 2.0)),
)


def _log_cosh(x):
    ax = jnp.abs(x)
    return ax + jnp.log1p(jnp.exp(-2.0 * ax)) - jnp.log(2.0)


def ar1_matrices(n: int) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    """(I, identity on interior nodes, −(S + Sᵀ))."""
    interior = np.ones(n)
    interior[[0, -1]] = 0.0
    off = -np.ones(n - 1)
    return (sp.identity(n, format="csr"), sp.diags(interior, format="csr"),
            sp.diags([off, off], [-1, 1], shape=(n, n), format="csr"))


def ar1_structure(n: int, *, constr: bool, values: np.ndarray, node_of_obs: np.ndarray) -> Structure:
    # with x = θ₂/2: 1/(1−ρ²) = cosh² x, ρ²/(1−ρ²) = sinh² x, ρ/(1−ρ²) = sinh(θ₂)/2
    coefs = (
        lambda th: jnp.exp(th[0]) * jnp.cosh(th[1] / 2.0) ** 2,
        lambda th: jnp.exp(th[0]) * jnp.sinh(th[1] / 2.0) ** 2,
        lambda th: jnp.exp(th[0]) * jnp.sinh(th[1]) / 2.0,
    )
    constraints = np.ones((1, n)) if constr else np.zeros((0, n))
    return Structure(n, ar1_matrices(n), coefs, 0, constraints, values, node_of_obs,
                     logdet=lambda th: n * th[0] + (n - 1) * 2.0 * _log_cosh(th[1] / 2.0),
                     logdet_star=0.0)


def build(term: TermInput) -> Structure:
    if term.args.get("cyclic", False):
        raise ModelError("the cyclic ar1 model is not supported", span=term.describe("cyclic"),
                         hint="drop cyclic = TRUE")
    values, node_of_obs = nodes_from_values(term)
    n = len(values)
    if n < 2:
        raise ModelError(f"ar1 needs at least 2 distinct index values, f({term.name}) has {n}")
    return ar1_structure(n, constr=bool(term.args.get("constr", False)), values=values, node_of_obs=node_of_obs)


LATENT.register("ar1")(LatentModel("ar1", HYPERS, build, doc=__doc__))
