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

from adelia.compiler.graphs import as_adjacency, per_graph
from adelia.compiler.latent.base import LATENT, LatentModel, TermInput, precision_hyper, single_precision_structure
from adelia.compiler.latent.indexing import graph_nodes
from adelia.errors import ModelError
from adelia.runtime import sparse


#: grounded Laplacians up to this size are inverted densely (a few ms; the sparse factor's set-up
#: costs more there)
_DENSE_GROUNDED_MAX = 400


def besag_structure(W: sp.csr_matrix, scale_model: bool):
    """(K as CSR, rank_def, per-component constraint rows) for adjacency W; sparse throughout
    (computed once per graph in a process, :func:`~adelia.compiler.graphs.per_graph`)."""
    return per_graph(f"besag, scale.model = {bool(scale_model)}", W, lambda: _besag_structure(W, scale_model))


def _besag_structure(W: sp.csr_matrix, scale_model: bool):
    from scipy.sparse.csgraph import connected_components   # 50 ms of `import adelia`, for graph models only

    n = W.shape[0]
    ncomp, label = connected_components(W, directed=False)
    sizes = np.bincount(label, minlength=ncomp)
    island = sizes[label] == 1                  # an island: iid with precision τ (its row of W is empty)
    deg = np.asarray(W.sum(axis=1)).ravel()
    K = (sp.diags(np.where(island, 1.0, deg)) - W).tocsr()
    rows = []
    scale = np.ones(n)
    for c in np.flatnonzero(sizes > 1):
        members = np.flatnonzero(label == c)
        row = np.zeros(n)
        row[members] = 1.0
        rows.append(row)
        if scale_model:
            scale[members] = laplacian_generalized_variance(K[members][:, members])
    if scale_model:
        K = (sp.diags(scale) @ K).tocsr()       # one factor per component, which K does not couple
    return K, len(rows), np.array(rows).reshape(-1, n)


def laplacian_generalized_variance(K: sp.spmatrix) -> float:
    """Geometric mean of diag(K⁺) for the Laplacian K of a connected graph (null space span(1)):
    the ``scale.model`` factor (Sørbye & Rue 2014), exactly and without a dense n × n matrix.

    Grounding node 0 leaves K_g = K[1:, 1:] positive definite; with G the n × n matrix holding
    K_g⁻¹ in rows and columns 1.. and P = I − 11ᵀ/n, K⁺ = P G P (P G P is symmetric, vanishes on
    1, and K·PGP = P on 1⊥ since K G = I − 1e₀ᵀ there), so
    diag(K⁺)_i = G_ii − 2 (G1)_i / n + 1ᵀG1 / n²: the diagonal of K_g⁻¹ (a selected inversion of
    its sparse Cholesky factor) and one solve. R-INLA's ``inla.scale.model`` instead inverts
    K + ε·max(diag K)·I under the constraint, exact up to O(ε/λ₂).
    """
    n = K.shape[0]
    Kg = sp.csc_matrix(K)[1:, 1:]
    if n <= _DENSE_GROUNDED_MAX or not sparse.available():
        G = np.linalg.inv(Kg.toarray())
        g_diag, g_one = np.diag(G), G.sum(axis=1)
    else:
        F = sparse.factor(sparse.analyse(Kg), Kg)
        g_diag, g_one = F.selinv().diagonal(), F.solve(np.ones(n - 1))
    total = g_one.sum()
    diag = np.concatenate([[total / n ** 2], g_diag - 2.0 * g_one / n + total / n ** 2])
    return float(np.exp(np.mean(np.log(diag))))


def build(term: TermInput):
    if term.args.get("graph") is None:
        raise ModelError(f"f({term.name}, model = \"besag\") needs a graph", span=term.describe("model"),
                         hint="add graph = <adjacency matrix, edge list or R-INLA graph file>")
    W = as_adjacency(term.args["graph"], f"of f({term.name})")
    values, node_of_obs = graph_nodes(term, W.shape[0])
    K, rank_def, constr = besag_structure(W, bool(term.args.get("scale.model", False)))
    if not term.args.get("constr", True):
        constr = np.zeros((0, W.shape[0]))
    return single_precision_structure(K, rank_def=rank_def, constraints=constr,
                                      values=values, node_of_obs=node_of_obs)


LATENT.register("besag")(LatentModel("besag", (precision_hyper(),), build, ("graph",), doc=__doc__))
