"""``bym``: the Besag–York–Mollié model, besag + iid with two precisions (Besag, York & Mollié
1991; R-INLA ``inla.doc("bym")``, ``rinla/R/models.R`` entry ``bym``, GMRFLib ``Qfunc_bym``).

The area effect is v + u with v ~ N(0, τ₁⁻¹ I) (unstructured) and u ~ besag(τ₂) on the graph.
As in R-INLA the latent vector has length 2n, x = (v + u, u): the first n nodes are the total
effect that enters the linear predictor, the next n the spatial part (``summary_random`` rows
1..2n, R-INLA's layout). With R = D − W the Besag structure (islands: 1 on the diagonal),

    Q = [  τ₁ I      −τ₁ I      ]
        [ −τ₁ I    τ₁ I + τ₂ R  ],

so log|Q|* = n log τ₁ + (n − r) log τ₂ + log|R|*, r the number of connected components with two
or more nodes. θ = (log τ₁, log τ₂); both priors loggamma(1, 0.0005), initial 4. Labels as
R-INLA prints them: "Precision for <name> (iid component)", "Precision for <name> (spatial
component)"; internally "Log precision for <name> (idd component)" (R-INLA's own spelling,
inla-parse.c) and "Log precision for <name> (spatial component)".

``constr = TRUE`` (default) puts Σu = 0 on each connected component of two or more nodes (on the
second half, R-INLA's ``aug.constr = 2``); ``scale.model = TRUE`` (default FALSE) scales R per
component to generalised variance 1 (Sørbye & Rue 2014).

Normalising constant: R-INLA adds −½ log 2π · (n/2 + (n − r)/2) + n/2 log τ₁ + (n − r)/2 log τ₂
(inla.c, case F_BYM) and leaves out ½ log|R|* (documented in inla.doc("bym")). The runtime
counts ½ log|Q|* − (2n − r)/2 log 2π + ½ ``logdet_star``, so ``logdet_star`` = (2n − r)/2 · log 2π
reproduces R-INLA's marginal likelihood.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.graphs import as_adjacency
from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.latent.besag import besag_structure
from adelia.compiler.latent.indexing import graph_nodes
from adelia.compiler.likelihoods import HyperSpec
from adelia.errors import ModelError

HYPERS = (
    HyperSpec("prec.unstruct", "Precision for {name} (iid component)", "Log precision for {name} (idd component)",
              ("loggamma", (1.0, 0.0005)), 4.0),
    HyperSpec("prec.spatial", "Precision for {name} (spatial component)",
              "Log precision for {name} (spatial component)", ("loggamma", (1.0, 0.0005)), 4.0),
)


def bym_structure(W: sp.csr_matrix, *, constr: bool, scale_model: bool, values: np.ndarray,
                  node_of_obs: np.ndarray) -> Structure:
    n = W.shape[0]
    R, rank_def, rows = besag_structure(W, scale_model)
    I = sp.identity(n, format="csr")
    Z = sp.csr_matrix((n, n))
    matrices = (sp.bmat([[I, -I], [-I, I]], format="csr"),       # τ₁ (x − u)ᵀ(x − u)
                sp.bmat([[Z, Z], [Z, sp.csr_matrix(R)]], format="csr"))
    coefs = (lambda th: jnp.exp(th[0]), lambda th: jnp.exp(th[1]))
    constraints = np.zeros((0, 2 * n))
    if constr and len(rows):
        constraints = np.concatenate([np.zeros_like(rows), rows], axis=1)
    return Structure(2 * n, matrices, coefs, rank_def, constraints, values, node_of_obs,
                     logdet=lambda th: n * th[0] + (n - rank_def) * th[1],
                     logdet_star=(2 * n - rank_def) / 2.0 * math.log(2 * math.pi))


def build(term: TermInput) -> Structure:
    if term.args.get("graph") is None:
        raise ModelError(f"f({term.name}, model = \"bym\") needs a graph", span=term.describe("model"),
                         hint="add graph = <adjacency matrix, edge list or R-INLA graph file>")
    W = as_adjacency(term.args["graph"], f"of f({term.name})")
    n = W.shape[0]
    values, node_of_obs = graph_nodes(term, n)
    all_values = np.arange(values[0], values[0] + 2 * n)       # R-INLA: ID 1..2n (v + u, then u)
    return bym_structure(W, constr=bool(term.args.get("constr", True)),
                         scale_model=bool(term.args.get("scale.model", False)),
                         values=all_values, node_of_obs=node_of_obs)


LATENT.register("bym")(LatentModel("bym", HYPERS, build, ("graph",), doc=__doc__))
