"""``besagproper``: a proper version of the Besag model (R-INLA ``inla.doc("besagproper")``,
``rinla/R/models.R`` entry ``besagproper``).

x_i | x_{−i} ~ N( Σ_{j∼i} x_j / (d + n_i), 1/(τ (d + n_i)) ), i.e.

    Q = τ (D − W) + τ d I,      Q_ii = τ (n_i + d),  Q_ij = −τ for neighbours,

with n_i the number of neighbours. θ = (log τ, log d); priors loggamma(1, 0.0005) on log τ
(initial 2) and loggamma(1, 1) on log d (initial 1). Labels "Precision for <name>", "Diagonal
for <name>" (internal "Log precision for", "Log diagonal for"). Proper, so ``constr = FALSE`` by
default (``constr = TRUE``: Σx = 0).

log|Q| = n log τ + Σ_k log(λ_k + d) with λ_k the eigenvalues of D − W, computed once: exact,
as R-INLA's normalising constant (inla.c, case F_BESAGPROPER, factorises Q).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.graphs import as_adjacency
from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.latent.indexing import graph_nodes
from adelia.compiler.likelihoods import HyperSpec
from adelia.errors import ModelError

HYPERS = (
    HyperSpec("prec", "Precision for {name}", "Log precision for {name}", ("loggamma", (1.0, 0.0005)), 2.0),
    HyperSpec("diag", "Diagonal for {name}", "Log diagonal for {name}", ("loggamma", (1.0, 1.0)), 1.0),
)


def besagproper_structure(W: sp.csr_matrix, *, constr: bool, values: np.ndarray, node_of_obs: np.ndarray) -> Structure:
    n = W.shape[0]
    deg = np.asarray(W.sum(axis=1)).ravel()
    R = sp.csr_matrix(sp.diags(deg) - W)
    lam = jnp.asarray(np.clip(np.linalg.eigvalsh(R.toarray()), 0.0, None))   # D − W is PSD
    coefs = (lambda th: jnp.exp(th[0]), lambda th: jnp.exp(th[0] + th[1]))
    constraints = np.ones((1, n)) if constr else np.zeros((0, n))
    return Structure(n, (R, sp.identity(n, format="csr")), coefs, 0, constraints, values, node_of_obs,
                     logdet=lambda th: n * th[0] + jnp.sum(jnp.log(lam + jnp.exp(th[1]))), logdet_star=0.0)


def build(term: TermInput) -> Structure:
    if term.args.get("graph") is None:
        raise ModelError(f"f({term.name}, model = \"besagproper\") needs a graph", span=term.describe("model"),
                         hint="add graph = <adjacency matrix, edge list or R-INLA graph file>")
    W = as_adjacency(term.args["graph"], f"of f({term.name})")
    values, node_of_obs = graph_nodes(term, W.shape[0])
    return besagproper_structure(W, constr=bool(term.args.get("constr", False)), values=values,
                                 node_of_obs=node_of_obs)


LATENT.register("besagproper")(LatentModel("besagproper", HYPERS, build, ("graph",), doc=__doc__))
