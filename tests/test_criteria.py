"""adelia.criteria(dt): the fit's criteria in one dict, PIT values against an independent
importance-sampling estimate from the posterior draws, CPO against R-INLA (S1), and the ArviZ
functions users call on a result (loo, forest, posterior-predictive plots) running on it."""

import json

import matplotlib

matplotlib.use("Agg")

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scipy.stats as st  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

import adelia  # noqa: E402
from adelia.errors import AdeliaError  # noqa: E402

KEYS = {"mlik", "mlik_gaussian", "dic", "dic_p_eff", "waic", "waic_p_eff", "sum_log_cpo", "cpo_failures"}


def _is_pit(loglik: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """PIT_i = Σ_s F_si / p_si / Σ_s 1 / p_si over posterior draws s (Gelfand 1996's identity)."""
    return np.exp(logsumexp(-loglik, axis=0, b=cdf) - logsumexp(-loglik, axis=0))


@pytest.fixture(scope="module")
def gaussian_fit():
    rng = np.random.default_rng(11)
    n = 60
    x = rng.normal(size=n)
    data = pd.DataFrame({"x": x, "y": 1.0 + 0.7 * x + rng.normal(scale=0.5, size=n)})
    return adelia.fit("y ~ 1 + x", data, n_samples=4000, seed=3, posterior_predictive=True), data


def test_keys_and_values_are_the_fits(gaussian_fit):
    dt, _ = gaussian_fit
    c = adelia.criteria(dt)
    assert set(c) == KEYS
    a = dt["inla"].attrs
    assert c["mlik"] == a["mlik_integration"] and c["mlik_gaussian"] == a["mlik_gaussian"]
    for k in ("dic", "dic_p_eff", "waic", "waic_p_eff", "sum_log_cpo"):
        assert c[k] == a[k]
    assert c["sum_log_cpo"] == pytest.approx(float(dt["inla"]["log_cpo"].sum()))
    assert c["cpo_failures"] == 0
    # y ~ 1 + x: about 3 effective parameters (2 coefficients + the precision's little say)
    assert 1.5 < c["dic_p_eff"] < 3.5 and 1.5 < c["waic_p_eff"] < 3.5


def test_pit_matches_importance_sampling_from_the_draws(gaussian_fit):
    dt, data = gaussian_fit
    pit = adelia.criteria(dt, pit=True)["pit"]
    post = dt["posterior"]
    b0, b1 = post["(Intercept)"].values.ravel(), post["x"].values.ravel()
    sd = 1 / np.sqrt(post["Precision for the Gaussian observations"].values.ravel())
    eta = b0[:, None] + b1[:, None] * data.x.to_numpy()[None, :]
    y = data.y.to_numpy()[None, :]
    ref = _is_pit(st.norm.logpdf(y, eta, sd[:, None]), st.norm.cdf(y, eta, sd[:, None]))
    assert pit.shape == (len(data),)
    np.testing.assert_allclose(pit, ref, atol=0.02)
    # and the log CPO from the same draws, within 4 Monte Carlo standard errors of that harmonic
    # mean (delta method: sd(1/p) / mean(1/p) / √S; ≈ 0.014 at the one outlying observation)
    ll = st.norm.logpdf(y, eta, sd[:, None])
    log_cpo = -logsumexp(-ll, axis=0) + np.log(len(b0))
    w = np.exp(-ll - (-ll).max(axis=0))
    se = w.std(axis=0) / w.mean(axis=0) / np.sqrt(len(b0))
    assert np.all(np.abs(dt["inla"]["log_cpo"].values - log_cpo) <= 0.005 + 4 * se)


def test_pit_for_counts_is_p_y_le_obs():
    rng = np.random.default_rng(4)
    n = 40
    x = rng.normal(size=n)
    data = pd.DataFrame({"x": x, "y": rng.poisson(np.exp(0.5 + 0.4 * x))})
    dt = adelia.fit("y ~ 1 + x", data, family="poisson", n_samples=4000, seed=5)
    pit = adelia.criteria(dt, pit=True)["pit"]
    post = dt["posterior"]
    eta = post["(Intercept)"].values.ravel()[:, None] + post["x"].values.ravel()[:, None] * x[None, :]
    y = data.y.to_numpy()[None, :]
    ref = _is_pit(st.poisson.logpmf(y, np.exp(eta)), st.poisson.cdf(y, np.exp(eta)))
    np.testing.assert_allclose(pit, ref, atol=0.02)


def test_cpo_against_rinla_s1(reference):
    folder = reference / "S1_gaussian_linear"
    ref = json.loads((folder / "results.json").read_text())
    dt = adelia.fit("y ~ 1 + x", pd.read_csv(folder / "data.csv"), n_samples=0)
    c = adelia.criteria(dt)
    assert c["sum_log_cpo"] == pytest.approx(ref["cpo"]["sum_log_cpo"], abs=0.02)
    assert c["cpo_failures"] == ref["cpo"]["n_failure"]
    assert c["dic"] == pytest.approx(ref["dic"]["dic"], abs=0.05)
    assert c["waic"] == pytest.approx(ref["waic"]["waic"], abs=0.05)


def test_arviz_functions_run_on_a_result(gaussian_fit):
    import matplotlib.pyplot as plt

    dt, data = gaussian_fit
    loo = az.loo(dt)
    # PSIS-LOO from the draws and adelia's quadrature CPO estimate the same sum
    assert float(loo.elpd) == pytest.approx(adelia.criteria(dt)["sum_log_cpo"], abs=0.3)
    pp = dt["posterior_predictive"]["y"]
    assert pp.shape == (1, 4000, len(data))
    np.testing.assert_array_equal(pp["obs_id"].values, dt["observed_data"]["y"]["obs_id"].values)
    # y_rep spreads around the data with the residual sd plus the fit's uncertainty
    assert np.all(np.abs(pp.mean(("chain", "draw")).values - data.y.to_numpy()) < 1.5)
    az.plot_ppc_dist(dt)
    az.plot_forest(dt)
    az.plot_loo_pit(dt)
    plt.close("all")


def test_pit_from_a_result_read_back(gaussian_fit):
    dt, _ = gaussian_fit
    back = dt.copy()
    back.attrs = {k: v for k, v in dt.attrs.items() if k != "fit_id"}     # as read back in a new process
    np.testing.assert_allclose(adelia.criteria(back, pit=True)["pit"], adelia.criteria(dt, pit=True)["pit"],
                               atol=1e-8)
    del back.attrs["fit_call"]
    assert set(adelia.criteria(back)) == KEYS          # the scalars come from the result itself
    with pytest.raises(AdeliaError, match=r"criteria\(pit=True\) needs the fitted model"):
        adelia.criteria(back, pit=True)
