"""Posterior-predictive draws y_rep ~ p(y | η, θ) for each likelihood family.

A family that provides its own sampler (``Family.sample(key, eta, theta, extra)``) is used
first; for the classic families this module holds the draws written with numpyro distributions,
keyed by family name, with R-INLA's default links:

* gaussian: y ~ N(η, 1/(τ·scale)), θ = log τ;
* poisson: y ~ Poisson(E·exp(η));
* binomial: y ~ Binomial(Ntrials, logit⁻¹(η)).

A family with neither raises :class:`adelia.errors.ModelError` naming it.
"""

from __future__ import annotations

__all__ = ["sample_response", "SAMPLERS"]

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from adelia.compiler.families.base import dist
from adelia.errors import DataError, ModelError


def _gaussian(key, eta, theta, extra):
    sd = 1.0 / jnp.sqrt(jnp.exp(theta[..., 0]) * extra.get("scale", 1.0))
    return dist.Normal(eta, sd).sample(key)


def _poisson(key, eta, theta, extra):
    return dist.Poisson(extra.get("E", 1.0) * jnp.exp(eta)).sample(key)


def _binomial(key, eta, theta, extra):
    return dist.BinomialLogits(eta, total_count=extra["Ntrials"]).sample(key)


#: family name -> (key, η (S, n), θ_family (S, 1, k), extra {name: (n,)}) -> y (S, n)
SAMPLERS: dict[str, Callable] = {"gaussian": _gaussian, "normal": _gaussian, "poisson": _poisson,
                                 "binomial": _binomial}

#: per-observation arguments a family's draws cannot do without
_REQUIRED = {"binomial": ("Ntrials",)}


def sample_response(family, eta: np.ndarray, theta_family: np.ndarray, extra: Mapping[str, np.ndarray],
                    seed: int = 0) -> np.ndarray:
    """One draw of y per element of ``eta`` (S, n), with the family's θ per draw (S, k) and the
    per-observation arguments (each (n,)). Missing arguments the draw needs raise a DataError."""
    name = family.name
    for arg in _REQUIRED.get(name, ()):
        if arg not in extra:
            raise DataError(f"posterior-predictive draws of the {name} family need {arg}",
                            hint=f"give {arg} for these rows")
    for arg, values in extra.items():
        bad = np.flatnonzero(~np.isfinite(np.asarray(values, float)))
        if bad.size:
            raise DataError(f"{arg} is missing for rows {bad[:5].tolist()}, which posterior-predictive draws need",
                            hint=f"give {arg} for every row to predict")
    key = jax.random.PRNGKey(int(seed))
    eta = jnp.asarray(eta, float)
    theta = jnp.asarray(theta_family, float)[:, None, :]
    ex = {k: jnp.asarray(v, float) for k, v in extra.items()}
    own = getattr(family, "sample", None)
    if own is not None:               # the family's own sampler knows its link
        try:
            keys = jax.random.split(key, eta.shape[0])      # one draw (row of η) per θ
            return np.asarray(jax.vmap(lambda k, e, t: own(k, e, t, ex))(keys, eta, theta[:, 0, :]), dtype=float)
        except NotImplementedError:
            pass
    fn = SAMPLERS.get(name)
    if fn is None:
        raise ModelError(f"no posterior-predictive sampler for the {name} family",
                         hint=f"families with one: {', '.join(sorted(SAMPLERS))}")
    return np.asarray(fn(key, eta, theta, ex), dtype=float)
