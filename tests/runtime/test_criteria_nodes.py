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


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 4), m=st.integers(1, 6), zero_weight=st.booleans())
def test_node_moments_equal_the_quadrature_sums(seed, K, m, zero_weight):
    """node_moments' four reductions against the Gauss–Hermite sums written out in NumPy, for a
    Poisson log-likelihood with a θ-dependent offset (so each point's θ matters)."""
    import jax.numpy as jnp
    from scipy.special import gammaln

    from adelia.runtime.criteria import GH_NODES, node_moments

    rng = np.random.default_rng(seed)
    y = rng.poisson(3.0, size=m).astype(float)
    mu, sd = rng.normal(1.0, 0.5, size=(K, m)), rng.uniform(0.05, 0.8, size=(K, m))
    points = rng.normal(size=(K, 1))
    w = rng.dirichlet(np.ones(K))
    if zero_weight and K > 1:
        w[0] = 0.0
        w /= w.sum()

    def loglik(eta, theta):
        lam = eta + 0.1 * theta[0]
        return y * lam - jnp.exp(lam) - gammaln(y + 1.0)

    with np.errstate(divide="ignore"):
        logw_k = np.log(w)
    got = [np.asarray(v) for v in node_moments(loglik, jnp.asarray(mu), jnp.asarray(sd), jnp.asarray(points),
                                               jnp.asarray(logw_k))]
    t, wq = np.polynomial.hermite.hermgauss(GH_NODES)
    eta = mu[:, None, :] + np.sqrt(2.0) * sd[:, None, :] * t[None, :, None]
    lam = eta + 0.1 * points[:, None, :]
    ll = y * lam - np.exp(lam) - gammaln(y + 1.0)
    wj = (w[:, None] * wq[None, :] / np.sqrt(np.pi))[:, :, None]
    wj = np.broadcast_to(wj, ll.shape)
    expected = [np.sum(wj * ll, axis=(0, 1)), np.sum(wj * ll ** 2, axis=(0, 1)),
                logsumexp(ll, axis=(0, 1), b=wj), -logsumexp(-ll, axis=(0, 1), b=wj)]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-11)
