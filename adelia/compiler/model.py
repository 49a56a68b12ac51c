"""IR + data -> :class:`Model`: the observation matrix A, latent precision pieces, likelihood,
hyperparameters with priors, and constraints.

The latent vector is ordered ``[f-components..., fixed effects]`` (fixed effects last, as the
tip of the BTA layout in METHOD.md §3). η = A x + offset.
"""

from __future__ import annotations

__all__ = ["Model", "Component", "Theta", "compile_model"]

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from adelia.compiler.fixed import FixedEffects, build_fixed
from adelia.compiler.latent import LATENT, Structure, TermInput
from adelia.compiler.likelihoods import FAMILIES, Family, HyperSpec
from adelia.compiler.priors import Prior, make_prior
from adelia.compiler.resolve import Resolver
from adelia.dsl import ir
from adelia.runtime import problem as rt
from adelia.errors import DataError, ModelError, Span

#: f() keywords every latent model accepts (R spelling; snake_case accepted too).
COMMON_ARGS = ("model", "hyper", "constr", "extraconstr", "scale.model", "values", "n", "graph", "cyclic",
               "group", "ngroup", "control.group", "replicate", "nrep")

#: R-INLA's copy scale: "Beta for <name>", N(1, precision 10), fixed at 1 unless hyper says otherwise.
COPY_BETA = HyperSpec("beta", "Beta for {name}", "Beta_intern for {name}", ("normal", (1.0, 10.0)), 1.0,
                      "real", lambda t: t)


@dataclass(frozen=True)
class Theta:
    """One hyperparameter θ_k on the internal scale."""

    label: str
    internal_label: str
    prior: Prior
    initial: float
    to_natural: Callable
    owner: str                  # "likelihood" or the component name
    fixed: bool = False
    joint: tuple[int, ...] | None = None   # θ indices a joint prior reads (Prior.joint); None: θ_k alone


@dataclass(frozen=True)
class Component:
    name: str
    model: str
    offset: int
    structure: Structure
    theta_index: tuple[int, ...]

    @property
    def n(self) -> int:
        return self.structure.n


@dataclass(frozen=True)
class Copy:
    """f(..., copy = "src") with an estimated β: adds β(θ) · B x_src to η (R-INLA ``copy``)."""

    name: str
    src_offset: int
    B: np.ndarray                     # (m, n_src)
    theta_index: int


@dataclass(frozen=True)
class Model:
    formula: ir.Formula
    families: tuple[Family, ...]
    family_index: np.ndarray          # (m,) which family each row belongs to
    y: np.ndarray                     # (m,) with NaN where the response is missing
    A: sp.csr_matrix                  # (m, N) observation (design + projector) matrix
    offset: np.ndarray                # (m,)
    extra: dict[str, np.ndarray]      # E, Ntrials, scale
    components: tuple[Component, ...]
    fixed: FixedEffects
    fixed_offset: int
    fixed_prec: np.ndarray            # prior precisions of fixed effects (0 = flat)
    fixed_mean: np.ndarray
    thetas: tuple[Theta, ...]
    lik_theta: tuple[tuple[int, ...], ...]   # θ indices of each family
    C: np.ndarray                     # (k, N) constraint rows, C x = 0
    copies: tuple["Copy", ...] = ()   # copy terms with an estimated scale β: η += β B x_src
    e: np.ndarray = field(default_factory=lambda: np.zeros(0))    # right-hand side of C x = e
    options: dict[str, Any] = field(default_factory=dict)
    theta_covariates: tuple[rt.ThetaCovariate, ...] = ()   # η += β(θ) w (clinear)

    @property
    def family(self) -> Family:
        """The (first) likelihood family."""
        return self.families[0]

    @property
    def N(self) -> int:
        return self.problem.N

    @property
    def m(self) -> int:
        return self.problem.m

    @property
    def d(self) -> int:
        return self.problem.d

    @property
    def observed(self) -> np.ndarray:
        return self.problem.observed

    @functools.cached_property
    def problem(self) -> rt.Problem:
        """The lowering into the runtime's problem type (arrays and pure functions only)."""
        return rt.Problem(
            y=self.y, A=self.A, offset=self.offset, extra=self.extra, family_index=self.family_index,
            families=tuple(rt.Likelihood(f.key, tuple(f.extras), f.loglik, f.quadratic_in_eta) for f in self.families),
            lik_theta=self.lik_theta,
            components=tuple(_lower_component(c) for c in self.components),
            thetas=tuple(rt.Hyperparameter(t.label, t.internal_label, float(t.initial), bool(t.fixed),
                                           t.prior.logpdf, t.to_natural, t.prior.describe(), t.joint)
                         for t in self.thetas),
            fixed_offset=self.fixed_offset, fixed_prec=self.fixed_prec, fixed_mean=self.fixed_mean,
            C=self.C, e=self.e,
            copies=tuple(rt.CopyTerm(c.name, c.src_offset, c.B, c.theta_index) for c in self.copies),
            theta_covariates=self.theta_covariates,
            key=repr((self.formula.source, [f.key for f in self.families])), options=self.options)


def _lower_component(c: Component) -> rt.LatentBlock:
    s = c.structure
    return rt.LatentBlock(c.name, c.offset, s.n, c.theta_index, s.matrices, s.coefs, s.rank_def, s.logdet_star,
                          s.logdet, s.constraints, s.constraint_rhs, s.extra_constraints, s.blocks)


def _as_frame(data) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        try:
            return pd.DataFrame({k: np.asarray(v) if not np.isscalar(v) else v for k, v in data.items()})
        except ValueError as err:
            raise DataError(f"the data columns do not fit in one table: {err}",
                            hint="every column must have one value per observation") from None
    raise DataError(f"data must be a pandas DataFrame or a dict of arrays, not {type(data).__name__}")


def compile_model(formula: ir.Formula, data, family: str = "gaussian", *, objects: Mapping[str, Any] | None = None,
                  E=None, Ntrials=None, offset=None, scale=None, control_family: Mapping | None = None,
                  control_fixed: Mapping | None = None, filename: str = "<formula>") -> Model:
    """Resolve the formula against the data and registries and assemble the model."""
    df = _as_frame(data)
    res = Resolver(formula.source, df, dict(objects or {}), filename)
    fams = _families(family)
    m = len(df)
    if m == 0:
        raise DataError("the data have no rows")

    # ---- response (one column per family, R-INLA's matrix response: NA outside each block) ----
    if formula.response is None:
        raise ModelError("the formula has no response", source=formula.source, span=formula.span,
                         filename=filename, hint="write 'y ~ ...'")
    y, family_index, response_extra = _response(formula, res, fams, m)
    obs = ~np.isnan(y)

    # ---- per-observation likelihood arguments ----
    extra: dict[str, np.ndarray] = {}
    for key, value in (("E", E), ("Ntrials", Ntrials), ("scale", scale)):
        if value is None:
            continue
        takers = [f for f, fam in enumerate(fams) if key in fam.extras]
        if not takers:
            names = " / ".join(f.name for f in fams)
            raise ModelError(f"{key}= does not apply to the {names} family",
                             hint=f"the {names} family takes: "
                                  f"{', '.join(sorted({e for f in fams for e in f.extras})) or 'no per-observation arguments'}")
        arr = res.column_or_array(value, key, allow_nan=True)
        need = obs & np.isin(family_index, takers)
        bad = np.flatnonzero(need & ~np.isfinite(arr))
        if bad.size:
            raise DataError(f"{key} has missing or infinite values in rows {bad[:5].tolist()}")
        extra[key] = arr
    extra.update(response_extra)
    for f, fam in enumerate(fams):
        rows = obs & (family_index == f)
        issue = fam.check(y[rows], {k: v[rows] for k, v in extra.items() if k in fam.extras})
        if issue:
            _raise_issue(fam, issue, np.flatnonzero(rows), formula, res)
        for key in fam.requires:
            if key not in extra:
                raise ModelError(f"the {fam.name} family needs {key}=", hint=f"pass {key} = <column name or array>")

    off = np.zeros(m)
    if offset is not None:
        off = off + res.column_or_array(offset, "offset")
    for t in formula.offsets:
        off = off + res.numeric(t.expr, "offset()")

    # ---- hyperparameters of the likelihoods ----
    thetas: list[Theta] = []
    controls = _per_family(control_family, len(fams))
    lik_theta = []
    for f, (fam, control) in enumerate(zip(fams, controls)):
        fam_hyper = dict(control.get("hyper", {}) or {})
        unknown = set(control) - {"hyper", "link"}
        if unknown:
            raise ModelError(f"unknown control_family option(s): {', '.join(sorted(unknown))}",
                             hint="known: hyper, link")
        if control.get("link") is not None:           # R-INLA control.family = list(link = "probit")
            fam = fams[f] = fam.with_link(control["link"])
        start = len(thetas)
        for spec in fam.hypers:
            th = _theta(spec, "likelihood", fam_hyper.pop(spec.short, None), res, None)
            if f:   # R-INLA numbers the second and later likelihoods' hyperparameters: "...[2]"
                th = dataclasses.replace(th, label=f"{th.label}[{f + 1}]", internal_label=f"{th.internal_label}[{f + 1}]")
            thetas.append(th)
        lik_theta.append(tuple(range(start, len(thetas))))
        if fam_hyper:
            raise ModelError(f"the {fam.name} family has no hyperparameter '{next(iter(fam_hyper))}'",
                             hint=f"known: {', '.join(h.short for h in fam.hypers) or 'none'}")

    # ---- latent components ----
    components: list[Component] = []
    columns: list[np.ndarray] = []
    offset_now = 0
    names_seen: dict[str, ir.LatentTerm] = {}
    theta_covariates: list[rt.ThetaCovariate] = []
    copies = [t for t in formula.latent if t.kwarg("copy") is not None]
    for term in formula.latent:
        if term.kwarg("copy") is not None:
            continue
        comp, block = _component(term, res, offset_now, len(thetas), thetas, m)
        if comp.name in names_seen:
            raise ModelError(f"two f() terms are called '{comp.name}'", source=formula.source, span=term.span,
                             filename=filename, hint="each f() index variable may appear once")
        names_seen[comp.name] = term
        if comp.structure.covariate is not None:          # no latent nodes: η += β(θ) w
            theta_covariates.append(rt.ThetaCovariate(comp.name, comp.structure.covariate, comp.theta_index[0]))
            continue
        components.append(comp)
        columns.append(block)
        offset_now += comp.n

    copy_blocks = []
    for term in copies:
        src, B, beta = _copy(term, res, components, thetas, m)
        if beta is None:                              # β fixed: fold it into A
            columns[components.index(src)] = sp.csr_matrix(columns[components.index(src)] + sp.csr_matrix(B))
        else:
            copy_blocks.append(Copy(term.label, src.offset, B, beta))

    # ---- fixed effects ----
    fixed = build_fixed(formula, df, res)
    cf = dict(control_fixed or {})
    known_cf = {"mean", "prec", "mean.intercept", "prec.intercept", "mean_intercept", "prec_intercept"}
    if set(cf) - known_cf:
        raise ModelError(f"unknown control_fixed option(s): {', '.join(sorted(set(cf) - known_cf))}",
                         hint="known: mean, prec, mean_intercept, prec_intercept")
    prec_default, mean_default = float(cf.get("prec", 0.001)), float(cf.get("mean", 0.0))
    prec_int = float(cf.get("prec.intercept", cf.get("prec_intercept", 0.0)))
    mean_int = float(cf.get("mean.intercept", cf.get("mean_intercept", 0.0)))
    fixed_prec = np.array([prec_int if n == "(Intercept)" else prec_default for n in fixed.names])
    fixed_mean = np.array([mean_int if n == "(Intercept)" else mean_default for n in fixed.names])
    if np.any(fixed_prec < 0):
        raise ModelError("fixed-effect prior precisions must be >= 0 (0 = flat)")

    A = sp.csr_matrix(sp.hstack(columns + [sp.csr_matrix(fixed.X)], format="csr")) if columns or fixed.X.size \
        else sp.csr_matrix((m, 0))
    if A.shape[1] == 0:
        raise ModelError("the model has no latent components and no fixed effects", source=formula.source,
                         span=formula.span, filename=filename, hint="add an intercept (1) or a term")

    # ---- constraints ----
    N = A.shape[1]
    rows = []
    for comp in components:
        for r in comp.structure.constraints:
            row = np.zeros(N)
            row[comp.offset: comp.offset + comp.n] = r
            rows.append(row)
    C = np.array(rows).reshape(-1, N)
    e = np.concatenate([np.zeros(comp.structure.constraints.shape[0]) if comp.structure.constraint_rhs is None
                        else comp.structure.constraint_rhs for comp in components] or [np.zeros(0)])

    return Model(formula, tuple(fams), family_index, y, A, off, extra, tuple(components), fixed, offset_now,
                 fixed_prec, fixed_mean, tuple(thetas), tuple(lik_theta), C, tuple(copy_blocks), e,
                 theta_covariates=tuple(theta_covariates))


def _families(family) -> list[Family]:
    names = [family] if isinstance(family, str) else list(family) if isinstance(family, (list, tuple)) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise ModelError(f"family must be a name or a list of names, not {family!r}")
    return [FAMILIES.get(n) for n in names]


def _per_family(control, k: int) -> list[dict]:
    if control is None:
        return [{} for _ in range(k)]
    if isinstance(control, Mapping):
        if k > 1:
            raise ModelError("with several families, control_family must be a list with one entry per family")
        return [dict(control)]
    control = list(control)
    if len(control) != k:
        raise ModelError(f"control_family has {len(control)} entries for {k} families")
    return [dict(c or {}) for c in control]


#: spellings of R-INLA's survival response inla.surv(time, event)
SURV_CALLS = ("inla.surv", "surv", "Surv", "inla_surv")


def _response(formula: ir.Formula, res: Resolver, fams: list[Family], m: int):
    """(y, family index per row, per-row extras from the response) from 'y', 'inla.surv(time, event)'
    or, for several families, 'cbind(y1, y2)' / '[y1, y2]'."""
    r = formula.response
    if len(fams) == 1:
        if isinstance(r, ir.Call) and r.func in SURV_CALLS:
            time, event = _surv_response(r, res, fams[0])
            return time, np.zeros(m, dtype=np.int64), {"event": event}
        return res.numeric(r, "the response", allow_nan=True), np.zeros(m, dtype=np.int64), {}
    items = r.items if isinstance(r, ir.Vector) else r.args if isinstance(r, ir.Call) and r.func in ("cbind", "list") else None
    if items is None or len(items) != len(fams):
        raise ModelError(f"{len(fams)} families need {len(fams)} responses, e.g. cbind(y1, y2) ~ ...",
                         source=res.source, span=r.span, filename=res.filename)
    ys = np.column_stack([res.numeric(i, "a response", allow_nan=True) for i in items])
    present = ~np.isnan(ys)
    both = np.flatnonzero(present.sum(axis=1) > 1)
    if both.size:
        raise DataError(f"rows {both[:5].tolist()} have a value in more than one response column",
                        source=res.source, span=r.span, filename=res.filename,
                        hint="each observation belongs to one likelihood: NA in the other columns")
    index = np.argmax(present, axis=1)
    y = np.where(present.any(axis=1), ys[np.arange(m), index], np.nan)
    return y, index.astype(np.int64), {}


def _surv_response(r: ir.Call, res: Resolver, fam: Family):
    """inla.surv(time, event): the times and the 0/1 event flags (1 observed, 0 right-censored;
    a missing event means observed, as in R-INLA)."""
    if not fam.survival:
        survival = [n for n in FAMILIES.names() if FAMILIES.get(n).survival]
        raise ModelError(f"the {fam.name} family does not take a survival response {r.func}(...)",
                         source=res.source, span=r.span, filename=res.filename,
                         hint=f"survival families: {', '.join(survival)}")
    args = list(r.args) + [kw.value for kw in r.kwargs if kw.name in ("time", "event")]
    others = [kw.name for kw in r.kwargs if kw.name not in ("time", "event")]
    if len(args) not in (1, 2) or others:
        raise ModelError(f"{r.func}() takes (time, event): interval and left censoring are not supported",
                         source=res.source, span=r.span, filename=res.filename)
    time = res.numeric(args[0], "the survival time", allow_nan=True)
    event = res.numeric(args[1], "the event indicator", allow_nan=True) if len(args) == 2 else np.ones(len(time))
    event = np.where(np.isnan(event) & ~np.isnan(time), 1.0, event)
    return time, event


def _raise_issue(fam: Family, issue, rows: np.ndarray, formula: ir.Formula, res: Resolver):
    """A located DataError from a family's :class:`Issue`: the argument (the response's own text)
    and the data rows (0-based)."""
    bad = rows[np.asarray(issue.rows, dtype=int)]
    what = issue.argument
    span = None
    if what == "response" and formula.response is not None and formula.response.span is not None:
        span = formula.response.span
        what = f"response {formula.source[span.start:span.end]}"
    raise DataError(f"invalid data for the {fam.name} family: {issue.message}",
                    source=res.source, span=span, filename=res.filename,
                    hint=f"{what}: {len(bad)} offending row(s), first {bad[:5].tolist()}")


def _theta(spec: HyperSpec, owner: str, user: Any, res: Resolver, span: Span | None, name: str = "") -> Theta:
    """A Theta from a HyperSpec, applying the user's hyper = list(<short> = ...) entry if any."""
    prior_name, params = spec.prior
    initial, fixed = spec.initial, False
    if isinstance(user, PriorCall) and user.name == "fixed":
        if len(user.params) != 1:
            raise ModelError("fixed() takes one value (on the natural scale, e.g. a precision)",
                             source=res.source, span=span, filename=res.filename)
        initial = _to_internal(spec, user.params[0], res, span)
        user, fixed = None, True
    if user is not None:
        if isinstance(user, PriorCall):
            prior_name, params = user.name, user.params
        elif isinstance(user, Mapping):
            allowed = {"prior", "param", "initial", "fixed"}
            if set(user) - allowed:
                raise ModelError(f"unknown key(s) {sorted(set(user) - allowed)} in hyper for '{spec.short}'",
                                 source=res.source, span=span, filename=res.filename,
                                 hint="use prior, param, initial, fixed")
            pr = user.get("prior", prior_name)
            if isinstance(pr, PriorCall):
                prior_name, params = pr.name, pr.params
            else:
                prior_name = str(pr)
                params = user.get("param", params if pr == spec.prior[0] else ())
            initial = float(user.get("initial", initial))
            fixed = bool(user.get("fixed", False))
        else:
            raise ModelError(f"hyper entry '{spec.short}' must be list(prior = ..., param = ...) or a prior call",
                             source=res.source, span=span, filename=res.filename)
    params = (params,) if np.isscalar(params) else tuple(params)
    prior = make_prior(prior_name, params, spec.scale, source=res.source, span=span, filename=res.filename)
    return Theta(spec.label.format(name=name), spec.internal_label.format(name=name), prior, initial,
                 spec.to_natural, owner, fixed)


def _to_internal(spec: HyperSpec, value: float, res: Resolver, span) -> float:
    """θ with to_natural(θ) = value (the maps are monotone: bisection on [-60, 60])."""
    import jax.numpy as jnp

    f = lambda t: float(spec.to_natural(jnp.asarray(t))) - value
    lo, hi = -60.0, 60.0
    flo, fhi = f(lo), f(hi)
    if not (np.isfinite(flo) and np.isfinite(fhi)) or flo * fhi > 0:
        raise ModelError(f"fixed({value:g}) is outside the range of '{spec.short}'", source=res.source, span=span,
                         filename=res.filename)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (f(mid) > 0) == (fhi > 0):
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class PriorCall:
    """A prior written as a call in the formula, e.g. pc.prec(1, 0.01)."""

    name: str
    params: tuple[float, ...]


def _component(term: ir.LatentTerm, res: Resolver, offset: int, theta_start: int, thetas: list[Theta], m: int):
    name = term.label
    if not isinstance(term.index, ir.Name) and not (isinstance(term.index, ir.Call) and term.index.func == "inla.group"):
        raise ModelError("the first argument of f() must be a variable name (or inla.group(x, n = 20))",
                         source=res.source, span=term.index.span, filename=res.filename)
    model_kw = term.kwarg("model")
    if model_kw is None:
        model_name, model_span = "iid", term.span
    else:
        model_name = res.model_name(model_kw.value)
        model_span = model_kw.value.span
    model_obj = res.objects.get(model_kw.value.id) if model_kw is not None and isinstance(model_kw.value, ir.Name) else None
    if model_obj is not None and hasattr(model_obj, "latent_model"):
        res.used_objects.add(model_kw.value.id)       # R-INLA style: model = <an spde object>
        lm = model_obj.latent_model()
        model_name = lm.name
    else:
        lm = LATENT.get(model_name, source=res.source, span=model_span, filename=res.filename)

    allowed = set(COMMON_ARGS) | set(lm.arguments)
    args: dict[str, Any] = {}
    spans: dict[str, Span | None] = {"model": model_span}
    for kw in term.kwargs:
        key = kw.name.replace("_", ".") if kw.name.replace("_", ".") in allowed else kw.name
        if key not in allowed:
            import difflib
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            raise ModelError(f"f() has no argument '{kw.name}' for model '{model_name}'", source=res.source,
                             span=kw.span, filename=res.filename,
                             hint=(f"did you mean '{close[0]}'? " if close else "") + f"known: {', '.join(sorted(allowed))}")
        if key == "model":
            continue
        spans[key] = kw.value.span
        args[key] = res.value(kw.value, prior_call=PriorCall, argument=key)
    index = res.index(term.index, f"the index of f({name})")     # a column, or inla.group(column, ...)
    weights = None
    if term.weights is not None:
        weights = res.numeric(term.weights, f"the weights of f({name})")

    hyper_user = args.pop("hyper", None) or {}
    if isinstance(hyper_user, PriorCall) and hyper_user.name == "pc.matern":
        # pc.matern(range0, p_range, sigma0, p_sigma): the joint PC prior of an SPDE's two
        # hyperparameters (Fuglstad et al. 2019), i.e. pc.range and pc.sd on its halves
        if len(hyper_user.params) != 4:
            raise ModelError("pc.matern takes (range0, p_range, sigma0, p_sigma)", source=res.source,
                             span=spans.get("hyper"), filename=res.filename)
        r0, pr, s0, ps = hyper_user.params
        hyper_user = {"range": PriorCall("pc.range", (r0, pr)), "stdev": PriorCall("pc.sd", (s0, ps))}
    if not isinstance(hyper_user, dict):
        raise ModelError("hyper must be a list(...) of hyperparameter settings", source=res.source,
                         span=spans.get("hyper"), filename=res.filename)
    hyper_user = dict(hyper_user)
    hypers = lm.hyper_specs(args)
    for spec in hypers:
        thetas.append(_theta(spec, name, hyper_user.pop(spec.short, None), res, spans.get("hyper"), name))
    if hyper_user:
        raise ModelError(f"model '{model_name}' has no hyperparameter '{next(iter(hyper_user))}'",
                         source=res.source, span=spans.get("hyper"), filename=res.filename,
                         hint=f"known: {', '.join(h.short for h in hypers)}")

    def describe(key: str) -> Span | None:
        return spans.get(key, term.span)

    kron_args = {k: args.pop(k, None) for k in ("group", "ngroup", "control.group", "replicate", "nrep")}
    extraconstr = args.pop("extraconstr", None)
    try:
        structure = lm.build(TermInput(name, index, args, describe))
        if structure.covariate is not None:
            given = [k for k, v in (*kron_args.items(), ("extraconstr", extraconstr)) if v is not None]
            if given:
                raise ModelError(f"f({name}, model = \"{lm.name}\") has no latent nodes to take {given[0]}",
                                 span=describe(given[0]), hint="remove the argument")
        own = tuple(range(theta_start, theta_start + len(hypers)))
        for k in own:   # priors that need the structure
            if thetas[k].prior.bind is not None:
                thetas[k] = dataclasses.replace(thetas[k], prior=thetas[k].prior.bind(structure))
            if thetas[k].prior.joint:     # a joint prior over the component's θ (iidkd, rgeneric)
                thetas[k] = dataclasses.replace(thetas[k], joint=own)
        structure = _kronecker(structure, kron_args, name, thetas, res, spans, len(hypers))
        if extraconstr is not None:
            structure = _extra_constraints(structure, extraconstr, name)
    except (ModelError, DataError) as err:
        raise type(err)(err.message, source=res.source, span=err.span or term.span, filename=res.filename,
                        hint=err.hint) from None
    w = np.ones(m) if weights is None else weights
    if structure.covariate is not None:
        structure = dataclasses.replace(structure, covariate=w * structure.covariate)
        return Component(name, lm.name, offset, structure, tuple(range(theta_start, len(thetas)))), None
    if structure.projector is not None:
        block = sp.csr_matrix(sp.diags(w) @ sp.csr_matrix(structure.projector))
    else:
        rows = np.flatnonzero(structure.node_of_obs >= 0)
        block = sp.csr_matrix((w[rows], (rows, structure.node_of_obs[rows])), shape=(m, structure.n))
    comp = Component(name, lm.name, offset, structure, tuple(range(theta_start, len(thetas))))
    return comp, block


def _kronecker(structure: Structure, kargs: dict, name: str, thetas: list[Theta], res: Resolver,
               spans: dict, n_main_theta: int) -> Structure:
    """Apply ``group`` (+ ``control.group``) and ``replicate`` (R-INLA order: I_R ⊗ Q_group ⊗ Q_main)."""
    from adelia.compiler.kron import (GROUP_MODELS, INTRINSIC_GROUP_MODELS, group_nodes, intrinsic_group_model,
                                      kronecker_structure)

    m = len(structure.node_of_obs)
    if kargs["group"] is None and (kargs["control.group"] is not None or kargs["ngroup"] is not None):
        raise ModelError(f"control.group/ngroup in f({name}) need group = <column>", span=spans.get("control.group"))
    if kargs["group"] is not None:
        cg = {k.replace("_", "."): v for k, v in dict(kargs["control.group"] or {}).items()}
        unknown = set(cg) - {"model", "hyper", "cyclic", "graph", "scale.model"}
        if unknown:
            raise ModelError(f"unknown control.group option(s): {', '.join(sorted(unknown))}",
                             span=spans.get("control.group"), hint="known: model, hyper, cyclic, graph, scale.model")
        gname = str(cg.get("model", "exchangeable"))
        known = list(GROUP_MODELS) + list(INTRINSIC_GROUP_MODELS)
        if gname not in known:
            import difflib
            close = difflib.get_close_matches(gname, known, n=1)
            raise ModelError(f"unknown group model '{gname}'", span=spans.get("control.group"),
                             hint=(f"did you mean '{close[0]}'? " if close else "") + f"known: {', '.join(known)}")
        gvals = _index_values(kargs["group"], res, m, f"group of f({name})")
        levels, gidx = group_nodes(gvals, kargs["ngroup"], f"the group of f({name})")
        if gname in INTRINSIC_GROUP_MODELS:
            gm = intrinsic_group_model(gname, len(levels), cg)
        else:
            gm = GROUP_MODELS[gname]
        ghyper = dict(cg.get("hyper") or {})
        k_main = len(thetas)
        for spec in gm.hypers(len(levels)):
            thetas.append(_theta(spec, name, ghyper.pop(spec.short, None), res, spans.get("control.group"), name))
        if ghyper:
            raise ModelError(f"group model '{gname}' has no hyperparameter '{next(iter(ghyper))}'",
                             span=spans.get("control.group"))
        structure = kronecker_structure(structure, n_main_theta, len(levels), gidx, gm, levels, "g")
        n_main_theta += len(thetas) - k_main
    if kargs["replicate"] is not None:
        rvals = _index_values(kargs["replicate"], res, m, f"replicate of f({name})")
        levels, ridx = group_nodes(rvals, kargs["nrep"], f"the replicate of f({name})")
        structure = kronecker_structure(structure, n_main_theta, len(levels), ridx, GROUP_MODELS["iid"], levels, "r")
    return structure


def _index_values(value, res: Resolver, m: int, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (m,):
        raise DataError(f"{what} must name a data column (one value per row)")
    return arr


def _copy(term: ir.LatentTerm, res: Resolver, components: list[Component], thetas: list[Theta], m: int):
    """Resolve f(idx, copy = "src", hyper = list(beta = list(fixed = FALSE))): (source, B, θ index of β or None)."""
    name = term.label
    kw = term.kwarg("copy")
    src_name = kw.value.value if isinstance(kw.value, ir.Str) else getattr(kw.value, "id", None)
    src = next((c for c in components if c.name == src_name), None)
    if src is None:
        raise ModelError(f"f({name}, copy = ...) names '{src_name}', which is not an f() term of this formula",
                         source=res.source, span=kw.value.span, filename=res.filename,
                         hint=f"components: {', '.join(c.name for c in components) or 'none'}")
    allowed = {"copy", "hyper"}
    for k in term.kwargs:
        if k.name not in allowed:
            raise ModelError(f"f(..., copy = ...) takes only copy and hyper, not '{k.name}'", source=res.source,
                             span=k.span, filename=res.filename)
    hyper = term.kwarg("hyper")
    user = res.value(hyper.value, prior_call=PriorCall, argument="hyper") if hyper is not None else {}
    beta_user = dict(user or {}).get("beta")
    theta = _theta(COPY_BETA, name, beta_user, res, hyper.span if hyper else None, name)
    if beta_user is None or (isinstance(beta_user, Mapping) and "fixed" not in beta_user):
        theta = dataclasses.replace(theta, fixed=True)          # R-INLA: beta is fixed by default
    values = src.structure.values
    idx = res.column(term.index, f"the index of f({name})")
    pos = {v: i for i, v in enumerate(np.asarray(values).tolist())}
    B = np.zeros((m, src.n))
    w = np.ones(m) if term.weights is None else res.numeric(term.weights, f"the weights of f({name})")
    for i, v in enumerate(np.asarray(idx).tolist()):
        if isinstance(v, float) and np.isnan(v):
            continue
        if v not in pos:
            raise DataError(f"value {v!r} of '{name}' (row {i}) is not a node of the copied component '{src.name}'",
                            source=res.source, span=term.index.span, filename=res.filename)
        B[i, pos[v]] = w[i]
    if theta.fixed:
        return src, theta.initial * B, None
    thetas.append(theta)
    return src, B, len(thetas) - 1


def _extra_constraints(s: Structure, value, name: str) -> Structure:
    """extraconstr = list(A = <k × n matrix>, e = <k values>): add A x = e to the component."""
    if not isinstance(value, Mapping) or "A" not in value or "e" not in value:
        raise ModelError(f"extraconstr of f({name}) must be list(A = <matrix>, e = <vector>)")
    try:
        A = np.atleast_2d(np.asarray(value["A"].toarray() if hasattr(value["A"], "toarray") else value["A"], float))
        e = np.atleast_1d(np.asarray(value["e"], float))
    except (TypeError, ValueError):
        raise ModelError(f"extraconstr of f({name}): A and e must be numeric") from None
    if A.shape[1] != s.n or A.shape[0] != e.shape[0]:
        raise ModelError(f"extraconstr of f({name}): A must be k × {s.n} and e have k values, "
                         f"got A {A.shape} and e {e.shape}")
    C = np.vstack([s.constraints, A])
    if np.linalg.matrix_rank(C) < C.shape[0]:
        raise ModelError(f"the constraints of f({name}) are linearly dependent",
                         hint="drop extraconstr rows implied by constr = TRUE (sum to zero)")
    rhs = np.concatenate([np.zeros(s.constraints.shape[0]) if s.constraint_rhs is None else s.constraint_rhs, e])
    if s.rank_def > s.constraints.shape[0]:
        raise ModelError(f"extraconstr on f({name}) needs the model's null space covered by its own constraints",
                         hint="use constr = TRUE, or a model without an improper trend (rw2 keeps one)")
    return dataclasses.replace(s, constraints=C, constraint_rhs=rhs, extra_constraints=A.shape[0])
