"""``adelia.criteria(dt)``: the model-comparison numbers of a fit in one dict (R-INLA's ``mlik``,
``dic``, ``waic``, ``cpo`` and, on request, ``cpo$pit``).

The scalars are the fit's (``dt["inla"].attrs``, kept through netCDF): the marginal likelihood by
integration over the θ design and its Gaussian (Laplace at the θ mode) estimate, DIC and its
effective number of parameters (Spiegelhalter et al. 2002), WAIC and p_WAIC (Watanabe 2010),
Σ log CPO_i (Pettit 1990), and the number of observations whose CPO could not be computed (a
non-finite log CPO: R-INLA's ``cpo$failure``). PIT values need the fitted model (this process's, or
one rebuilt from what the result stores, see :func:`adelia.prediction.fit_state`):
P(Y_i ≤ y_i | y_{−i}) from the leave-one-out reweighting of the posterior of η_i
(:func:`adelia.runtime.criteria.loo_pit`) with the family's CDF.
"""

from __future__ import annotations

__all__ = ["criteria", "family_cdf"]

import jax.numpy as jnp
import numpy as np
import xarray as xr

from adelia.errors import AdeliaError, ModelError


def family_cdf(family, y: np.ndarray, eta: np.ndarray, theta_family: np.ndarray, extra: dict) -> np.ndarray:
    """F(y | η, θ) of one family, elementwise (η, θ broadcast; the mean parameter from the
    family's inverse link, as :mod:`adelia.family_sampling`)."""
    import scipy.stats as st      # here, not at import: scipy.stats costs every `import adelia` 0.3 s

    inv = getattr(family, "inverse_link", None)
    mu = np.asarray(inv(jnp.asarray(eta)), float) if inv is not None else eta
    name = family.name
    if name in ("gaussian", "normal"):
        sd = 1.0 / np.sqrt(np.exp(theta_family[..., 0]) * extra.get("scale", 1.0))
        return st.norm.cdf(y, loc=mu, scale=sd)
    if name == "poisson":
        return st.poisson.cdf(y, extra.get("E", 1.0) * mu)
    if name == "binomial":
        return st.binom.cdf(y, extra["Ntrials"], mu)
    raise ModelError(f"PIT values are not available for the {name} family (no CDF)",
                     hint="families with one: gaussian, poisson, binomial")


def criteria(dt: xr.DataTree, *, pit: bool = False) -> dict:
    """``mlik`` (integration estimate), ``mlik_gaussian``, ``dic``, ``dic_p_eff``, ``waic``,
    ``waic_p_eff``, ``sum_log_cpo``, ``cpo_failures`` and, with ``pit=True``, ``pit`` (one value
    per observed row, in the order of ``observed_data``)."""
    if not isinstance(dt, xr.DataTree) or "inla" not in dt.children:
        raise AdeliaError("criteria() needs the DataTree returned by adelia.fit (or read from its netCDF file)")
    inla = dt["inla"]
    a = inla.attrs
    out = {"mlik": float(a["mlik_integration"]), "mlik_gaussian": float(a["mlik_gaussian"])}
    for k in ("dic", "dic_p_eff", "waic", "waic_p_eff", "sum_log_cpo"):
        out[k] = float(a[k]) if k in a else float("nan")
    if "log_cpo" in inla.dataset:
        out["cpo_failures"] = int(np.count_nonzero(~np.isfinite(inla.dataset["log_cpo"].values)))
    else:
        out["cpo_failures"] = 0
    if pit:
        out["pit"] = _pit(dt)
    return out


def _pit(dt: xr.DataTree) -> np.ndarray:
    from adelia.prediction import _check_reproduces, eta_moments, fit_state, gaussian_at_points
    from adelia.runtime.criteria import loo_pit, quadrature_nodes

    state = fit_state(dt, "criteria(pit=True)")
    model, res = state.model, state.result
    problem = model.problem
    obs = np.asarray(problem.observed)
    if len(model.families) > 1:
        raise ModelError("PIT values are available for models with one likelihood")
    pm = getattr(res, "point_marginals", None)
    if pm is not None:                  # η's per-point moments as the fit computed them
        from adelia.runtime.inference import compiled

        cp = compiled(problem, res.solver or "dense")
        eta_m, eta_s = np.asarray(pm["eta_mean"]), np.asarray(pm["eta_sd"])
    else:
        cp, _, gauss, strategy_x = gaussian_at_points(problem, res)     # a fit rebuilt from its file
        eta_m, eta_s = eta_moments(problem, gauss, strategy_x)
        _check_reproduces(dt, res.weights, eta_m, eta_s)
    eta, logw = quadrature_nodes(res.weights, eta_m, eta_s)
    ll = np.asarray(cp.loglik_grid(jnp.asarray(eta), jnp.asarray(res.points)))[:, :, obs]
    fam = model.families[0]
    theta = np.asarray(res.points)[:, list(model.lik_theta[0])][:, None, None, :]     # (K, 1, 1, k)
    extra = {k: np.asarray(v, float)[obs] for k, v in model.extra.items() if k in getattr(fam, "extras", ())}
    cdf = family_cdf(fam, np.asarray(model.y)[obs], eta[:, :, obs], theta, extra)
    return loo_pit(logw, ll, cdf)
