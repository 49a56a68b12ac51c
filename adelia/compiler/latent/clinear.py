"""``clinear``: a linear effect β·w whose coefficient is a hyperparameter on a constrained range
(R-INLA ``inla.doc("clinear")``; ``rinla/R/models.R`` entry ``clinear``, hyperid 37001;
``inlaprog/src/inla-parse.c``, ``F_CLINEAR``).

η_i += β(θ) w_i with w the index variable (times the f() weights), and

    β = θ                                        range = c(-Inf, Inf) (the default; or low = high)
    β = low + (high − low) e^θ / (1 + e^θ)       both ends finite
    β = low + e^θ                                high = Inf

θ has R-INLA's default prior normal(1, precision 10) and initial value 1; R-INLA's labels
"Beta for <name>" and "Beta_intern for <name>". R-INLA carries β·w as latent nodes with a tiny
artificial noise (precision e^14, the argument ``precision``); here the effect enters η exactly
and the component has no latent nodes, so there is no ``summary_random`` row for it: β is in the
hyperparameter summary, as in R-INLA. A missing w contributes 0, as for ``linear``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.likelihoods import HyperSpec
from adelia.errors import DataError, ModelError

#: the scale name priors check a hyperparameter against: a real-valued coefficient (as copy's β)
REAL = "real"


def _range(value) -> tuple[float, float] | None:
    """(low, high) from the ``range`` argument (absent: (-Inf, Inf)); None when it is not two
    numbers with low <= high (``build`` reports that, located)."""
    if value is None:
        return -math.inf, math.inf
    try:
        bounds = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        return None
    if bounds.shape != (2,) or np.isnan(bounds).any() or not bounds[0] <= bounds[1]:
        return None
    return float(bounds[0]), float(bounds[1])


def beta_map(low: float, high: float):
    """θ ↦ β for R-INLA's range (models.R ``from.theta`` of clinear)."""
    if low == high or (math.isinf(low) and math.isinf(high)):
        return lambda t: t
    if math.isfinite(low) and math.isfinite(high):
        return lambda t: low + (high - low) * jax.nn.sigmoid(t)
    return lambda t: low + jnp.exp(t)


def _hypers(args: dict | None) -> tuple[HyperSpec, ...]:
    low, high = _range((args or {}).get("range")) or (-math.inf, math.inf)
    return (HyperSpec("beta", "Beta for {name}", "Beta_intern for {name}", ("normal", (1.0, 10.0)), 1.0, REAL,
                      beta_map(low, high)),)


def build(term: TermInput) -> Structure:
    bounds = _range(term.args.get("range"))
    if bounds is None:
        raise ModelError(f"range of f({term.name}, model = \"clinear\") must be c(low, high) with low <= high",
                         span=term.describe("range"), hint="e.g. range = c(0, 1) or c(0, Inf)")
    low, high = bounds
    if math.isinf(low) and not math.isinf(high):
        raise ModelError(f"range = c(-Inf, {high:g}) of f({term.name}) is not supported (nor by R-INLA)",
                         span=term.describe("range"), hint="use c(low, Inf), c(low, high) or c(-Inf, Inf)")
    if term.args.get("constr"):
        raise ModelError(f"constr = TRUE on f({term.name}, model = \"clinear\") would fix β·w at 0",
                         span=term.describe("constr"))
    try:
        w = np.asarray(term.index, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"the covariate of f({term.name}, model = \"clinear\") must be numeric") from None
    w = np.where(np.isnan(w), 0.0, w)
    return Structure(0, (), (), 0, np.zeros((0, 0)), np.zeros(0), np.full(len(w), -1, dtype=np.int64), covariate=w)


LATENT.register("clinear")(LatentModel("clinear", _hypers, build, ("range", "precision"), doc=__doc__,
                                       hypers_note="one; its map to β follows range"))
