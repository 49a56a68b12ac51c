"""R-INLA's first three families: gaussian, poisson, binomial.

* gaussian (inla.doc("gaussian")): y ~ N(η, 1/(τ s)), τ = e^θ, identity link.
* poisson (inla.doc("poisson")): y ~ Poisson(E·exp(η)), log link.
* binomial (inla.doc("binomial")): y ~ Binomial(Ntrials, p), p = link⁻¹(η) with logit (default),
  probit or cloglog.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from adelia.compiler.special import log_choose, log_factorial
from adelia.compiler.families.base import Family, HyperSpec, bad_rows, register, scaled_precision, dist


def check_counts(y, extra, *, positive_E: bool = False):
    """Non-negative integer counts; E > 0 where given."""
    issue = bad_rows((y < 0) | (y != np.round(y)), "counts must be non-negative integers")
    if issue is None and positive_E and "E" in extra:
        issue = bad_rows(np.asarray(extra["E"]) <= 0, "E (exposure) must be positive", "E")
    return issue


def check_ntrials(y, extra):
    """Counts with 0 ≤ y ≤ Ntrials, Ntrials a non-negative integer."""
    if (issue := check_counts(y, extra)) is not None:
        return issue
    n = np.broadcast_to(np.asarray(extra.get("Ntrials", 1.0), dtype=float), y.shape)
    return (bad_rows((n != np.round(n)) | (n < 0), "Ntrials must be non-negative integers", "Ntrials")
            or bad_rows(y > n, "the response exceeds Ntrials"))


def ntrials_int(extra):
    """Ntrials as integers, which numpyro's binomial samplers index with."""
    return jnp.round(jnp.asarray(extra.get("Ntrials", 1.0))).astype(int)


def check_positive_scale(y, extra):
    if "scale" in extra:
        return bad_rows(np.asarray(extra["scale"]) <= 0, "scale must be positive", "scale")
    return None


# ---- gaussian ----

def _gaussian_logpdf(y, eta, theta, extra, link):
    prec = scaled_precision(theta, extra)
    return 0.5 * (jnp.log(prec) - math.log(2 * math.pi)) - 0.5 * prec * (y - link.inverse(eta)) ** 2


register(Family(
    "gaussian",
    (HyperSpec("prec", "Precision for the Gaussian observations",
               "Log precision for the Gaussian observations", ("loggamma", (1.0, 5e-5)), 4.0),),
    _gaussian_logpdf, ("scale",), lambda y, extra: check_positive_scale(y, extra), ("identity",),
    quadratic=True,
    moments=lambda mu, theta, extra: (mu, 1.0 / (scaled_precision(theta, extra)) + 0 * mu),
    draw=lambda key, mu, theta, extra: dist.Normal(
        mu, 1.0 / jnp.sqrt(scaled_precision(theta, extra))).sample(key),
), "normal")


# ---- poisson ----

def poisson_log_mean(eta, extra, link):
    """log(E·μ) for a log-link count family."""
    return eta + jnp.log(extra.get("E", 1.0))


def _poisson_logpdf(y, eta, theta, extra, link):
    log_mu = poisson_log_mean(eta, extra, link)
    return y * log_mu - jnp.exp(log_mu) - log_factorial(y)


register(Family(
    "poisson", (), _poisson_logpdf, ("E",), lambda y, extra: check_counts(y, extra, positive_E=True), ("log",),
    moments=lambda mu, theta, extra: (extra.get("E", 1.0) * mu, extra.get("E", 1.0) * mu),
    draw=lambda key, mu, theta, extra: dist.Poisson(extra.get("E", 1.0) * mu).sample(key),
))


# ---- binomial ----

def _binomial_logpdf(y, eta, theta, extra, link):
    n = extra.get("Ntrials", 1.0)
    return log_choose(n, y) + y * link.log_p(eta) + (n - y) * link.log_1mp(eta)


register(Family(
    "binomial", (), _binomial_logpdf, ("Ntrials",), check_ntrials, ("logit", "probit", "cloglog"),
    moments=lambda p, theta, extra: (extra.get("Ntrials", 1.0) * p, extra.get("Ntrials", 1.0) * p * (1 - p)),
    draw=lambda key, p, theta, extra: dist.Binomial(ntrials_int(extra), probs=p).sample(key),
    requires=("Ntrials",),
))
