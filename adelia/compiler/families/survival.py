"""Survival times: exponential, weibull, lognormal and their right-censored forms.

The ``...surv`` families take the response ``inla.surv(time, event)`` (or ``surv(time, event)``):
event 1 = the time is observed, 0 = right-censored at ``time``; a censored row contributes
log S(time) = log Prob(T > time) instead of log f(time). R-INLA's event codes 2 (left) and 3
(interval censoring) and its cure-fraction hyperparameters (beta1..., only used with cure
covariates in inla.surv) are not supported.

* exponential (inla.doc("exponential")): f(y) = λ e^{−λy}, λ = exp(η); no hyperparameter.
* weibull, variant 0 (inla.doc("weibull")): f(y) = α y^{α−1} λ exp(−λ y^α), λ = exp(η), so
  S(y) = exp(−λ y^α); α = exp(0.1·θ) (R-INLA's INLA_WEIBULL_ALPHA_SCALE), prior pc.alphaw(5),
  initial −2 (models.R hyperids 79001 / 79101). Variant 1 ((λy)^α) is not provided.
* lognormal (inla.doc("lognormal")): log y ~ N(η, 1/τ), S(y) = Φ(−√τ (log y − η)).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr


from adelia.compiler.special import gammaln
from adelia.compiler.families.base import Family, HyperSpec, bad_rows, register, dist
from adelia.compiler.families.continuous import in_support, lognormal_draw, lognormal_logpdf, lognormal_moments
from adelia.compiler.priors import WEIBULL_ALPHA

#: α = exp(WEIBULL_SCALE·θ): R-INLA's constant (inla.h), "to avoid numerical instabilities"
WEIBULL_SCALE = 0.1


def check_times(y, extra):
    """Positive times; event flags 0 (right-censored) or 1 (observed)."""
    issue = bad_rows(y <= 0, "survival times must be positive")
    if issue is None and "event" in extra:
        ev = np.asarray(extra["event"])
        issue = bad_rows((ev != 0) & (ev != 1),
                         "event flags must be 1 (observed) or 0 (right-censored); "
                         "left (2) and interval (3) censoring are not supported", "event")
    return issue


def _censored(log_f, log_s, extra):
    """event·log f + (1 − event)·log S; no event column means every time is observed."""
    if "event" not in extra:
        return log_f
    ev = extra["event"]
    return jnp.where(ev > 0.5, log_f, log_s)


def _pair(name: str, hypers, log_f_s, moments, draw):
    """Register the plain family and its ``...surv`` form (aliases ``<name>.surv``)."""
    def logpdf(y, eta, theta, extra, link):
        log_f, log_s = log_f_s(in_support(y), link.inverse(eta), theta)
        return _censored(log_f, log_s, extra)

    def plain_check(y, extra):
        return bad_rows(y <= 0, "the response must be positive")

    register(Family(name, hypers(name), logpdf, (), plain_check, ("log",), moments, draw))
    surv = f"{name}surv"
    register(Family(surv, hypers(surv), logpdf, ("event",), check_times, ("log",), moments, draw, survival=True),
             f"{name}.surv")


# ---- exponential ----

def _exp_f_s(y, lam, theta):
    return jnp.log(lam) - lam * y, -lam * y


_pair_exp = dict(
    hypers=lambda name: (),
    log_f_s=_exp_f_s,
    moments=lambda lam, theta, extra: (1.0 / lam, 1.0 / lam ** 2),
    draw=lambda key, lam, theta, extra: dist.Exponential(lam).sample(key),
)


# ---- weibull (variant 0) ----

def _weibull_f_s(y, lam, theta):
    alpha = jnp.exp(WEIBULL_SCALE * theta[0])
    log_s = -lam * y ** alpha
    return jnp.log(alpha) + (alpha - 1.0) * jnp.log(y) + jnp.log(lam) + log_s, log_s


def _weibull_moments(lam, theta, extra):
    alpha = jnp.exp(WEIBULL_SCALE * theta[0])
    b = lam ** (-1.0 / alpha)                     # λ y^α = (y/b)^α
    g1, g2 = jnp.exp(gammaln(1 + 1 / alpha)), jnp.exp(gammaln(1 + 2 / alpha))
    return b * g1, b ** 2 * (g2 - g1 ** 2)


def _weibull_draw(key, lam, theta, extra):
    alpha = jnp.exp(WEIBULL_SCALE * theta[0])
    return dist.Weibull(lam ** (-1.0 / alpha), alpha).sample(key)


def _weibull_hypers(name):
    return (HyperSpec("alpha", f"alpha parameter for {name}", f"alpha_intern for {name}", ("pc.alphaw", (5.0,)),
                      -2.0, WEIBULL_ALPHA, lambda t: jnp.exp(WEIBULL_SCALE * t)),)


# ---- lognormal (survival form; the plain family lives in continuous.py) ----

def _lognormal_f_s(y, mu, theta):
    tau = jnp.exp(theta[0])
    return lognormal_logpdf(y, mu, tau), log_ndtr(-jnp.sqrt(tau) * (jnp.log(y) - mu))


_pair("exponential", **_pair_exp)
_pair("weibull", _weibull_hypers, _weibull_f_s, _weibull_moments, _weibull_draw)

register(Family(
    "lognormalsurv",
    (HyperSpec("prec", "Precision for the lognormalsurv observations",
               "Log precision for the lognormalsurv observations", ("loggamma", (1.0, 5e-5)), 0.0),),
    lambda y, eta, theta, extra, link: _censored(*_lognormal_f_s(in_support(y), link.inverse(eta), theta), extra),
    ("event",), check_times, ("identity",), lognormal_moments, lognormal_draw, survival=True,
), "lognormal.surv")
