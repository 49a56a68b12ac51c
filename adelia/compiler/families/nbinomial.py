"""Negative binomial (R-INLA ``nbinomial``, variant 0; inla.doc("nbinomial")).

    Prob(y) = Γ(y + n) / (Γ(n) Γ(y + 1)) p^n (1 − p)^y,   μ = n(1 − p)/p = E·exp(η),
    Var y = μ (1 + μ/n),

size n = e^θ (variant 0: not scaled by E or scale); default prior pc.mgamma(7) on θ (the PC prior
for the overdispersion 1/n with base model n = ∞, the Poisson; R-INLA models.R, hyperid 63001),
initial log 10. R-INLA switches to the Poisson limit when μ/n < 10⁻⁴; the exact density is used
here (the two differ by O(μ/n) there).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from adelia.compiler.special import log_factorial, log_rising_over_power
from adelia.compiler.families.base import Family, HyperSpec, register, dist
from adelia.compiler.families.classic import check_counts, poisson_log_mean
from adelia.compiler.priors import LOG_SIZE

SIZE = HyperSpec("size", "size for the nbinomial observations (1/overdispersion)",
                 "log size for the nbinomial observations (1/overdispersion)", ("pc.mgamma", (7.0,)),
                 math.log(10.0), LOG_SIZE)


def nb_logpmf(y, log_mu, log_n):
    """log NB(y; mean μ = e^{log_mu}, size n = e^{log_n}).

    With p = n/(n + μ): log p = −softplus(r), log(1 − p) = log μ − log n − softplus(r) for
    r = log μ − log n, so

        log NB = [log Γ(y + n) − log Γ(n) − y log n] − log Γ(y + 1) + y log μ − (n + y) softplus(r),

    every term finite and free of cancellation as n → ∞, where it tends to the Poisson log-pmf
    (a long posterior tail of the log size reaches n ≈ 10¹³ and beyond).
    """
    n = jnp.exp(log_n)
    return (log_rising_over_power(y, n) - log_factorial(y) + y * log_mu
            - (n + y) * nb_log_p0_rate(log_mu, log_n))


def nb_log_p0_rate(log_mu, log_n):
    """−log p = log(1 + μ/n) = softplus(log μ − log n); the zero probability is p^n."""
    return jax.nn.softplus(log_mu - log_n)


def nb_moments(mu, n):
    return mu, mu * (1.0 + mu / n)


def _logpdf(y, eta, theta, extra, link):
    return nb_logpmf(y, poisson_log_mean(eta, extra, link), theta[0])


def _moments(mu, theta, extra):
    return nb_moments(extra.get("E", 1.0) * mu, jnp.exp(theta[0]))


def _draw(key, mu, theta, extra):
    return dist.NegativeBinomial2(extra.get("E", 1.0) * mu, jnp.exp(theta[0])).sample(key)


register(Family("nbinomial", (SIZE,), _logpdf, ("E",), lambda y, extra: check_counts(y, extra, positive_E=True),
                ("log",), _moments, _draw))
