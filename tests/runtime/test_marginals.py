"""Mixture summaries (adelia.runtime.marginals) against brute force on a fine grid."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import cumulative_trapezoid
from scipy.special import ndtr
from scipy.stats import skewnorm

from adelia.runtime.marginals import cubic_spline, mixture_summary, skew_mixture_summary
from adelia.runtime.marginals import cumulative_trapezoid as adelia_cumtrapz


def _brute(x, cdf, pdf, quantiles):
    """Quantiles by interpolating the CDF on x, mode as the grid argmax."""
    return {q: np.interp(q, cdf, x) for q in quantiles}, x[np.argmax(pdf)]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 6))
def test_gaussian_mixture_quantiles_and_mode(seed, K):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.1, 1.0, K)
    mu = rng.normal(size=(K, 3)) * np.array([0.1, 1.0, 3.0])
    sd = rng.uniform(0.5, 1.5, size=(K, 3))
    out = mixture_summary(w, mu, sd)
    wn = w / w.sum()
    for j in range(3):
        x = np.linspace(mu[:, j].min() - 10 * sd[:, j].max(), mu[:, j].max() + 10 * sd[:, j].max(), 400_001)
        cdf = wn @ ndtr((x[None] - mu[:, j, None]) / sd[:, j, None])
        pdf = wn @ (np.exp(-0.5 * ((x[None] - mu[:, j, None]) / sd[:, j, None]) ** 2) / sd[:, j, None])
        qs, mode = _brute(x, cdf, pdf, (0.025, 0.5, 0.975))
        scale = sd[:, j].max()
        for q, v in qs.items():
            assert abs(out[f"{q}quant"][j] - v) < 1e-4 * scale
        # the mode to 0.01 sd; where two peaks are nearly as high (which one is the mode is then
        # ill-conditioned) a point within 1 % of the highest density
        assert abs(out["mode"][j] - mode) < 1e-2 * out["sd"][j] or pdf.max() - np.interp(
            out["mode"][j], x, pdf) < 1e-2 * pdf.max()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 4))
def test_skew_normal_mixture_quantiles(seed, K):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.1, 1.0, K)
    loc, scale, alpha = rng.normal(size=(K, 2)), rng.uniform(0.5, 1.5, (K, 2)), rng.normal(size=(K, 2)) * 2
    out = skew_mixture_summary(w, loc, scale, alpha)
    wn = w / w.sum()
    for j in range(2):
        x = np.linspace(-15, 15, 300_001)
        pdf = sum(wn[k] * skewnorm.pdf(x, alpha[k, j], loc[k, j], scale[k, j]) for k in range(K))
        cdf = cumulative_trapezoid(pdf, x, initial=0.0)      # the density integrated, not Owen's T
        qs, mode = _brute(x, cdf, pdf, (0.025, 0.5, 0.975))
        for q, v in qs.items():
            assert abs(out[f"{q}quant"][j] - v) < 1e-4
        assert pdf.max() - np.interp(out["mode"][j], x, pdf) < 1e-4 * pdf.max()


def test_quantile_search_ends_each_column_within_a_few_evaluations():
    """Hundreds of columns, like a latent field's marginals: the search must end each column once
    it is found (a column kept iterating at its root gets pushed off it by the fallback) and never
    creep up to a bracket end by bisection. Against brentq column by column."""
    from scipy.optimize import brentq

    from scipy.special import owens_t

    from adelia.runtime.marginals import _quantile

    def _sn_cdf(z, a):
        return ndtr(z) - 2.0 * owens_t(z, a)

    rng = np.random.default_rng(5)
    K, n = 10, 400
    w = rng.dirichlet(np.full(K, 2.0))
    loc = rng.normal(size=n)[None, :] + 0.05 * rng.normal(size=(K, n))
    scale = rng.uniform(0.1, 0.4, n)[None, :] * rng.uniform(0.8, 1.2, (K, 1))
    alpha = rng.uniform(-0.8, 0.8, n)[None, :] + 0.05 * rng.normal(size=(K, n))
    calls = []

    def cdf(x, c):
        calls.append(len(x))
        return w @ _sn_cdf((x - loc[:, c]) / scale[:, c], alpha[:, c])

    def pdf(x, c):
        z = (x - loc[:, c]) / scale[:, c]
        return w @ (2.0 * np.exp(-0.5 * z ** 2) * ndtr(alpha[:, c] * z) / scale[:, c]) / np.sqrt(2 * np.pi)

    lo, hi = (loc - 12 * scale).min(axis=0), (loc + 12 * scale).max(axis=0)
    for q in (0.025, 0.5, 0.975):
        calls.clear()
        x = _quantile(cdf, pdf, q, lo, hi, (w @ loc) + (2 * q - 1) * scale.mean(axis=0))
        assert len(calls) <= 8
        assert calls[0] == n and calls[-1] < n      # the columns found leave the evaluations
        exact = [brentq(lambda v, j=j: w @ _sn_cdf((v - loc[:, j]) / scale[:, j], alpha[:, j]) - q,
                        lo[j], hi[j], xtol=1e-14) for j in range(n)]
        np.testing.assert_allclose(x, exact, rtol=0, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(4, 40), trailing=st.sampled_from([(), (3,), (2, 5)]))
def test_cubic_spline_and_cumulative_trapezoid_match_scipy(seed, n, trailing):
    """The fit's own not-a-knot spline and cumulative trapezoid against SciPy's, on uneven knots
    and inside and slightly beyond them."""
    from scipy.interpolate import CubicSpline

    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.uniform(0.05, 1.0, n)) - 3.0
    y = rng.normal(size=(n,) + trailing) * rng.uniform(0.1, 10.0)
    x_new = np.concatenate([np.linspace(x[0] - 0.3, x[-1] + 0.3, 97), x])
    got = cubic_spline(x, y, x_new)
    want = CubicSpline(x, y)(x_new)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(y).max())
    np.testing.assert_allclose(adelia_cumtrapz(y, x), cumulative_trapezoid(y, x, axis=0, initial=0.0),
                               rtol=1e-12, atol=1e-12 * np.abs(y).max() * (x[-1] - x[0]))


def test_cubic_spline_needs_four_knots():
    import pytest

    with pytest.raises(ValueError, match="4 knots"):
        cubic_spline(np.arange(3.0), np.zeros(3), np.zeros(1))
