"""First-order starts for the integration design's inner Newton iterations
(adelia.runtime.inference.Evaluations.predict_modes): closer to x̂(θ) than x̂(θ*), and the fit
does not depend on them."""

import numpy as np
import pandas as pd
import pytest

import adelia
from adelia.runtime import inference
from adelia.runtime.inference import Evaluations, compiled
from adelia.runtime.optimize import find_mode, hessian_at

FORMULA = 'y ~ 1 + x + f(g, model = "iid") + f(t, model = "rw2")'


def _data(seed=1, m=80):
    rng = np.random.default_rng(seed)
    g = rng.integers(1, 11, size=m)
    t = rng.integers(1, 16, size=m)
    x = rng.normal(size=m)
    eta = 0.5 + 0.4 * x + 0.5 * rng.normal(size=11)[g] + np.sin(t / 3)
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": g, "t": t})


@pytest.mark.parametrize("solver", ["dense", "sparse"])
def test_the_predicted_start_is_closer_than_the_mode(solver):
    model = adelia.compile_formula(FORMULA, _data(), family="poisson").problem
    ev = Evaluations(compiled(model, solver))
    mode = find_mode(ev.value_and_grad, ev.cp.initial[ev.cp.free])
    ev.at_mode(mode.theta, mode.f)
    hessian_at(ev.gradient, mode.theta, 0.005)
    ev.predict_modes(mode.theta, 0.005)
    assert ev._predictor is not None
    x_star = np.asarray(ev.x_mode)
    C = np.asarray(model.C)
    for step in ([0.4, 0.0], [0.0, -0.5], [0.3, 0.3]):
        theta = mode.theta + np.asarray(step)
        start = np.asarray(ev._start(theta, ev.x_mode))
        exact = np.asarray(ev.modes(theta[None, :])[0])
        np.testing.assert_allclose(C @ start, C @ x_star, atol=1e-9)     # feasible like x̂(θ*)
        assert np.linalg.norm(start - exact) < 0.25 * np.linalg.norm(x_star - exact)


def test_the_fit_does_not_depend_on_the_starts(monkeypatch):
    data = _data()
    with_starts = adelia.fit(FORMULA, data, family="poisson", solver="sparse", n_samples=0)["inla"]
    monkeypatch.setattr(inference.Evaluations, "predict_modes", lambda self, theta, h: None)
    without = adelia.fit(FORMULA, data, family="poisson", solver="sparse", n_samples=0)["inla"]
    for name in ("summary_fixed", "summary_hyperpar", "summary_random_g", "summary_random_t",
                 "summary_linear_predictor", "design_log_posterior", "log_cpo"):
        np.testing.assert_allclose(np.asarray(with_starts[name]), np.asarray(without[name]), rtol=1e-7, atol=1e-9)
    for name in ("mlik_integration", "mlik_gaussian", "dic", "waic"):
        assert with_starts.attrs[name] == pytest.approx(without.attrs[name], rel=1e-10)
