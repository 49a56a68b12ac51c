"""log Γ and ψ whose derivatives compile quickly (for likelihoods and priors).

jax differentiates ``gammaln`` into ``digamma`` and that into ``polygamma``, which XLA builds
from the Hurwitz zeta function; the Laplace approximation needs second and third η-derivatives
of families whose Γ-arguments depend on η (beta, betabinomial) and compiling those took minutes.
Here ψ′ (trigamma) is the recurrence ψ′(x) = ψ′(x + 1) + 1/x² shifted to x + 8 plus the
asymptotic series ψ′(z) ≈ 1/z + 1/(2z²) + Σ B₂ₖ/z^(2k+1) (Abramowitz & Stegun 6.4.12;
truncation error below 10⁻¹¹ relative for z ≥ 8), plain arithmetic that AD differentiates again.
"""

from __future__ import annotations

__all__ = ["gammaln", "digamma", "trigamma", "log_rising_over_power", "log_factorial", "log_choose"]

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special as jsp
from scipy import special as ssp

_SHIFT = 8


def trigamma(x):
    """ψ′(x) for x > 0."""
    x = jnp.asarray(x, dtype=float)
    head = sum(1.0 / (x + k) ** 2 for k in range(_SHIFT))
    z = x + _SHIFT
    iz = 1.0 / z
    iz2 = iz * iz
    tail = iz + 0.5 * iz2 + iz * iz2 * (1 / 6 - iz2 * (1 / 30 - iz2 * (1 / 42 - iz2 * (1 / 30 - iz2 * 5 / 66))))
    return head + tail


@jax.custom_jvp
def digamma(x):
    return jsp.digamma(x)


@digamma.defjvp
def _digamma_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return digamma(x), trigamma(x) * dx


@jax.custom_jvp
def gammaln(x):
    return jsp.gammaln(x)


@gammaln.defjvp
def _gammaln_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return gammaln(x), digamma(x) * dx


def _log_gamma_for(*xs):
    """(log Γ, the arguments) for terms of the data: SciPy's on NumPy copies when every argument
    is concrete, else the traced :func:`gammaln`."""
    if any(isinstance(x, jax.core.Tracer) for x in xs):
        return gammaln, xs
    return ssp.gammaln, tuple(np.asarray(x, dtype=float) for x in xs)


# The data-only terms below are computed by SciPy when their arguments are data (concrete, not
# traced): they then enter a traced likelihood as one constant, where three traced log Γ calls
# cost a new process some 2 ms each time a program traces the likelihood (tens of times per fit).

def log_factorial(y):
    """log y! = log Γ(y + 1)."""
    lgamma, (y,) = _log_gamma_for(y)
    return lgamma(y + 1.0)


def log_choose(n, y):
    """log C(n, y) = log Γ(n + 1) − log Γ(y + 1) − log Γ(n − y + 1)."""
    lgamma, (n, y) = _log_gamma_for(n, y)
    return lgamma(n + 1.0) - lgamma(y + 1.0) - lgamma(n - y + 1.0)


#: above this n the Stirling form of log_rising_over_power is used: its series error is below
#: 1/(1188 n⁹) < 10⁻¹⁶ there, while log Γ(n) itself carries a rounding error of about n log n · 10⁻¹⁶
_STIRLING_N = 30.0


def _stirling_remainder(x):
    """R(x) = log Γ(x) − (x − ½) log x + x − ½ log 2π
    ≈ 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷) (A&S 6.1.41)."""
    ix = 1.0 / x
    ix2 = ix * ix
    return ix * (1 / 12 - ix2 * (1 / 360 - ix2 * (1 / 1260 - ix2 / 1680)))


def log_rising_over_power(y, n):
    """log Γ(y + n) − log Γ(n) − y log n, accurate for every n > 0 and y ≥ 0.

    The difference tends to 0 as n → ∞ (the negative binomial's Poisson limit), but formed from
    two log Γ values of size n log n it loses all precision at n ≈ 10¹³. For large n it is
    (n + y − ½) log1p(y/n) − y + R(n + y) − R(n) with R Stirling's remainder, which has no
    cancellation beyond y·10⁻¹⁶.
    """
    y = jnp.asarray(y, dtype=float)
    n = jnp.asarray(n, dtype=float)
    large = n > _STIRLING_N
    n_small = jnp.where(large, 1.0, n)          # each branch sees only arguments it handles (finite AD)
    n_large = jnp.where(large, n, _STIRLING_N)
    direct = gammaln(y + n_small) - gammaln(n_small) - y * jnp.log(n_small)
    stirling = ((n_large + y - 0.5) * jnp.log1p(y / n_large) - y
                + _stirling_remainder(n_large + y) - _stirling_remainder(n_large))
    return jnp.where(large, stirling, direct)
