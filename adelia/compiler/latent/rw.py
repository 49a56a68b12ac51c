"""Random walks ``rw1`` and ``rw2`` on equally spaced values, optionally ``cyclic``.

Q = τ DᵀD with D the first/second difference operator (Rue & Held 2005, §3.3; R-INLA
``inla.doc("rw1")``, ``inla.doc("rw2")``). Rank deficiency: 1 (rw1, cyclic rw2... cyclic rw1),
2 for rw2 (constant and linear trend). R-INLA default ``constr = TRUE`` imposes Σx = 0 only,
so rw2's linear trend stays improper. Default prior log τ ~ loggamma(1, 5e-5).
"""

import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, TermInput, precision_hyper, single_precision_structure
from adelia.compiler.latent.indexing import nodes_from_values
from adelia.errors import ModelError


def difference_matrix(n: int, order: int, cyclic: bool) -> sp.csr_matrix:
    """Rows of the order-th difference operator (n rows when cyclic, n - order otherwise)."""
    stencil = {1: [-1.0, 1.0], 2: [1.0, -2.0, 1.0]}[order]
    rows = n if cyclic else n - order
    D = sp.lil_matrix((rows, n))
    for i in range(rows):
        for k, c in enumerate(stencil):
            D[i, (i + k) % n] += c
    return D.tocsr()


def _build(order: int):
    def build(term: TermInput):
        values, node_of_obs = nodes_from_values(term)
        n = len(values)
        cyclic = bool(term.args.get("cyclic", False))
        if n < order + 2:
            raise ModelError(f"rw{order} needs at least {order + 2} distinct index values, f({term.name}) has {n}")
        if np.issubdtype(np.asarray(values).dtype, np.number):
            steps = np.diff(np.asarray(values, dtype=float))
            if not np.allclose(steps, steps[0], rtol=1e-8):
                raise ModelError(f"the values of f({term.name}, model = \"rw{order}\") are not equally spaced",
                                 hint="use an integer index 1..n (unequal spacing is not supported yet)")
        D = difference_matrix(n, order, cyclic)
        K = (D.T @ D).tocsr()
        rank_def = 1 if cyclic else order
        # null space: constants (and linear trend for non-cyclic rw2)
        basis = [np.ones(n)]
        if order == 2 and not cyclic:
            t = np.arange(n, dtype=float)
            basis.append(t - t.mean())
        null_basis = np.column_stack(basis)
        constr = np.ones((1, n)) if term.args.get("constr", True) else np.zeros((0, n))
        return single_precision_structure(K, rank_def=rank_def, constraints=constr, values=values,
                                          node_of_obs=node_of_obs,
                                          scale_model=bool(term.args.get("scale.model", False)),
                                          null_basis=null_basis)

    return build


LATENT.register("rw1")(LatentModel("rw1", (precision_hyper(),), _build(1), ("cyclic",), doc=__doc__))
LATENT.register("rw2")(LatentModel("rw2", (precision_hyper(),), _build(2), ("cyclic",), doc=__doc__))
