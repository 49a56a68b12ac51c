"""adelia.predict: new rows from a fit without refitting, checked against refitting with the
rows appended (response NA), which adelia predicts into summary_linear_predictor.

Where the fitted prior is the marginal of the extended one (new covariates, new SPDE locations,
rw2/ar1 time points past the data, unseen iid levels) the two are the same mathematics: the
summaries must agree to 1e-6 (they do to ~1e-10; the residual is the θ-mode search of the refit).
The draws are checked against the analytic summaries within Monte-Carlo error (4 standard errors).
"""

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import adelia
from adelia.compiler.latent.spde import SPDE
from adelia.compiler.mesh import Mesh
from adelia.errors import AdeliaError, DataError, ModelError

STATS = ["mean", "sd", "0.025quant", "0.5quant", "0.975quant"]


def _refit_table(formula, data, new, **kw):
    full = pd.concat([data, new.assign(y=np.nan)], ignore_index=True)
    ref = adelia.fit(formula, full, n_samples=0, **kw)
    return ref["inla"]["summary_linear_predictor"].sel(stat=STATS).values[len(data):]


@pytest.fixture(scope="module")
def combined():
    """Gaussian: fixed effects + rw2 in time + iid groups; new rows with new covariate values,
    time points past the data and a group level never seen."""
    rng = np.random.default_rng(3)
    T = 30
    t = np.arange(1, T + 1)
    g = rng.choice(["a", "b", "c", "d"], T)
    x = rng.normal(size=T)
    effect = dict(a=0.3, b=-0.2, c=0.1, d=0.0)
    y = 0.5 + 0.8 * x + np.sin(t / 5) + np.array([effect[v] for v in g]) + rng.normal(scale=0.3, size=T)
    data = pd.DataFrame({"y": y, "x": x, "t": t, "g": g})
    new = pd.DataFrame({"x": [0.2, -1.0, 1.5, 0.0], "t": [31, 33, 5, 32], "g": ["a", "e", "b", "f"]})
    formula = 'y ~ 1 + x + f(t, model = "rw2") + f(g, model = "iid")'
    dt = adelia.fit(formula, data, n_samples=200)
    return dt, data, new, formula


def test_new_covariates_future_times_unseen_levels_match_refit(combined):
    dt, data, new, formula = combined
    pred = adelia.predict(dt, new, kind="linear", n_samples=4000, seed=1)
    got = pred["inla"]["summary_linear_predictor"].sel(stat=STATS).values
    ref = _refit_table(formula, data, new)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    # draws: means and sds within Monte-Carlo error of the analytic mixture
    eta = pred["predictions"]["eta"].values[0]
    mean, sd = got[:, 0], got[:, 1]
    assert np.all(np.abs(eta.mean(0) - mean) < 4 * sd / np.sqrt(len(eta)))
    np.testing.assert_allclose(eta.std(0), sd, rtol=0.06)
    assert pred["inla"].attrs["kind"] == "linear"
    np.testing.assert_array_equal(pred["inla"]["summary_predictions"].values,
                                  pred["inla"]["summary_linear_predictor"].values)


def test_posterior_predictive_adds_the_gaussian_noise(combined):
    dt, data, new, _ = combined
    pred = adelia.predict(dt, new, n_samples=4000, seed=2)
    lin = pred["inla"]["summary_linear_predictor"].sel(stat="sd").values
    # identity link: the fitted-value table is the linear predictor's
    np.testing.assert_allclose(pred["inla"]["summary_fitted_values"].sel(stat=STATS).values,
                               pred["inla"]["summary_linear_predictor"].sel(stat=STATS).values, atol=1e-9)
    y = pred["predictions"]["y"].values[0]
    prec = dt["posterior"]["Precision for the Gaussian observations"].values.ravel()
    expected = np.sqrt(lin ** 2 + np.mean(1 / prec))
    np.testing.assert_allclose(y.std(0), expected, rtol=0.06)
    np.testing.assert_array_equal(pred["predictions"]["mu"].values, pred["predictions"]["eta"].values)


def test_poisson_fixed_effects_response_scale_exact():
    rng = np.random.default_rng(5)
    n = 50
    data = pd.DataFrame({"x": rng.normal(size=n), "E": rng.uniform(0.5, 2, n)})
    data["y"] = rng.poisson(data.E * np.exp(0.3 + 0.6 * data.x))
    new = pd.DataFrame({"x": [-1.0, 0.5, 2.0], "E": [1.0, 2.0, 0.5]})
    formula = "y ~ 1 + x"
    dt = adelia.fit(formula, data, family="poisson", E="E", n_samples=100)
    pred = adelia.predict(dt, new, n_samples=3000, seed=3)
    lin = pred["inla"]["summary_linear_predictor"].sel(stat=STATS).values
    np.testing.assert_allclose(lin, _refit_table(formula, data, new, family="poisson", E="E"), atol=1e-6)
    fitted = pred["inla"]["summary_fitted_values"]
    # quantiles map through exp; the mean is E exp(η) under the (near-Gaussian) mixture
    np.testing.assert_allclose(fitted.sel(stat="0.5quant").values, np.exp(lin[:, 3]), rtol=1e-12)
    np.testing.assert_allclose(fitted.sel(stat="mean").values, np.exp(lin[:, 0] + lin[:, 1] ** 2 / 2), rtol=2e-3)
    mu = pred["predictions"]["mu"].values[0]
    y = pred["predictions"]["y"].values[0]
    np.testing.assert_allclose(mu, np.exp(pred["predictions"]["eta"].values[0]))
    # y | μ ~ Poisson(E μ): E y = E·E[μ], Var y = E·E[μ] + E²·Var μ
    Ey, Vy = new.E.to_numpy() * mu.mean(0), new.E.to_numpy() * mu.mean(0) + new.E.to_numpy() ** 2 * mu.var(0)
    assert np.all(np.abs(y.mean(0) - Ey) < 4 * np.sqrt(Vy / len(y)))
    assert np.all(y == np.round(y)) and np.all(y >= 0)


def test_new_spde_locations_match_refit():
    rng = np.random.default_rng(7)
    loc = rng.uniform(0, 1, size=(30, 2))
    new_loc = np.array([[0.5, 0.5], [0.1, 0.9], [0.95, 0.2]])
    mesh = Mesh.from_delaunay(loc, offset=0.3, spacing=0.3)
    y = np.sin(3 * loc[:, 0]) + loc[:, 1] + rng.normal(scale=0.1, size=30)
    data = pd.DataFrame({"y": y, "site": np.arange(1, 31)})
    formula = "y ~ 1 + f(site, model = sp)"
    sp_fit = SPDE(mesh, prior_range=(0.3, 0.5), prior_sigma=(1.0, 0.01), loc=loc)
    dt = adelia.fit(formula, data, n_samples=50, sp=sp_fit)
    pred = adelia.predict(dt, pd.DataFrame(index=range(3)), kind="linear", n_samples=0,
                          locations={"site": new_loc})
    got = pred["inla"]["summary_linear_predictor"].sel(stat=STATS).values
    sp_all = SPDE(mesh, prior_range=(0.3, 0.5), prior_sigma=(1.0, 0.01), loc=np.vstack([loc, new_loc]))
    ref = _refit_table(formula, data, pd.DataFrame({"site": [31, 32, 33]}), sp=sp_all)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert "predictions" not in pred.children      # n_samples = 0: the tables only


def test_errors_are_located(combined):
    dt, data, new, _ = combined
    with pytest.raises(DataError, match=r"newdata: cannot build the fixed-effect design"):
        adelia.predict(dt, new.drop(columns="x"))
    with pytest.raises(ModelError, match=r"change the model on the fitted values"):
        adelia.predict(dt, pd.DataFrame({"x": [0.0], "t": [10.5], "g": ["a"]}))
    with pytest.raises(ModelError, match="unknown kind"):
        adelia.predict(dt, new, kind="mean")
    with pytest.raises(ModelError, match="not an f\\(\\) term"):
        adelia.predict(dt, new, locations={"nope": np.zeros((4, 2))})


def test_new_areas_must_be_graph_nodes():
    W = np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]])
    data = pd.DataFrame({"y": [0.1, 0.5, -0.2, 0.3, 0.0, 0.4], "r": [1, 2, 3, 1, 2, 3]})
    dt = adelia.fit('y ~ 1 + f(r, model = "besag", graph = W)', data, n_samples=0, W=W)
    # area 4 is in the graph though it had no data: a node of the fit, predicted
    ok = adelia.predict(dt, pd.DataFrame({"r": [4]}), n_samples=0)
    assert np.isfinite(ok["inla"]["summary_linear_predictor"].values).all()
    with pytest.raises(DataError, match=r"newdata row 1, column 'r': value 7 is not a node of the graph"):
        adelia.predict(dt, pd.DataFrame({"r": [2, 7]}), n_samples=0)
    # read back: the graph is not in the file, so it is passed again
    back = dt.copy()
    del back.attrs["fit_id"]
    with pytest.raises(AdeliaError, match="needs the objects the formula names: W"):
        adelia.predict(back, pd.DataFrame({"r": [4]}), n_samples=0)
    again = adelia.predict(back, pd.DataFrame({"r": [4]}), n_samples=0, W=W)
    np.testing.assert_allclose(again["inla"]["summary_linear_predictor"].values,
                               ok["inla"]["summary_linear_predictor"].values, atol=1e-9)


def test_result_read_back_from_netcdf(combined, tmp_path):
    dt, _, new, _ = combined
    path = tmp_path / "fit.nc"
    dt.to_netcdf(path, engine="h5netcdf")
    back = xr.open_datatree(path, engine="h5netcdf")
    assert back.attrs["fit_id"] == dt.attrs["fit_id"]
    del back.attrs["fit_id"]          # as in a new process: the fit is rebuilt from the file
    here = adelia.predict(dt, new, kind="linear", n_samples=0)
    again = adelia.predict(back, new, kind="linear", n_samples=0)
    np.testing.assert_allclose(again["inla"]["summary_linear_predictor"].values,
                               here["inla"]["summary_linear_predictor"].values, rtol=0, atol=1e-9)
    # the stored data must reproduce the fit
    back["constant_data"]["y"] = back["constant_data"]["y"] + 1.0
    with pytest.raises(AdeliaError, match="does not reproduce the fit's linear predictor"):
        adelia.predict(back, new, n_samples=0)
    del back.attrs["fit_call"]
    with pytest.raises(AdeliaError, match="needs the fitted model"):
        adelia.predict(back, new)
    with pytest.raises(AdeliaError, match="DataTree returned by adelia.fit"):
        adelia.predict(xr.DataTree(), new)


def test_cli_predict_writes_the_predictions(tmp_path):
    import shutil

    from click.testing import CliRunner

    from adelia.cli import cli

    examples = os.path.join(os.path.dirname(__file__), "..", "examples")
    for name in ("growth.adl", "growth.csv"):
        shutil.copy(os.path.join(examples, name), tmp_path / name)
    pd.DataFrame({"x": [0.5, -1.0], "group": [1, 99]}).to_csv(tmp_path / "new.csv", index=False)
    runner = CliRunner()
    out = tmp_path / "pred.nc"
    res = runner.invoke(cli, ["predict", str(tmp_path / "growth.adl"), str(tmp_path / "new.csv"), "-o", str(out),
                              "--samples", "100", "-q", "--kind", "linear"])
    assert res.exit_code == 0, res.output
    assert "Predictions (linear predictor)" in res.output
    back = xr.open_datatree(out, engine="h5netcdf")
    assert back["predictions"]["y"].shape == (1, 100, 2)
    tab = back["inla"]["summary_predictions"]
    # group 99 was never seen: its iid effect comes from the prior, so it is far less certain
    assert float(tab.sel(stat="sd")[1]) > 2 * float(tab.sel(stat="sd")[0])
    # an existing output is kept unless --force
    res = runner.invoke(cli, ["predict", str(tmp_path / "growth.adl"), str(tmp_path / "new.csv"), "-o", str(out)])
    assert res.exit_code == 2 and "exists" in res.output
