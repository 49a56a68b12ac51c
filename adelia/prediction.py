"""Predictions from a fitted model for new rows, without refitting: ``adelia.predict(dt, newdata)``.

What a fit keeps (:func:`remember`, called by :func:`adelia.fit`): the call (formula, data,
family, likelihood arguments, controls, named objects), the compiled model and the
:class:`~adelia.runtime.inference.FitResult` (θ integration points and weights), in this process,
keyed by the DataTree's ``fit_id`` attribute.

The predictive distribution (R-INLA's NA-row predictions; Rue, Martino & Chopin 2009 §6): with
x_o the fitted latent nodes and x_n the nodes new rows need (time points past the data for
rw1/rw2/ar1/seasonal, iid levels not seen),

    π(η_new | y) = Σ_k w_k ∫ π(η_new | x_o, x_n) π(x_n | x_o, θ_k) π̃(x_o | y, θ_k) dx,

where π̃(x_o | y, θ_k) is the fit's Gaussian (or simplified-Laplace) approximation at integration
point θ_k and π(x_n | x_o, θ) = N(−Q_nn⁻¹Q_no x_o, Q_nn⁻¹) is the conditional of the new nodes
under the prior of the model extended to them (Rue & Held 2005, Thm 2.5). The extended model is
the compiled formula on the fitted data plus the new rows (response NA), with the fit's
constraints (on the old nodes only) and the fit's fixed-effect design replayed on the new rows
(formulaic's stored model spec). This is exact whenever the prior of the fitted nodes is the
marginal of the extended prior — checked per component (Schur complement of Q_ext(θ̂) onto the
old nodes equals the fitted Q(θ̂)): true for extrapolation past the data of rw1, rw2, ar1,
seasonal and for new iid levels; not for rw2 interpolation, ``scale.model`` or cyclic walks,
which are refused with a hint to refit. The θ design is the fit's; nothing is re-optimised.

New locations of an SPDE field come as ``locations={"term": coords}``: their rows of the P1
projector on the term's mesh replace the index (no new nodes).
"""

from __future__ import annotations

__all__ = ["predict", "remember", "FitCall", "fit_state", "add_posterior_predictive"]

import dataclasses
import datetime as _dt
import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from adelia.errors import AdeliaError, DataError, ModelError
from adelia.runtime.arrays import device

#: fits kept for predict() in this process (the newest ones)
MAX_FITS = 16
_FITS: "OrderedDict[str, FitState]" = OrderedDict()
#: relative tolerance of the marginal-consistency check of an extended component
CONSISTENCY_RTOL = 1e-7


@dataclass(frozen=True)
class FitCall:
    """The arguments of the :func:`adelia.fit` call, as given."""

    formula: str
    data: pd.DataFrame
    family: Any
    likelihood: dict          # E, Ntrials, offset, scale: a column name, an array or None
    control_family: Any = None
    control_fixed: Any = None
    objects: dict = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class FitState:
    call: FitCall
    model: Any                # adelia.compiler.model.Model
    result: Any               # adelia.runtime.inference.FitResult


def remember(dt: xr.DataTree, call: FitCall, model, result) -> None:
    """Keep what :func:`predict` and :func:`adelia.criteria` need: in this process, keyed by a new
    ``fit_id`` attribute of ``dt``; and in ``dt`` itself (kept through netCDF) the call's data as
    the ``constant_data`` group, the other arguments as the root attribute ``fit_call`` (JSON) and
    the latent strategy, so that a result read back can be predicted from (see :func:`fit_state`)."""
    fit_id = uuid.uuid4().hex
    dt.attrs["fit_id"] = fit_id
    _FITS[fit_id] = FitState(call, model, result)
    while len(_FITS) > MAX_FITS:
        _FITS.popitem(last=False)
    dt["inla"].attrs["latent_strategy"] = str(getattr(result, "latent_strategy", "") or "")
    try:
        _store_call(dt, call)
    except (TypeError, ValueError):     # data that netCDF cannot hold: predict works in this process only
        pass


def _storable(values) -> np.ndarray:
    v = np.asarray(values)
    if v.dtype.kind in "biuf":
        return v
    if v.dtype.kind == "O" and all(isinstance(e, (float, int, np.number)) and not isinstance(e, bool) for e in v):
        return v.astype(float)
    return v.astype(str)


def _store_call(dt: xr.DataTree, call: FitCall) -> None:
    data = _frame(call.data)
    if any("/" in str(c) or str(c).startswith("__") for c in data.columns):
        return                          # names netCDF (or the keys below) cannot hold: in-process only
    cols = {str(c): xr.DataArray(_storable(data[c].to_numpy()), dims="data_row") for c in data.columns}
    # missing values of text columns (NA index values) by row: netCDF text has no NaN
    na = {str(c): np.flatnonzero(data[c].isna().to_numpy()).tolist() for c in data.columns
          if cols[str(c)].dtype.kind == "U" and data[c].isna().any()}
    likelihood = {}
    for key, value in call.likelihood.items():
        if value is None:
            continue
        if isinstance(value, str):
            likelihood[key] = {"column": value}
        else:
            name = f"__{key}"
            cols[name] = xr.DataArray(np.broadcast_to(np.asarray(value, float), (len(data),)).copy(), dims="data_row")
            likelihood[key] = {"column": name}
    info = {"formula": call.formula, "family": call.family, "likelihood": likelihood,
            "control_family": call.control_family, "control_fixed": call.control_fixed,
            "objects": sorted(call.objects), "columns": [str(c) for c in data.columns], "na": na}
    text = json.dumps(info)                                 # raises TypeError for what JSON cannot hold
    dt["constant_data"] = xr.DataTree(xr.Dataset(cols, attrs={"inference_library": "adelia"}))
    dt.attrs["fit_call"] = text


def fit_state(dt: xr.DataTree, what: str = "predict()", objects: Mapping[str, Any] | None = None) -> FitState:
    """The fit behind ``dt``: the one this process holds (by ``fit_id``), or one rebuilt from what
    ``dt`` stores (a result read back from netCDF): the formula compiled again on the stored data
    (``objects``: the graphs, SPDE objects... the formula names, passed again) with the stored θ
    design. :func:`predict` checks that the rebuilt model reproduces the stored linear predictor."""
    if not isinstance(dt, xr.DataTree) or "inla" not in dt.children:
        raise AdeliaError(f"{what} needs the DataTree returned by adelia.fit")
    fit_id = dt.attrs.get("fit_id")
    state = _FITS.get(str(fit_id)) if fit_id is not None else None
    if state is not None:
        return state
    if "fit_call" not in dt.attrs or "constant_data" not in dt.children:
        raise AdeliaError(f"{what} needs the fitted model, which this result does not hold "
                          "(no fit_call attribute / constant_data group) and this process does not know",
                          hint="fit it again in this session (the last %d fits are kept), or use "
                               "'adelia predict model.adl new.csv'" % MAX_FITS)
    return _rebuild(dt, what, dict(objects or {}))


def _rebuild(dt: xr.DataTree, what: str, objects: dict) -> FitState:
    from types import SimpleNamespace

    from adelia.compiler.model import compile_model
    from adelia.dsl.parser import parse_formula

    info = json.loads(dt.attrs["fit_call"])
    missing = [k for k in info["objects"] if k not in objects]
    if missing:
        raise AdeliaError(f"{what} on a result read back needs the objects the formula names: "
                          f"{', '.join(missing)}", hint=f"pass them again, e.g. adelia.predict(dt, newdata, "
                                                         f"{missing[0]}={missing[0]})")
    cd = dt["constant_data"].to_dataset()
    data = pd.DataFrame({c: cd[c].values for c in info["columns"]})
    for c, rows in info.get("na", {}).items():
        col = data[c].astype(object)
        col.iloc[rows] = np.nan
        data[c] = col
    likelihood = {k: (v["column"] if not v["column"].startswith("__") else cd[v["column"]].values)
                  for k, v in info["likelihood"].items()}
    used = {k: objects[k] for k in info["objects"]}
    model = compile_model(parse_formula(info["formula"]), data, info["family"], objects=used,
                          control_family=info["control_family"], control_fixed=info["control_fixed"], **likelihood)
    inla = dt["inla"].to_dataset()
    stats = [str(s) for s in inla["summary_linear_predictor"]["stat"].values]
    quantiles = tuple(float(s[: -len("quant")]) for s in stats if s.endswith("quant"))
    if [str(t) for t in inla["design_theta"]["theta"].values] != [t.internal_label for t in model.thetas]:
        raise AdeliaError("the stored formula and data give other hyperparameters than the stored fit",
                          hint="the result file does not match its fit_call attribute")
    result = SimpleNamespace(
        points=np.asarray(inla["design_theta"].values, float), weights=np.asarray(inla["design_weight"].values, float),
        solver=str(inla.attrs.get("solver", "dense")), latent_strategy=str(inla.attrs.get("latent_strategy", "")),
        options=SimpleNamespace(quantiles=quantiles, strategy="auto"), problem=model.problem,
        theta_mode=np.asarray(inla["theta_mode"].values, float), point_marginals=None,
        free=np.array([i for i, t in enumerate(model.thetas) if not t.fixed], dtype=int))
    call = FitCall(info["formula"], data, info["family"], likelihood, info["control_family"], info["control_fixed"],
                   used)
    return FitState(call, model, result)


# ---------------------------------------------------------------------------------------------
# the extended model


def _frame(data) -> pd.DataFrame:
    from adelia.compiler.model import _as_frame

    return _as_frame(data).reset_index(drop=True)


def _response_names(formula) -> list[str]:
    from adelia.dsl import ir

    r = formula.response
    items = r.items if isinstance(r, ir.Vector) else r.args if isinstance(r, ir.Call) and r.func in ("cbind", "list") \
        else [r]
    names = [i.id for i in items if isinstance(i, ir.Name)]
    if len(names) != len(items):
        raise ModelError("predict() needs the response written as a column name")
    return names


def _spde_of(term, objects: Mapping[str, Any]):
    from adelia.dsl import ir

    for kw in term.kwargs:
        if kw.name in ("model", "spde") and isinstance(kw.value, ir.Name):
            obj = objects.get(kw.value.id)
            if obj is not None and hasattr(obj, "mesh"):
                return obj
    return None


def _new_values_check(state: FitState, new: pd.DataFrame, locations: Mapping[str, Any]) -> None:
    """New index values only where the model can have new nodes; else a DataError at the row and column."""
    model = state.model
    terms = {t.label: t for t in model.formula.latent if t.kwarg("copy") is None}
    for comp in model.components:
        term = terms[comp.name]
        col = getattr(term.index, "id", None)
        if comp.name in locations or col not in new.columns:
            continue
        vals = new[col].to_numpy().tolist()
        known = set(np.asarray(comp.structure.values).tolist())
        unseen = [i for i, v in enumerate(vals)
                  if not (isinstance(v, float) and np.isnan(v)) and v not in known]
        if not unseen:
            continue
        i = unseen[0]
        fixed_nodes = comp.model in ("besag", "bym2", "spde", "besagproper") or any(
            term.kwarg(k) is not None for k in ("values", "n", "graph", "group", "replicate", "cyclic"))
        if fixed_nodes:
            what = "a node of the graph" if term.kwarg("graph") is not None else "a node"
            hint = ("give the new locations with predict(..., locations={'%s': coords})" % comp.name
                    if comp.model == "spde" else
                    "new areas must be nodes of the graph the model was fitted with" if term.kwarg("graph") is not None
                    else "this model's nodes are fixed by the fit; list every value in values = [...] and refit")
            raise DataError(f"newdata row {i}, column '{col}': value {vals[i]!r} is not {what} of "
                            f"f({comp.name}, model = \"{comp.model}\") ({len(known)} nodes)", hint=hint)
        if comp.model not in ("iid", "rw1", "rw2", "ar1", "seasonal"):
            raise DataError(f"newdata row {i}, column '{col}': value {vals[i]!r} is a new node of "
                            f"f({comp.name}, model = \"{comp.model}\"), which predict() cannot extend",
                            hint="new nodes are supported for iid, rw1, rw2, ar1 and seasonal; refit with the "
                                 "rows appended (response NA)")


def _likelihood_arguments(call: FitCall, old: pd.DataFrame, new: pd.DataFrame, m_new: int) -> dict:
    out = {}
    for key, value in call.likelihood.items():
        if value is None:
            continue
        if isinstance(value, str):
            if value not in new.columns:
                if key == "offset":
                    raise DataError(f"newdata has no column '{value}' (offset = \"{value}\" in the fit)",
                                    hint=f"add the column '{value}' to newdata")
                new_vals = np.full(m_new, np.nan)     # the draws that need it say so
            else:
                new_vals = np.asarray(new[value], float)
            old_vals = np.asarray(old[value], float)
        else:
            old_vals = np.broadcast_to(np.asarray(value, float), (len(old),))
            if key in new.columns:
                new_vals = np.asarray(new[key], float)
            elif key == "offset":
                raise DataError("the fit's offset was an array: newdata needs a column 'offset'",
                                hint="add a column named 'offset' to newdata")
            else:
                new_vals = np.full(m_new, np.nan)
        out[key] = np.concatenate([old_vals, new_vals])
    return out


@dataclass(frozen=True)
class Extended:
    problem: Any              # runtime Problem over [fitted rows; new rows]
    m_old: int
    perm: np.ndarray          # fitted latent node j -> its position in the extended x


def extend(state: FitState, newdata, locations: Mapping[str, Any] | None = None) -> Extended:
    """The fitted model extended to the rows of ``newdata`` (see the module docstring)."""
    from adelia.compiler.model import compile_model
    from adelia.dsl.parser import parse_formula

    call, model = state.call, state.model
    locations = dict(locations or {})
    if len(model.families) > 1:
        raise ModelError("predict() supports models with one likelihood",
                         hint="refit with the rows to predict appended (response NA in every column)")
    new = _frame(newdata)
    if len(new) == 0:
        raise DataError("newdata has no rows")
    old = _frame(call.data)
    m_old, m_new = len(old), len(new)
    unknown = [k for k in locations if k not in {c.name for c in model.components}]
    if unknown:
        raise ModelError(f"locations names {unknown[0]!r}, which is not an f() term of the model",
                         hint=f"terms: {', '.join(c.name for c in model.components)}")
    _new_values_check(state, new, locations)

    new = new.copy()
    for name in _response_names(model.formula):
        new[name] = np.nan
    terms = {t.label: t for t in model.formula.latent}
    spde_rows = {}
    for name, coords in locations.items():
        obj = _spde_of(terms[name], call.objects)
        if obj is None or obj.mesh is None:
            raise ModelError(f"locations = {{'{name}': ...}} needs f({name}) to be an SPDE model with a mesh")
        spde_rows[name] = sp.csr_matrix(obj.mesh.projector(np.asarray(coords, float)))
        if spde_rows[name].shape[0] != m_new:
            raise DataError(f"locations['{name}'] has {spde_rows[name].shape[0]} rows, newdata {m_new}")
        new[terms[name].index.id] = np.nan          # the rows' field comes from the projector below
    for col in old.columns:
        if col not in new.columns:
            new[col] = np.nan
    ext = pd.concat([old, new[old.columns.tolist() + [c for c in new.columns if c not in old.columns]]],
                    ignore_index=True)
    p = len(model.fixed.names)
    X_new = _fixed_design(model, new) if p else np.zeros((m_new, 0))
    lik = _likelihood_arguments(call, old, new, m_new)
    try:
        em = compile_model(parse_formula(call.formula), ext, call.family, objects=call.objects,
                           control_family=call.control_family, control_fixed=call.control_fixed, **lik)
    except DataError as err:
        raise DataError(f"with the new rows (rows {m_old}.. of the combined data): {err.message}",
                        hint=err.hint) from None

    # ---- latent nodes: fitted ones in the extended numbering ----
    if [t.label for t in em.thetas] != [t.label for t in model.thetas]:
        raise ModelError("the new rows change the model's hyperparameters", hint="refit with the rows appended")
    perm = np.empty(model.N, dtype=np.int64)
    for c_old, c_new in zip(model.components, em.components):
        pos = {v: i for i, v in enumerate(np.asarray(c_new.structure.values).tolist())}
        idx = np.array([pos.get(v, -1) for v in np.asarray(c_old.structure.values).tolist()])
        if np.any(idx < 0):
            raise AdeliaError(f"internal: the fitted nodes of f({c_old.name}) are not among the extended ones")
        perm[c_old.offset: c_old.offset + c_old.n] = c_new.offset + idx
        if c_new.n > c_old.n:
            _check_consistent(c_old, c_new, idx, state.result.theta_mode)
    perm[model.fixed_offset:] = em.fixed_offset + np.arange(p)
    N = em.fixed_offset + p

    # ---- observation matrix: the extended latent columns, the fit's fixed design replayed ----
    A_lat = sp.csr_matrix(em.A)[:, : em.fixed_offset].tolil()
    for name, P in spde_rows.items():
        c = next(c for c in em.components if c.name == name)
        A_lat[m_old:, c.offset: c.offset + c.n] = P
    A = sp.hstack([A_lat.tocsr(), sp.csr_matrix(np.vstack([model.fixed.X, X_new]))], format="csr")
    # the fitted rows must be the fit's rows exactly (a stateful transform or a reordering would not be)
    diff = A[:m_old][:, perm] - sp.csr_matrix(model.A)
    if diff.nnz and np.max(np.abs(diff.data)) > 1e-12 * max(1.0, np.max(np.abs(model.A.data), initial=1.0)):
        raise AdeliaError("internal: the extended model does not reproduce the fitted observation matrix")
    C = np.zeros((model.C.shape[0], N))
    C[:, perm] = model.C
    fixed_prec = np.asarray(model.fixed_prec, float)
    fixed_mean = np.asarray(model.fixed_mean, float)
    problem = dataclasses.replace(em.problem, A=A, C=C, e=np.asarray(model.e, float), fixed_prec=fixed_prec,
                                  fixed_mean=fixed_mean, fixed_offset=em.fixed_offset,
                                  key=em.problem.key + "|predict")
    return Extended(problem, m_old, perm)


def _fixed_design(model, new: pd.DataFrame) -> np.ndarray:
    """The fit's fixed-effect columns on the new rows (formulaic replays levels and transforms)."""
    from adelia.compiler.fixed import design_on

    try:
        names, X = design_on(model.fixed, new)
    except Exception as err:  # formulaic raises many types (unseen level, missing column, NA)
        msg = str(err).split("\n")[0]
        raise DataError(f"newdata: cannot build the fixed-effect design: {msg}",
                        hint="give every fixed-effect column, with levels seen in the fit and no missing values") \
            from None
    if names != list(model.fixed.names):
        raise DataError(f"newdata's fixed-effect columns {names} differ from the fit's {list(model.fixed.names)}")
    return X


def _component_Q(c, theta: np.ndarray) -> np.ndarray:
    th = device(np.asarray(theta)[list(c.theta_index)])
    s = c.structure
    return sum(float(coef(th)) * np.asarray(sp.csr_matrix(K).toarray()) for coef, K in zip(s.coefs, s.matrices))


def _check_consistent(c_old, c_new, idx: np.ndarray, theta: np.ndarray) -> None:
    """The fitted prior of f(·) is the marginal of the extended one: Q_oo − Q_on Q_nn⁻¹ Q_no = Q_fit."""
    Q = _component_Q(c_new, theta)
    new_idx = np.setdiff1d(np.arange(c_new.n), idx)
    Qoo, Qon, Qnn = Q[np.ix_(idx, idx)], Q[np.ix_(idx, new_idx)], Q[np.ix_(new_idx, new_idx)]
    try:
        S = Qoo - Qon @ np.linalg.solve(Qnn, Qon.T)
    except np.linalg.LinAlgError:
        S = None
    Qfit = _component_Q(c_old, theta)
    if S is None or np.max(np.abs(S - Qfit)) > CONSISTENCY_RTOL * np.max(np.abs(Qfit)):
        raise ModelError(f"the new values of f({c_old.name}, model = \"{c_old.model}\") change the model on the "
                         "fitted values (e.g. rw2 between fitted time points, scale.model = TRUE or a cyclic walk), "
                         "so predict() cannot extend it without refitting",
                         hint="refit with the rows appended (response NA); new values past the data are supported")


# ---------------------------------------------------------------------------------------------
# the predictive distribution


def _gaussian_program(cp, strategy_x: str):
    progs = cp.gaussian
    return progs[strategy_x] if strategy_x in progs else progs[strategy_x != "gaussian"]


def _latent_strategy(res) -> str:
    from adelia.runtime.inference import SLA_MAX_LATENT

    s = getattr(res, "latent_strategy", "") or res.options.strategy
    if s == "auto":
        s = "simplified.laplace" if res.problem.N < SLA_MAX_LATENT else "gaussian"
    return s


def gaussian_at_points(problem, res):
    """(x̂, Gaussian approximation) at the fit's integration points for ``problem`` (compiled once)."""
    from adelia.runtime.inference import compiled

    solver = res.solver or "dense"
    cp = compiled(problem, solver)
    x0 = cp.prob.x_feasible
    xs = []
    for theta in res.points:
        f, x = cp.value(device(theta), x0)
        if not np.isfinite(float(f)):
            raise AdeliaError("the latent mode is not finite at an integration point of the fit")
        xs.append(x)
        x0 = x
    xs = jnp.stack(xs)
    strategy_x = _latent_strategy(res)
    gauss = _gaussian_program(cp, strategy_x)(device(res.points), xs)
    return cp, xs, gauss, strategy_x


def eta_moments(problem, gauss, strategy_x: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-point mean and sd of η (K, m), the simplified-Laplace mean shift included as in the fit."""
    from adelia.runtime.marginals import skew_normal_from_sla

    eta_m, eta_s = np.asarray(gauss.eta_mean), np.asarray(gauss.eta_sd)
    if strategy_x != "gaussian":
        sds = np.asarray(gauss.sd)
        xi, omega, alpha = skew_normal_from_sla(np.asarray(gauss.gamma1), np.asarray(gauss.gamma3))
        shift = sds * (xi + omega * (alpha / np.sqrt(1 + alpha ** 2)) * np.sqrt(2 / np.pi))
        eta_m = eta_m + (problem.A @ shift.T).T
    return eta_m, eta_s


def transformed_summary(w, mu, sd, fn, stats: list[str], quantiles, linear: dict) -> dict[str, np.ndarray]:
    """Summaries of g(η) for η ~ Σ_k w_k N(mu_k, sd_k²) and increasing g: moments by Gauss–Hermite
    per component, quantiles g(η-quantiles), the mode from the transformed density on a grid
    (R-INLA's fitted values: ``inla.tmarginal`` of the linear-predictor marginal)."""
    t, wq = np.polynomial.hermite.hermgauss(40)
    w = np.asarray(w, float) / np.sum(w)
    nodes = mu[:, None, :] + np.sqrt(2.0) * sd[:, None, :] * t[None, :, None]     # (K, G, n)
    vals = np.asarray(fn(nodes), float)
    ww = (w[:, None] * wq[None, :] / np.sqrt(np.pi))[:, :, None]
    mean = np.sum(ww * vals, axis=(0, 1))
    var = np.sum(ww * vals ** 2, axis=(0, 1)) - mean ** 2
    out = {"mean": mean, "sd": np.sqrt(np.maximum(var, 0.0))}
    for q in quantiles:
        out[f"{q}quant"] = np.asarray(fn(linear[f"{q}quant"]), float)
    # mode: density of g(η) = π(η)/g'(η) on an η grid
    lo, hi = np.min(mu - 8 * sd, axis=0), np.max(mu + 8 * sd, axis=0)
    grid = lo[None, :] + (hi - lo)[None, :] * np.linspace(0, 1, 2001)[:, None]     # (G, n)
    sdm = np.maximum(sd, 1e-300)
    dens = np.einsum("k,gkn->gn", w, np.exp(-0.5 * ((grid[:, None, :] - mu[None]) / sdm[None]) ** 2) / sdm[None])
    h = 1e-6 * np.maximum(1.0, np.abs(grid))
    slope = (np.asarray(fn(grid + h), float) - np.asarray(fn(grid - h), float)) / (2 * h)
    g_dens = dens / np.maximum(slope, 1e-300)
    out["mode"] = np.asarray(fn(grid[np.argmax(g_dens, axis=0), np.arange(grid.shape[1])]), float)
    return {s: out[s] for s in stats}


def _inverse_link(family):
    from adelia.compiler.likelihoods import FAMILIES

    inv = getattr(family, "inverse_link", None)
    if inv is None:
        inv = FAMILIES.get(family.name).inverse_link
    return lambda e: np.asarray(inv(device(e)), float)


def _draw_predictive(cp, problem, res, n_samples: int, seed: int, xs):
    """θ from the integration points with their weights, then x | θ, y from the extended model's
    Gaussian approximation (as the fit's draws, inla.posterior.sample); returns (θ, η) draws."""
    rng = np.random.default_rng(seed)
    which = rng.choice(len(res.points), size=n_samples, p=res.weights)
    counts = np.bincount(which, minlength=len(res.points))
    chunk = int(np.clip(1 << int(np.ceil(np.log2(max(n_samples / max(np.count_nonzero(counts), 1), 1)))), 16, 256))
    x = np.empty((n_samples, problem.N))
    for k in np.flatnonzero(counts):
        draws = np.concatenate([np.asarray(cp.sampler(device(res.points[k]),
                                                      rng.standard_normal((cp.prob.n_normals, chunk)), xs[k]))
                                for _ in range(-(-counts[k] // chunk))])
        x[which == k] = draws[: counts[k]]
    thetas = res.points[which]
    if problem.copies or problem.theta_covariates:
        eta = np.asarray(cp.eta_draws(device(x), device(thetas)))
    else:
        eta = (problem.A @ x.T).T + problem.offset
    return thetas, eta


def posterior_predictive_group(model, res, eta: np.ndarray, theta: np.ndarray, rows: np.ndarray,
                               seed: int, extra_override: dict | None = None) -> np.ndarray:
    """y_rep draws (S, len(rows)) of the rows ``rows`` given η draws (S, len(rows)) and θ draws."""
    from adelia.family_sampling import sample_response

    fam = model.families[0]
    lik = np.asarray(model.lik_theta[0], dtype=int)
    extras = extra_override if extra_override is not None else model.extra
    extra = {k: np.asarray(v, float)[rows] for k, v in extras.items() if k in getattr(fam, "extras", ())}
    return sample_response(fam, eta, theta[:, lik], extra, seed)


def add_posterior_predictive(dt: xr.DataTree, model, res, seed: int = 0) -> None:
    """Add the ``posterior_predictive`` group to a fit's DataTree: one y_rep per posterior draw of
    (η, θ) for each observed row (ArviZ's layout, matching ``observed_data/y``)."""
    if res.draws_eta is None:
        raise ModelError("posterior_predictive = True needs posterior draws", hint="use n_samples > 0")
    if len(model.families) > 1:
        raise ModelError("posterior_predictive = True supports models with one likelihood")
    rows = np.flatnonzero(model.observed)
    y = posterior_predictive_group(model, res, np.asarray(res.draws_eta)[:, rows], np.asarray(res.draws_theta),
                                   rows, seed + 1)
    coords = {"chain": [0], "draw": np.arange(y.shape[0]), "obs_id": rows}
    dt["posterior_predictive"] = xr.DataTree(xr.Dataset(
        {"y": xr.DataArray(y[None], dims=("chain", "draw", "obs_id"), coords=coords)},
        attrs={"inference_library": "adelia"}))


#: how far (in posterior sds) the fitted rows' η means may move in the extended model
REPRODUCE_TOL = 1e-4


def _check_reproduces(dt: xr.DataTree, weights, eta_m: np.ndarray, eta_s: np.ndarray) -> None:
    """The extended model's η on the fitted rows is the fit's (its summary_linear_predictor): a
    rebuilt fit that does not reproduce it (other data, other objects) is refused."""
    table = dt["inla"]["summary_linear_predictor"]
    mean_fit, sd_fit = table.sel(stat="mean").values, table.sel(stat="sd").values
    w = np.asarray(weights, float) / np.sum(weights)
    mean = w @ eta_m
    bad = np.flatnonzero(np.abs(mean - mean_fit) > REPRODUCE_TOL * sd_fit + 1e-9 * (1 + np.abs(mean_fit)))
    if bad.size:
        raise AdeliaError(f"the model rebuilt for prediction does not reproduce the fit's linear predictor "
                          f"(row {bad[0]}: {mean[bad[0]]:.6g} against {mean_fit[bad[0]]:.6g})",
                          hint="the objects passed again (graphs, SPDE objects) must be the fit's")


def predict(dt: xr.DataTree, newdata, *, kind: str = "response", n_samples: int = 1000, seed: int = 0,
            locations: Mapping[str, Any] | None = None, **objects: Any) -> xr.DataTree:
    """Predict the rows of ``newdata`` from a fit, without refitting.

    Parameters
    ----------
    dt
        The DataTree returned by :func:`adelia.fit` in this process.
    newdata
        A DataFrame (or dict of arrays) with the covariates and index values of the new rows; the
        response may be absent. Likelihood arguments given as column names in the fit (E, Ntrials,
        scale, offset) are read from the same columns.
    kind
        ``"response"`` (summary of the fitted mean g⁻¹(η), R-INLA's ``summary.fitted.values``) or
        ``"linear"`` (of η, ``summary.linear.predictor``); both tables are stored.
    n_samples, seed
        Draws of η, of the mean and of y (posterior predictive, with the observation noise).
    locations
        ``{"term": coords}``: new locations (n_new × 2) of an SPDE term f(term, model = spde).
    **objects
        For a result read back from netCDF: the objects its formula names (graphs, SPDE
        objects...), which a file cannot hold. The fit is rebuilt from the stored formula, data and
        θ design (checked: it must reproduce the stored linear predictor).

    Returns
    -------
    DataTree with ``predictions`` (``eta``, ``mu``, ``y``: (chain, draw, pred_id)) and ``inla``
    (``summary_predictions`` for ``kind``, ``summary_linear_predictor``, ``summary_fitted_values``).
    """
    if kind not in ("response", "linear"):
        raise ModelError(f"unknown kind {kind!r}", hint="kind = \"response\" or \"linear\"")
    if int(n_samples) < 0:
        raise ModelError("n_samples must be >= 0")
    state = fit_state(dt, objects=objects)
    res, model = state.result, state.model
    ex = extend(state, newdata, locations)
    P, m_old = ex.problem, ex.m_old
    m_new = P.m - m_old
    cp, xs, gauss, strategy_x = gaussian_at_points(P, res)
    eta_m, eta_s = eta_moments(P, gauss, strategy_x)
    _check_reproduces(dt, res.weights, eta_m[:, :m_old], eta_s[:, :m_old])
    eta_m, eta_s = eta_m[:, m_old:], eta_s[:, m_old:]
    from adelia.runtime.marginals import mixture_summary

    quantiles = tuple(res.options.quantiles)
    stats = ["mean", "sd"] + [f"{q}quant" for q in quantiles] + ["mode"]
    linear = mixture_summary(res.weights, eta_m, eta_s, quantiles)
    inv = _inverse_link(model.families[0])
    fitted = transformed_summary(res.weights, eta_m, eta_s, inv, stats, quantiles, linear)
    pred_id = np.arange(m_new)

    def table(d):
        return xr.DataArray(np.stack([np.asarray(d[s], float) for s in stats], axis=1), dims=("pred_id", "stat"),
                            coords={"pred_id": pred_id, "stat": stats})

    inla = xr.Dataset({"summary_linear_predictor": table(linear), "summary_fitted_values": table(fitted),
                       "summary_predictions": table(linear if kind == "linear" else fitted)},
                      attrs={"kind": kind, "n_theta_points": len(res.points)})
    tree = {"inla": inla}
    if n_samples:
        thetas, eta = _draw_predictive(cp, P, res, n_samples, seed, xs)
        eta = np.asarray(eta)[:, m_old:]
        rows = np.arange(m_old, P.m)
        y = posterior_predictive_group(model, res, eta, thetas, rows, seed, P.extra)
        coords = {"chain": [0], "draw": np.arange(int(n_samples)), "pred_id": pred_id}
        dims = ("chain", "draw", "pred_id")
        tree["predictions"] = xr.Dataset({"eta": xr.DataArray(eta[None], dims=dims, coords=coords),
                                          "mu": xr.DataArray(inv(eta)[None], dims=dims, coords=coords),
                                          "y": xr.DataArray(y[None], dims=dims, coords=coords)},
                                         attrs={"inference_library": "adelia"})
    root = xr.Dataset(attrs={**{k: v for k, v in dt.attrs.items() if k != "created_at"},
                             "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                             "predict": json.dumps({"kind": kind, "n_samples": int(n_samples), "seed": int(seed),
                                                    "rows": int(m_new)})})
    return xr.DataTree.from_dict({"/": root, **{f"/{k}": v for k, v in tree.items()}})
