"""What a likelihood family is: its hyperparameters, link, log-density, data checks, moments, sampler.

``Family.loglik(y, η, θ, extra)`` returns the vector of log p(y_i | η_i, θ) with every normalising
constant (so the marginal likelihood is comparable with R-INLA's), written with jax.numpy so that
derivatives in η come from AD (METHOD.md §2.3). A family is defined once for every link it accepts:
``logpdf(y, η, θ, extra, link)`` receives the chosen :class:`Link`; ``Family.with_link(name)``
returns the family bound to another link (R-INLA ``control.family = list(link = ...)``).

Runtime contract (adelia/runtime/laplace.py): rows without an observation reach ``loglik`` with
y = 0 and are masked afterwards, and per-observation arguments of another family's rows are 1, so a
log-density must stay finite at y = 0 even where 0 is outside its support (families with y > 0
substitute an in-support value there; the data checks make sure no observed row is outside it).
"""

from __future__ import annotations

__all__ = ["HyperSpec", "Family", "Link", "LINKS", "Issue", "FAMILIES", "logit_hyper", "bad_rows", "scaled_precision"]

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr

from adelia.compiler.priors import LOG_PRECISION, LOGIT_PROBABILITY
from adelia.errors import ModelError
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


def logit_hyper(short: str, label: str, internal_label: str, prior, initial: float) -> HyperSpec:
    """A probability p = e^θ/(1 + e^θ) on R-INLA's logit internal scale."""
    return HyperSpec(short, label, internal_label, prior, initial, LOGIT_PROBABILITY, jax.nn.sigmoid)


# ---------------------------------------------------------------------------------------------
# links: η -> the family's mean parameter (R-INLA inla.doc("links"))
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Link:
    """``inverse(η)`` is the mean parameter; for probability links ``log_p``/``log_1mp`` give
    log p and log(1 − p) without cancellation."""

    name: str
    inverse: Callable
    log_p: Callable | None = None
    log_1mp: Callable | None = None


def _log1mexp(x):
    """log(1 − e^x) for x < 0, accurate at both ends (Mächler 2012)."""
    return jnp.where(x > -math.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


LINKS: dict[str, Link] = {
    "identity": Link("identity", lambda eta: eta),
    "log": Link("log", jnp.exp),
    # p = e^η / (1 + e^η)
    "logit": Link("logit", jax.nn.sigmoid, lambda eta: -jax.nn.softplus(-eta), lambda eta: -jax.nn.softplus(eta)),
    # p = Φ(η)
    "probit": Link("probit", ndtr, log_ndtr, lambda eta: log_ndtr(-eta)),
    # p = 1 − exp(−e^η)
    "cloglog": Link("cloglog", lambda eta: -jnp.expm1(-jnp.exp(eta)), lambda eta: _log1mexp(-jnp.exp(eta)),
                    lambda eta: -jnp.exp(eta)),
}


@dataclass(frozen=True, slots=True)
class Issue:
    """A data problem: what is wrong, which argument ("response", "Ntrials", "E", "scale",
    "event") and which rows (positions within the rows handed to ``check``)."""

    message: str
    argument: str
    rows: np.ndarray


class _LazyDistributions:
    """``numpyro.distributions``, imported on first use: only posterior-predictive draws need it,
    and importing numpyro cost every ``import adelia`` about 0.3 s."""

    def __getattr__(self, name: str):
        import numpyro.distributions

        return getattr(numpyro.distributions, name)


#: the families' samplers write ``dist.Gamma(...)`` as with ``import numpyro.distributions as dist``
dist = _LazyDistributions()


def scaled_precision(theta, extra):
    """exp(θ_0) · scale: the per-row precision (or shape, or φ) of the families whose first
    hyperparameter is a log precision and that take R-INLA's ``scale`` argument."""
    return jnp.exp(theta[0]) * extra.get("scale", 1.0)


def bad_rows(mask, message: str, argument: str = "response") -> Issue | None:
    """An :class:`Issue` for the rows where ``mask`` holds, or None."""
    rows = np.flatnonzero(np.asarray(mask))
    return Issue(message, argument, rows) if rows.size else None


@dataclass(frozen=True, slots=True)
class Family:
    """One likelihood family.

    ``logpdf(y, η, θ, extra, link) -> (m,)``; ``moments(μ, θ, extra) -> (E y, Var y)`` with μ the
    link's mean parameter; ``draw(key, μ, θ, extra) -> y`` a posterior-predictive draw;
    ``check(y, extra) -> Issue | None`` on the observed rows of this family.
    """

    name: str
    hypers: tuple[HyperSpec, ...]
    logpdf: Callable
    extras: tuple[str, ...] = ()           # per-observation arguments it takes (E, Ntrials, scale, event)
    check: Callable = field(default=lambda y, extra: None)
    links: tuple[str, ...] = ("identity",)  # the first is R-INLA's default
    moments: Callable | None = None
    draw: Callable | None = None
    requires: tuple[str, ...] = ()          # extras that must be given (binomial: Ntrials)
    survival: bool = False                  # takes an inla.surv(time, event) response
    link: str = ""                          # the chosen link; "" = the default
    #: log p(y | η) is quadratic in η under the identity link (the inner Newton iteration then
    #: needs a single step)
    quadratic: bool = False

    @property
    def link_name(self) -> str:
        return self.link or self.links[0]

    @property
    def key(self) -> str:
        """Name plus a non-default link: what tells two compiled likelihoods apart."""
        return self.name if self.link_name == self.links[0] else f"{self.name}[link={self.link_name}]"

    @property
    def quadratic_in_eta(self) -> bool:
        return self.quadratic and self.link_name == "identity"

    @property
    def loglik(self) -> Callable:
        """(y, η, θ_family, extra) -> (m,) with the chosen link."""
        return functools.partial(self.logpdf, link=LINKS[self.link_name])

    @property
    def inverse_link(self) -> Callable:
        return LINKS[self.link_name].inverse

    def with_link(self, name: str) -> "Family":
        """This family with ``link = name`` (R-INLA ``control.family = list(link = name)``);
        "default" keeps the default."""
        name = str(name)
        if name == "default":
            return replace(self, link="")
        if name not in self.links:
            raise ModelError(f"the {self.name} family has no link '{name}'",
                             hint=f"supported links for {self.name}: {', '.join(self.links)} "
                                  f"(default {self.links[0]})")
        return replace(self, link=name)

    def mean_variance(self, eta, theta, extra):
        """(E y, Var y) given η, the family's θ and per-observation arguments."""
        if self.moments is None:
            raise NotImplementedError(f"the {self.name} family has no moment map")
        return self.moments(self.inverse_link(eta), theta, extra)

    def sample(self, key, eta, theta, extra):
        """One posterior-predictive draw of y per element of η."""
        if self.draw is None:
            raise NotImplementedError(f"the {self.name} family has no sampler")
        return self.draw(key, self.inverse_link(eta), theta, extra)


FAMILIES: Registry[Family] = Registry("likelihood family")


def register(family: Family, *aliases: str) -> Family:
    FAMILIES.register(family.name, *aliases)(family)
    return family
