"""``seasonal``: intrinsic seasonal variation with period m = ``season.length``
(Rue & Held 2005, §3.4.3; R-INLA ``inla.doc("seasonal")``).

Every sum of m consecutive values is N(0, 1/τ): Q = τ SᵀS with S the (n − m + 1) × n matrix of
m consecutive ones. Its null space (period-m sequences summing to zero over a period) has
dimension m − 1, so the rank deficiency is m − 1; a constant is not in it, and R-INLA's
default is ``constr = FALSE``. Default prior log τ ~ loggamma(1, 5e-5).
"""

import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, TermInput, precision_hyper, single_precision_structure
from adelia.compiler.latent.indexing import nodes_from_values
from adelia.errors import ModelError


def seasonal_matrix(n: int, m: int) -> sp.csr_matrix:
    rows = n - m + 1
    r = np.repeat(np.arange(rows), m)
    c = (np.arange(rows)[:, None] + np.arange(m)[None, :]).ravel()
    S = sp.csr_matrix((np.ones(rows * m), (r, c)), shape=(rows, n))
    return (S.T @ S).tocsr()


def build(term: TermInput):
    m = term.args.get("season.length")
    if m is None or float(m) != int(m) or int(m) < 2:
        raise ModelError(f"f({term.name}, model = \"seasonal\") needs season.length = <integer ≥ 2>",
                         span=term.describe("season.length") or term.describe("model"))
    m = int(m)
    values, node_of_obs = nodes_from_values(term)
    n = len(values)
    if n <= m:
        raise ModelError(f"seasonal with season.length = {m} needs more than {m} index values, "
                         f"f({term.name}) has {n}")
    constr = np.ones((1, n)) if term.args.get("constr", False) else np.zeros((0, n))
    return single_precision_structure(seasonal_matrix(n, m), rank_def=m - 1, constraints=constr,
                                      values=values, node_of_obs=node_of_obs)


LATENT.register("seasonal")(LatentModel("seasonal", (precision_hyper(),), build, ("season.length",), doc=__doc__))
