"""Pieces of adelia.results on their own."""

import jax.numpy as jnp
import numpy as np

from adelia.results import _on_grid


def test_on_grid_batches_broadcasting_and_scalar_only_functions_alike():
    g = np.linspace(-3.0, 3.0, 7)
    eig = jnp.asarray([0.5, 1.0, 2.0])
    broadcasting = lambda t: jnp.exp(t) - t
    scalar_only = lambda t: jnp.sum(jnp.log1p(jnp.exp(t) * eig))     # sums over eig, not over t
    np.testing.assert_allclose(_on_grid(broadcasting, g), np.exp(g) - g, rtol=1e-14)
    expected = [np.sum(np.log1p(np.exp(t) * np.asarray(eig))) for t in g]
    np.testing.assert_allclose(_on_grid(scalar_only, g), expected, rtol=1e-14)
