"""strategy = "laplace": the full Laplace approximation of π(x_j | θ, y) (Rue, Martino & Chopin 2009 §3.2.1)."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.special import gammaln

import adelia
from adelia.api import compile_formula
from adelia.runtime.inference import LAPLACE_ABSCISSAE, adaptive_nodes
from adelia.runtime.laplace import LaplaceProblem
from adelia.runtime.laplace_sparse import SparseLaplaceProblem


def _data(seed=0, m=30):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=m)
    t = np.arange(1, m + 1)
    eta = 0.5 + 0.6 * x + 0.4 * np.sin(t / 5)
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "yg": eta + 0.3 * rng.normal(size=m), "x": x, "t": t,
                         "g": rng.integers(1, 5, size=m)})


@pytest.mark.parametrize("path", [LaplaceProblem, SparseLaplaceProblem])
def test_exact_for_a_gaussian_likelihood_with_constraints(path):
    """With a Gaussian likelihood x | θ, y is Gaussian, so the Laplace log density is exactly
    −s²/2 at x̂_j + σ_j s, also under a sum-to-zero constraint and for nodes it touches."""
    m = compile_formula('yg ~ 1 + x + f(t, model = "rw1") + f(g, model = "iid", constr = TRUE)', _data(),
                        "gaussian").problem
    prob = path(m)
    theta = jnp.asarray([t.initial for t in m.thetas]) - 1.0
    nodes = np.r_[adaptive_nodes(m), 0, 17]           # fixed effects, the iid's 4 levels, two rw1 nodes
    logdens, sd = prob.laplace_log_density(theta, nodes, LAPLACE_ABSCISSAE)
    np.testing.assert_allclose(np.asarray(logdens), np.broadcast_to(-0.5 * LAPLACE_ABSCISSAE ** 2, logdens.shape),
                               atol=1e-7)
    np.testing.assert_allclose(np.asarray(sd), np.asarray(prob.gaussian(theta, sla=False).sd)[nodes], rtol=1e-10)


def test_closer_to_the_exact_conditional_than_the_gaussian():
    """Poisson, intercept and slope (no hyperparameter): π(β_0 | y) by quadrature over β_1 is the
    exact answer; the Laplace log density is within a small fraction of the Gaussian's error."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    d = pd.DataFrame({"y": rng.poisson(np.exp(0.3 + 0.5 * x)), "x": x})
    m = compile_formula("y ~ 1 + x", d, "poisson").problem
    prob = LaplaceProblem(m)
    theta = jnp.zeros(0)
    logdens, sd = prob.laplace_log_density(theta, np.array([0]), LAPLACE_ABSCISSAE)
    assert m.fixed_offset == 0 and m.N == 2            # x = [(Intercept), slope]: flat and N(0, 1/0.001) priors
    mode = np.asarray(prob.mode(theta))
    b0 = mode[0] + float(sd[0]) * LAPLACE_ABSCISSAE

    def log_joint(a, b):
        eta = a + b * x
        return np.sum(d.y * eta - np.exp(eta) - gammaln(d.y + 1)) - 0.5 * 0.001 * b ** 2

    exact = np.array([np.log(quad(lambda b: np.exp(log_joint(a, b) - log_joint(mode[0], mode[1])), -5, 5,
                                  points=[mode[1]])[0]) for a in b0])
    exact -= exact[len(b0) // 2]
    lap = np.asarray(logdens[0])
    gauss = -0.5 * LAPLACE_ABSCISSAE ** 2
    inner = np.abs(LAPLACE_ABSCISSAE) <= 3
    assert np.max(np.abs(lap - exact)[inner]) < 0.1 * np.max(np.abs(gauss - exact)[inner])


def test_fit_replaces_the_selected_marginals_only():
    d = _data(1)
    f = 'y ~ 1 + x + f(t, model = "rw1") + f(g, model = "iid")'
    sla = adelia.fit(f, d, family="poisson", n_samples=0)
    lap = adelia.fit(f, d, family="poisson", strategy="laplace", n_samples=0)
    a, b = sla["inla"]["summary_fixed"].to_pandas(), lap["inla"]["summary_fixed"].to_pandas()
    # close to simplified Laplace (both correct the Gaussian) but computed differently
    assert np.max(np.abs(a["mean"] - b["mean"]) / a["sd"]) < 0.1
    assert np.max(np.abs(a["mean"] - b["mean"]) / a["sd"]) > 1e-6
    # rw1 (40 nodes) is left to simplified Laplace: identical to the plain fit
    pd.testing.assert_frame_equal(sla["inla"]["summary_random_t"].to_pandas(), lap["inla"]["summary_random_t"].to_pandas())
    assert np.all(np.isfinite(b.to_numpy()))
