"""Overdispersed and zero-inflated counts: betabinomial, zeroinflatedpoisson0/1,
zeroinflatednbinomial0/1.

* betabinomial (inla.doc("betabinomial")): p ~ Beta(α, β), y | p ~ Binomial(n, p), so
  π(y) = C(n, y) B(y + α, n − y + β)/B(α, β) with μ_p = α/(α + β) = link⁻¹(η) and the
  overdispersion ρ = 1/(α + β + 1) = e^θ/(1 + e^θ); Var y = n μ_p(1 − μ_p)(1 + (n − 1)ρ).
  Prior gaussian(0, 0.4) on θ, initial 0 (models.R hyperid 62001).
* zero-inflation (inla.doc("zeroinflated")), p = e^θ/(1 + e^θ), prior gaussian(−1, 0.2),
  initial −1 (hyperids 85001, 86001, 95002, 96002):
    type 0:  Prob(y) = p·1[y = 0] + (1 − p)·P(y | y > 0)      (the zeros all come from p)
    type 1:  Prob(y) = p·1[y = 0] + (1 − p)·P(y)
  with P the Poisson (mean E·exp(η)) or the negative binomial (size n = e^θ₁, prior pc.mgamma(7),
  initial log 10; the size comes first, as in R-INLA).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from adelia.compiler.special import gammaln, log_choose, log_factorial
from adelia.compiler.families.base import Family, HyperSpec, logit_hyper, register, dist
from adelia.compiler.families.classic import check_counts, check_ntrials, ntrials_int, poisson_log_mean
from adelia.compiler.families.nbinomial import nb_log_p0_rate, nb_logpmf, nb_moments
from adelia.compiler.priors import LOG_SIZE

# ---- betabinomial ----


def _bb_ab(p, theta):
    rho = jax.nn.sigmoid(theta[0])
    c = jnp.exp(-theta[0])                          # (1 − ρ)/ρ = α + β
    return p * c, (1.0 - p) * c, rho


def _bb_logpdf(y, eta, theta, extra, link):
    n = extra.get("Ntrials", 1.0)
    a, b, _ = _bb_ab(link.inverse(eta), theta)
    # B(y + α, n − y + β)/B(α, β) by log-gammas: jax's betaln takes XLA minutes to compile
    # through the second and third η-derivatives the Laplace approximation asks for
    return (log_choose(n, y) + gammaln(y + a) + gammaln(n - y + b) - gammaln(n + a + b)
            - gammaln(a) - gammaln(b) + gammaln(a + b))


def _bb_moments(p, theta, extra):
    n = extra.get("Ntrials", 1.0)
    rho = jax.nn.sigmoid(theta[0])
    return n * p, n * p * (1 - p) * (1 + (n - 1) * rho)


def _bb_draw(key, p, theta, extra):
    a, b, _ = _bb_ab(p, theta)
    return dist.BetaBinomial(a, b, ntrials_int(extra)).sample(key)


register(Family(
    "betabinomial",
    (logit_hyper("rho", "overdispersion for the betabinomial observations",
                 "intern overdispersion for the betabinomial observations", ("gaussian", (0.0, 0.4)), 0.0),),
    _bb_logpdf, ("Ntrials",), check_ntrials, ("logit", "probit", "cloglog"), _bb_moments, _bb_draw,
    requires=("Ntrials",),
))


# ---- zero-inflation ----

def _zi_logpdf(log_p0, log_pos_pmf, y, logit_p, zero_type: int):
    """log Prob(y) of a type-0/1 zero-inflated count with base log-pmf ``log_pos_pmf`` (at y) and
    base log Prob(0) ``log_p0``; zero-probability p = σ(logit_p)."""
    log_p, log_1mp = -jax.nn.softplus(-logit_p), -jax.nn.softplus(logit_p)
    if zero_type == 0:
        # log(1 − P(0)) = log1mexp(log P(0)), written for log P(0) ≤ 0
        log_not0 = jnp.where(log_p0 > -math.log(2.0), jnp.log(-jnp.expm1(log_p0)), jnp.log1p(-jnp.exp(log_p0)))
        return jnp.where(y == 0, log_p, log_1mp + log_pos_pmf - log_not0)
    return jnp.where(y == 0, jnp.logaddexp(log_p, log_1mp + log_p0), log_1mp + log_pos_pmf)


def _zi_moments(m1, m2, p0, p, zero_type: int):
    """E y and Var y from the base count's first two moments m1, m2 = E y² and P(0)."""
    w = (1.0 - p) / (1.0 - p0) if zero_type == 0 else 1.0 - p
    mean, second = w * m1, w * m2
    return mean, second - mean ** 2


def _zero_truncated(key, sample_base):
    """A draw of the base count conditioned on y > 0: redraw the zeros until none is left."""
    key, sub = jax.random.split(key)
    y0 = sample_base(sub)

    def body(state):
        k, y = state
        k, s = jax.random.split(k)
        return k, jnp.where(y == 0, sample_base(s), y)

    return jax.lax.while_loop(lambda st: jnp.any(st[1] == 0), body, (key, y0))[1]


def _zi_draw(key, sample_base, p, zero_type: int):
    k1, k2 = jax.random.split(key)
    base = sample_base(k2)
    zero = jax.random.bernoulli(k1, p)
    if zero_type == 0:
        base = _zero_truncated(k2, sample_base)
    return jnp.where(zero, 0.0, base)


def _zip(zero_type: int) -> Family:
    def logpdf(y, eta, theta, extra, link):
        log_mu = poisson_log_mean(eta, extra, link)
        return _zi_logpdf(-jnp.exp(log_mu), y * log_mu - jnp.exp(log_mu) - log_factorial(y), y, theta[0], zero_type)

    def moments(mu, theta, extra):
        lam = extra.get("E", 1.0) * mu
        return _zi_moments(lam, lam + lam ** 2, jnp.exp(-lam), jax.nn.sigmoid(theta[0]), zero_type)

    def draw(key, mu, theta, extra):
        lam = extra.get("E", 1.0) * mu
        return _zi_draw(key, lambda k: dist.Poisson(lam).sample(k), jax.nn.sigmoid(theta[0]), zero_type)

    name = f"zeroinflatedpoisson{zero_type}"
    hyper = logit_hyper("prob", f"zero-probability parameter for zero-inflated poisson_{zero_type}",
                        f"intern zero-probability parameter for zero-inflated poisson_{zero_type}",
                        ("gaussian", (-1.0, 0.2)), -1.0)
    return Family(name, (hyper,), logpdf, ("E",), lambda y, extra: check_counts(y, extra, positive_E=True),
                  ("log",), moments, draw)


def _zinb(zero_type: int) -> Family:
    def logpdf(y, eta, theta, extra, link):
        log_mu = poisson_log_mean(eta, extra, link)
        n = jnp.exp(theta[0])
        log_p0 = -n * nb_log_p0_rate(log_mu, theta[0])
        return _zi_logpdf(log_p0, nb_logpmf(y, log_mu, theta[0]), y, theta[1], zero_type)

    def moments(mu, theta, extra):
        lam, n = extra.get("E", 1.0) * mu, jnp.exp(theta[0])
        m1, var = nb_moments(lam, n)
        return _zi_moments(m1, var + m1 ** 2, (n / (n + lam)) ** n, jax.nn.sigmoid(theta[1]), zero_type)

    def draw(key, mu, theta, extra):
        lam, n = extra.get("E", 1.0) * mu, jnp.exp(theta[0])
        return _zi_draw(key, lambda k: dist.NegativeBinomial2(lam, n).sample(k).astype(float),
                        jax.nn.sigmoid(theta[1]), zero_type)

    t = zero_type
    size = HyperSpec("size", f"size for nbinomial_{t} zero-inflated observations",
                     f"log size for nbinomial_{t} zero-inflated observations", ("pc.mgamma", (7.0,)),
                     math.log(10.0), LOG_SIZE)
    prob = logit_hyper("prob", f"zero-probability parameter for zero-inflated nbinomial_{t}",
                       f"intern zero-probability parameter for zero-inflated nbinomial_{t}",
                       ("gaussian", (-1.0, 0.2)), -1.0)
    return Family(f"zeroinflatednbinomial{t}", (size, prob), logpdf, ("E",),
                  lambda y, extra: check_counts(y, extra, positive_E=True), ("log",), moments, draw)


for _t in (0, 1):
    register(_zip(_t))
    register(_zinb(_t))
