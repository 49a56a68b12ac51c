"""Posterior marginals: Gaussian mixtures over the θ points (latent field) and the θ marginals.

Latent marginals (strategy "gaussian"): π(x_j | y) ≈ Σ_k w_k N(x̂_j(θ_k), σ²_j(θ_k)), the
weights being the normalised integration weights. Hyperparameter marginals: for d = 1 the
log-density through the grid points (a cubic spline, R-INLA's "gridsum" idea); for d > 1
R-INLA's asymmetric-Gaussian ("ccd") interpolator along the line of conditional means
(METHOD.md §13.1, ``GMRFLib_ai_marginal_one_hyperparamter``).
"""

from __future__ import annotations

__all__ = ["mixture_summary", "density_summary", "theta_marginal_grid", "QUANTILES"]

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.special import ndtr

QUANTILES = (0.025, 0.5, 0.975)


def mixture_summary(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, quantiles=QUANTILES) -> dict[str, np.ndarray]:
    """Mean, sd, quantiles and mode of Σ_k w_k N(mu[k], sd[k]²), columnwise (mu, sd: (K, n))."""
    w = np.asarray(w, float) / np.sum(w)
    mu, sd = np.atleast_2d(mu), np.maximum(np.atleast_2d(sd), 1e-300)
    mean = w @ mu
    var = w @ (sd ** 2 + mu ** 2) - mean ** 2
    out = {"mean": mean, "sd": np.sqrt(np.maximum(var, 0.0))}
    lo = np.min(mu - 10 * sd, axis=0)
    hi = np.max(mu + 10 * sd, axis=0)
    for q in quantiles:
        a, b = lo.copy(), hi.copy()
        for _ in range(80):          # bisection on the mixture CDF, all columns at once
            mid = 0.5 * (a + b)
            below = (w @ ndtr((mid - mu) / sd)) < q
            a, b = np.where(below, mid, a), np.where(below, b, mid)
        out[f"{q}quant"] = 0.5 * (a + b)
    # mode: density on a grid around the mean, refined once
    s = out["sd"] + 1e-300
    for width, npts in ((5.0, 201), (0.1, 101)):
        centre = out.get("mode", mean)
        grid = centre[None, :] + np.linspace(-width, width, npts)[:, None] * s[None, :]
        dens = np.einsum("k,gkn->gn", w, np.exp(-0.5 * ((grid[:, None, :] - mu[None]) / sd[None]) ** 2) / sd[None])
        out["mode"] = grid[np.argmax(dens, axis=0), np.arange(grid.shape[1])]
    return out


def density_summary(theta: np.ndarray, logdens: np.ndarray, to_natural, quantiles=QUANTILES) -> dict[str, float]:
    """Summaries of a 1-D density given on a fine θ grid, for θ itself and for to_natural(θ)."""
    dens = np.exp(logdens - logdens.max())
    dens /= np.trapezoid(dens, theta)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(theta))])
    cdf /= cdf[-1]
    nat = np.asarray(to_natural(theta), float)
    out = {}
    for label, values in (("internal", theta), ("natural", nat)):
        mean = np.trapezoid(values * dens, theta)
        sd = np.sqrt(max(np.trapezoid((values - mean) ** 2 * dens, theta), 0.0))
        row = {"mean": mean, "sd": sd}
        for q in quantiles:
            row[f"{q}quant"] = float(np.interp(q, cdf, values))
        # density of the transformed variable: π(v) = π(θ) / |dv/dθ|
        jac = np.abs(np.gradient(values, theta))
        row["mode"] = float(values[np.argmax(dens / np.maximum(jac, 1e-300))])
        out[label] = row
    return out


def theta_marginal_grid(theta_pts: np.ndarray, logpost: np.ndarray, n_fine: int = 801):
    """Fine (θ, log density) from 1-D grid points via a cubic spline of the log-density."""
    order = np.argsort(theta_pts)
    t, lp = theta_pts[order], logpost[order]
    if len(t) < 4:
        fine = np.linspace(t[0], t[-1], n_fine)
        return fine, np.interp(fine, t, lp)
    spline = CubicSpline(t, lp)
    fine = np.linspace(t[0], t[-1], n_fine)
    return fine, spline(fine)


def theta_marginal_ccd(frame, j: int, x=np.linspace(-7, 7, 801)):
    """θ_j marginal from the asymmetric Gaussian interpolant along the conditional-mean line."""
    Sigma = np.linalg.inv(frame.H)
    sd_j = np.sqrt(Sigma[j, j])
    direction = Sigma[:, j] / sd_j
    thetas = frame.mode[None, :] + x[:, None] * direction[None, :]
    z = ((thetas - frame.mode) @ frame.vectors) / frame.scales
    s = np.where(z >= 0, frame.s_plus, frame.s_minus)
    logdens = -0.5 * np.sum((z / s) ** 2, axis=1)
    return thetas[:, j], logdens
