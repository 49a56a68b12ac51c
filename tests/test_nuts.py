"""method = "nuts", adelia.compare, int_strategy = "nuts" and gradient = "fd" (issue 16).

References: the stored long-run NUTS posterior of S1 (../shared/reference/S1_gaussian_linear/
nuts.json: 4 x 20,000 draws, confirmed by an exact quadrature) and adelia's own INLA fit (exact
for S1 up to the θ integration: the likelihood is Gaussian).

Tolerances are set by the Monte Carlo error of the short chains here: with an effective sample
size n_eff of at least 1,000 (asserted), a mean is off by about sd/√n_eff ≈ 0.03 sd, a sd by about
sd/√(2 n_eff) ≈ 2 %, a median by 1.25/√n_eff ≈ 0.04 sd and a 2.5 % / 97.5 % quantile by
2.7/√n_eff ≈ 0.09 sd (normal approximation of the quantile's sampling sd,
√(q(1−q)/n_eff)/φ(z_q)). Each bound below is about three of those.
"""

import json
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import adelia
from adelia.errors import ModelError

S1_FORMULA = "y ~ 1 + x"


@pytest.fixture(scope="module")
def s1():
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "S1_gaussian_linear"
    if not folder.is_dir():
        pytest.skip("../shared/reference is not present")
    return pd.read_csv(folder / "data.csv"), json.loads((folder / "nuts.json").read_text())


@pytest.fixture(scope="module")
def s1_nuts(s1):
    data, _ = s1
    return adelia.fit(S1_FORMULA, data, method="nuts", chains=4, warmup=400, draws=1000, seed=0)


@pytest.fixture(scope="module")
def s1_inla(s1):
    return adelia.fit(S1_FORMULA, s1[0], n_samples=200)


def test_nuts_schema_and_diagnostics(s1_nuts):
    post = s1_nuts["posterior"]
    assert dict(post.sizes)["chain"] == 4 and dict(post.sizes)["draw"] == 1000
    assert set(post.data_vars) == {"(Intercept)", "x", "Precision for the Gaussian observations"}
    assert "Log precision for the Gaussian observations" in s1_nuts["unconstrained_posterior"].data_vars
    assert s1_nuts["log_likelihood"]["y"].shape == (4, 1000, 100)
    assert s1_nuts["observed_data"]["y"].shape == (100,)
    assert int(s1_nuts["sample_stats"]["diverging"].sum()) == 0
    table = az.summary(s1_nuts, var_names=list(post.data_vars))
    assert (table["r_hat"] < 1.01).all()
    assert (table["ess_bulk"] > 1000).all()
    # the summary tables are the draws' own statistics
    draws = post["x"].values.ravel()
    row = adelia.summary(s1_nuts).loc["x"]
    assert row["mean"] == pytest.approx(draws.mean(), rel=1e-12)
    assert row["0.975quant"] == pytest.approx(np.quantile(draws, 0.975), rel=1e-12)


def test_nuts_log_likelihood_is_each_draws_density(s1_nuts, s1):
    from scipy.stats import norm

    data = s1[0]
    post = s1_nuts["posterior"]
    for c, i in [(0, 7), (3, 999)]:
        eta = post["(Intercept)"].values[c, i] + post["x"].values[c, i] * data["x"].to_numpy()
        sd = 1 / np.sqrt(post["Precision for the Gaussian observations"].values[c, i])
        expected = norm.logpdf(data["y"].to_numpy(), eta, sd)
        assert np.allclose(s1_nuts["log_likelihood"]["y"].values[c, i], expected, rtol=1e-10)


def test_nuts_matches_stored_long_run(s1_nuts, s1):
    table = adelia.compare(s1_nuts, s1[1])
    fixed = table.loc["fixed"]
    assert set(fixed.index) == {"(Intercept)", "x"}
    assert (fixed["mean_diff_sd"].abs() < 0.1).all()
    assert ((fixed["sd_ratio"] - 1).abs() < 0.07).all()
    hyper = table.loc["hyperpar"]
    assert (hyper["mean_diff_sd"].abs() < 0.1).all()
    assert (hyper["q0.5_diff_sd"].abs() < 0.12).all()
    assert (hyper[["q0.025_diff_sd", "q0.975_diff_sd"]].abs() < 0.27).all().all()


def test_nuts_matches_inla(s1_nuts, s1_inla):
    table = adelia.compare(s1_nuts, s1_inla)
    assert (table["mean_diff_sd"].abs() < 0.1).all()
    assert ((table["sd_ratio"] - 1).abs() < 0.07).all()


def test_compare_columns_and_arithmetic(s1_nuts, s1_inla, s1):
    table = adelia.compare(s1_inla, s1_nuts)
    assert list(table.columns) == ["mean_a", "mean_b", "sd_a", "sd_b", "mean_diff_sd", "sd_ratio", "q0.025_diff_sd",
                                   "q0.5_diff_sd", "q0.975_diff_sd"]
    a = adelia.summary(s1_inla).loc["x"]
    b = adelia.summary(s1_nuts).loc["x"]
    row = table.loc[("fixed", "x")]
    assert row["mean_diff_sd"] == pytest.approx((a["mean"] - b["mean"]) / b["sd"], rel=1e-12)
    assert row["sd_ratio"] == pytest.approx(a["sd"] / b["sd"], rel=1e-12)
    assert row["q0.975_diff_sd"] == pytest.approx((a["0.975quant"] - b["0.975quant"]) / b["sd"], rel=1e-12)
    # hyperparameters on the internal scale, from either kind of fit
    assert table.loc[("hyperpar", "Log precision for the Gaussian observations"), "mean_b"] == pytest.approx(
        float(s1_nuts["unconstrained_posterior"]["Log precision for the Gaussian observations"].mean()), rel=1e-12)
    # against itself: no difference
    self_table = adelia.compare(s1_inla, s1_inla)
    assert np.allclose(self_table["mean_diff_sd"], 0) and np.allclose(self_table["sd_ratio"], 1)
    with pytest.raises(adelia.AdeliaError, match="share no parameter"):
        adelia.compare(s1_inla, {"summary.fixed": {"z": {"mean": 0.0, "sd": 1.0}}})


def test_int_strategy_nuts_hyperparameter_quantiles(s1):
    data, ref = s1
    dt = adelia.fit(S1_FORMULA, data, int_strategy="nuts", warmup=300, draws=1000, seed=0, n_samples=0)
    attrs = dt["inla"].attrs
    assert attrs["int_strategy"] == "nuts" and attrs["n_theta_points"] == 1000
    assert np.allclose(dt["inla"]["design_weight"], 1e-3)
    table = adelia.compare(dt, ref)
    hyper = table.loc["hyperpar"]
    assert (hyper[["mean_diff_sd", "q0.025_diff_sd", "q0.5_diff_sd", "q0.975_diff_sd"]].abs() < 0.1).all().all()
    assert ((hyper["sd_ratio"] - 1).abs() < 0.06).all()
    # the latent marginals integrate over the θ draws: S1's fixed effects as exact as with the grid
    assert (table.loc["fixed", "mean_diff_sd"].abs() < 0.03).all()
    assert ((table.loc["fixed", "sd_ratio"] - 1).abs() < 0.03).all()


def test_gradient_fd_same_mode_and_counts(s1):
    data, _ = s1
    ad = adelia.fit(S1_FORMULA, data, n_samples=0)
    fd = adelia.fit(S1_FORMULA, data, n_samples=0, gradient="fd")
    assert np.allclose(fd["inla"]["theta_mode"], ad["inla"]["theta_mode"], atol=1e-3)
    assert fd["inla"].attrs["n_objective"] > ad["inla"].attrs["n_objective"]


def test_fd_gradient_costs_2d_plus_1_objectives():
    from adelia.api import compile_formula
    from adelia.runtime.inference import Evaluations, compiled

    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(1, 9), 6)
    data = pd.DataFrame({"y": 0.5 + rng.normal(size=8)[g - 1] + 0.7 * rng.normal(size=len(g)), "g": g})
    problem = compile_formula('y ~ 1 + f(g, model = "iid")', data).problem
    cp = compiled(problem, "dense")
    ev = Evaluations(cp)
    theta = np.array([0.3, -0.2])
    f_ad, g_ad = ev.value_and_grad(theta)
    before = ev.n_objective, ev.n_gradient
    f_fd, g_fd = ev.value_and_fd_grad(theta, 0.005)
    assert (ev.n_objective - before[0], ev.n_gradient - before[1]) == (2 * 2 + 1, 1)
    assert f_fd == pytest.approx(f_ad, rel=1e-10)
    # central differences: O(h²) from the exact gradient
    assert np.allclose(g_fd, g_ad, atol=1e-4, rtol=1e-4)


def test_unknown_method_and_gradient(s1):
    with pytest.raises(ModelError, match="unknown method 'mcmc'"):
        adelia.fit(S1_FORMULA, s1[0], method="mcmc")
    with pytest.raises(ModelError, match="unknown gradient 'numeric'"):
        adelia.fit(S1_FORMULA, s1[0], gradient="numeric")


def test_joint_density_in_sampler_coordinates_against_dense_reference():
    """The sampler's log density at q = [θ, z] equals, up to one constant, the model's joint
    density at x(q) written out independently (Gaussian likelihood, rw1 prior with its
    generalised determinant ½(n−1) log τ, flat intercept, priors of θ) plus the log volume
    ½ log|JᵀJ| of the map z -> x (J by forward AD): non-centring, the eigenbasis and the
    constrained subspace change coordinates, not the target."""
    import jax
    import jax.numpy as jnp
    from scipy.stats import norm

    from adelia.api import compile_formula
    from adelia.runtime.laplace import LaplaceProblem
    from adelia.runtime.nuts import joint_log_density, parameterise

    rng = np.random.default_rng(5)
    t = np.arange(1, 13)
    data = pd.DataFrame({"y": 1.0 + np.sin(t / 3) + 0.3 * rng.normal(size=12), "t": t})
    problem = compile_formula('y ~ 1 + f(t, model = "rw1")', data).problem
    assert problem.C.shape[0] == 1                       # sum-to-zero
    lp = LaplaceProblem(problem)
    # at a large rw1 precision the prior outweighs the data: its eigen-coordinates are non-centred
    theta_ref = np.array([1.0, 8.0]) if problem.thetas[0].label.startswith("Precision for the Gaussian") \
        else np.array([8.0, 1.0])
    par = parameterise(lp, theta_ref, np.asarray(lp.x_feasible))
    assert par.noncentred.sum() == 11 and par.Z.shape == (13, 12)
    initial = np.array([th.initial for th in problem.thetas])
    log_density, to_theta_x = joint_log_density(lp, par, initial, np.arange(2))
    comp = problem.components[0]
    K = comp.matrices[0].toarray()
    i_rw = comp.theta_index[0]
    i_obs = 1 - i_rw

    def reference(theta, x):
        tau_obs, tau = np.exp(theta[i_obs]), float(comp.coefs[0](jnp.asarray(theta[list(comp.theta_index)])))
        xr = x[comp.offset:comp.offset + comp.n]
        eta = problem.A @ x + problem.offset
        return (np.sum(norm.logpdf(problem.y, eta, 1 / np.sqrt(tau_obs))) + 0.5 * 11 * np.log(tau)
                - 0.5 * tau * xr @ K @ xr + sum(float(th.log_prior(jnp.asarray(theta[k])))
                                                 for k, th in enumerate(problem.thetas)))

    values = []
    for _ in range(4):
        q = np.concatenate([theta_ref + rng.normal(scale=0.5, size=2), rng.normal(size=12)])
        theta, x = map(np.asarray, to_theta_x(jnp.asarray(q)))
        assert np.max(np.abs(problem.C @ x - problem.e)) < 1e-10
        J = np.asarray(jax.jacfwd(lambda z: to_theta_x(jnp.concatenate([jnp.asarray(q[:2]), z]))[1])(jnp.asarray(q[2:])))
        log_volume = 0.5 * np.linalg.slogdet(J.T @ J)[1]
        values.append(float(log_density(jnp.asarray(q))) - reference(theta, x) - log_volume)
    assert np.ptp(values) < 1e-8
