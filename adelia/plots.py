"""Pictures of a fit, one call each (the optional ``plot`` extra: ``pip install "adelia[plot]"``).

Every function takes the DataTree that :func:`adelia.fit` returns (or one read back from its
netCDF file) and returns the matplotlib Figure or Axes it drew on:

=========================  =====================================================================
``plot_marginals(dt)``     posterior marginals of the fixed effects and hyperparameters (ArviZ's
                           ``plot_dist`` on the draws) with each prior overlaid (R-INLA's
                           ``plot(result)`` "prior vs posterior" panels)
``plot_random(dt, name)``  a random effect over its index (rw1/rw2, ar1, seasonal, iid) with its
                           posterior mean and 95 % band (``summary_random_<name>``)
``plot_map(dt, name, g)``  an areal effect (besag, bym2, iid by region) on polygons: a
                           GeoDataFrame or a list of (k, 2) arrays, one per region
``plot_spde(dt, name, m)`` an SPDE field's posterior mean and sd on a regular grid, projected from
                           the mesh nodes with the P1 projector (R-INLA's ``inla.mesh.projector``)
``plot_fitted(dt)``        fitted vs observed response with 95 % intervals
=========================  =====================================================================

The priors come from the ``inla`` group (``prior_fixed``, ``prior_theta``,
``prior_log_density``, ``prior_natural``), stored at fit time by :mod:`adelia.results`. A
hyperparameter's prior on the natural scale is the tabulated density of θ divided by
|d natural / dθ| (change of variables), the derivative taken on the stored grid.
"""

from __future__ import annotations

__all__ = ["plot_marginals", "plot_random", "plot_map", "plot_spde", "plot_fitted"]

import textwrap
from typing import Any, Callable, Sequence

import numpy as np
import xarray as xr

from adelia.errors import AdeliaError, DataError
from adelia.runtime.marginals import cumulative_trapezoid

try:
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise AdeliaError("adelia.plots needs matplotlib", hint='install the plot extra: pip install "adelia[plot]"') from exc

PRIOR_STYLE = {"color": "C1", "linestyle": "--", "linewidth": 1.2, "label": "prior"}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _inla(dt: xr.DataTree) -> xr.Dataset:
    if not isinstance(dt, xr.DataTree) or "inla" not in dt.children:
        raise AdeliaError("adelia.plots needs the DataTree returned by adelia.fit (or read from its netCDF file)")
    return dt["inla"].to_dataset()


def _random_table(dt: xr.DataTree, name: str) -> xr.DataArray:
    inla = _inla(dt)
    key = f"summary_random_{name}"
    if key not in inla:
        known = sorted(k.removeprefix("summary_random_") for k in inla.data_vars if k.startswith("summary_random_"))
        raise AdeliaError(f"the fit has no random effect '{name}'",
                          hint=f"random effects in this fit: {', '.join(known) or 'none'}")
    return inla[key]


def _new_axes(ax, figsize=(6.0, 4.0)):
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _natural_prior(inla: xr.Dataset, label: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, density) of a hyperparameter's prior on the natural scale, or None when not stored."""
    if "prior_natural" not in inla or "natural_label" not in inla.coords:
        return None
    hits = np.flatnonzero(inla["natural_label"].values.astype(str) == label)
    if not hits.size:
        return None
    k = int(hits[0])
    theta = inla["prior_theta"].values[k]
    x = inla["prior_natural"].values[k]
    dens = np.exp(inla["prior_log_density"].values[k]) / np.abs(_derivative(x, theta))
    order = np.argsort(x)
    return x[order], dens[order]


def _derivative(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """dx/dθ on an evenly spaced θ grid, fourth-order central differences inside (a prior's grid
    can span 30 units of θ, where second-order ones were off by 0.4 % for x = e^θ)."""
    d = np.gradient(x, theta)
    h = theta[1] - theta[0]
    d[2:-2] = (x[:-4] - 8 * x[1:-3] + 8 * x[3:-1] - x[4:]) / (12 * h)
    return d


def _internal_prior(inla: xr.Dataset, label: str) -> tuple[np.ndarray, np.ndarray] | None:
    if "prior_theta" not in inla or label not in inla["internal_hyperpar"].values.astype(str):
        return None
    row = inla.sel(internal_hyperpar=label)
    return row["prior_theta"].values, np.exp(row["prior_log_density"].values)


def _fixed_prior(inla: xr.Dataset, label: str, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray] | None:
    if "prior_fixed" not in inla or label not in inla["fixed_term"].values.astype(str):
        return None
    mean, prec = inla["prior_fixed"].sel(fixed_term=label).values
    if prec <= 0:
        return None          # flat (improper) prior: nothing to draw
    x = np.linspace(lo, hi, 200)
    return x, np.sqrt(prec / (2 * np.pi)) * np.exp(-0.5 * prec * (x - mean) ** 2)


# ---------------------------------------------------------------------------------------------
# the plots
# ---------------------------------------------------------------------------------------------

#: points of each drawn density (ArviZ's KDE default)
DENSITY_POINTS = 512


def _hyper_marginal(inla: xr.Dataset, internal: str, natural: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, density) of θ's INLA posterior marginal, on the internal or the natural scale, over its
    central 99.9 % (quantiles do not depend on the scale; a density-peak cut would not do on the
    natural scale, where a long tail of θ towards ±∞ piles up into a spike at a boundary such as
    φ → 1), sampled evenly in θ so that a long natural-scale tail leaves the bulk its points."""
    if "marginal_theta" not in inla or internal not in inla["internal_hyperpar"].values.astype(str):
        return None
    row = inla.sel(internal_hyperpar=internal)
    theta, lp = row["marginal_theta"].values, row["marginal_log_density"].values
    dens = np.exp(lp - lp.max())
    cdf = cumulative_trapezoid(dens, theta)
    cdf /= cdf[-1]
    ts = np.linspace(*np.interp([0.0005, 0.9995], cdf, theta), DENSITY_POINTS)
    d_theta = np.interp(ts, theta, dens) / np.trapezoid(dens, theta)
    if not natural:
        return ts, d_theta
    nat = row["marginal_natural"].values
    xs = np.interp(ts, theta, nat)
    ds = d_theta / np.abs(np.interp(ts, theta, np.gradient(nat, theta)))
    order = np.argsort(xs)
    return xs[order], ds[order]


def plot_marginals(dt: xr.DataTree, var_names: Sequence[str] | None = None, *, scale: str = "natural",
                   prior: bool = True, **plot_dist_kwargs: Any):
    """Posterior marginals of fixed effects and hyperparameters with their priors overlaid
    (R-INLA's ``plot(result)`` prior-vs-posterior panels), drawn by ArviZ's ``plot_dist``.

    Hyperparameters: the INLA marginal of θ_k that the summary came from (``marginal_theta``),
    mapped to the natural scale by the change of variables π(v) = π(θ)/|dv/dθ|, or left on
    R-INLA's internal scale (log precision, ...) with ``scale = "internal"``. Fixed effects: the
    KDE of the posterior draws (a Gaussian with the summary's mean and sd when the fit holds no
    draws). The interval is the summary's 0.025–0.975 quantiles and the point its mean, so the
    panels show the same numbers as :func:`adelia.summary`. Priors are drawn dashed over each
    panel's range; a flat prior (the intercept's default) has no curve. Extra keyword
    arguments go to :func:`arviz_plots.plot_dist`.

    Returns the matplotlib Figure.
    """
    import arviz_plots as azp
    import arviz_stats  # noqa: F401  (registers the .azstats accessor)

    inla = _inla(dt)
    if scale not in ("natural", "internal"):
        raise AdeliaError(f"scale must be 'natural' or 'internal', got {scale!r}")
    natural = scale == "natural"
    fixed = [str(v) for v in inla["fixed_term"].values] if "summary_fixed" in inla else []
    internal = [str(v) for v in inla["internal_hyperpar"].values] if "internal_summary_hyperpar" in inla else []
    labels = ([str(v) for v in inla["natural_label"].values] if "natural_label" in inla.coords else internal) \
        if natural else internal
    hyper_of = dict(zip(labels, internal))
    available = fixed + labels
    names = list(var_names) if var_names is not None else available
    unknown = [v for v in names if v not in available]
    if unknown or not names:
        what = ", ".join(repr(u) for u in unknown) or "any fixed effect or hyperparameter"
        raise AdeliaError(f"no posterior marginal for {what}",
                          hint=f"available: {', '.join(available) or 'none'}")
    draws = dt["posterior"].to_dataset() if "posterior" in dt.children else xr.Dataset()

    dist, ci, point = {}, {}, {}
    for name in names:
        if name in fixed:
            row = inla["summary_fixed"].sel(fixed_term=name)
            if name in draws:
                kde = draws[[name]].azstats.kde(dim=["chain", "draw"], grid_len=DENSITY_POINTS)[name]
                x, d = kde.sel(plot_axis="x").values, kde.sel(plot_axis="y").values
            else:
                m, sd = float(row.sel(stat="mean")), float(row.sel(stat="sd"))
                x = np.linspace(m - 4 * sd, m + 4 * sd, DENSITY_POINTS)
                d = np.exp(-0.5 * ((x - m) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        else:
            table = "summary_hyperpar" if natural else "internal_summary_hyperpar"
            row = inla[table].sel({"hyperpar" if natural else "internal_hyperpar": name})
            curve = _hyper_marginal(inla, hyper_of[name], natural)
            if curve is None:
                raise AdeliaError(f"the fit stores no marginal for '{name}'", hint="refit with this adelia version")
            x, d = curve
        dist[name] = xr.DataArray(np.stack([x, d]), dims=("plot_axis", "kde_dim"), coords={"plot_axis": ["x", "y"]},
                                  attrs={"kind": "kde"})
        ci[name] = xr.DataArray([float(row.sel(stat="0.025quant")), float(row.sel(stat="0.975quant"))],
                                dims="ci_bound", coords={"ci_bound": ["lower", "upper"]})
        point[name] = xr.DataArray(float(row.sel(stat="mean")))
    layout = xr.Dataset({n: (("chain", "draw"), np.zeros((1, 2))) for n in names})
    stats = {"dist": xr.Dataset(dist), "credible_interval": xr.Dataset(ci), "point_estimate": xr.Dataset(point),
             **plot_dist_kwargs.pop("stats", {})}
    plot_dist_kwargs.setdefault("kind", "kde")
    pc = azp.plot_dist(xr.DataTree.from_dict({"posterior": layout}), var_names=names, backend="matplotlib",
                       stats=stats, **plot_dist_kwargs)
    fig = pc.viz["figure"].item()
    if prior:
        for name in names:
            ax = pc.viz["plot"][name].item()
            lo, hi = float(dist[name].sel(plot_axis="x").min()), float(dist[name].sel(plot_axis="x").max())
            if name in fixed:
                curve = _fixed_prior(inla, name, lo, hi)
            elif natural:
                curve = _natural_prior(inla, name)
            else:
                curve = _internal_prior(inla, name)
            if curve is None:
                continue
            x, dens = curve
            keep = (x >= lo) & (x <= hi) & np.isfinite(dens)
            if keep.sum() >= 2:
                ax.plot(x[keep], dens[keep], **PRIOR_STYLE)
            ax.set_xlim(lo, hi)
        handles, labels_ = _first_handles(fig)
        if handles:
            fig.legend(handles, labels_, loc="upper right")
    return fig


def _first_handles(fig):
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            return handles[:1], labels[:1]
    return [], []


def plot_random(dt: xr.DataTree, name: str, *, ax=None, band: tuple[str, str] = ("0.025quant", "0.975quant"),
                transform: Callable[[np.ndarray], np.ndarray] | None = None, color: str = "C0"):
    """A random effect over its index: posterior mean and a quantile band (R-INLA's
    ``plot(result$summary.random$name)``), e.g. an rw2 trend, an ar1 series, a seasonal cycle.

    ``transform`` maps the values first (e.g. ``np.exp`` for relative risks; the band then
    maps the quantiles exactly, the mean curve approximately). Index values that are not
    numbers (factor levels) are placed at 0, 1, ... and written as tick labels.

    Returns the matplotlib Axes.
    """
    tab = _random_table(dt, name)
    dim = tab.dims[0]
    stats = [str(s) for s in tab["stat"].values]
    for s in band:
        if s not in stats:
            raise AdeliaError(f"the summary of '{name}' has no '{s}'", hint=f"stats: {', '.join(stats)}")
    f = transform or (lambda v: v)
    idx = tab[dim].values
    numeric = np.issubdtype(idx.dtype, np.number)
    x = idx.astype(float) if numeric else np.arange(len(idx))
    fig, ax = _new_axes(ax)
    ax.fill_between(x, f(tab.sel(stat=band[0]).values), f(tab.sel(stat=band[1]).values), color=color, alpha=0.25,
                    linewidth=0, label=f"{band[0]} – {band[1]}")
    ax.plot(x, f(tab.sel(stat="mean").values), color=color, label="mean")
    if not numeric:
        ax.set_xticks(x, [str(v) for v in idx], rotation=90)
    ax.set_xlabel(dim.removesuffix("_index"))
    ax.set_ylabel(name)
    ax.legend(loc="best")
    return ax


def _polygons(geometry) -> tuple[list[np.ndarray], np.ndarray]:
    """Rings to draw and, for each, the region it belongs to.

    ``geometry``: a GeoDataFrame / GeoSeries (duck-typed: anything with ``.geometry`` or an
    iterable of shapely-like objects with ``geom_type``), or a sequence whose items are (k, 2)
    arrays or lists of them (a region made of several parts)."""
    geoms = getattr(geometry, "geometry", geometry)
    rings: list[np.ndarray] = []
    owner: list[int] = []
    for i, g in enumerate(geoms):
        kind = getattr(g, "geom_type", None)
        if kind == "Polygon":
            parts = [g.exterior.coords]
        elif kind == "MultiPolygon":
            parts = [p.exterior.coords for p in g.geoms]
        elif kind is not None:
            raise DataError(f"region {i} is a {kind}; plot_map draws Polygon and MultiPolygon geometries")
        else:
            arr = np.asarray(g, dtype=float) if not isinstance(g, (list, tuple)) or np.ndim(g[0]) == 1 else None
            parts = [arr] if arr is not None else list(g)
        for p in parts:
            p = np.asarray(p, dtype=float)[:, :2]
            if p.ndim != 2 or len(p) < 3:
                raise DataError(f"region {i}: a polygon needs a (k, 2) array of at least 3 vertices, got shape {p.shape}")
            rings.append(p)
            owner.append(i)
    return rings, np.asarray(owner, dtype=int)


def plot_map(dt: xr.DataTree, name: str, geometry, *, stat: str = "mean", ax=None, cmap: str = "viridis",
             transform: Callable[[np.ndarray], np.ndarray] | None = None, colorbar: bool = True,
             edgecolor: str = "0.3"):
    """An areal effect (besag, bym2, iid by region) drawn on its regions.

    ``geometry`` lists the regions in the graph's node order (region i ↔ the effect's i-th
    entry): a GeoDataFrame (geopandas is not needed by adelia; it is used through its
    ``.geometry`` column of shapely polygons) or a list with one (k, 2) vertex array, or a list
    of them, per region. For bym2 the first n entries (the total effect x, R-INLA's first n rows)
    are drawn. ``stat`` picks the summary column (``mean``, ``sd``, ``0.5quant``, ...);
    ``transform`` maps it first (``np.exp``: relative risk, exact for quantiles).

    Returns the matplotlib Axes.
    """
    tab = _random_table(dt, name)
    stats = [str(s) for s in tab["stat"].values]
    if stat not in stats:
        raise AdeliaError(f"the summary of '{name}' has no '{stat}'", hint=f"stats: {', '.join(stats)}")
    rings, owner = _polygons(geometry)
    n_regions = int(owner.max()) + 1 if owner.size else 0
    values = tab.sel(stat=stat).values
    if len(values) == 2 * n_regions:       # bym2: (x, u*), draw the total effect x
        values = values[:n_regions]
    if len(values) != n_regions:
        raise DataError(f"'{name}' has {len(values)} entries but the geometry has {n_regions} regions",
                        hint="pass one polygon (or list of parts) per graph node, in the graph's order")
    if transform is not None:
        values = transform(values)
    fig, ax = _new_axes(ax, figsize=(6.0, 5.0))
    coll = PolyCollection(rings, array=values[owner], cmap=cmap, edgecolors=edgecolor, linewidths=0.3)
    ax.add_collection(coll)
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(f"{name}: {stat}")
    if colorbar:
        fig.colorbar(coll, ax=ax, shrink=0.8)
    return ax


def _mesh_of(mesh):
    from adelia.compiler.mesh import Mesh

    m = getattr(mesh, "mesh", mesh)        # an SPDE object carries its mesh
    if isinstance(m, Mesh):
        return m
    if isinstance(m, (tuple, list)) and len(m) == 2:
        return Mesh(np.asarray(m[0]), np.asarray(m[1]))
    raise AdeliaError("plot_spde needs the mesh: an adelia Mesh, the SPDE object, or (nodes, triangles)")


def plot_spde(dt: xr.DataTree, name: str, mesh, *, resolution: int = 120, xlim=None, ylim=None,
              points=None, cmap: str = "viridis", transform: Callable[[np.ndarray], np.ndarray] | None = None):
    """An SPDE field's posterior mean and sd on a regular grid (two panels).

    The node summaries are projected to the grid with the mesh's P1 projector (barycentric
    weights: R-INLA's ``inla.mesh.projector`` / ``inla.mesh.project``); grid points outside
    the mesh are left blank. The projected sd is the projection of the node sds, as R-INLA's
    ``inla.mesh.project(proj, summary.random$field$sd)`` (an upper bound on the point sd by the
    triangle inequality). ``points`` (k, 2) are drawn on top, e.g. the observation sites.

    Returns the matplotlib Figure.
    """
    m = _mesh_of(mesh)
    tab = _random_table(dt, name)
    if tab.sizes[tab.dims[0]] != m.n:
        raise DataError(f"'{name}' has {tab.sizes[tab.dims[0]]} entries but the mesh has {m.n} nodes",
                        hint="pass the mesh (or SPDE object) the model was fitted with")
    nodes = m.nodes[:, :2]
    xlim = xlim or (nodes[:, 0].min(), nodes[:, 0].max())
    ylim = ylim or (nodes[:, 1].min(), nodes[:, 1].max())
    gx = np.linspace(*xlim, resolution)
    gy = np.linspace(*ylim, resolution)
    grid = np.array(np.meshgrid(gx, gy)).reshape(2, -1).T
    A = m.projector(grid, outside="zero")
    inside = np.asarray(A.sum(axis=1)).ravel() > 0.5
    f = transform or (lambda v: v)
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.2), layout="constrained")
    for ax, stat in zip(axes, ("mean", "sd")):
        z = np.where(inside, A @ tab.sel(stat=stat).values, np.nan).reshape(len(gy), len(gx))
        if stat == "mean":
            z = f(z)
        im = ax.imshow(z, origin="lower", extent=(*xlim, *ylim), cmap=cmap, aspect="equal")
        if points is not None:
            pts = np.asarray(points, dtype=float)
            ax.plot(pts[:, 0], pts[:, 1], ".", color="k", markersize=2)
        ax.set_title(f"{name}: posterior {stat}")
        fig.colorbar(im, ax=ax, shrink=0.85)
    return fig


_INVERSE_LINK = {"gaussian": lambda eta: eta, "poisson": np.exp,
                 "binomial": lambda eta: 1.0 / (1.0 + np.exp(-eta))}


def plot_fitted(dt: xr.DataTree, *, E=None, Ntrials=None, ax=None, color: str = "C0"):
    """Observed response against the fitted one (posterior median and 95 % interval of the mean).

    The fitted mean is the inverse link of the linear predictor, μ = η (gaussian),
    E·exp(η) (poisson), Ntrials·logit⁻¹(η) (binomial); its quantiles are those of η mapped
    through the monotone link, so they are exact. Pass the ``E`` / ``Ntrials`` given to the
    fit (arrays over all rows; 1 when omitted). Rows with a missing response are left out.

    Returns the matplotlib Axes.
    """
    inla = _inla(dt)
    families = str(dt.attrs.get("family", "gaussian")).split(",")
    if len(families) != 1:
        raise AdeliaError(f"plot_fitted draws one likelihood; this fit has {len(families)} ({', '.join(families)})")
    family = families[0]
    if family not in _INVERSE_LINK:
        raise AdeliaError(f"plot_fitted does not know the link of family '{family}'",
                          hint=f"known: {', '.join(_INVERSE_LINK)}")
    lp = inla["summary_linear_predictor"]
    y = dt["observed_data"]["y"]
    rows = y["obs_id"].values
    scale = np.ones(lp.sizes["obs_id"])
    given = E if family == "poisson" else Ntrials if family == "binomial" else None
    if given is not None:
        scale = np.broadcast_to(np.asarray(given, dtype=float), scale.shape)
    g = _INVERSE_LINK[family]
    mu = {s: scale[rows] * g(lp.sel(stat=s).values[rows]) for s in ("0.025quant", "0.5quant", "0.975quant")}
    fig, ax = _new_axes(ax, figsize=(5.0, 5.0))
    yobs = y.values
    ax.errorbar(yobs, mu["0.5quant"], yerr=[mu["0.5quant"] - mu["0.025quant"], mu["0.975quant"] - mu["0.5quant"]],
                fmt="o", color=color, markersize=3, elinewidth=0.6, alpha=0.8)
    lo = float(min(yobs.min(), mu["0.025quant"].min()))
    hi = float(max(yobs.max(), mu["0.975quant"].max()))
    ax.plot([lo, hi], [lo, hi], color="0.4", linewidth=0.8, linestyle=":")
    ax.set_xlabel("observed")
    ax.set_ylabel("fitted (median, 95 % interval)")
    ax.set_title(textwrap.fill(str(dt.attrs.get("formula", family)), 60), fontsize=8)
    return ax
