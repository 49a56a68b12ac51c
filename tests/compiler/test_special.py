"""adelia.compiler.special: log Γ, ψ, ψ′ and their AD derivatives against scipy."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

import adelia.config  # noqa: F401  (float64)
from adelia.compiler.special import digamma, gammaln, log_choose, log_factorial, log_rising_over_power, trigamma

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


def test_log_rising_over_power_is_exact_on_both_sides_of_the_switch():
    """log Γ(y + n) − log Γ(n) − y log n = Σ_{k<y} log(1 + k/n) for integer y: exact by a sum that
    has no cancellation, from small n through the switch to Stirling's form and up to n = 10³⁰."""
    y = np.array([0.0, 1.0, 2.0, 7.0, 40.0, 300.0])
    for n in (0.05, 1.0, 12.0, 29.9, 30.1, 4e3, 3e7, 1e13, 1e30):
        exact = np.array([np.sum(np.log1p(np.arange(int(k)) / n)) for k in y])
        got = np.asarray(log_rising_over_power(jnp.asarray(y), n))
        np.testing.assert_allclose(got, exact, rtol=1e-11, atol=1e-12, err_msg=f"n = {n}")
        # d/dn by AD against the sum's derivative Σ −k / (n (n + k)), to rounding of the terms ~ y/n
        dn = np.asarray(jax.vmap(jax.grad(log_rising_over_power, argnums=1), (0, None))(jnp.asarray(y), n))
        exact_dn = np.array([np.sum(-np.arange(int(k)) / (n * (n + np.arange(int(k))))) for k in y])
        np.testing.assert_allclose(dn, exact_dn, rtol=1e-8, atol=1e-15 * y.max() / n, err_msg=f"n = {n}")


def test_data_terms_equal_on_concrete_and_traced_data():
    """log y! and log C(n, y): SciPy's constant for data, log Γ when the data are traced."""
    y = np.array([0.0, 1.0, 3.0, 7.0, 40.0, 250.0])
    n = np.array([1.0, 2.0, 9.0, 7.0, 60.0, 1000.0])
    want_f = special.gammaln(y + 1.0)
    want_c = special.gammaln(n + 1.0) - special.gammaln(y + 1.0) - special.gammaln(n - y + 1.0)
    assert isinstance(log_factorial(y), np.ndarray) and isinstance(log_choose(n, y), np.ndarray)
    np.testing.assert_allclose(log_factorial(y), want_f, rtol=1e-15, atol=0)
    np.testing.assert_allclose(log_choose(n, y), want_c, rtol=1e-15, atol=0)
    np.testing.assert_allclose(jax.jit(log_factorial)(y), want_f, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(jax.jit(log_choose)(n, y), want_c, rtol=1e-13, atol=1e-12)
