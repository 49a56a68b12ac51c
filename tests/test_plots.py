"""adelia.plots: each picture is drawn headless on a small fit, and what it draws is checked
against the DataTree's summaries and against independent densities (scipy.stats)."""

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats as st
import xarray as xr

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import adelia  # noqa: E402
from adelia.compiler.latent.spde import SPDE  # noqa: E402
from adelia.compiler.mesh import Mesh  # noqa: E402


@pytest.fixture(scope="module")
def gaussian_rw1():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(1, 13), 4)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + np.cumsum(rng.normal(scale=0.3, size=12))[g - 1] + rng.normal(scale=0.3, size=g.size)
    data = pd.DataFrame({"y": y, "x": x, "g": g})
    return adelia.fit('y ~ 1 + x + f(g, model = "rw1")', data, n_samples=300)


def _lattice(k):
    """k x k regions: unit squares, rook adjacency, node i = square (i // k, i % k)."""
    n = k * k
    r, c = np.divmod(np.arange(n), k)
    W = sp.lil_matrix((n, n))
    for i in range(n):
        for j in range(n):
            if abs(r[i] - r[j]) + abs(c[i] - c[j]) == 1:
                W[i, j] = 1
    squares = [np.array([[cc, rr], [cc + 1, rr], [cc + 1, rr + 1], [cc, rr + 1]], float) for rr, cc in zip(r, c)]
    return sp.csr_matrix(W), squares


@pytest.fixture(scope="module")
def poisson_bym2():
    W, squares = _lattice(4)
    rng = np.random.default_rng(5)
    E = rng.uniform(5, 20, size=16)
    data = pd.DataFrame({"y": rng.poisson(E * np.exp(0.2 + rng.normal(scale=0.3, size=16))), "E": E,
                         "id": np.arange(1, 17)})
    dt = adelia.fit('y ~ 1 + f(id, model = "bym2", graph = W)', data, family="poisson", E="E", n_samples=100, W=W)
    return dt, squares, E


@pytest.fixture(scope="module")
def spde_fit():
    rng = np.random.default_rng(7)
    loc = rng.uniform(0, 1, size=(40, 2))
    mesh = Mesh.from_delaunay(loc, offset=0.3, spacing=0.25)
    spde = SPDE(mesh, prior_range=(0.3, 0.5), prior_sigma=(1.0, 0.01), loc=loc)
    y = np.sin(3 * loc[:, 0]) + loc[:, 1] + rng.normal(scale=0.1, size=40)
    data = pd.DataFrame({"y": y, "site": np.arange(1, 41)})
    dt = adelia.fit("y ~ 1 + f(site, model = sp)", data, n_samples=50, int_strategy="eb", sp=spde)
    return dt, spde, loc


def _lines(ax):
    """The posterior density (ArviZ draws it first), then the prior curves (label 'prior')."""
    lines = ax.get_lines()
    return [lines[0]] + [ln for ln in lines if ln.get_label() == "prior"]


def test_importing_adelia_does_not_import_matplotlib():
    import subprocess

    code = "import sys, adelia; print('matplotlib' in sys.modules); adelia.plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_marginals_natural_scale_with_priors(gaussian_rw1):
    dt = gaussian_rw1
    fig = adelia.plots.plot_marginals(dt)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["(Intercept)", "x", "Precision for the Gaussian observations", "Precision for g"]
    summ = adelia.summary(dt)
    for ax in fig.axes:
        name = ax.get_title()
        post, *prior = _lines(ax)
        xs, ds = post.get_xdata(), post.get_ydata()
        if name.startswith("Precision"):
            # the INLA marginal: a density whose mean is the summary's
            assert np.trapezoid(ds, xs) == pytest.approx(1.0, abs=0.01)
            assert np.trapezoid(xs * ds, xs) == pytest.approx(summ.loc[name, "mean"], rel=0.02)
            # default prior loggamma(1, 5e-5) on log τ = Gamma(1, rate 5e-5) on τ
            (px, py), = [(ln.get_xdata(), ln.get_ydata()) for ln in prior]
            np.testing.assert_allclose(py, st.gamma(a=1, scale=1 / 5e-5).pdf(px), rtol=1e-3)
        elif name == "x":
            (px, py), = [(ln.get_xdata(), ln.get_ydata()) for ln in prior]      # N(0, precision 0.001)
            np.testing.assert_allclose(py, st.norm(0, np.sqrt(1000)).pdf(px), rtol=1e-10)
        else:
            assert prior == []                                                  # flat intercept: no curve
    assert fig.legends


def test_marginals_internal_scale(gaussian_rw1):
    fig = adelia.plots.plot_marginals(gaussian_rw1, ["Log precision for g"], scale="internal")
    ax, = fig.axes
    post, prior = _lines(ax)
    internal = gaussian_rw1["inla"]["internal_summary_hyperpar"].sel(internal_hyperpar="Log precision for g")
    xs, ds = post.get_xdata(), post.get_ydata()
    assert np.trapezoid(xs * ds, xs) == pytest.approx(float(internal.sel(stat="mean")), abs=0.01)
    # log-gamma density of θ = log τ, τ ~ Gamma(1, 5e-5): π(θ) = b e^θ exp(−b e^θ)
    px, py = prior.get_xdata(), prior.get_ydata()
    np.testing.assert_allclose(py, 5e-5 * np.exp(px) * np.exp(-5e-5 * np.exp(px)), rtol=1e-8)


def test_marginals_after_netcdf_round_trip(gaussian_rw1, tmp_path):
    gaussian_rw1.to_netcdf(tmp_path / "fit.nc")
    fig = adelia.plots.plot_marginals(xr.open_datatree(tmp_path / "fit.nc"), ["Precision for g"])
    assert len(_lines(fig.axes[0])) == 2


def test_marginals_unknown_name(gaussian_rw1):
    with pytest.raises(adelia.AdeliaError, match="(?s)no posterior marginal for 'Precision for h'.*available: "
                                                 r"\(Intercept\), x"):
        adelia.plots.plot_marginals(gaussian_rw1, ["Precision for h"])


def test_random_curve(gaussian_rw1):
    ax = adelia.plots.plot_random(gaussian_rw1, "g")
    tab = gaussian_rw1["inla"]["summary_random_g"]
    line, = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 13))
    np.testing.assert_array_equal(line.get_ydata(), tab.sel(stat="mean").values)
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(tab.sel(stat="0.025quant").values.min())
    assert band[:, 1].max() == pytest.approx(tab.sel(stat="0.975quant").values.max())
    with pytest.raises(adelia.AdeliaError, match="(?s)no random effect 'h'.*random effects in this fit: g"):
        adelia.plots.plot_random(gaussian_rw1, "h")


def test_map_on_polygons_and_geodataframe(poisson_bym2):
    dt, squares, _ = poisson_bym2
    total = dt["inla"]["summary_random_id"].sel(stat="mean").values[:16]   # bym2: x, then u*
    ax = adelia.plots.plot_map(dt, "id", squares, transform=np.exp)
    coll = ax.collections[0]
    np.testing.assert_allclose(coll.get_array(), np.exp(total))
    assert len(coll.get_paths()) == 16

    class Ring:      # duck-typed shapely polygon, as a GeoDataFrame's geometry column holds
        geom_type = "Polygon"

        def __init__(self, xy):
            self.exterior = type("Exterior", (), {"coords": xy})()

    class Multi:
        geom_type = "MultiPolygon"

        def __init__(self, xy):
            self.geoms = [Ring(xy), Ring(xy + 10)]

    frame = type("Frame", (), {"geometry": [Multi(s) if i == 0 else Ring(s) for i, s in enumerate(squares)]})()
    ax = adelia.plots.plot_map(dt, "id", frame, stat="sd")
    coll = ax.collections[0]
    sd = dt["inla"]["summary_random_id"].sel(stat="sd").values[:16]
    np.testing.assert_allclose(coll.get_array(), np.concatenate([[sd[0]], sd]))   # region 0 drawn twice
    with pytest.raises(adelia.DataError, match="'id' has 32 entries but the geometry has 15 regions"):
        adelia.plots.plot_map(dt, "id", squares[:15])


def test_fitted_poisson_uses_E(poisson_bym2):
    dt, _, E = poisson_bym2
    ax = adelia.plots.plot_fitted(dt, E=E)
    points = ax.containers[0].lines[0]                  # the errorbar container's data line
    eta = dt["inla"]["summary_linear_predictor"]
    np.testing.assert_array_equal(points.get_xdata(), dt["observed_data"]["y"].values)
    np.testing.assert_allclose(points.get_ydata(), E * np.exp(eta.sel(stat="0.5quant").values))
    lower = ax.containers[0].lines[2][0].get_segments()
    np.testing.assert_allclose([seg[0][1] for seg in lower], E * np.exp(eta.sel(stat="0.025quant").values))


def test_spde_field(spde_fit):
    dt, spde, loc = spde_fit
    fig = adelia.plots.plot_spde(dt, "site", spde, resolution=60, points=loc)
    mean_ax, sd_ax = fig.axes[:2]
    tab = dt["inla"]["summary_random_site"]
    img = mean_ax.images[0].get_array()
    nodes = spde.mesh.nodes
    # the grid corners are mesh nodes of the bounding box: the projection is exact there
    corner = np.flatnonzero((nodes[:, 0] == nodes[:, 0].min()) & (nodes[:, 1] == nodes[:, 1].min()))
    assert corner.size == 1
    assert img[0, 0] == pytest.approx(tab.sel(stat="mean").values[corner[0]])
    assert np.isfinite(np.asarray(img, float)).mean() > 0.5
    sd_img = np.asarray(sd_ax.images[0].get_array(), float)
    sd = tab.sel(stat="sd").values
    assert np.nanmin(sd_img) >= sd.min() - 1e-12 and np.nanmax(sd_img) <= sd.max() + 1e-12
    with pytest.raises(adelia.AdeliaError, match="needs the mesh"):
        adelia.plots.plot_spde(dt, "site", object())
