"""The public surface: fit() -> DataTree in the ArviZ schema, summary(), errors users see."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import adelia


@pytest.fixture(scope="module")
def seeds_like():
    rng = np.random.default_rng(5)
    m = 30
    plate = np.arange(1, m + 1)
    x = rng.integers(0, 2, size=m).astype(float)
    n = rng.integers(20, 60, size=m)
    eta = -0.4 + 0.8 * x + 0.3 * rng.normal(size=m)
    r = rng.binomial(n, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"r": r, "n": n, "x": x, "plate": plate})


@pytest.fixture(scope="module")
def fitted(seeds_like):
    return adelia.fit('r ~ 1 + x + f(plate, model = "iid")', seeds_like, family="binomial", Ntrials="n",
                      n_samples=100, seed=3)


def test_datatree_groups_and_dims(fitted):
    assert isinstance(fitted, xr.DataTree)
    for group in ("posterior", "unconstrained_posterior", "log_likelihood", "observed_data", "inla"):
        assert group in fitted.children
    post = fitted["posterior"].to_dataset()
    assert post["(Intercept)"].dims == ("chain", "draw")
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == 100
    assert post["plate"].dims == ("chain", "draw", "plate_index")
    assert fitted["log_likelihood"]["y"].shape == (1, 100, 30)
    assert "Precision for plate" in post
    assert fitted.attrs["inference_library"] == "adelia"


def test_summary_names_like_r_inla(fitted):
    s = adelia.summary(fitted)
    assert list(s.columns) == ["mean", "sd", "0.025quant", "0.5quant", "0.975quant", "mode"]
    assert list(s.index) == ["(Intercept)", "x", "Precision for plate"]
    assert (s["0.025quant"] < s["0.5quant"]).all() and (s["0.5quant"] < s["0.975quant"]).all()


def test_draws_agree_with_marginals(fitted):
    s = adelia.summary(fitted)
    draws = fitted["posterior"]["x"].values.ravel()
    assert abs(draws.mean() - s.loc["x", "mean"]) < 4 * s.loc["x", "sd"] / np.sqrt(len(draws))


def test_works_with_arviz(fitted):
    az = pytest.importorskip("arviz")
    table = az.summary(fitted, var_names=["(Intercept)", "x"], kind="stats")
    assert {"mean", "sd"} <= set(table.columns)
    loo = az.loo(fitted)
    assert np.isfinite(loo.elpd)


def test_plot_forest(fitted):
    pytest.importorskip("matplotlib")
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    az.plot_forest(fitted, var_names=["x"])


def test_netcdf_round_trip(fitted, tmp_path):
    path = tmp_path / "fit.nc"
    fitted.to_netcdf(path, engine="h5netcdf")
    back = xr.open_datatree(path, engine="h5netcdf")
    pd.testing.assert_frame_equal(adelia.summary(back), adelia.summary(fitted))


def test_missing_response_rows_become_predictions(seeds_like):
    d = seeds_like.copy()
    d.loc[[3, 7], "r"] = np.nan
    dt = adelia.fit('r ~ 1 + x + f(plate, model = "iid")', d, family="binomial", Ntrials="n", n_samples=20)
    assert dt["predictions"]["eta"].shape == (1, 20, 2)
    assert dt["log_likelihood"]["y"].shape[-1] == 28


def test_gaussian_with_rw1_and_constraint():
    rng = np.random.default_rng(1)
    t = np.arange(1, 41)
    d = pd.DataFrame({"t": t, "y": np.sin(t / 6) + 0.2 * rng.normal(size=40)})
    dt = adelia.fit('y ~ 1 + f(t, model = "rw1")', d, n_samples=20)
    field = dt["inla"]["summary_random_t"].sel(stat="mean").values
    assert abs(field.sum()) < 1e-8          # sum-to-zero held exactly
    assert np.corrcoef(field, np.sin(t / 6))[0, 1] > 0.9


def test_besag_with_graph_object():
    import scipy.sparse as sp

    n = 12
    W = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1])     # a path graph
    rng = np.random.default_rng(2)
    d = pd.DataFrame({"region": np.arange(1, n + 1), "y": rng.poisson(5, size=n), "E": np.full(n, 5.0)})
    dt = adelia.fit('y ~ 1 + f(region, model = "besag", graph = W, scale.model = TRUE)', d, family="poisson",
                    E="E", W=W, n_samples=10)
    assert "Precision for region" in adelia.summary(dt).index


@pytest.mark.parametrize("call,match", [
    (lambda d: adelia.fit("y ~ x +", d), r"ends too early"),
    (lambda d: adelia.fit('y ~ f(g, model = "iiid")', d), r"did you mean 'iid'"),
    (lambda d: adelia.fit("y ~ xx", d), r"'xx'.*neither a data column"),
    (lambda d: adelia.fit("y ~ x", d, family="poison"), r"did you mean 'poisson'"),
    (lambda d: adelia.fit("y ~ x", d, family="binomial"), r"non-negative integers|Ntrials"),
    (lambda d: adelia.fit("y ~ x", d, Ntrials="n"), r"does not apply"),
    (lambda d: adelia.fit('y ~ f(g, modle = "iid")', d), r"(?s)no argument 'modle'.*did you mean 'model'"),
    (lambda d: adelia.fit("y ~ x", d, bogus=1), r"unexpected keyword argument"),
    (lambda d: adelia.fit("y ~ x", d, int_strategy="gird"), r"did you mean 'grid'"),
    (lambda d: adelia.fit('y ~ f(g, hyper = list(prec = list(prior = "pc.prec", param = c(1))))', d),
     r"takes 2 parameter"),
    (lambda d: adelia.fit('y ~ f(g, model = "besag")', d), r"needs a graph"),
    (lambda d: adelia.fit("y ~ x", d.assign(x=[np.nan] + [1.0] * 9)), r"missing|null"),
])
def test_bad_input_gives_located_adelia_error(call, match):
    d = pd.DataFrame({"y": np.arange(10.0), "x": np.linspace(0, 1, 10), "g": np.arange(10) % 3,
                      "n": np.full(10, 20)})
    with pytest.raises(adelia.AdeliaError, match=match):
        call(d)


def test_syntax_error_has_position():
    with pytest.raises(adelia.FormulaSyntaxError) as info:
        adelia.parse_formula('y ~ f(region model = "bym2")')
    assert (info.value.line, info.value.column) == (1, 14)
    assert "^~~~~" in str(info.value)


def test_fixed_hyperparameter_on_the_natural_scale():
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"y": rng.normal(size=40), "g": np.arange(40) % 8})
    dt = adelia.fit('y ~ 1 + f(g, model = "iid", hyper = list(prec = fixed(2.5)))', d, n_samples=10)
    assert "Precision for g" not in adelia.summary(dt).index
    assert float(dt["inla"]["theta_mode"].sel(theta="Log precision for g")) == pytest.approx(np.log(2.5), abs=1e-9)


def test_stage_timings_and_evaluation_counts(fitted):
    import json

    attrs = fitted["inla"].attrs
    timings = json.loads(attrs["timings"])
    stages = ("parse", "compile", "setup", "mode", "hessian", "integration", "marginals", "criteria", "sampling",
              "results")
    assert set(stages) | {"jit", "total"} == set(timings)
    assert all(timings[s] >= 0 for s in timings)
    assert sum(timings[s] for s in stages) <= timings["total"] * (1 + 1e-9)
    assert timings["jit"] <= timings["total"]
    # θ-mode search, 2d Hessian gradients, then the integration points (each at least once)
    d = 1
    assert attrs["n_gradient"] >= attrs["optimizer_evaluations"] + 2 * d
    assert attrs["n_objective"] >= attrs["n_gradient"]
    assert attrs["n_objective"] >= attrs["optimizer_evaluations"] + 2 * d + attrs["n_theta_points"] - 1
