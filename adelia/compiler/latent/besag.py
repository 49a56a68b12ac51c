"""``besag``: intrinsic CAR on a graph, Q = τ (D − W) (Besag, York & Mollié 1991; R-INLA
``inla.doc("besag")``).

x_i | x_{-i} ~ N(mean of the neighbours, 1/(τ n_i)). Rank deficiency = number of connected
components; R-INLA (``adjust.for.con.comp = TRUE``) puts a sum-to-zero constraint on each
component of size > 1 and, with ``scale.model``, scales each component to generalised variance 1.
Isolated nodes (islands) get an iid N(0, 1/τ) effect, as R-INLA does with adjust.for.con.comp.
Default prior log τ ~ loggamma(1, 5e-5).
"""

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from adelia.compiler.graphs import as_adjacency
from adelia.compiler.latent.base import (LATENT, LatentModel, TermInput, generalized_variance, precision_hyper,
                                         single_precision_structure)
from adelia.compiler.latent.indexing import graph_nodes
from adelia.errors import ModelError


def besag_structure(W: sp.csr_matrix, scale_model: bool):
    """(K, rank_def, per-component constraint rows) for adjacency W."""
    n = W.shape[0]
    ncomp, label = connected_components(W, directed=False)
    deg = np.asarray(W.sum(axis=1)).ravel()
    K = (sp.diags(deg) - W).toarray()
    rows, rank_def = [], 0
    for c in range(ncomp):
        members = np.flatnonzero(label == c)
        if len(members) == 1:                   # island: iid with precision τ
            K[members[0], members[0]] = 1.0
            continue
        rank_def += 1
        row = np.zeros(n)
        row[members] = 1.0
        rows.append(row)
        if scale_model:
            sub = K[np.ix_(members, members)]
            K[np.ix_(members, members)] = sub * generalized_variance(sub, np.ones((len(members), 1)))
    return K, rank_def, np.array(rows).reshape(-1, n)


def build(term: TermInput):
    if term.args.get("graph") is None:
        raise ModelError(f"f({term.name}, model = \"besag\") needs a graph", span=term.describe("model"),
                         hint="add graph = <adjacency matrix, edge list or R-INLA graph file>")
    W = as_adjacency(term.args["graph"], f"of f({term.name})")
    values, node_of_obs = graph_nodes(term, W.shape[0])
    K, rank_def, constr = besag_structure(W, bool(term.args.get("scale.model", False)))
    if not term.args.get("constr", True):
        constr = np.zeros((0, W.shape[0]))
    return single_precision_structure(sp.csr_matrix(K), rank_def=rank_def, constraints=constr,
                                      values=values, node_of_obs=node_of_obs)


LATENT.register("besag")(LatentModel("besag", (precision_hyper(),), build, ("graph",), doc=__doc__))
