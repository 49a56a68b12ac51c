"""Marginal density tables (R-INLA's marginals.fixed / hyperpar / random / linear.predictor) and
the kld column: tables against the summaries, kld against an independent scipy computation
(skewnorm mixture, adaptive quadrature) of R-INLA's symmetric KL between the marginal and the
Gaussian with its mean and sd."""

import numpy as np
import pandas as pd
import pytest
import scipy.integrate as si
import scipy.stats as st

import adelia
from adelia.errors import ModelError
from adelia.prediction import fit_state


@pytest.fixture(scope="module")
def seeds_like():
    rng = np.random.default_rng(0)
    n = 21
    d = pd.DataFrame({"x1": rng.integers(0, 2, n), "x2": rng.integers(0, 2, n), "plate": np.arange(1, n + 1),
                      "n": rng.integers(5, 40, n)})
    d["r"] = rng.binomial(d.n, 1 / (1 + np.exp(-(-0.5 + 0.3 * d.x1 + rng.normal(scale=0.4, size=n)))))
    dt = adelia.fit('r ~ 1 + x1*x2 + f(plate, model = "iid")', d, family="binomial", Ntrials="n", n_samples=0,
                    marginals=("fixed", "hyperpar", "random", "linear_predictor"))
    return dt


def _mixture(res, col):
    pm = res.point_marginals
    w = res.weights / res.weights.sum()
    loc = pm["mean"][:, col] + pm["sd"][:, col] * pm["xi"][:, col]
    return w, loc, pm["sd"][:, col] * pm["omega"][:, col], pm["alpha"][:, col]


def test_tables_agree_with_the_summaries(seeds_like):
    inla = seeds_like["inla"]
    res = fit_state(seeds_like).result
    for what, summ, dim in (("fixed", "summary_fixed", "fixed_term"),
                            ("random_plate", "summary_random_plate", "plate_index")):
        np.testing.assert_array_equal(inla[f"marginals_{what}_x"][dim].values, inla[summ][dim].values)
        x, dens = inla[f"marginals_{what}_x"].values, inla[f"marginals_{what}_density"].values
        assert x.shape[1] == 43 and np.all(np.diff(x, axis=1) > 0) and np.all(dens >= 0)
    # smooth fixed-effect marginals: the 43-point trapezoid holds the mass and the mean
    x, dens = inla["marginals_fixed_x"].values, inla["marginals_fixed_density"].values
    np.testing.assert_allclose(np.trapezoid(dens, x, axis=1), 1.0, atol=0.02)
    mean = np.trapezoid(dens * x, x, axis=1) / np.trapezoid(dens, x, axis=1)
    sd = inla["summary_fixed"].sel(stat="sd").values
    assert np.all(np.abs(mean - inla["summary_fixed"].sel(stat="mean").values) < 0.02 * sd)
    # every table: the mixture's density at its own 1e-5 ... 1 - 1e-5 quantiles (scipy's skew-normal)
    fo = res.problem.fixed_offset
    p = np.array([1e-5, 0.025, 0.5, 0.975, 1 - 1e-5])
    at = [0, 4, 21, 38, 42]
    for name, col, row in (("fixed", fo + 1, 1), ("random_plate", 3, 3), ("random_plate", 17, 17)):
        w, loc, scale, alpha = _mixture(res, col)
        xs = inla[f"marginals_{name}_x"].values[row]
        cdf = sum(wk * st.skewnorm.cdf(xs[at], a, l, s_) for wk, l, s_, a in zip(w, loc, scale, alpha))
        np.testing.assert_allclose(cdf, p, atol=1e-6)
        pdf = sum(wk * st.skewnorm.pdf(xs, a, l, s_) for wk, l, s_, a in zip(w, loc, scale, alpha))
        np.testing.assert_allclose(inla[f"marginals_{name}_density"].values[row], pdf, rtol=1e-8)
    hx, hd = inla["marginals_hyperpar_x"].values, inla["marginals_hyperpar_density"].values
    np.testing.assert_allclose(np.trapezoid(hd, hx, axis=1), 1.0, atol=0.01)
    np.testing.assert_allclose(np.trapezoid(hd * hx, hx, axis=1), inla["summary_hyperpar"].sel(stat="mean").values,
                               rtol=0.01)
    ix, idn = inla["marginals_internal_hyperpar_x"].values, inla["marginals_internal_hyperpar_density"].values
    np.testing.assert_allclose(np.trapezoid(idn * ix, ix, axis=1),
                               inla["internal_summary_hyperpar"].sel(stat="mean").values, atol=0.01)
    assert inla["marginals_linear_predictor_x"].shape == (21, 43)


def _kld_scipy(w, loc, scale, alpha, mean, sd):
    p = lambda x: sum(wk * st.skewnorm.pdf(x, a, l, s) for wk, l, s, a in zip(w, loc, scale, alpha))
    g = lambda x: st.norm.pdf(x, mean, sd)
    lo, hi = mean - 12 * sd, mean + 12 * sd
    kl_pg = si.quad(lambda x: p(x) * np.log(max(p(x), 1e-300) / max(g(x), 1e-300)), lo, hi, limit=200)[0]
    kl_gp = si.quad(lambda x: g(x) * np.log(max(g(x), 1e-300) / max(p(x), 1e-300)), lo, hi, limit=200)[0]
    return max(0.5 * (kl_pg + kl_gp), 0.0)


def test_kld_is_rinla_symmetric_kl(seeds_like):
    inla = seeds_like["inla"]
    res = fit_state(seeds_like).result
    fo = res.problem.fixed_offset
    for name, col in (("fixed", fo), ("fixed", fo + 2), ("random_plate", 0), ("random_plate", 5)):
        w, loc, scale, alpha = _mixture(res, col)
        ref = _kld_scipy(w, loc, scale, alpha, res.latent["mean"][col], res.latent["sd"][col])
        got = inla[f"kld_{name}"].values[col - fo if name == "fixed" else col]
        assert got == pytest.approx(ref, rel=0.02, abs=1e-7)
    assert np.all(inla["kld_random_plate"].values >= 0)


def test_gaussian_marginal_has_zero_kld_and_options():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"x": rng.normal(size=30)})
    d["y"] = 1 + d.x + rng.normal(size=30)
    dt = adelia.fit("y ~ 1 + x", d, n_samples=0, int_strategy="eb")
    # one θ point and a Gaussian likelihood: the marginal is the Gaussian itself
    assert np.all(dt["inla"]["kld_fixed"].values < 1e-8)
    none = adelia.fit("y ~ 1 + x", d, n_samples=0, int_strategy="eb", marginals=())
    assert not any(v.startswith("marginals_") or v.startswith("kld_") for v in none["inla"].data_vars)
    with pytest.raises(ModelError, match="unknown marginals 'latent'"):
        adelia.fit("y ~ 1 + x", d, n_samples=0, int_strategy="eb", marginals=("latent",))
