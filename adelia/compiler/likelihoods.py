"""Likelihood families: pointwise log-densities of y given the linear predictor η.

Each family is a small frozen definition registered by name. ``loglik(y, eta, theta, extra)``
returns the vector of log p(y_i | η_i, θ) with all normalising constants (so the marginal
likelihood is comparable with R-INLA's), written with jax.numpy so that derivatives in η
come from AD (``vmap(grad)``, METHOD.md §2.3). R-INLA's default links: gaussian identity,
poisson log (mean E·exp(η)), binomial logit.
"""

from __future__ import annotations

__all__ = ["Family", "FAMILIES", "HyperSpec"]

import math
from dataclasses import dataclass, field
from typing import Callable

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from adelia.compiler.priors import LOG_PRECISION
from adelia.registry import Registry


@dataclass(frozen=True, slots=True)
class HyperSpec:
    """One hyperparameter: R-INLA names on both scales, default prior and initial internal value."""

    short: str                    # key in hyper = list(<short> = list(...))
    label: str                    # natural-scale name, "{name}" is replaced by the component name
    internal_label: str
    prior: tuple[str, tuple[float, ...]]
    initial: float
    scale: str = LOG_PRECISION
    to_natural: Callable = jnp.exp


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    hypers: tuple[HyperSpec, ...]
    loglik: Callable                       # (y, eta, theta_lik, extra) -> (m,)
    extras: tuple[str, ...] = ()           # per-observation arguments it takes (E, Ntrials, scale)
    check: Callable = field(default=lambda y, extra: None)   # returns an error string or None
    inverse_link: Callable = field(default=lambda eta: eta)


FAMILIES: Registry[Family] = Registry("likelihood family")


def _check_gaussian(y, extra):
    if "scale" in extra and np.any(np.asarray(extra["scale"]) <= 0):
        return "scale must be positive"
    return None


def _gaussian_loglik(y, eta, theta, extra):
    prec = jnp.exp(theta[0]) * extra.get("scale", 1.0)
    return 0.5 * (jnp.log(prec) - math.log(2 * math.pi)) - 0.5 * prec * (y - eta) ** 2


FAMILIES.register("gaussian", "normal")(Family(
    "gaussian",
    (HyperSpec("prec", "Precision for the Gaussian observations",
               "Log precision for the Gaussian observations", ("loggamma", (1.0, 5e-5)), 4.0),),
    _gaussian_loglik, ("scale",), _check_gaussian,
))


def _check_counts(y, extra):
    if np.any(y < 0) or np.any(y != np.round(y)):
        return "counts must be non-negative integers"
    return None


def _poisson_loglik(y, eta, theta, extra):
    E = extra.get("E", 1.0)
    log_mu = eta + jnp.log(E)
    return y * log_mu - jnp.exp(log_mu) - gammaln(y + 1.0)


def _check_poisson(y, extra):
    if (msg := _check_counts(y, extra)) is not None:
        return msg
    if "E" in extra and np.any(np.asarray(extra["E"]) <= 0):
        return "E (exposure) must be positive"
    return None


FAMILIES.register("poisson")(Family("poisson", (), _poisson_loglik, ("E",), _check_poisson, jnp.exp))


def _binomial_loglik(y, eta, theta, extra):
    n = extra.get("Ntrials", 1.0)
    log_choose = gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
    # y·η − n·log(1 + e^η), written stably
    return log_choose + y * eta - n * jnp.logaddexp(0.0, eta)


def _check_binomial(y, extra):
    if (msg := _check_counts(y, extra)) is not None:
        return msg
    n = np.asarray(extra.get("Ntrials", 1.0))
    if np.any(n != np.round(n)) or np.any(n < 0):
        return "Ntrials must be non-negative integers"
    if np.any(y > n):
        return "the response exceeds Ntrials"
    return None


FAMILIES.register("binomial")(Family(
    "binomial", (), _binomial_loglik, ("Ntrials",), _check_binomial, lambda eta: 1 / (1 + jnp.exp(-eta))))
