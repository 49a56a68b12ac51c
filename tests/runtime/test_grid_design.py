"""The grid design and its θ marginals against dense quadrature of known two-dimensional
log-densities (integrate.grid_design, marginals.theta_marginal_lattice): a correlated Gaussian,
where the design must be R-INLA's (the lattice points within diff.logdens, nothing more), and
posteriors that R-INLA's box of axis scans cuts: a banana-shaped ridge and an exponential tail.
"""

import numpy as np
import pytest
from scipy.special import log_expit

from adelia.runtime.integrate import grid_design, standardise
from adelia.runtime.marginals import density_summary, theta_marginal_ccd, theta_marginal_lattice

COV = np.array([[1.0, 0.6], [0.6, 0.5]])


def gaussian(t):
    t = np.atleast_2d(t)
    return 0.5 * np.einsum("ni,ij,nj->n", t, np.linalg.inv(COV), t)


def banana(t):
    """θ₂ | θ₁ ~ N(0.35 θ₁², 0.3²), θ₁ ~ N(0, 1): a ridge bending away from the axes."""
    t = np.atleast_2d(t)
    return 0.5 * t[:, 0] ** 2 + 0.5 * ((t[:, 1] - 0.35 * t[:, 0] ** 2) / 0.3) ** 2


def exp_tail(t):
    """θ₁ falls at rate 4 to the left and 0.25 to the right (a PC prior's tail once the
    likelihood is flat); θ₂ | θ₁ ~ N(0.2 θ₁, 0.4²)."""
    t = np.atleast_2d(t)
    return -4.0 * log_expit(t[:, 0]) - 0.25 * log_expit(-t[:, 0]) + 0.5 * ((t[:, 1] - 0.2 * t[:, 0]) / 0.4) ** 2


def _mode_and_hessian(f, start):
    from scipy.optimize import minimize

    mode = minimize(lambda t: f(t)[0], start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14}).x
    h = 1e-4
    H = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            H[i, j] = (f(mode + ei + ej) - f(mode + ei - ej) - f(mode - ei + ej) + f(mode - ei - ej))[0] / (4 * h * h)
    return mode, H


def _exact(f, j, lo=-12.0, hi=70.0, n=3201):
    a = np.linspace(lo, hi, n)
    A, B = np.meshgrid(a, np.linspace(-25, 60, 2001), indexing="ij") if j == 0 else \
        np.meshgrid(np.linspace(-12, 70, 3201), a, indexing="ij")
    p = np.exp(-(f(np.c_[A.ravel(), B.ravel()]) - f(np.zeros((1, 2)))[0]).reshape(A.shape))
    m = p.sum(axis=1 - j)
    m /= m.sum()
    mean = m @ a
    return mean, np.sqrt(m @ (a - mean) ** 2)


def _design(f, start=(0.0, 0.0)):
    mode, H = _mode_and_hessian(f, np.asarray(start, float))
    f_mode = f(mode)[0]
    frame = standardise(mode, H, f, f_mode)
    Z, fz, n_core = grid_design(frame, f, f_mode)
    return frame, Z, fz, f_mode, n_core


def test_gaussian_design_is_rinla_s():
    frame, Z, fz, f_mode, n_core = _design(gaussian)
    assert n_core == len(Z)                     # no tail
    # the lattice points within diff.logdens (z on 0.75·ℤ², f − f* = |z|²/2 exactly) and the four
    # first points past it on the axes
    k = np.arange(-12, 13)
    lattice = np.array([(a, b) for a in k for b in k], float) * 0.75
    inside = lattice[0.5 * np.sum(lattice ** 2, axis=1) <= 6.0]
    axes = np.array([[5, 0], [-5, 0], [0, 5], [0, -5]], float) * 0.75
    expect = {tuple(np.round(z, 6)) for z in np.concatenate([inside, axes])}
    assert {tuple(np.round(z, 6)) for z in Z} == expect
    np.testing.assert_allclose(fz - f_mode, 0.5 * np.sum(Z ** 2, axis=1), atol=1e-8)


@pytest.mark.parametrize("f", [gaussian, banana, exp_tail], ids=["gaussian", "banana", "exp-tail"])
def test_marginals_match_dense_quadrature(f):
    frame, Z, fz, _, n_core = _design(f)
    assert (n_core < len(Z)) == (f is not gaussian)     # the ridge and the exponential tail are continued
    for j in range(2):
        t, logd = theta_marginal_lattice(frame, Z, -fz, 0.75, j)
        got = density_summary(t, logd, lambda v: v)["internal"]
        mean, sd = _exact(f, j)
        assert abs(got["mean"] - mean) < 0.05 * sd, (j, got["mean"], mean)
        assert got["sd"] == pytest.approx(sd, rel=0.03), j


@pytest.mark.parametrize("f", [banana, exp_tail], ids=["banana", "exp-tail"])
def test_the_box_and_its_interpolant_would_miss(f):
    """Why the design grows from the mode and the marginal integrates the cells: the asymmetric-
    Gaussian interpolant (R-INLA's for d > 1) is off by more than 10 % in sd on these."""
    frame, *_ = _design(f)
    worst = 0.0
    for j in range(2):
        t, logd = theta_marginal_ccd(frame, j)
        got = density_summary(t, logd, lambda v: v)["internal"]
        worst = max(worst, abs(got["sd"] / _exact(f, j)[1] - 1))
    assert worst > 0.1
