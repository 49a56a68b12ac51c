"""adelia.compiler.special: log Γ, ψ, ψ′ and their AD derivatives against scipy."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

import adelia.config  # noqa: F401  (float64)
from adelia.compiler.special import digamma, gammaln, trigamma

X = np.array([1e-4, 0.01, 0.3, 1.0, 2.5, 7.99, 8.0, 30.0, 1e4])


def test_values_and_derivatives_match_scipy():
    x = jnp.asarray(X)
    np.testing.assert_allclose(gammaln(x), special.gammaln(X), rtol=1e-13)
    np.testing.assert_allclose(trigamma(x), special.polygamma(1, X), rtol=1e-12)
    d = jax.vmap(jax.grad(gammaln))(x)
    d2 = jax.vmap(jax.grad(jax.grad(gammaln)))(x)
    d3 = jax.vmap(jax.grad(jax.grad(jax.grad(gammaln))))(x)
    np.testing.assert_allclose(d, special.digamma(X), rtol=1e-13)
    np.testing.assert_allclose(d2, special.polygamma(1, X), rtol=1e-12)
    np.testing.assert_allclose(d3, special.polygamma(2, X), rtol=1e-11)
    np.testing.assert_allclose(jax.vmap(jax.grad(digamma))(x), special.polygamma(1, X), rtol=1e-12)
