"""``iid``: independent Gaussian effects, Q = τ I (R-INLA ``inla.doc("iid")``).

Default prior: log τ ~ loggamma(1, 5e-5), initial log τ = 4.
"""

import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, TermInput, precision_hyper, single_precision_structure
from adelia.compiler.latent.indexing import nodes_from_values


def build(term: TermInput):
    values, node_of_obs = nodes_from_values(term)
    n = len(values)
    constr = np.ones((1, n)) if term.args.get("constr", False) else np.zeros((0, n))
    return single_precision_structure(sp.identity(n), rank_def=0, constraints=constr,
                                      values=values, node_of_obs=node_of_obs)


LATENT.register("iid")(LatentModel("iid", (precision_hyper(),), build, doc=__doc__))
