"""``bym2``: the reparameterised Besag–York–Mollié model (Riebler, Sørbye, Simpson & Rue 2016;
R-INLA ``inla.doc("bym2")``).

The total area effect is

    x = τ^{−½} (√(1 − φ) v + √φ u*),     v ~ N(0, I),  u* ~ scaled ICAR (generalised variance 1),

with τ the precision of x and φ ∈ (0, 1) the fraction of its variance that is spatially
structured. The latent vector holds (x, u*), length 2n; only x enters the linear predictor. With
R the scaled Besag structure matrix, the joint precision is (R-INLA ``Qfunc_bym2``)

    Q = [  τ/(1−φ) I          −√(φτ)/(1−φ) I  ]
        [ −√(φτ)/(1−φ) I      φ/(1−φ) I + R   ],

so log|Q|* = n log(τ/(1−φ)) + log|R|*. θ = (log τ, logit φ). Defaults: τ ~ pc.prec(1, 0.01),
initial 4; φ ~ pc(0.5, 0.5) (P(φ < 0.5) = 0.5; the PC prior with base model φ = 0, a function of
the eigenvalues of R's generalised inverse), initial −3. The model is always scaled
(``scale.model = FALSE`` is an error, as in R-INLA), per connected component; islands get
u*_i ~ N(0, 1). ``constr = TRUE`` (default) puts Σ u* = 0 on each component with two or more nodes.

Normalising constant: R-INLA counts only the n-dimensional block x | u* in the prior's
normaliser, −n/2 log 2π + n/2 log(τ/(1−φ)) (inla.c, case F_BYM2), and no term for u*. Structure
gives the runtime ½log|Q|* − (2n − r)/2 log 2π, so ``logdet_star`` is set to (n − r) log 2π to
reproduce R-INLA's marginal likelihood exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.graphs import as_adjacency, per_graph
from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.latent.besag import besag_structure
from adelia.compiler.latent.indexing import graph_nodes
from adelia.compiler.likelihoods import HyperSpec
from adelia.compiler.priors import LOG_PRECISION, LOGIT_MIXING
from adelia.errors import ModelError

HYPERS = (
    HyperSpec("prec", "Precision for {name}", "Log precision for {name}", ("pc.prec", (1.0, 0.01)), 4.0,
              LOG_PRECISION, jnp.exp),
    HyperSpec("phi", "Phi for {name}", "Logit phi for {name}", ("pc", (0.5, 0.5)), -3.0,
              LOGIT_MIXING, jax.nn.sigmoid),
)


@dataclass(frozen=True)
class BYM2Structure(Structure):
    """A :class:`Structure` that also carries what its priors need (``prior_context``)."""

    prior_context: dict = field(default_factory=dict)


def mixing_eigenvalues(R: np.ndarray, rank_def: int) -> np.ndarray:
    """Eigenvalues γ_j of the generalised inverse of the scaled structure R: 1/λ_j, and 0 for the
    ``rank_def`` null directions (what the KLD of the φ prior sums over). Every eigenvalue is
    needed, so R is made dense here (R-INLA computes the same spectrum)."""
    lam = np.linalg.eigvalsh(R.toarray() if sp.issparse(R) else R)
    order = np.argsort(lam)
    lam = lam[order]
    gamma = np.zeros_like(lam)
    gamma[rank_def:] = 1.0 / lam[rank_def:]
    return gamma


def _coefs():
    # θ = (log τ, logit φ): 1/(1−φ) = 1 + e^{θ₂}, φ/(1−φ) = e^{θ₂}, √(φτ)/(1−φ) = e^{(θ₁+θ₂)/2} √(1 + e^{θ₂})
    return (
        lambda th: jnp.exp(th[0]) * (1.0 + jnp.exp(th[1])),
        lambda th: -jnp.exp(0.5 * (th[0] + th[1]) + 0.5 * jax.nn.softplus(th[1])),
        lambda th: jnp.exp(th[1]),
        lambda th: jnp.ones((), dtype=jnp.result_type(th)),
    )


def bym2_structure(W: sp.csr_matrix, *, constr: bool, values: np.ndarray, node_of_obs: np.ndarray) -> BYM2Structure:
    n = W.shape[0]
    R, rank_def, rows = besag_structure(W, scale_model=True)     # scaled per component, islands = 1
    I = sp.identity(n, format="csr")
    Z = sp.csr_matrix((n, n))
    matrices = (
        sp.bmat([[I, Z], [Z, Z]], format="csr"),
        sp.bmat([[Z, I], [I, Z]], format="csr"),
        sp.bmat([[Z, Z], [Z, I]], format="csr"),
        sp.bmat([[Z, Z], [Z, sp.csr_matrix(R)]], format="csr"),
    )
    constraints = np.zeros((0, 2 * n))
    if constr and len(rows):
        constraints = np.concatenate([np.zeros_like(rows), rows], axis=1)
    gamma = per_graph("bym2 mixing eigenvalues", W, lambda: mixing_eigenvalues(R, rank_def))
    return BYM2Structure(
        2 * n, matrices, _coefs(), rank_def, constraints, values, node_of_obs,
        logdet=lambda th: n * (th[0] + jax.nn.softplus(th[1])),
        logdet_star=(n - rank_def) * math.log(2 * math.pi),
        prior_context={"mixing_eigenvalues": gamma},
    )


def build(term: TermInput) -> BYM2Structure:
    if term.args.get("graph") is None:
        raise ModelError(f"f({term.name}, model = \"bym2\") needs a graph", span=term.describe("model"),
                         hint="add graph = <adjacency matrix, edge list or R-INLA graph file>")
    if term.args.get("scale.model", True) is False:
        raise ModelError("bym2 is always scaled: scale.model = FALSE is not allowed", span=term.describe("scale.model"),
                         hint="drop scale.model, or use model = \"bym\" for the unscaled parameterisation")
    W = as_adjacency(term.args["graph"], f"of f({term.name})")
    n = W.shape[0]
    values, node_of_obs = graph_nodes(term, n)
    all_values = np.arange(values[0], values[0] + 2 * n)       # R-INLA: ID 1..2n (x, then u*)
    return bym2_structure(W, constr=bool(term.args.get("constr", True)), values=all_values,
                          node_of_obs=node_of_obs)


LATENT.register("bym2")(LatentModel("bym2", HYPERS, build, ("graph",), doc=__doc__))
