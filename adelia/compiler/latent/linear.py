"""``linear``: a fixed effect written through f() (R-INLA ``inla.doc("linear")``, ``rinla/R/models.R``
entry ``linear``).

η_i = β w_i with w the index variable (a covariate) and β ~ N(μ, 1/p), μ = ``mean.linear``,
p = ``prec.linear`` (R-INLA's defaults are control.fixed's: 0 and 0.001). No hyperparameter.
β is one latent node: Q = p (a fixed 1 × 1 precision), and the observation matrix gets the
column w (a missing w contributes 0, as in R-INLA). R-INLA reports β in ``summary.fixed``; here it
is the one-row ``summary_random_<name>``.

μ ≠ 0 is not supported: a latent component has a zero prior mean here (R-INLA adds μ through its
fixed-effect machinery); use a fixed effect with ``control_fixed = {"mean": μ}`` instead.
Prior normaliser: ½ log p − ½ log 2π, as R-INLA (inla.c, the ``linear_precision`` loop).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.errors import DataError, ModelError


def linear_structure(w: np.ndarray, prec: float) -> Structure:
    w = np.where(np.isnan(w), 0.0, w)
    return Structure(1, (sp.csr_matrix(np.ones((1, 1))),), (lambda th: jnp.asarray(prec, dtype=jnp.float64),), 0,
                     np.zeros((0, 1)), np.array([1]), np.full(len(w), -1, dtype=np.int64),
                     logdet=lambda th: jnp.zeros(()), logdet_star=math.log(prec),
                     projector=sp.csr_matrix(w[:, None]))


def build(term: TermInput) -> Structure:
    try:
        w = np.asarray(term.index, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"the covariate of f({term.name}, model = \"linear\") must be numeric") from None
    mean = float(term.args.get("mean.linear", 0.0) or 0.0)
    prec = float(term.args.get("prec.linear", 0.001))
    if mean != 0.0:
        raise ModelError(f"mean.linear = {mean:g} in f({term.name}) is not supported (latent effects have mean 0 here)",
                         span=term.describe("mean.linear"),
                         hint=f"write {term.name} as a fixed effect and set control_fixed = {{\"mean\": {mean:g}}}")
    if not prec > 0 or not math.isfinite(prec):
        raise ModelError(f"prec.linear of f({term.name}) must be a positive number, got {prec:g}",
                         span=term.describe("prec.linear"), hint="R-INLA's default is 0.001")
    if term.args.get("constr"):
        raise ModelError(f"constr = TRUE on f({term.name}, model = \"linear\") would fix β at 0",
                         span=term.describe("constr"))
    return linear_structure(w, prec)


LATENT.register("linear")(LatentModel("linear", (), build, ("mean.linear", "prec.linear"), doc=__doc__))
