"""The θ-mode search (adelia.runtime.optimize.find_mode)."""

import numpy as np
import pytest

from adelia.errors import FitError
from adelia.runtime.optimize import find_mode

H = np.diag([2800.0, 290.0, 480.0, 76.0])
MODE = np.array([2.43, 0.47, -0.85, 2.75])


def _noisy_quadratic(noise_f, noise_g):
    """A large model's objective near its mode: steep (posterior sds 0.02–0.1) and carrying
    rounding noise that no line search resolves."""
    def value_and_grad(theta):
        d = np.asarray(theta) - MODE
        phase = 1e9 * np.sum(theta * np.arange(1, 5))
        return 1596.0 + 0.5 * d @ H @ d + noise_f * np.sin(phase), H @ d + noise_g * np.cos(phase + np.arange(4))
    return value_and_grad


def test_precision_loss_near_the_mode_is_accepted():
    res = find_mode(_noisy_quadratic(1e-8, 3e-3), np.zeros(4))
    # within 1e-3 posterior sd of the mode although |∇f| stays above 1e-3
    np.testing.assert_allclose(res.theta, MODE, atol=1e-3 * np.min(1 / np.sqrt(np.diag(H))))


def test_a_search_that_did_not_get_there_is_still_an_error():
    def rosenbrock(theta):
        x, y = theta
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2, np.array([-2 * (1 - x) - 400 * x * (y - x * x),
                                                                 200 * (y - x * x)])

    with pytest.raises(FitError, match="did not converge"):
        find_mode(rosenbrock, np.array([-1.5, 2.0]), max_iter=3)


def test_search_stops_in_the_objectives_rounding_noise(monkeypatch):
    """Once an iteration gains less than the noise allows and the gradient is small, the search stops
    instead of spending its line searches on noise: the same point, a fraction of the work."""
    import adelia.runtime.optimize as optimize

    res = find_mode(_noisy_quadratic(1e-8, 1e-4), np.zeros(4))
    assert res.message == "the objective no longer changes beyond its rounding noise"
    np.testing.assert_allclose(res.theta, MODE, atol=1e-3 * np.min(1 / np.sqrt(np.diag(H))))
    monkeypatch.setattr(optimize, "NOISE_FTOL", 0.0)
    plain = find_mode(_noisy_quadratic(1e-8, 1e-4), np.zeros(4))
    assert res.n_eval < plain.n_eval / 3


def test_a_line_search_lost_in_noise_ends_the_search(monkeypatch):
    """A steep objective whose gradient noise (3e-3) keeps the quasi-Newton search from its own
    tests: evaluations that keep landing within the noise of the best f end the search at the
    best point, a third of the evaluations sooner (L-BFGS-B's own relative-reduction test, at
    ftol 1e-15, ends it eventually)."""
    import adelia.runtime.optimize as optimize

    res = find_mode(_noisy_quadratic(1e-8, 3e-3), np.zeros(4))
    assert res.message == "the line search ran into the objective's rounding noise"
    np.testing.assert_allclose(res.theta, MODE, atol=1e-3 * np.min(1 / np.sqrt(np.diag(H))))
    monkeypatch.setattr(optimize, "NOISE_STREAK", 10 ** 9)
    plain = find_mode(_noisy_quadratic(1e-8, 3e-3), np.zeros(4))
    assert res.n_eval < plain.n_eval * 2 / 3


def test_a_step_outside_the_domain_is_stepped_back_from_not_taken_as_convergence():
    """Where the Laplace objective is undefined (NaN: Q_c not positive definite at that θ) the
    search sees a wall and steps back; a flat start (small curvature, so a long first step)
    must still reach the mode, not stop beside the wall claiming convergence."""
    target = np.array([9.9, 0.001, 9.9, 9.9])
    calls = []

    def value_and_grad(theta):
        # pseudo-Huber: a gradient near 1 but little curvature far from the mode, as the
        # log-precisions of small random effects have: quasi-Newton steps overshoot far
        theta = np.asarray(theta)
        calls.append(theta)
        if np.max(np.abs(theta)) > 15:
            return np.nan, np.full(4, np.nan)
        d = theta - target
        return 70.0 + np.sum(np.sqrt(1.0 + d * d)), d / np.sqrt(1.0 + d * d)

    res = find_mode(value_and_grad, np.array([4.0, 0.0, 4.0, 4.0]))
    assert any(np.max(np.abs(c)) > 15 for c in calls)        # the wall was met
    np.testing.assert_allclose(res.theta, target, atol=1e-3)
    assert np.max(np.abs(res.grad)) < 1e-4


def test_an_evaluated_point_below_gtol_at_the_best_f_ends_the_search():
    """L-BFGS-B tests gtol only at the points its line search accepts; a trial that meets gtol
    at the best f (within the rounding noise) is the mode, and is returned at once."""
    res = find_mode(_noisy_quadratic(1e-8, 0.0), MODE.copy())
    assert res.n_eval == 1 and res.message == "the gradient is below gtol at the best point"
    np.testing.assert_array_equal(res.theta, MODE)
