"""Hyperpriors: each integrates to 1 on its internal scale (quadrature), the likelihood
hyperparameters' priors agree with independent formulas (R-INLA's C code transcribed in NumPy,
scipy.stats), and the PC priors' tail statements hold."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

import adelia.config  # noqa: F401  (float64)
from adelia.compiler.priors import (LOG_DISPERSION, LOG_DOF, LOG_PRECISION, LOG_SIZE, LOGIT_PROBABILITY,
                                    WEIBULL_ALPHA, CORRELATION, LOG_RANGE, LOG_SD, make_prior, student_t_kld,
                                    weibull_kld)
from adelia.errors import ModelError

PROPER = [
    ("loggamma", (1.0, 5e-5), LOG_PRECISION),
    ("loggamma", (2.0, 0.5), LOG_SIZE),
    ("pc.prec", (1.0, 0.01), LOG_PRECISION),
    ("normal", (-1.0, 0.2), LOGIT_PROBABILITY),
    ("pc.cor0", (0.5, 0.5), CORRELATION),
    ("pc.cor1", (0.7, 0.7), CORRELATION),
    ("pc.range", (1.0, 0.5), LOG_RANGE),
    ("pc.sd", (1.0, 0.01), LOG_SD),
    ("logitbeta", (1.0, 1.0), LOGIT_PROBABILITY),
    ("logitbeta", (0.5, 3.0), LOGIT_PROBABILITY),
    ("pc.dof", (15.0, 0.5), LOG_DOF),
    ("pc.dof", (5.0, 0.1), LOG_DOF),
    ("pc.gamma", (3.0,), LOG_DISPERSION),
    ("pc.mgamma", (7.0,), LOG_SIZE),
    ("pc.mgamma", (0.5,), LOG_PRECISION),
    ("pc.alphaw", (5.0,), WEIBULL_ALPHA),
    ("pc.alphaw", (1.0,), WEIBULL_ALPHA),
]


def _density(prior):
    logpdf = jax.jit(prior.logpdf)      # quad calls it one point at a time
    return lambda t: float(np.exp(logpdf(jnp.asarray(t, dtype=float))))


@pytest.mark.parametrize("name,params,scale", PROPER, ids=[f"{n}{p}" for n, p, _ in PROPER])
def test_prior_integrates_to_one(name, params, scale):
    prior = make_prior(name, params, scale)
    f = _density(prior)
    # split at a few points so quad sees every bump (priors peaked near 0 on wide scales)
    pts = [-np.inf, -20.0, -5.0, 0.0, 5.0, 20.0, np.inf]
    total = sum(integrate.quad(f, a, b, limit=400, epsabs=1e-13)[0] for a, b in zip(pts[:-1], pts[1:]))
    assert total == pytest.approx(1.0, abs=2e-6)


@pytest.mark.parametrize("name,params,scale", PROPER, ids=[f"{n}{p}" for n, p, _ in PROPER])
def test_prior_finite_with_finite_gradient(name, params, scale):
    prior = make_prior(name, params, scale)
    t = jnp.linspace(-40.0, 40.0, 2001)
    assert not np.any(np.isnan(np.asarray(jax.jit(prior.logpdf)(t))))
    g = np.asarray(jax.jit(jax.vmap(jax.grad(prior.logpdf)))(jnp.linspace(-15.0, 15.0, 601)))
    assert np.all(np.isfinite(g))


def test_logitbeta_is_a_beta_on_p():
    prior = make_prior("logitbeta", (2.5, 0.7), LOGIT_PROBABILITY)
    t = np.linspace(-8, 8, 41)
    p = 1 / (1 + np.exp(-t))
    ref = stats.beta(2.5, 0.7).logpdf(p) + np.log(p * (1 - p))
    np.testing.assert_allclose(prior.logpdf(jnp.asarray(t)), ref, rtol=1e-10, atol=1e-10)


def _rinla_pc_gamma(x, lam):
    """priorfunc_pc_gamma of R-INLA's inla-priors.c, transcribed (θ = log a)."""
    a = np.exp(x)
    z = 1 / a
    d = np.sqrt(2 * (np.log(z) - special.digamma(z)))
    return np.log(lam) - lam * d - 2 * np.log(a) - np.log(d) + np.log(special.polygamma(1, z) - a) + x


@pytest.mark.parametrize("lam", [0.5, 3.0, 7.0])
def test_pc_gamma_and_mgamma_match_rinla(lam):
    t = np.linspace(-6, 6, 49)
    np.testing.assert_allclose(make_prior("pc.gamma", (lam,), LOG_DISPERSION).logpdf(jnp.asarray(t)),
                               _rinla_pc_gamma(t, lam), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(make_prior("pc.mgamma", (lam,), LOG_SIZE).logpdf(jnp.asarray(t)),
                               _rinla_pc_gamma(-t, lam), rtol=1e-9, atol=1e-9)


def test_pc_gamma_expansions_continuous():
    """The series branches (a < 10⁻⁴, a > e³⁰) meet the exact formula."""
    prior = make_prior("pc.gamma", (2.0,), LOG_DISPERSION)
    for edge in (-math.log(1e4), 30.0):
        lo, hi = prior.logpdf(jnp.asarray(edge - 1e-7)), prior.logpdf(jnp.asarray(edge + 1e-7))
        assert abs(float(lo) - float(hi)) < 1e-5 * max(1.0, abs(float(lo)))


@pytest.mark.parametrize("dof", [2.2, 3.0, 7.5, 19.0, 21.0, 60.0])
def test_student_t_kld_against_quadrature(dof):
    s = math.sqrt((dof - 2) / dof)
    t = stats.t(dof, scale=s)
    f = lambda x: t.pdf(x) * (t.logpdf(x) - stats.norm.logpdf(x))
    ref = integrate.quad(f, -np.inf, np.inf, limit=400, epsrel=1e-12)[0]
    assert float(student_t_kld(jnp.asarray(dof))) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("u,alpha", [(15.0, 0.5), (5.0, 0.1), (30.0, 0.8)])
def test_pc_dof_tail_statement(u, alpha):
    """P(ν < u) = α, ν = 2 + e^θ."""
    f = _density(make_prior("pc.dof", (u, alpha), LOG_DOF))
    assert integrate.quad(f, -np.inf, math.log(u - 2), limit=400)[0] == pytest.approx(alpha, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.3, 0.9, 1.2, 4.0])
def test_weibull_kld_against_quadrature(alpha):
    w = stats.weibull_min(alpha)
    f = lambda y: w.pdf(y) * (w.logpdf(y) - stats.expon.logpdf(y))
    ref = integrate.quad(f, 0, np.inf, limit=400, epsrel=1e-12)[0]
    assert float(weibull_kld(jnp.asarray(alpha))) == pytest.approx(ref, rel=1e-7)


def test_pc_alphaw_matches_rinla_up_to_its_constant():
    """priorfunc_pc_alphaw writes log(0.5) + λ − λd + ...; with log λ for λ (normalised) it is ours."""
    lam = 5.0
    t = np.array([-20.0, -7.0, -2.0, 0.5, 3.0, 12.0])
    alpha = np.exp(0.1 * t)
    kld = lambda a: special.gamma(1 + 1 / a) + np.log(a) - np.euler_gamma + np.euler_gamma / a - 1
    d = np.sqrt(2 * kld(alpha))
    h = 1e-6
    dd = np.where(alpha >= 1, (np.sqrt(2 * kld(alpha + h)) - d) / h, (d - np.sqrt(2 * kld(alpha - h))) / h)
    ref = math.log(0.5) + math.log(lam) - lam * d + np.log(np.abs(dd)) + np.log(alpha * 0.1)
    ours = make_prior("pc.alphaw", (lam,), WEIBULL_ALPHA).logpdf(jnp.asarray(t))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)   # R-INLA's one-sided difference, h = 1e-6


def test_priors_checked_against_the_scale():
    with pytest.raises(ModelError, match="not defined for a log dof"):
        make_prior("pc.prec", (1, 0.01), LOG_DOF)
    with pytest.raises(ModelError, match="invalid parameters for prior 'pc.dof'"):
        make_prior("pc.dof", (1.5, 0.5), LOG_DOF)
    with pytest.raises(ModelError, match="takes 1 parameter"):
        make_prior("pc.mgamma", (1.0, 2.0), LOG_SIZE)
