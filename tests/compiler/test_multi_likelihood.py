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
