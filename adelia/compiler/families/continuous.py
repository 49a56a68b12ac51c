"""Continuous responses: gamma, beta, Student-t (R-INLA ``T``), lognormal.

* gamma (inla.doc("gamma")): shape sφ, rate sφ/μ, μ = exp(η), so E y = μ and Var y = μ²/(sφ);
  φ = e^θ, prior loggamma(1, 0.01), initial log 100 ("Precision-parameter for the Gamma
  observations", models.R hyperid 58001). s is ``scale`` (default 1).
* beta (inla.doc("beta")): a = μφ, b = (1 − μ)φ, μ = logit⁻¹(η) (or probit/cloglog),
  Var y = μ(1 − μ)/(1 + φ); φ = s·e^θ, prior loggamma(1, 0.1), initial log 10 (hyperid 61001).
  R-INLA's censoring at δ (``beta.censor.value``) is not supported: y must lie in (0, 1).
* T (inla.doc("student-t")): √(sτ)(y − η) ~ T_ν, a Student-t rescaled to unit variance, ν > 2;
  θ₁ = log τ with loggamma(1, 5·10⁻⁵), initial 0; θ₂ = log(ν − 2) with pc.dof(15, 0.5),
  initial 5 (hyperids 100001-2).
* lognormal (inla.doc("lognormal")): log y ~ N(η, 1/τ), τ = e^θ, loggamma(1, 5·10⁻⁵), initial 0
  (hyperid 77101).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from adelia.compiler.special import gammaln
from adelia.compiler.families.base import Family, HyperSpec, bad_rows, register, scaled_precision, dist
from adelia.compiler.families.classic import check_positive_scale
from adelia.compiler.priors import LOG_DOF, LOG_PRECISION

LOG_2PI = math.log(2 * math.pi)


def in_support(y, lo=0.0, hi=None):
    """y where it lies in the open support, a harmless inner value elsewhere (unobserved rows
    arrive as y = 0; observed rows were checked)."""
    ok = y > lo if hi is None else (y > lo) & (y < hi)
    return jnp.where(ok, y, 1.0 if hi is None else 0.5 * (lo + hi))


def _check_positive(y, extra):
    return bad_rows(y <= 0, "the response must be positive") or check_positive_scale(y, extra)


# ---- gamma ----

def _gamma_logpdf(y, eta, theta, extra, link):
    y = in_support(y)
    k = scaled_precision(theta, extra)
    log_mu = eta                                     # log link
    return k * (jnp.log(k) - log_mu) - gammaln(k) + (k - 1.0) * jnp.log(y) - k * y * jnp.exp(-log_mu)


register(Family(
    "gamma",
    (HyperSpec("prec", "Precision-parameter for the Gamma observations",
               "Intern precision-parameter for the Gamma observations", ("loggamma", (1.0, 0.01)),
               math.log(100.0), LOG_PRECISION),),
    _gamma_logpdf, ("scale",), _check_positive, ("log",),
    moments=lambda mu, theta, extra: (mu, mu ** 2 / scaled_precision(theta, extra)),
    draw=lambda key, mu, theta, extra: dist.Gamma(scaled_precision(theta, extra), scaled_precision(theta, extra) / mu).sample(key),
))


# ---- beta ----

def _beta_logpdf(y, eta, theta, extra, link):
    y = in_support(y, 0.0, 1.0)
    phi = scaled_precision(theta, extra)
    mu = link.inverse(eta)
    a, b = mu * phi, (1.0 - mu) * phi
    return (gammaln(phi) - gammaln(a) - gammaln(b) + (a - 1.0) * jnp.log(y) + (b - 1.0) * jnp.log1p(-y))


def _check_unit(y, extra):
    return (bad_rows((y <= 0) | (y >= 1), "the response must lie strictly between 0 and 1")
            or check_positive_scale(y, extra))


register(Family(
    "beta",
    (HyperSpec("phi", "precision parameter for the beta observations",
               "intern precision-parameter for the beta observations", ("loggamma", (1.0, 0.1)),
               math.log(10.0), LOG_PRECISION),),
    _beta_logpdf, ("scale",), _check_unit, ("logit", "probit", "cloglog"),
    moments=lambda mu, theta, extra: (mu, mu * (1 - mu) / (1 + scaled_precision(theta, extra))),
    draw=lambda key, mu, theta, extra: dist.Beta(mu * scaled_precision(theta, extra),
                                                 (1 - mu) * scaled_precision(theta, extra)).sample(key),
))


# ---- Student-t ----

def _t_parts(theta, extra):
    prec = scaled_precision(theta, extra)
    dof = 2.0 + jnp.exp(theta[1])
    return prec, dof


def _t_logpdf(y, eta, theta, extra, link):
    prec, dof = _t_parts(theta, extra)
    # w = √(sτ)(y − η)·√(ν/(ν − 2)) is standard t_ν; the Jacobian adds ½log(sτ) + ½log(ν/(ν − 2))
    log_stretch = 0.5 * (jnp.log(prec) + jnp.log(dof) - theta[1])
    w = (y - link.inverse(eta)) * jnp.exp(log_stretch)
    log_norm = gammaln(0.5 * (dof + 1.0)) - gammaln(0.5 * dof) - 0.5 * (jnp.log(dof) + math.log(math.pi))
    return log_norm - 0.5 * (dof + 1.0) * jnp.log1p(w * w / dof) + log_stretch


def _t_draw(key, mu, theta, extra):
    prec, dof = _t_parts(theta, extra)
    return dist.StudentT(dof, mu, jnp.sqrt((dof - 2.0) / dof / prec)).sample(key)


register(Family(
    "t",
    (HyperSpec("prec", "precision for the student-t observations", "log precision for the student-t observations",
               ("loggamma", (1.0, 5e-5)), 0.0, LOG_PRECISION),
     HyperSpec("dof", "degrees of freedom for student-t", "dof_intern for student-t", ("pc.dof", (15.0, 0.5)),
               5.0, LOG_DOF, lambda t: 2.0 + jnp.exp(t))),
    _t_logpdf, ("scale",), check_positive_scale, ("identity",),
    moments=lambda mu, theta, extra: (mu, 1.0 / _t_parts(theta, extra)[0] + 0 * mu),
    draw=_t_draw,
), "T", "student-t", "studentt")


# ---- lognormal (plain; the survival form is in survival.py) ----

def lognormal_logpdf(y, eta, tau):
    y = in_support(y)
    ly = jnp.log(y)
    return 0.5 * (jnp.log(tau) - LOG_2PI) - ly - 0.5 * tau * (ly - eta) ** 2


def lognormal_moments(mu, theta, extra):
    s2 = jnp.exp(-theta[0])
    return jnp.exp(mu + 0.5 * s2), jnp.expm1(s2) * jnp.exp(2 * mu + s2)


def lognormal_draw(key, mu, theta, extra):
    return dist.LogNormal(mu, jnp.exp(-0.5 * theta[0])).sample(key)


register(Family(
    "lognormal",
    (HyperSpec("prec", "Precision for the lognormal observations", "Log precision for the lognormal observations",
               ("loggamma", (1.0, 5e-5)), 0.0),),
    lambda y, eta, theta, extra, link: lognormal_logpdf(y, link.inverse(eta), jnp.exp(theta[0])),
    (), lambda y, extra: bad_rows(y <= 0, "the response must be positive"), ("identity",),
    lognormal_moments, lognormal_draw,
))
