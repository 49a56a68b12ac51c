"""Posterior marginal density tables, as R-INLA's ``marginals.fixed``, ``marginals.hyperpar``
(natural scale; ``internal.marginals.hyperpar`` on the internal one) and, on request,
``marginals.random`` and ``marginals.linear.predictor``, with R-INLA's ``kld`` per fixed effect and
random-effect node.

Latent marginals are the fit's mixtures over the integration points, Σ_k w_k SN(ξ_k, ω_k, α_k)
(simplified Laplace) or Σ_k w_k N(μ_k, σ_k²) (Gaussian), tabulated at the mixture's own quantiles for R-INLA's
43 layout probabilities, 1e-5 … 1 − 1e-5 (GMRFLib_density_layout_x). ``kld`` is ½[KL(p‖g) + KL(g‖p)] between the
marginal p and the Gaussian g with p's mean and sd (GMRFLib_kld_sym), a per-node measure of how
far the marginal is from Gaussian. θ marginals are the fit's (spline of the log-density over the
grid, or the CCD asymmetric-Gaussian interpolant), the natural scale by the change of variables
π(v) = π(θ)/|dv/dθ|.

Stored in the ``inla`` group as ``marginals_<what>_x`` and ``marginals_<what>_density`` (one row
per parameter), ``kld_fixed`` and ``kld_random_<name>``.
"""

from __future__ import annotations

__all__ = ["marginal_tables", "add_marginal_tables", "MARGINALS"]

from typing import Sequence

import numpy as np
import xarray as xr

from adelia.errors import ModelError
from adelia.runtime.marginals import marginal_grid, mixture_density, symmetric_kld
from adelia.runtime.numpy_eval import numpy_eval

MARGINALS = ("fixed", "hyperpar", "random", "linear_predictor")
#: points of each θ marginal's table
HYPER_POINTS = 75


def _latent_params(res, cols):
    pm = res.point_marginals
    mean, sd = pm["mean"][:, cols], pm["sd"][:, cols]
    if "xi" in pm:
        return mean + sd * pm["xi"][:, cols], sd * pm["omega"][:, cols], pm["alpha"][:, cols]
    return mean, sd, None


#: nodes per block of the density evaluations (K × block × grid arrays)
BLOCK = 256


def _latent_tables(res, cols, dim: str, coords, prefix: str, kld: str | None) -> dict[str, xr.DataArray]:
    xs, dens, klds = [], [], []
    for start in range(0, len(cols), BLOCK):
        c = cols[start: start + BLOCK]
        loc, scale, alpha = _latent_params(res, c)
        mean, sd = np.asarray(res.latent["mean"])[c], np.asarray(res.latent["sd"])[c]
        x = marginal_grid(res.weights, loc, scale, alpha)
        xs.append(x)
        dens.append(mixture_density(res.weights, loc, scale, alpha, x))
        if kld:
            klds.append(symmetric_kld(res.weights, loc, scale, alpha, mean, sd))
    dims = (dim, "marginal_point")
    out = {f"marginals_{prefix}_x": xr.DataArray(np.concatenate(xs), dims=dims, coords={dim: coords}),
           f"marginals_{prefix}_density": xr.DataArray(np.concatenate(dens), dims=dims, coords={dim: coords})}
    if kld:
        out[kld] = xr.DataArray(np.concatenate(klds), dims=dim, coords={dim: coords})
    return out


def _hyper_tables(model, res) -> dict[str, xr.DataArray]:
    rows_nat, rows_int, labels, internal = [], [], [], []
    for j in res.free:
        t = model.thetas[j]
        marg = res.hyper_summary[t.label].get("marginal")
        if marg is None:
            return {}
        theta, lp = (np.asarray(a, float) for a in marg)
        dens = np.exp(lp - lp.max())
        keep = np.flatnonzero(dens > 1e-6)
        lo, hi = theta[keep.min()], theta[keep.max()]
        g = np.linspace(lo, hi, HYPER_POINTS)
        d = np.interp(g, theta, dens)
        d /= np.trapezoid(d, g)
        v = np.asarray(numpy_eval(t.to_natural, g), float)
        dv = d / np.maximum(np.abs(np.gradient(v, g)), 1e-300)
        order = np.argsort(v)
        rows_int.append((g, d))
        rows_nat.append((v[order], dv[order]))
        labels.append(t.label)
        internal.append(t.internal_label)
    if not labels:
        return {}
    out = {}
    for name, dim, coords, rows in (("hyperpar", "hyperpar", labels, rows_nat),
                                    ("internal_hyperpar", "internal_hyperpar", internal, rows_int)):
        dims = (dim, "hyperpar_point")
        out[f"marginals_{name}_x"] = xr.DataArray(np.array([r[0] for r in rows]), dims=dims, coords={dim: coords})
        out[f"marginals_{name}_density"] = xr.DataArray(np.array([r[1] for r in rows]), dims=dims,
                                                        coords={dim: coords})
    return out


def marginal_tables(model, res, which: Sequence[str] = ("fixed", "hyperpar")) -> dict[str, xr.DataArray]:
    """The tables named in ``which`` (of :data:`MARGINALS`) for a fit (model, FitResult)."""
    from adelia.results import _coord_values

    which = tuple(which)
    bad = [w for w in which if w not in MARGINALS]
    if bad:
        raise ModelError(f"unknown marginals {bad[0]!r}", hint=f"known: {', '.join(MARGINALS)}")
    if getattr(res, "point_marginals", None) is None:
        return {}
    out: dict[str, xr.DataArray] = {}
    fo = model.fixed_offset
    if "fixed" in which and len(model.fixed.names):
        out.update(_latent_tables(res, np.arange(fo, fo + len(model.fixed.names)), "fixed_term",
                                  list(model.fixed.names), "fixed", "kld_fixed"))
    if "hyperpar" in which:
        out.update(_hyper_tables(model, res))
    if "random" in which:
        for comp in model.components:
            out.update(_latent_tables(res, np.arange(comp.offset, comp.offset + comp.n), f"{comp.name}_index",
                                      _coord_values(comp.structure.values), f"random_{comp.name}",
                                      f"kld_random_{comp.name}"))
    if "linear_predictor" in which:
        pm = res.point_marginals
        mean = np.asarray(res.linear_predictor["mean"])
        x = marginal_grid(res.weights, pm["eta_mean"], pm["eta_sd"], None)
        dims, coords = ("obs_id", "marginal_point"), {"obs_id": np.arange(len(mean))}
        out["marginals_linear_predictor_x"] = xr.DataArray(x, dims=dims, coords=coords)
        out["marginals_linear_predictor_density"] = xr.DataArray(
            mixture_density(res.weights, pm["eta_mean"], pm["eta_sd"], None, x), dims=dims, coords=coords)
    return out


def add_marginal_tables(dt: xr.DataTree, model, res, which: Sequence[str]) -> None:
    tables = marginal_tables(model, res, which)
    if tables:
        ds = dt["inla"].to_dataset()
        dt["inla"] = xr.DataTree(ds.assign(tables).assign_attrs(ds.attrs))
