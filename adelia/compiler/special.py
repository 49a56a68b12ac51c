"""log Γ and ψ whose derivatives compile quickly (for likelihoods and priors).

jax differentiates ``gammaln`` into ``digamma`` and that into ``polygamma``, which XLA builds
from the Hurwitz zeta function; the Laplace approximation needs second and third η-derivatives
of families whose Γ-arguments depend on η (beta, betabinomial) and compiling those took minutes.
Here ψ′ (trigamma) is the recurrence ψ′(x) = ψ′(x + 1) + 1/x² shifted to x + 8 plus the
asymptotic series ψ′(z) ≈ 1/z + 1/(2z²) + Σ B₂ₖ/z^(2k+1) (Abramowitz & Stegun 6.4.12;
truncation error below 10⁻¹¹ relative for z ≥ 8), plain arithmetic that AD differentiates again.
"""

from __future__ import annotations

__all__ = ["gammaln", "digamma", "trigamma"]

import jax
import jax.numpy as jnp
from jax.scipy import special as jsp

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
