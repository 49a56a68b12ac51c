"""adelia.runtime.criteria's pieces against SciPy."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from adelia.runtime.criteria import _logsumexp_nodes


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 5), G=st.integers(1, 6), n=st.integers(1, 7),
       with_b=st.booleans(), holes=st.booleans())
def test_node_logsumexp_equals_scipys(seed, K, G, n, with_b, holes):
    rng = np.random.default_rng(seed)
    a = rng.normal(scale=30.0, size=(K, G, n))
    if holes:
        a[rng.random(a.shape) < 0.3] = -np.inf            # zero likelihoods, a whole column included
        a[..., 0] = -np.inf
    b = rng.uniform(0.0, 1.0, size=(K, G, n)) * (rng.random((K, G, n)) < 0.8) if with_b else None
    with np.errstate(divide="ignore"):
        expected = logsumexp(a, axis=(0, 1), b=b)
    np.testing.assert_allclose(_logsumexp_nodes(a, b), expected, rtol=1e-12, atol=1e-12)


def test_weights_broadcast_over_nodes():
    a = np.random.default_rng(1).normal(size=(3, 4, 5))
    logw = np.log(np.random.default_rng(2).dirichlet(np.ones(12))).reshape(3, 4, 1)
    np.testing.assert_allclose(_logsumexp_nodes(logw + a), logsumexp(logw + a, axis=(0, 1)), rtol=1e-13)
