"""``method = "nuts"``: the compiled model sampled exactly, in the same DataTree schema as an INLA
fit, and :func:`compare` to put two fits (or a fit and a stored reference) side by side.

The sampler is :func:`adelia.runtime.nuts.sample_joint` (numpyro NUTS on the joint posterior of
θ and the latent field, the same :class:`~adelia.runtime.problem.Problem` INLA fits). Its chains
start at the θ-mode of the Laplace objective and x̂(θ*), found by an empirical-Bayes INLA run.
The summary tables in ``/inla`` are computed from the draws (mean, sd, quantiles; mode from a
kernel density), so :func:`adelia.summary` and :func:`compare` read both kinds of fit alike, and
``arviz.summary(dt)`` reports R-hat and ESS from the ``chain`` dimension.
"""

from __future__ import annotations

__all__ = ["fit_nuts", "compare"]

import datetime as _dt
import json
from typing import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from adelia.errors import AdeliaError, ModelError
from adelia.results import _coord_values, _stat_names, _table
from adelia.runtime.inference import InferenceOptions, run_inla
from adelia.runtime.nuts import draws_summary, sample_joint
from adelia.runtime.numpy_eval import numpy_eval

#: the joint sampler works on dense N × N matrices (eigenbases of the components, Q_p)
NUTS_MAX_LATENT = 3000


def fit_nuts(model, *, chains: int = 4, warmup: int = 1000, draws: int = 1000, seed: int = 0,
             quantiles=(0.025, 0.5, 0.975), target_accept: float = 0.9, dense_mass: bool | None = None) -> xr.DataTree:
    """Exact posterior draws of a compiled model (see the module doc) as an ArviZ DataTree."""
    if chains < 1 or warmup < 1 or draws < 2:
        raise ModelError(f"method = \"nuts\" needs chains >= 1, warmup >= 1 and draws >= 2 (got chains = {chains}, "
                         f"warmup = {warmup}, draws = {draws})")
    problem = model.problem
    if problem.N > NUTS_MAX_LATENT:
        raise ModelError(f"method = \"nuts\" samples the {problem.N} latent nodes with dense matrices; it is meant "
                         f"for checking models of at most {NUTS_MAX_LATENT} nodes",
                         hint="fit the model with INLA, or check a smaller version of it with NUTS")
    ref = run_inla(model, InferenceOptions(int_strategy="eb", strategy="gaussian", n_samples=0))
    sd = np.sqrt(np.diag(np.linalg.inv(ref.hessian))) if len(ref.free) else np.zeros(0)
    res = sample_joint(problem, ref.theta_mode, ref.latent["mean"], sd, chains=chains, warmup=warmup, draws=draws,
                       seed=seed, target_accept=target_accept, dense_mass=dense_mass)
    return _datatree(model, ref, res, tuple(quantiles))


def _datatree(model, ref, res, quantiles) -> xr.DataTree:
    from adelia import __version__

    problem = model.problem
    C, S, _ = res.theta.shape
    coords = {"chain": np.arange(C), "draw": np.arange(S)}
    flat_x = res.x.reshape(C * S, -1)
    flat_t = res.theta.reshape(C * S, -1)
    stats = _stat_names(quantiles)
    fo = problem.fixed_offset
    latent = draws_summary(flat_x, quantiles)

    post, unconstrained = {}, {}
    for i, name in enumerate(model.fixed.names):
        post[name] = xr.DataArray(res.x[:, :, fo + i], dims=("chain", "draw"), coords=coords)
    inla = {}
    for comp in model.components:
        dim = f"{comp.name}_index"
        labels = _coord_values(comp.structure.values)
        post[comp.name] = xr.DataArray(res.x[:, :, comp.offset: comp.offset + comp.n], dims=("chain", "draw", dim),
                                       coords={**coords, dim: labels})
        sl = slice(comp.offset, comp.offset + comp.n)
        inla[f"summary_random_{comp.name}"] = xr.DataArray(np.stack([latent[s][sl] for s in stats], axis=1),
                                                           dims=(dim, "stat"), coords={dim: labels, "stat": stats})
    hyper_rows, internal_rows = {}, {}
    for j in ref.free:
        t = problem.thetas[j]
        natural = np.asarray(numpy_eval(t.to_natural, flat_t[:, j]), float)
        post[t.label] = xr.DataArray(natural.reshape(C, S), dims=("chain", "draw"), coords=coords)
        unconstrained[t.internal_label] = xr.DataArray(res.theta[:, :, j], dims=("chain", "draw"), coords=coords)
        hyper_rows[t.label] = {k: float(v[0]) for k, v in draws_summary(natural[:, None], quantiles).items()}
        internal_rows[t.internal_label] = {k: float(v[0]) for k, v in draws_summary(flat_t[:, [j]], quantiles).items()}
    fixed_rows = {name: {s: latent[s][fo + i] for s in stats} for i, name in enumerate(model.fixed.names)}

    eta = res.eta.reshape(C * S, -1)
    loglik = res.loglik.reshape(C * S, -1)
    obs = problem.observed
    lin = draws_summary(eta, quantiles)

    inla.update({
        "summary_fixed": _table(fixed_rows, stats, "fixed_term") if fixed_rows else None,
        "summary_hyperpar": _table(hyper_rows, stats, "hyperpar") if hyper_rows else None,
        "internal_summary_hyperpar": _table(internal_rows, stats, "internal_hyperpar") if internal_rows else None,
        "summary_linear_predictor": xr.DataArray(np.stack([lin[s] for s in stats], axis=1), dims=("obs_id", "stat"),
                                                 coords={"obs_id": np.arange(problem.m), "stat": stats}),
        "theta_mode": xr.DataArray(ref.theta_mode, dims="theta",
                                   coords={"theta": [t.internal_label for t in problem.thetas]}),
    })
    n_div = int(res.diverging.sum())
    inla_ds = xr.Dataset({k: v for k, v in inla.items() if v is not None})
    inla_ds.attrs.update({"method": "nuts", "int_strategy": "nuts", "solver": "dense", "divergences": n_div,
                          "mean_leapfrog_steps": float(res.num_steps.mean()), "sampling_seconds": res.seconds,
                          "nuts_settings": json.dumps(res.settings),
                          "mlik_gaussian": ref.mlik["gaussian"]})
    tree = {"inla": inla_ds, "posterior": xr.Dataset(post)}
    if unconstrained:
        tree["unconstrained_posterior"] = xr.Dataset(unconstrained)
    tree["sample_stats"] = xr.Dataset({
        "diverging": xr.DataArray(res.diverging, dims=("chain", "draw"), coords=coords),
        "n_steps": xr.DataArray(res.num_steps, dims=("chain", "draw"), coords=coords)})
    tree["log_likelihood"] = xr.Dataset({"y": xr.DataArray(
        loglik[:, obs].reshape(C, S, -1), dims=("chain", "draw", "obs_id"),
        coords={**coords, "obs_id": np.flatnonzero(obs)})})
    tree["observed_data"] = xr.Dataset({"y": xr.DataArray(problem.y[obs], dims="obs_id",
                                                           coords={"obs_id": np.flatnonzero(obs)})})
    if (~obs).any():
        tree["predictions"] = xr.Dataset({"eta": xr.DataArray(
            eta[:, ~obs].reshape(C, S, -1), dims=("chain", "draw", "pred_id"),
            coords={**coords, "pred_id": np.flatnonzero(~obs)})})
    for ds in tree.values():
        ds.attrs.setdefault("inference_library", "adelia")
    root = xr.Dataset(attrs={
        "inference_library": "adelia", "inference_library_version": __version__, "method": "nuts",
        "formula": model.formula.source, "family": ",".join(f.name for f in model.families),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "fixed_effects": json.dumps(list(model.fixed.names)),
        "latent_components": json.dumps([{"name": c.name, "model": c.model, "n": c.n} for c in model.components]),
    })
    return xr.DataTree.from_dict({"/": root, **{f"/{k}": v for k, v in tree.items()}})


# ---- compare ----

_GROUPS = (("fixed", "summary_fixed", "summary.fixed"),
           ("hyperpar", "internal_summary_hyperpar", "internal.summary.hyperpar"))


def _tables(fit, random: bool) -> dict[tuple[str, str], dict[str, float]]:
    """(group, parameter) -> {mean, sd, quantiles} from a fit's DataTree or a reference mapping
    in R-INLA's results.json layout (``summary.fixed``, ``internal.summary.hyperpar``,
    ``summary.random``: ``{name: {"ID": [...], "mean": [...], ...}}``)."""
    out = {}
    if isinstance(fit, xr.DataTree):
        if "inla" not in fit.children:
            raise AdeliaError("compare() needs DataTrees returned by adelia.fit (or read from their netCDF files)")
        inla = fit["inla"].to_dataset()
        for group, var, _ in _GROUPS:
            if var in inla:
                da = inla[var]
                dim = da.dims[0]
                for i, name in enumerate(da[dim].values):
                    out[(group, str(name))] = dict(zip(map(str, da["stat"].values), map(float, da.values[i])))
        if random:
            for var in inla.data_vars:
                if str(var).startswith("summary_random_"):
                    da = inla[var]
                    comp = str(var)[len("summary_random_"):]
                    for i, idx in enumerate(da[da.dims[0]].values):
                        out[(f"random:{comp}", str(idx))] = dict(zip(map(str, da["stat"].values),
                                                                     map(float, da.values[i])))
        return out
    if isinstance(fit, Mapping):
        for group, _, key in _GROUPS:
            for name, row in (fit.get(key) or {}).items():
                out[(group, str(name))] = {k: float(v) for k, v in row.items()}
        if random:
            for comp, cols in (fit.get("summary.random") or {}).items():
                ids = cols.get("ID", range(len(cols["mean"])))
                for i, idx in enumerate(ids):
                    out[(f"random:{comp}", str(idx))] = {k: float(v[i]) for k, v in cols.items()
                                                         if k != "ID" and v is not None}
        return out
    raise AdeliaError(f"compare() takes fitted DataTrees or reference mappings, got {type(fit).__name__}")


def compare(dt_a, dt_b, *, random: bool = False, quantiles=(0.025, 0.5, 0.975)) -> pd.DataFrame:
    """Each parameter of fit ``a`` against the same parameter of fit ``b`` (the reference).

    Rows: fixed effects, hyperparameters on the internal scale (log precisions, …) and, with
    ``random = True``, every random-effect node. Columns: ``mean_a``, ``mean_b``, ``sd_a``,
    ``sd_b``, ``mean_diff_sd`` = (mean_a − mean_b) / sd_b, ``sd_ratio`` = sd_a / sd_b and, for
    each quantile q present in both, ``q{q}_diff_sd`` = (q_a − q_b) / sd_b. ``dt_b`` (or ``dt_a``)
    may also be a reference in R-INLA's ``results.json`` / ``nuts.json`` layout. Parameters only
    one side has are left out.
    """
    a, b = _tables(dt_a, random), _tables(dt_b, random)
    rows = []
    for key in [k for k in b if k in a]:
        ra, rb = a[key], b[key]
        sd_b = rb["sd"]
        row = {"group": key[0], "parameter": key[1], "mean_a": ra["mean"], "mean_b": rb["mean"], "sd_a": ra["sd"],
               "sd_b": sd_b, "mean_diff_sd": (ra["mean"] - rb["mean"]) / sd_b, "sd_ratio": ra["sd"] / sd_b}
        for q in quantiles:
            name = f"{q}quant"
            if name in ra and name in rb:
                row[f"q{q}_diff_sd"] = (ra[name] - rb[name]) / sd_b
        rows.append(row)
    if not rows:
        raise AdeliaError("compare(): the two fits share no parameter",
                          hint="compare fits of the same formula (fixed-effect and hyperparameter names must match)")
    return pd.DataFrame(rows).set_index(["group", "parameter"])
