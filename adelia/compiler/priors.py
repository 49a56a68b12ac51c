"""Hyperpriors, written as log-densities on the internal θ scale (log-Jacobian included).

R-INLA states priors on the internal scale (log precision, transformed correlation); each prior
here declares the internal scales it is defined for (``scales``), e.g. ``pc.prec`` is a prior on a
precision and so applies to θ = log τ. References: R-INLA ``inla.doc("loggamma")``,
``inla.doc("pc.prec")``; Simpson et al. (2017) for PC priors.
"""

from __future__ import annotations

__all__ = ["Prior", "PRIORS", "make_prior"]

import math
from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
from jax.scipy.special import gammaln

from adelia.errors import ModelError, Span
from adelia.registry import Registry

LOG_PRECISION = "log_precision"


@dataclass(frozen=True, slots=True)
class Prior:
    """A prior on one internal hyperparameter θ: ``logpdf(θ)`` includes the Jacobian."""

    name: str
    params: tuple[float, ...]
    logpdf: Callable = None  # type: ignore[assignment]
    scales: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.name}({', '.join(f'{p:g}' for p in self.params)})"


@dataclass(frozen=True, slots=True)
class PriorDef:
    build: Callable[..., Prior]
    nparams: int
    doc: str


PRIORS: Registry[PriorDef] = Registry("prior")


def _def(name: str, *aliases: str, nparams: int, doc: str):
    def deco(fn):
        PRIORS.register(name, *aliases)(PriorDef(fn, nparams, doc))
        return fn

    return deco


@_def("loggamma", nparams=2, doc="τ ~ Gamma(shape a, rate b), as a density of θ = log τ")
def _loggamma(a: float, b: float) -> Prior:
    if a <= 0 or b <= 0:
        raise ValueError("loggamma(a, b) needs a > 0 and b > 0")
    const = a * math.log(b) - math.lgamma(a)
    return Prior("loggamma", (a, b), lambda t: const + a * t - b * jnp.exp(t), (LOG_PRECISION,))


@_def("pc.prec", "pc_prec", nparams=2, doc="PC prior on a precision: P(σ > u) = α, σ = τ^(-1/2)")
def _pc_prec(u: float, alpha: float) -> Prior:
    if u <= 0 or not 0 < alpha < 1:
        raise ValueError("pc.prec(u, alpha) needs u > 0 and 0 < alpha < 1")
    lam = -math.log(alpha) / u
    # π(τ) = λ/2 τ^(-3/2) exp(-λ τ^(-1/2)); with θ = log τ the Jacobian adds θ.
    return Prior("pc.prec", (u, alpha), lambda t: math.log(lam / 2) - t / 2 - lam * jnp.exp(-t / 2),
                 (LOG_PRECISION,))


@_def("normal", "gaussian", nparams=2, doc="θ ~ Normal(mean, precision)")
def _normal(mean: float, prec: float) -> Prior:
    if prec <= 0:
        raise ValueError("normal(mean, precision) needs precision > 0")
    const = 0.5 * math.log(prec / (2 * math.pi))
    return Prior("normal", (mean, prec), lambda t: const - 0.5 * prec * (t - mean) ** 2, ("*",))


@_def("flat", nparams=0, doc="improper uniform prior on θ")
def _flat() -> Prior:
    return Prior("flat", (), lambda t: jnp.zeros_like(t), ("*",))


def make_prior(name: str, params, scale: str, *, source: str | None = None, span: Span | None = None,
               filename: str = "<formula>") -> Prior:
    """Build a registered prior, checking its parameters and that it fits the hyperparameter's scale."""
    pdef = PRIORS.get(name, source=source, span=span, filename=filename)
    params = tuple(float(p) for p in (params or ()))
    if len(params) != pdef.nparams:
        raise ModelError(f"prior '{name}' takes {pdef.nparams} parameter(s), got {len(params)}",
                         source=source, span=span, filename=filename, hint=f"{name}: {pdef.doc}")
    try:
        prior = pdef.build(*params)
    except ValueError as err:
        raise ModelError(f"invalid parameters for prior '{name}': {err}", source=source, span=span,
                         filename=filename) from None
    if "*" not in prior.scales and scale not in prior.scales:
        raise ModelError(f"prior '{name}' is not defined for a {scale.replace('_', ' ')} hyperparameter",
                         source=source, span=span, filename=filename)
    return prior
