"""Model files at the edge: a parsed ``.adl`` (:mod:`adelia.dsl.adl`) -> data, objects and an
:func:`adelia.fit` call.

Files named in the model (data tables, graphs) are read relative to the model file's directory.
:func:`check_model` reports *every* problem it can find (structure, files, columns, names of
families, latent models and hyperparameters, prior targets) before the compiler's own resolve pass
runs on a model without such problems; :func:`fit_model` fits a checked model.

>>> prepared = load_model("examples/seeds.adl")          # doctest: +SKIP
>>> dt = fit_model(prepared, progress=print)             # doctest: +SKIP
"""

from __future__ import annotations

__all__ = ["Prepared", "check_model", "load_model", "fit_model", "run_model", "read_data", "read_graph"]

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from adelia.dsl import ir
from adelia.dsl.adl import (FIXED_ARGS, LIKELIHOOD, OPTION_ARGS, DataDecl, GraphDecl, ModelFile, _canon,
                            parse_model, structural_problems)
from adelia.dsl.printer import print_formula
from adelia.errors import AdeliaError, DataError, ModelError, Span, UnknownNameError

#: Values of ``prior h(t) = helper(...)`` and inside ``hyper = list(...)`` written as calls.
from adelia.compiler.resolve import _is_prior_helper


@dataclass
class Prepared:
    """Everything :func:`adelia.fit` needs, read and checked."""

    model: ModelFile
    data: pd.DataFrame
    formula: ir.Formula                          # with the file's priors merged into f() terms
    family: str
    likelihood: dict[str, Any] = field(default_factory=dict)      # E, Ntrials, offset, scale
    control_family: dict[str, Any] | None = None
    control_fixed: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)         # int_strategy, n_samples, seed, ...
    objects: dict[str, Any] = field(default_factory=dict)         # graphs the formula uses
    inputs: tuple[Path, ...] = ()                                 # files read (never overwritten)

    @property
    def formula_text(self) -> str:
        return print_formula(self.formula)


class _Problems:
    """Collects positioned errors against one model file."""

    def __init__(self, mf: ModelFile):
        self.mf = mf
        self.items: list[AdeliaError] = []

    def add(self, cls, message: str, span: Span | None = None, hint: str | None = None) -> None:
        self.items.append(cls(message, source=self.mf.source if span else None, span=span,
                              filename=self.mf.filename, hint=hint))

    def adopt(self, err: AdeliaError, span: Span | None = None) -> None:
        """Re-anchor an error raised without position at ``span`` in the model file."""
        if err.source is None or err.source == self.mf.source:
            where = err.span or span
            err = type(err)(err.message, source=self.mf.source if where else None, span=where,
                            filename=self.mf.filename, expected=err.expected, hint=err.hint)
        self.items.append(err)


# ---------------------------------------------------------------------------------------------
# reading files

def _py(expr: ir.Expr, what: str = "value") -> Any:
    """A literal IR value -> Python (strings, numbers, booleans, vectors, list(...), prior calls)."""
    match expr:
        case ir.Str(value=v) | ir.Num(value=v) | ir.Bool(value=v):
            return v
        case ir.Vector(items=items):
            return [_py(i, what) for i in items]
        case ir.Call(func=("list" | "dict"), args=(), kwargs=kws):
            return {k.name: _py(k.value, what) for k in kws}
        case ir.Call(func=f, args=args, kwargs=()) if _is_prior_helper(f):
            params = [_py(a, what) for a in args]
            if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in params):
                raise ModelError(f"the parameters of {f}() must be numbers", span=expr.span)
            return {"prior": f.replace("_", "."), "param": [float(p) for p in params]}
    raise ModelError(f"{ir.expr_label(expr)} is not a literal value ({what})", span=expr.span,
                     hint="use numbers, strings, TRUE/FALSE, c(...), list(...) or a prior call")


def read_data(decl: DataDecl, mf: ModelFile) -> tuple[pd.DataFrame, Path]:
    """Read a ``data`` statement's table (path relative to the model file)."""
    path = mf.resolve_path(decl.path.value)
    kwargs = {_canon(k.name, ("na_values",)): _py(k.value, k.name) for k in decl.kwargs}
    span = decl.path.span
    if not path.is_file():
        raise DataError(f"data file '{decl.path.value}' not found", span=span,
                        hint=f"looked for {path}; paths are relative to the model file")
    try:
        if decl.reader == "csv":
            df = pd.read_csv(path, **kwargs)
        elif decl.reader == "parquet":
            df = pd.read_parquet(path, **kwargs)
        else:
            import xarray as xr

            with xr.open_dataset(path, engine="h5netcdf", **kwargs) as ds:
                df = ds.to_dataframe().reset_index()
    except ImportError as err:
        raise DataError(f"cannot read {decl.reader} file '{decl.path.value}': {err}", span=span,
                        hint="install pyarrow to read parquet files" if decl.reader == "parquet" else None) from None
    except (ValueError, OSError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot read {decl.reader} file '{decl.path.value}': {msg}", span=span) from None
    if len(df) == 0:
        raise DataError(f"data file '{decl.path.value}' has no rows", span=span)
    return df, path


def read_graph(decl: GraphDecl, mf: ModelFile):
    """A ``graph`` statement -> symmetric 0/1 scipy.sparse adjacency (and the file read)."""
    import scipy.sparse as sp

    from adelia.compiler.graphs import as_adjacency, read_inla_graph

    path = mf.resolve_path(decl.path.value)
    span = decl.path.span
    if not path.is_file():
        raise DataError(f"graph file '{decl.path.value}' not found", span=span,
                        hint=f"looked for {path}; paths are relative to the model file")
    if decl.reader == "inla_graph":
        return read_inla_graph(path), path
    opts = {k.name: _py(k.value, k.name) for k in decl.kwargs}
    try:
        table = pd.read_csv(path, sep=opts.get("sep", ","))
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"cannot read edge list '{decl.path.value}': {err}", span=span) from None
    cols = [opts.get("from", table.columns[0] if len(table.columns) else None),
            opts.get("to", table.columns[1] if len(table.columns) > 1 else None)]
    for c in cols:
        if c is None or c not in table.columns:
            raise DataError(f"edge list '{decl.path.value}' has no column {c!r}", span=span,
                            hint=f"columns: {', '.join(map(str, table.columns))}; choose with from = , to =")
    try:
        e = table[cols].to_numpy(dtype=float)
        if not np.all(np.isfinite(e)) or not np.all(e == np.round(e)):
            raise ValueError
        e = e.astype(np.int64)
    except (ValueError, TypeError):
        raise DataError(f"edge list '{decl.path.value}' must hold whole node numbers in {cols}", span=span) from None
    if e.size == 0:
        raise DataError(f"edge list '{decl.path.value}' has no edges", span=span)
    base = 1 if e.min() >= 1 else 0
    e = e - base
    if e.min() < 0:
        raise DataError(f"edge list '{decl.path.value}' has negative node numbers", span=span)
    n = int(opts["n"]) if "n" in opts else int(e.max()) + 1
    if e.max() >= n:
        raise DataError(f"edge list '{decl.path.value}' names node {int(e.max()) + base} but n = {n}", span=span)
    A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    return as_adjacency(sp.csr_matrix(A + A.T), f"'{decl.name}'"), path


# ---------------------------------------------------------------------------------------------
# priors into the formula

def _merge_priors(mf: ModelFile, formula: ir.Formula, probs: _Problems) -> tuple[ir.Formula, dict]:
    """Put ``prior h(term) = v`` into ``f(term, hyper = list(h = v))``; likelihood priors -> dict."""
    family_hyper: dict[str, Any] = {}
    fam = mf.family
    if fam is not None and fam.kwarg("hyper") is not None:
        try:
            family_hyper.update(_py(fam.kwarg("hyper").value, "hyper"))
        except AdeliaError as err:
            probs.adopt(err)
    labels = {t.label: t for t in formula.latent}
    terms = list(formula.terms)
    for p in mf.priors:
        if p.target == LIKELIHOOD:
            if p.hyper in family_hyper:
                probs.add(ModelError, f"the prior of {p.hyper}(likelihood) is also set by family(hyper = ...)",
                          p.span, "give it once")
                continue
            try:
                family_hyper[p.hyper] = _py(p.value, "a prior")
            except AdeliaError as err:
                probs.adopt(err)
            continue
        term = labels.get(p.target)
        if term is None:
            import difflib

            known = list(labels) + [LIKELIHOOD]
            close = difflib.get_close_matches(p.target, known, n=1)
            probs.add(ModelError, f"'prior {p.hyper}({p.target})' names no f() term of the formula",
                      p.target_span, (f"did you mean '{close[0]}'? " if close else "") + f"targets: {', '.join(known)}")
            continue
        hyper_kw = term.kwarg("hyper")
        entry = ir.Keyword(p.hyper, p.value, p.span)
        if hyper_kw is None:
            new_kw = ir.Keyword("hyper", ir.Call("list", (), (entry,), p.span), p.span)
            kwargs = term.kwargs + (new_kw,)
        else:
            group = hyper_kw.value
            if not (isinstance(group, ir.Call) and group.func in ("list", "dict") and not group.args):
                probs.add(ModelError, f"f({p.target}) has a hyper = that is not list(...)", group.span)
                continue
            if group.kwarg(p.hyper) is not None:
                probs.add(ModelError, f"the prior of {p.hyper}({p.target}) is given twice: here and in "
                          f"f({p.target}, hyper = ...)", p.span, "remove one of them")
                continue
            new_group = dataclasses.replace(group, kwargs=group.kwargs + (entry,))
            kwargs = tuple(dataclasses.replace(k, value=new_group) if k is hyper_kw else k for k in term.kwargs)
        new_term = dataclasses.replace(term, kwargs=kwargs)
        terms[terms.index(term)] = new_term
        labels[p.target] = new_term
    return dataclasses.replace(formula, terms=tuple(terms)), family_hyper


# ---------------------------------------------------------------------------------------------
# checking

def _names_in(expr: ir.Expr):
    """Every bare name used as a value inside ``expr`` (function names excluded)."""
    match expr:
        case ir.Name():
            yield expr
        case ir.Vector(items=items):
            for i in items:
                yield from _names_in(i)
        case ir.Call(args=args, kwargs=kws):
            for a in args:
                yield from _names_in(a)
            for k in kws:
                yield from _names_in(k.value)


def _column_problem(probs: _Problems, df: pd.DataFrame, name: ir.Name, what: str, objects=()) -> None:
    if name.id in df.columns or name.id in objects:
        return
    import difflib

    close = difflib.get_close_matches(name.id, list(map(str, df.columns)), n=1)
    cols = ", ".join(map(str, list(df.columns)[:12])) + (" ..." if len(df.columns) > 12 else "")
    probs.add(UnknownNameError, f"'{name.id}' ({what}) is not a column of the data", name.span,
              (f"did you mean '{close[0]}'? " if close else "") + f"data columns: {cols}")


def _static_checks(mf: ModelFile, formula: ir.Formula, df: pd.DataFrame | None, graphs: dict[str, Any],
                   probs: _Problems) -> None:
    """Name checks that need the registries and (when read) the data, one problem per mistake."""
    from adelia.compiler.latent import LATENT
    from adelia.compiler.likelihoods import FAMILIES
    from adelia.compiler.model import COMMON_ARGS

    fam_decl = mf.family
    fam = None
    try:
        fam = FAMILIES.get(mf.family_name, source=mf.source, span=fam_decl.span if fam_decl else None,
                           filename=mf.filename)
    except AdeliaError as err:
        probs.adopt(err)
    if fam is not None and fam_decl is not None:
        for k in fam_decl.kwargs:
            if k.name in ("E", "Ntrials", "scale") and k.name not in fam.extras:
                probs.add(ModelError, f"{k.name} = does not apply to the {fam.name} family", k.span,
                          f"the {fam.name} family takes: {', '.join(fam.extras) or 'no per-observation arguments'}")
        if fam.name == "binomial" and fam_decl.kwarg("Ntrials") is None:
            probs.add(ModelError, "the binomial family needs Ntrials = <column>", fam_decl.span,
                      "write: family binomial(Ntrials = n)")
        known_h = {h.short for h in fam.hypers}
        for p in mf.priors:
            if p.target == LIKELIHOOD and p.hyper not in known_h:
                probs.add(ModelError, f"the {fam.name} family has no hyperparameter '{p.hyper}'", p.span,
                          f"known: {', '.join(sorted(known_h)) or 'none'}")
    elif fam is not None and fam.name == "binomial":
        probs.add(ModelError, "the binomial family needs Ntrials = <column>", Span(1, 1, 0, 1),
                  "write: family binomial(Ntrials = n)")

    if df is not None:
        if formula.response is not None:
            for n in _names_in(formula.response):
                _column_problem(probs, df, n, "the response")
        if fam_decl is not None:
            for k in fam_decl.kwargs:
                if k.name in ("E", "Ntrials", "offset", "scale"):
                    v = k.value
                    if isinstance(v, ir.Str):
                        v = ir.Name(v.value, v.span)
                    if isinstance(v, ir.Name):
                        _column_problem(probs, df, v, f"{k.name} =")
        for t in formula.fixed:
            for factor in t.factors:
                for n in _names_in(factor):
                    _column_problem(probs, df, n, "a fixed effect")
        for t in formula.offsets:
            for n in _names_in(t.expr):
                _column_problem(probs, df, n, "offset()")

    graph_names = {g.name for g in mf.graphs}
    for t in formula.latent:
        if df is not None and isinstance(t.index, ir.Name):
            _column_problem(probs, df, t.index, f"the index of f({t.label})")
        if df is not None and t.weights is not None:
            for n in _names_in(t.weights):
                _column_problem(probs, df, n, f"the weights of f({t.label})")
        model_kw = t.kwarg("model")
        lm = None
        if model_kw is None or isinstance(model_kw.value, (ir.Str, ir.Name)):
            name = "iid" if model_kw is None else (model_kw.value.value if isinstance(model_kw.value, ir.Str)
                                                   else model_kw.value.id)
            try:
                lm = LATENT.get(name, source=mf.source, span=model_kw.value.span if model_kw else t.span,
                                filename=mf.filename)
            except AdeliaError as err:
                probs.adopt(err)
        graph_kw = t.kwarg("graph")
        if graph_kw is not None and isinstance(graph_kw.value, ir.Name):
            g = graph_kw.value.id
            if g not in graph_names and (df is None or g not in df.columns):
                import difflib

                close = difflib.get_close_matches(g, sorted(graph_names), n=1)
                probs.add(UnknownNameError, f"graph '{g}' is not defined in the model file", graph_kw.value.span,
                          (f"did you mean '{close[0]}'? " if close else "") +
                          f"add: graph {g} = inla_graph(\"file.graph\")")
        if lm is not None:
            allowed = set(COMMON_ARGS) | set(lm.arguments)
            for kw in t.kwargs:
                key = kw.name.replace("_", ".") if kw.name.replace("_", ".") in allowed else kw.name
                if key not in allowed:
                    import difflib

                    close = difflib.get_close_matches(key, sorted(allowed), n=1)
                    probs.add(ModelError, f"f() has no argument '{kw.name}' for model '{lm.name}'", kw.span,
                              (f"did you mean '{close[0]}'? " if close else "") + f"known: {', '.join(sorted(allowed))}")
            known_h = {h.short for h in lm.hypers}
            for p in mf.priors:
                if p.target == t.label and p.hyper not in known_h:
                    probs.add(ModelError, f"model '{lm.name}' of f({t.label}) has no hyperparameter '{p.hyper}'",
                              p.span, f"known: {', '.join(sorted(known_h))}")


def _likelihood_args(mf: ModelFile, probs: _Problems) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if mf.family is None:
        return out
    for k in mf.family.kwargs:
        if k.name in ("E", "Ntrials", "offset", "scale"):
            v = k.value
            out[k.name] = v.id if isinstance(v, ir.Name) else v.value if isinstance(v, (ir.Str, ir.Num)) else None
    return out


def _options(mf: ModelFile) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in mf.option_keywords():
        name = _canon(k.name, OPTION_ARGS)
        v = _py(k.value, name) if not isinstance(k.value, ir.Name) else k.value.id
        if name in ("n_samples", "seed"):
            v = int(v)
        elif name == "quantiles":
            v = tuple(float(x) for x in v)
        out[name] = v
    return out


def _control_fixed(mf: ModelFile) -> dict[str, Any] | None:
    kws = mf.fixed_keywords()
    if not kws:
        return None
    return {_canon(k.name, FIXED_ARGS): float(_py(k.value)) for k in kws}


def check_model(source: str | os.PathLike | ModelFile, *, data: Any = None,
                filename: str | None = None) -> tuple[Prepared | None, list[AdeliaError]]:
    """Parse and validate a model file against its data without fitting.

    Returns ``(prepared, problems)``: every problem found (empty when the model is ready to fit;
    then ``prepared`` holds what :func:`fit_model` needs). A syntax error stops at the first
    one (the rest of the file cannot be read reliably). ``data`` (a path or a DataFrame) replaces
    the file's ``data`` statement.
    """
    mf = source if isinstance(source, ModelFile) else parse_model(source, filename=filename, validate=False)
    probs = _Problems(mf)
    probs.items.extend(structural_problems(mf))
    if any(isinstance(e, ModelError) and "no formula" in e.message for e in probs.items):
        return None, probs.items

    inputs: list[Path] = []
    if mf.filename and Path(mf.filename).is_file():
        inputs.append(Path(mf.filename))
    df: pd.DataFrame | None = None
    if data is not None:
        if isinstance(data, pd.DataFrame):
            df = data
        else:
            path = Path(data)
            decl = DataDecl(None, {".parquet": "parquet", ".nc": "netcdf", ".nc4": "netcdf"}.get(
                path.suffix.lower(), "csv"), ir.Str(str(path.resolve())), ())
            try:
                df, p = read_data(decl, mf)
                inputs.append(p)
            except AdeliaError as err:
                probs.items.append(type(err)(err.message, hint=err.hint))
    elif not mf.data:
        probs.add(ModelError, "the model file has no data statement", Span(1, 1, 0, 1),
                  "add: data d = csv(\"observations.csv\"), or pass --data")
    elif mf.data[0].reader in ("csv", "parquet", "netcdf") and isinstance(mf.data[0].path, ir.Str):
        try:
            df, p = read_data(mf.data[0], mf)
            inputs.append(p)
        except AdeliaError as err:
            probs.adopt(err, mf.data[0].span)

    graphs: dict[str, Any] = {}
    for g in mf.graphs:
        if g.reader in ("inla_graph", "edges") and isinstance(g.path, ir.Str):
            try:
                graphs[g.name], p = read_graph(g, mf)
                inputs.append(p)
            except AdeliaError as err:
                probs.adopt(err, g.span)

    formula, family_hyper = _merge_priors(mf, mf.formula, probs)
    formula = dataclasses.replace(formula, source=mf.source)
    _static_checks(mf, formula, df, graphs, probs)
    if probs.items or df is None:
        probs.items.sort(key=lambda e: (e.span.start if e.span else -1))
        return None, _dedupe(probs.items)

    used = {n.id for t in formula.latent for k in t.kwargs for n in _names_in(k.value)}
    objects = {k: v for k, v in graphs.items() if k in used}
    try:
        options = _options(mf)
        cf = _control_fixed(mf)
    except AdeliaError as err:
        probs.adopt(err)
        return None, probs.items
    prepared = Prepared(mf, df, formula, mf.family_name, _likelihood_args(mf, probs),
                        {"hyper": family_hyper} if family_hyper else None, cf, options, objects, tuple(inputs))
    # the compiler's own resolve pass (values, sizes, priors, graphs vs indices)
    from adelia.compiler.model import compile_model

    try:
        compile_model(formula, df, prepared.family, objects=objects, control_family=prepared.control_family,
                      control_fixed=cf, filename=mf.filename, **prepared.likelihood)
    except AdeliaError as err:
        probs.adopt(err)
        return None, probs.items
    return prepared, []


def _dedupe(items: list[AdeliaError]) -> list[AdeliaError]:
    seen, out = set(), []
    for e in items:
        key = (str(e))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def load_model(source: str | os.PathLike | ModelFile, *, data: Any = None, filename: str | None = None) -> Prepared:
    """:func:`check_model`, raising the first problem."""
    prepared, problems = check_model(source, data=data, filename=filename)
    if problems:
        raise problems[0]
    assert prepared is not None
    return prepared


def fit_model(prepared: Prepared, *, progress: Callable[[str], None] | None = None, **overrides: Any):
    """Fit a prepared model with :func:`adelia.fit`; ``overrides`` replace file options
    (``n_samples``, ``seed``, ``int_strategy``...)."""
    from adelia.api import fit

    options = {**prepared.options, **{k: v for k, v in overrides.items() if v is not None}}
    return fit(prepared.formula_text, prepared.data, prepared.family, control_family=prepared.control_family,
               control_fixed=prepared.control_fixed, progress=progress, **prepared.likelihood, **options,
               **prepared.objects)


def run_model(source: str | os.PathLike, *, data: Any = None, progress: Callable[[str], None] | None = None,
              **overrides: Any):
    """Parse, check and fit a model file; returns the result DataTree."""
    return fit_model(load_model(source, data=data), progress=progress, **overrides)
