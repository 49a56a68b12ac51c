"""FitResult -> xarray DataTree in the ArviZ schema, and the R-INLA-like summary table.

Layout (ECOSYSTEM.md §2.3)::

    /                        attrs: inference_library, version, formula, family, created_at
    /posterior               (chain=1, draw): fixed effects, latent fields, hyperparameters (natural scale)
    /unconstrained_posterior θ on the internal scale
    /log_likelihood          y (chain, draw, obs_id)
    /observed_data           y (obs_id)
    /predictions             eta for rows with a missing response
    /inla                    summary_fixed, summary_hyperpar, summary_random_<name>, linear predictor,
                             theta_design (points, log posterior, weights), mode, Hessian,
                             mlik and criteria (attrs and variables)

netCDF cannot store dict/bool/None attributes: configs are JSON strings.
"""

from __future__ import annotations

__all__ = ["to_datatree", "summary"]

import datetime as _dt
import json

import jax
import numpy as np
import pandas as pd
import xarray as xr

from adelia.errors import AdeliaError
from adelia.runtime.arrays import device
from adelia.runtime.inference import FitResult
from adelia.runtime.numpy_eval import numpy_eval

STATS = ("mean", "sd", "0.025quant", "0.5quant", "0.975quant", "mode")


def _stat_names(q) -> list[str]:
    return ["mean", "sd"] + [f"{x}quant" for x in q] + ["mode"]


def _table(rows: dict[str, dict], stats: list[str], dim: str) -> xr.DataArray:
    data = np.array([[float(rows[r][s]) for s in stats] for r in rows]).reshape(len(rows), len(stats))
    return xr.DataArray(data, dims=(dim, "stat"), coords={dim: list(rows), "stat": stats})


def _coord_values(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values)
    return v.astype(str) if v.dtype.kind == "O" else v


#: points of each hyperparameter's tabulated prior (see _plot_tables)
PRIOR_GRID = 201


def _plot_tables(res: FitResult) -> dict[str, xr.DataArray]:
    """Priors and θ marginals, stored so that adelia.plots can draw them after a save and reload.

    ``prior_fixed`` (fixed_term, prior_param = mean, precision): the Gaussian prior of each fixed
    effect (precision 0 = flat). For each estimated θ_k, ``prior_theta`` holds a grid on the
    internal scale (the mode ± 6 posterior sd, widened to cover the integration design and the
    marginal's grid),
    ``prior_log_density`` the prior's log-density of θ_k there (Jacobian included, as in
    adelia.compiler.priors), ``prior_natural`` the grid mapped to the natural scale, and
    ``prior_hyperpar`` the prior's description, e.g. ``pc.prec(1, 0.01)``; the coordinate
    ``natural_label`` names each θ_k as ``summary_hyperpar`` and the posterior group do.
    ``marginal_theta`` / ``marginal_log_density`` (internal_hyperpar, marginal_grid) hold the
    posterior marginal of each θ_k that its summary was computed from (R-INLA's
    ``internal.marginals.hyperpar``; log-density up to a constant), ``marginal_natural`` its grid
    mapped to the natural scale.
    """
    model = res.model
    out: dict[str, xr.DataArray] = {}
    if len(model.fixed.names):
        out["prior_fixed"] = xr.DataArray(
            np.stack([np.asarray(model.fixed_mean, float), np.asarray(model.fixed_prec, float)], axis=1),
            dims=("fixed_term", "prior_param"),
            coords={"fixed_term": list(model.fixed.names), "prior_param": ["mean", "precision"]})
    free = [int(j) for j in res.free]
    if not free:
        return out
    labels = [model.thetas[j].internal_label for j in free]
    grid, logp, natural = [], [], []
    for j in free:
        t = model.thetas[j]
        sd = float(res.hyper_summary[t.label]["internal"].get("sd", 1.0))
        sd = sd if np.isfinite(sd) and sd > 0 else 1.0
        mode = float(res.theta_mode[j])
        pts = np.asarray(res.points)[:, j]
        lo, hi = min(mode - 6 * sd, pts.min() - sd), max(mode + 6 * sd, pts.max() + sd)
        if "marginal" in res.hyper_summary[t.label]:     # cover the posterior marginal's grid too
            lo = min(lo, float(res.hyper_summary[t.label]["marginal"][0].min()))
            hi = max(hi, float(res.hyper_summary[t.label]["marginal"][0].max()))
        g = np.linspace(lo, hi, PRIOR_GRID)
        grid.append(g)
        # a joint prior (iidkd's Wishart, rgeneric) has no density of θ_j alone: NaN, nothing to draw
        logp.append(_on_grid(t.prior.logpdf, g) if t.joint is None else np.full(g.shape, np.nan))
        natural.append(_on_grid(t.to_natural, g))
    dims = ("internal_hyperpar", "prior_grid")
    coords = {"internal_hyperpar": labels,
              "natural_label": ("internal_hyperpar", [model.thetas[j].label for j in free])}
    out["prior_theta"] = xr.DataArray(np.array(grid), dims=dims, coords=coords)
    out["prior_log_density"] = xr.DataArray(np.array(logp), dims=dims, coords=coords)
    out["prior_natural"] = xr.DataArray(np.array(natural), dims=dims, coords=coords)
    out["prior_hyperpar"] = xr.DataArray(np.array([model.thetas[j].prior.describe() for j in free], dtype=str),
                                         dims="internal_hyperpar", coords=coords)
    marg = [res.hyper_summary[model.thetas[j].label].get("marginal") for j in free]
    if all(m is not None for m in marg) and len({len(m[0]) for m in marg}) == 1:
        mdims = ("internal_hyperpar", "marginal_grid")
        out["marginal_theta"] = xr.DataArray(np.array([m[0] for m in marg]), dims=mdims, coords=coords)
        out["marginal_log_density"] = xr.DataArray(np.array([m[1] for m in marg]), dims=mdims, coords=coords)
        out["marginal_natural"] = xr.DataArray(
            np.array([_on_grid(model.thetas[j].to_natural, m[0]) for j, m in zip(free, marg)]), dims=mdims, coords=coords)
    return out


def _on_grid(fn, g: np.ndarray) -> np.ndarray:
    """fn at every grid point: one vectorised call when fn broadcasts, else one call of its
    jax.vmap (a scalar-only function, e.g. a prior that sums over a graph's eigenvalues: each of
    its operations then runs once on the whole grid instead of once per point), else point by
    point."""
    for batched in (fn, jax.vmap(fn)):
        try:
            v = np.asarray(numpy_eval(batched, g), dtype=float)
            if v.shape == g.shape:
                return v
        except Exception:   # noqa: BLE001 - not batchable this way: try the next
            pass
    return np.array([float(fn(device(x))) for x in g])


def to_datatree(res: FitResult) -> xr.DataTree:
    from adelia import __version__

    model = res.model
    stats = _stat_names(res.options.quantiles)
    fo = model.fixed_offset
    nobs = model.m
    obs = model.observed

    # ---- summaries ----
    fixed_rows = {name: {s: res.latent[s][fo + i] for s in stats} for i, name in enumerate(model.fixed.names)}
    hyper_rows = {t: v["natural"] for t, v in res.hyper_summary.items()}
    internal_rows = {model.thetas[j].internal_label: res.hyper_summary[model.thetas[j].label]["internal"]
                     for j in res.free}
    inla = {
        "summary_fixed": _table(fixed_rows, stats, "fixed_term") if fixed_rows else None,
        "summary_hyperpar": _table(hyper_rows, stats, "hyperpar") if hyper_rows else None,
        "internal_summary_hyperpar": _table(internal_rows, stats, "internal_hyperpar") if internal_rows else None,
    }
    for comp in model.components:
        sl = slice(comp.offset, comp.offset + comp.n)
        dim = f"{comp.name}_index"
        inla[f"summary_random_{comp.name}"] = xr.DataArray(
            np.stack([res.latent[s][sl] for s in stats], axis=1), dims=(dim, "stat"),
            coords={dim: _coord_values(comp.structure.values), "stat": stats})
    inla["summary_linear_predictor"] = xr.DataArray(
        np.stack([res.linear_predictor[s] for s in stats], axis=1), dims=("obs_id", "stat"),
        coords={"obs_id": np.arange(nobs), "stat": stats})
    theta_names = [t.internal_label for t in model.thetas]
    inla["theta_mode"] = xr.DataArray(res.theta_mode, dims="theta", coords={"theta": theta_names})
    free_names = [theta_names[j] for j in res.free]
    inla["theta_hessian"] = xr.DataArray(res.hessian, dims=("theta_free", "theta_free2"),
                                         coords={"theta_free": free_names, "theta_free2": free_names})
    inla["design_theta"] = xr.DataArray(res.points, dims=("point", "theta"), coords={"theta": theta_names})
    inla["design_log_posterior"] = xr.DataArray(res.log_post, dims="point")
    inla["design_weight"] = xr.DataArray(res.weights, dims="point")
    inla.update(_plot_tables(res))
    crit = res.criteria
    if "log_cpo" in crit:
        obs_ids = np.flatnonzero(obs)
        inla["log_cpo"] = xr.DataArray(crit["log_cpo"], dims="obs_observed", coords={"obs_observed": obs_ids})
    inla_ds = xr.Dataset({_path_safe(k): v for k, v in inla.items() if v is not None})
    inla_ds.attrs.update({
        "mlik_integration": res.mlik["integration"], "mlik_gaussian": res.mlik["gaussian"],
        "int_strategy": res.strategy, "solver": res.solver, "n_theta_points": len(res.points),
        "optimizer_iterations": res.mode_info.n_iter, "optimizer_evaluations": res.mode_info.n_eval,
        "timings": json.dumps(res.timings),
        **{k: int(v) for k, v in res.evaluations.items()},
        **{k: float(v) for k, v in crit.items() if np.isscalar(v)},
    })
    if "log_cpo" in crit:
        inla_ds.attrs["sum_log_cpo"] = float(np.sum(crit["log_cpo"]))

    tree: dict[str, xr.Dataset] = {"inla": inla_ds}

    # ---- draws ----
    y_obs = model.y[obs]
    tree["observed_data"] = xr.Dataset({"y": xr.DataArray(y_obs, dims="obs_id",
                                                           coords={"obs_id": np.flatnonzero(obs)})})
    if res.draws_x is not None:
        S = res.draws_x.shape[0]
        coords = {"chain": [0], "draw": np.arange(S)}
        post = {}
        for i, name in enumerate(model.fixed.names):
            post[name] = xr.DataArray(res.draws_x[None, :, fo + i], dims=("chain", "draw"), coords=coords)
        for comp in model.components:
            dim = f"{comp.name}_index"
            post[comp.name] = xr.DataArray(res.draws_x[None, :, comp.offset: comp.offset + comp.n],
                                           dims=("chain", "draw", dim),
                                           coords={**coords, dim: _coord_values(comp.structure.values)})
        unconstrained = {}
        for j in res.free:
            t = model.thetas[j]
            th = res.draws_theta[:, j]
            post[t.label] = xr.DataArray(numpy_eval(t.to_natural, th)[None], dims=("chain", "draw"), coords=coords)
            unconstrained[t.internal_label] = xr.DataArray(th[None], dims=("chain", "draw"), coords=coords)
        tree["posterior"] = xr.Dataset({_path_safe(k): v for k, v in post.items()})
        if unconstrained:
            tree["unconstrained_posterior"] = xr.Dataset({_path_safe(k): v for k, v in unconstrained.items()})
        tree["log_likelihood"] = xr.Dataset({"y": xr.DataArray(
            res.draws_loglik[None], dims=("chain", "draw", "obs_id"),
            coords={**coords, "obs_id": np.flatnonzero(obs)})})
        if (~obs).any():
            tree["predictions"] = xr.Dataset({"eta": xr.DataArray(
                res.draws_eta[None][:, :, ~obs], dims=("chain", "draw", "pred_id"),
                coords={**coords, "pred_id": np.flatnonzero(~obs)})})
        for ds in tree.values():
            ds.attrs.setdefault("inference_library", "adelia")

    root = xr.Dataset(attrs={
        "inference_library": "adelia",
        "inference_library_version": __version__,
        "formula": model.formula.source,
        "family": ",".join(f.name for f in model.families),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "fixed_effects": json.dumps(list(model.fixed.names)),
        "latent_components": json.dumps([{"name": c.name, "model": c.model, "n": c.n} for c in model.components]),
    })
    return xr.DataTree.from_dict({"/": root, **{f"/{k}": v for k, v in tree.items()}})


def summary(dt: xr.DataTree) -> pd.DataFrame:
    """R-INLA-like table: fixed effects then hyperparameters (natural scale), one row per term."""
    if not isinstance(dt, xr.DataTree) or "inla" not in dt.children:
        raise AdeliaError("summary() needs the DataTree returned by adelia.fit (or read from its netCDF file)")
    inla = dt["inla"].to_dataset()
    frames = []
    for var, dim in (("summary_fixed", "fixed_term"), ("summary_hyperpar", "hyperpar")):
        if var in inla:
            da = inla[var]
            frames.append(pd.DataFrame(da.values, index=[str(v) for v in da[dim].values],
                                       columns=[str(s) for s in da["stat"].values]))
    if not frames:
        return pd.DataFrame(columns=list(STATS))
    return pd.concat(frames)


def _path_safe(name: str) -> str:
    """A DataTree variable name cannot hold '/' (it separates groups): R's ``I(x/10)`` is stored
    as ``I(x∕10)`` (U+2215 DIVISION SLASH); tables keep R's name in their coordinates."""
    return name.replace("/", "\u2215")
