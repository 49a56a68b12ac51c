"""Several likelihoods sharing latent components (R-INLA's matrix response, family = c(...))."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import adelia
from adelia.compiler.model import compile_model
from adelia.dsl.parser import parse_formula
from adelia.runtime.laplace import LaplaceProblem


@pytest.fixture(scope="module")
def joint_data():
    rng = np.random.default_rng(11)
    k = 25
    u = rng.normal(scale=0.7, size=k)
    g = np.tile(np.arange(1, k + 1), 2)
    block = np.repeat([0, 1], k)
    eta = 0.5 + u[g - 1]
    y_gauss = np.where(block == 0, eta + 0.3 * rng.normal(size=2 * k), np.nan)
    y_pois = np.where(block == 1, rng.poisson(np.exp(eta)), np.nan)
    E = np.where(block == 1, 1.0, np.nan)
    return pd.DataFrame({"yg": y_gauss, "yp": y_pois, "g": g, "E": E})


def test_loglik_is_the_blockwise_sum(joint_data):
    model = compile_model(parse_formula('cbind(yg, yp) ~ 1 + f(g, model = "iid")'), joint_data,
                          ["gaussian", "poisson"], E="E")
    prob = LaplaceProblem(model)
    eta = jnp.asarray(np.linspace(-1, 1, model.m))
    theta = jnp.asarray([1.3, 0.4])
    got = np.asarray(prob.loglik_terms(eta, theta))
    from scipy.stats import norm, poisson
    y = model.y
    want = np.where(np.arange(model.m) < 25, norm.logpdf(y, np.asarray(eta), np.exp(-0.65)),
                    poisson.logpmf(np.nan_to_num(y).astype(int), np.exp(np.asarray(eta))))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_joint_fit_shares_the_component(joint_data):
    dt = adelia.fit('cbind(yg, yp) ~ 1 + f(g, model = "iid")', joint_data, family=["gaussian", "poisson"],
                    E="E", n_samples=20)
    s = adelia.summary(dt)
    assert "Precision for the Gaussian observations" in s.index
    assert "Precision for g" in s.index
    assert dt.attrs["family"] == "gaussian,poisson"


def test_response_rows_must_belong_to_one_family(joint_data):
    d = joint_data.copy()
    d.loc[0, "yp"] = 1.0
    with pytest.raises(adelia.DataError, match="more than one response"):
        adelia.fit('cbind(yg, yp) ~ 1', d, family=["gaussian", "poisson"], E="E")
    with pytest.raises(adelia.ModelError, match="need 2 responses"):
        adelia.fit('yg ~ 1', joint_data, family=["gaussian", "poisson"])


def _copy_data(beta=2.0, seed=12):
    rng = np.random.default_rng(seed)
    k = 30
    u = rng.normal(size=k)
    g = np.tile(np.arange(1, k + 1), 2)
    block = np.repeat([0, 1], k)
    y1 = np.where(block == 0, u[g - 1] + 0.2 * rng.normal(size=2 * k), np.nan)
    y2 = np.where(block == 1, beta * u[g - 1] + 0.2 * rng.normal(size=2 * k), np.nan)
    return pd.DataFrame({"y1": y1, "y2": y2, "g1": np.where(block == 0, g, np.nan),
                         "g2": np.where(block == 1, g, np.nan)})


def test_copy_with_estimated_beta_recovers_scale():
    d = _copy_data()
    dt = adelia.fit('cbind(y1, y2) ~ 0 + f(g1, model = "iid") + '
                    'f(g2, copy = "g1", hyper = list(beta = list(fixed = FALSE)))', d,
                    family=["gaussian", "gaussian"], n_samples=20)
    s = adelia.summary(dt)
    assert s.loc["Beta for g2", "0.025quant"] < 2.0 < s.loc["Beta for g2", "0.975quant"]


def test_copy_gradient_matches_finite_differences():
    import jax
    d = _copy_data()
    model = compile_model(parse_formula('cbind(y1, y2) ~ 0 + f(g1, model = "iid") + '
                                        'f(g2, copy = "g1", hyper = list(beta = list(fixed = FALSE)))'),
                          d, ["gaussian", "gaussian"])
    prob = LaplaceProblem(model)
    theta = np.array([1.0, 2.0, 0.3, 1.5])
    g = np.asarray(jax.grad(prob.log_posterior)(jnp.asarray(theta)))
    h = 1e-5
    fd = [(float(prob.log_posterior(jnp.asarray(theta + h * e))) - float(prob.log_posterior(jnp.asarray(theta - h * e))))
          / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_copy_of_unknown_component_is_located():
    with pytest.raises(adelia.ModelError, match="not an f\\(\\) term"):
        adelia.fit('cbind(y1, y2) ~ f(g1) + f(g2, copy = "g3")', _copy_data(), family=["gaussian", "gaussian"])
