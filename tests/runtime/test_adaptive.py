"""R-INLA's adaptive strategy: simplified-Laplace corrections for the fixed effects and the small
components only, on the dense, sparse and BTA paths alike."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import adelia
from adelia.compiler.model import compile_model
from adelia.dsl.parser import parse_formula
from adelia.runtime.inference import adaptive_nodes
from adelia.runtime.laplace import LaplaceProblem
from adelia.runtime.laplace_bta import BTALaplaceProblem
from adelia.runtime.laplace_sparse import SparseLaplaceProblem

# besag ⊗ ar1 over years, an iid of 40 nodes (Gaussian under adaptive), an iid of 4 (corrected)
FORMULA = ('y ~ 1 + x + f(region, model = "besag", graph = W, group = year, control.group = list(model = "ar1"))'
           ' + f(idx, model = "iid") + f(site, model = "iid")')


def _data(seed=0, n=10, years=4):
    rng = np.random.default_rng(seed)
    W = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1]).tolil()
    W[0, n - 1] = W[n - 1, 0] = 1
    region = np.tile(np.arange(1, n + 1), years)
    year = np.repeat(np.arange(1, years + 1), n)
    x = rng.normal(size=n * years)
    site = rng.integers(1, 5, size=n * years)
    eta = -0.3 + 0.4 * x + 0.4 * np.sin(region / 2 + year / 3) + 0.3 * (site - 2.5)
    d = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "region": region, "year": year,
                      "idx": np.arange(1, n * years + 1), "site": site})
    return d, sp.csr_matrix(W)


def _model():
    d, W = _data()
    return compile_model(parse_formula(FORMULA), d, "poisson", objects={"W": W}).problem


def test_adaptive_nodes_are_the_fixed_effects_and_small_components():
    prob = _model()
    nodes = adaptive_nodes(prob)
    site = next(c for c in prob.components if c.name == "site")
    expected = np.r_[np.arange(site.offset, site.offset + site.n), np.arange(prob.fixed_offset, prob.N)]
    np.testing.assert_array_equal(np.sort(nodes), np.sort(expected))
    assert all(c.n > 25 for c in prob.components if c.name != "site")


@pytest.mark.parametrize("path", [LaplaceProblem, SparseLaplaceProblem, BTALaplaceProblem])
def test_adaptive_coefficients_equal_the_full_ones_on_their_nodes(path):
    """γ1, γ3 of the selected nodes from their covariance columns (one solve each) equal those of
    the whole covariance on the dense path; every other node keeps γ = 0 and the Gaussian sd."""
    prob = _model()
    nodes = adaptive_nodes(prob)
    theta = jnp.asarray([t.initial for t in prob.thetas]) - 1.0
    full = LaplaceProblem(prob).gaussian(theta, sla=True)
    p = path(prob)
    adaptive = p.gaussian(theta, sla=True, nodes=nodes)
    plain = p.gaussian(theta, sla=False)
    np.testing.assert_allclose(np.asarray(adaptive.sd), np.asarray(full.sd), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(adaptive.eta_sd), np.asarray(full.eta_sd), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(adaptive.sd), np.asarray(plain.sd), rtol=1e-10)
    for field in ("gamma1", "gamma3"):
        a, f = np.asarray(getattr(adaptive, field)), np.asarray(getattr(full, field))
        np.testing.assert_allclose(a[nodes], f[nodes], rtol=1e-7, atol=1e-10, err_msg=field)
        assert np.any(np.abs(f[nodes]) > 1e-4), "the test model needs visible corrections"
    rest = np.setdiff1d(np.arange(prob.N), nodes)
    # outside the nodes γ3 is zero; γ1 only picks up the constraint projection of the nodes' shifts,
    # and no constraint row touches both (the besag's rows cover the besag alone)
    assert np.all(np.asarray(adaptive.gamma3)[rest] == 0.0)
    assert np.all(np.asarray(adaptive.gamma1)[rest] == 0.0)


def test_adaptive_fit_agrees_across_solvers_and_with_simplified_laplace_on_fixed_effects():
    d, W = _data()
    fits = {(solver, strategy): adelia.fit(FORMULA, d, family="poisson", W=W, solver=solver, strategy=strategy,
                                           n_samples=0)
            for solver, strategy in [("dense", "simplified.laplace"), ("dense", "gaussian"),
                                     ("sparse", "adaptive"), ("bta", "adaptive")]}
    ref = fits["dense", "simplified.laplace"]["inla"]["summary_fixed"].to_pandas()
    gauss = fits["dense", "gaussian"]["inla"]["summary_fixed"].to_pandas()
    sd = ref["sd"]
    # the correction matters here: Gaussian marginals are visibly off the corrected ones
    assert np.max(np.abs(gauss["mean"] - ref["mean"]) / sd) > 0.01
    for key in [("sparse", "adaptive"), ("bta", "adaptive")]:
        got = fits[key]["inla"]["summary_fixed"].to_pandas()
        for stat in ("mean", "0.025quant", "0.5quant", "0.975quant"):
            assert np.max(np.abs(got[stat] - ref[stat]) / sd) < 1e-3, (key, stat)
        np.testing.assert_allclose(got["sd"], sd, rtol=1e-3)
        small = fits[key]["inla"]["summary_random_site"].to_pandas()
        small_ref = fits["dense", "simplified.laplace"]["inla"]["summary_random_site"].to_pandas()
        assert np.max(np.abs(small["mean"] - small_ref["mean"]) / small_ref["sd"]) < 1e-3


def test_empirical_bayes_keeps_the_skewed_hyperparameter_marginals():
    """int_strategy = "eb" integrates the latent field at the θ mode only, but the hyperparameter
    summary still comes from the skewness-corrected θ frame (R-INLA's does not depend on the
    integration strategy): it matches the CCD fit's, asymmetric quantiles included."""
    d, W = _data(1)
    f = 'y ~ 1 + x + f(idx, model = "iid") + f(site, model = "iid")'
    eb = adelia.fit(f, d, family="poisson", int_strategy="eb", n_samples=0)
    ccd = adelia.fit(f, d, family="poisson", int_strategy="ccd", n_samples=0)
    a = eb["inla"]["internal_summary_hyperpar"].to_pandas()
    b = ccd["inla"]["internal_summary_hyperpar"].to_pandas()
    pd.testing.assert_frame_equal(a, b, rtol=1e-6)
    lower, upper = a["0.5quant"] - a["0.025quant"], a["0.975quant"] - a["0.5quant"]
    assert np.all(np.abs(upper - lower) / a["sd"] > 0.05)
