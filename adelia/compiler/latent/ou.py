"""``ou``: the Ornstein–Uhlenbeck process at irregular time points (R-INLA ``inla.doc("ou")``,
``rinla/R/models.R`` entry ``ou``).

dx_t = −φ x_t dt + σ dW_t observed at sorted times t_1 < … < t_n (the index values, or
``values``): x_1 ~ N(0, 1/τ) (stationary), x_i | x_{i−1} ~ N(a_i x_{i−1}, (1 − a_i²)/τ) with
a_i = exp(−φ δ_i), δ_i = t_i − t_{i−1}, τ = 2φ/σ² the marginal precision. The precision is
tridiagonal,

    Q = τ [ I + Σ_i b_i (e_{i−1}e_{i−1}ᵀ + e_i e_iᵀ) − c_i (e_{i−1}e_iᵀ + e_i e_{i−1}ᵀ) ],
    b_i = a_i²/(1 − a_i²) = 1/expm1(2φδ_i),   c_i = a_i/(1 − a_i²) = 1/(2 sinh(φδ_i)),

and log|Q| = n log τ − Σ_i log(1 − a_i²) (R-INLA's normaliser, inla.c case F_OU). The
spacings enter the coefficients, so Q is written as Σ_j c_j(θ) K_j with one (b, c) pair of
matrices per distinct spacing: few for (nearly) regular times, up to 2(n − 1) + 1 pieces for
fully irregular ones. θ = (log τ, log φ); priors loggamma(1, 5·10⁻⁵) (initial 4) and
normal(0, precision 0.2) on log φ (initial −1). Labels "Precision for <name>", "Phi for
<name>" (internal "Log precision for", "Phi_intern for"). Proper; ``constr = FALSE`` by default.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput, precision_hyper
from adelia.compiler.latent.indexing import nodes_from_values
from adelia.compiler.likelihoods import HyperSpec
from adelia.errors import ModelError

HYPERS = (
    precision_hyper(),
    HyperSpec("phi", "Phi for {name}", "Phi_intern for {name}", ("normal", (0.0, 0.2)), -1.0, "*", jnp.exp),
)


def ou_structure(times: np.ndarray, *, constr: bool, values: np.ndarray, node_of_obs: np.ndarray) -> Structure:
    t = np.asarray(times, dtype=float)
    n = len(t)
    delta = np.diff(t)
    matrices = [sp.identity(n, format="csr")]
    coefs = [lambda th: jnp.exp(th[0])]
    for d in np.unique(delta):
        edges = np.flatnonzero(delta == d)               # edge k joins nodes k and k + 1
        diag = np.zeros(n)
        np.add.at(diag, edges, 1.0)
        np.add.at(diag, edges + 1, 1.0)
        off = np.zeros(n - 1)
        off[edges] = 1.0
        matrices.append(sp.csr_matrix(sp.diags(diag)))
        coefs.append(lambda th, d=d: jnp.exp(th[0]) / jnp.expm1(2.0 * jnp.exp(th[1]) * d))
        matrices.append(sp.csr_matrix(sp.diags([off, off], [-1, 1], shape=(n, n))))
        coefs.append(lambda th, d=d: -jnp.exp(th[0]) * 0.5 / jnp.sinh(jnp.exp(th[1]) * d))
    delta_j = jnp.asarray(delta)
    constraints = np.ones((1, n)) if constr else np.zeros((0, n))
    # −log(1 − a²) = −log(−expm1(−2φδ))
    return Structure(n, tuple(matrices), tuple(coefs), 0, constraints, values, node_of_obs,
                     logdet=lambda th: n * th[0] - jnp.sum(jnp.log(-jnp.expm1(-2.0 * jnp.exp(th[1]) * delta_j))),
                     logdet_star=0.0)


def build(term: TermInput) -> Structure:
    values, node_of_obs = nodes_from_values(term)
    n = len(values)
    v = np.asarray(values)
    if n < 2:
        raise ModelError(f"ou needs at least 2 distinct index values, f({term.name}) has {n}")
    if not (np.issubdtype(v.dtype, np.number) and not np.issubdtype(v.dtype, np.bool_)):
        raise ModelError(f"the index of f({term.name}, model = \"ou\") must hold numeric times",
                         span=term.describe("values"))
    times = v.astype(float)
    if np.any(np.diff(times) <= 0):
        raise ModelError(f"the values of f({term.name}, model = \"ou\") must be strictly increasing",
                         span=term.describe("values"), hint="sort values = [...] and drop duplicates")
    return ou_structure(times, constr=bool(term.args.get("constr", False)), values=values, node_of_obs=node_of_obs)


LATENT.register("ou")(LatentModel("ou", HYPERS, build, doc=__doc__))
