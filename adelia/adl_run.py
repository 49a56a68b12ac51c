"""Model files at the edge: a parsed ``.adl`` (:mod:`adelia.dsl.adl`) -> data, objects and an
:func:`adelia.fit` call.

Files named in the model (data tables, graphs, meshes, matrices) are read relative to the model
file's directory; derived columns are added to the data and named objects (graphs, meshes, SPDE
models, matrices) built. :func:`check_model` reports *every* problem it can find (structure, files,
columns, objects, names of families, latent models and hyperparameters, prior targets) before the
compiler's own resolve pass runs on a model without such problems; :func:`fit_model` fits a
checked model.

>>> prepared = load_model("examples/seeds.adl")          # doctest: +SKIP
>>> dt = fit_model(prepared, progress=print)             # doctest: +SKIP
"""

from __future__ import annotations

__all__ = ["Prepared", "check_model", "load_model", "fit_model", "run_model", "read_data", "read_graph",
           "read_mesh", "read_matrix", "build_spde", "add_columns", "fit_arguments"]

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from adelia.dsl import ir
from adelia.dsl.adl import (FIXED_ARGS, LIKELIHOOD, OPTION_ARGS, DataDecl, GraphDecl, ModelFile,
                            ObjectDecl, _canon, article, parse_model, response_items, structural_problems)
from adelia.dsl.printer import print_formula
from adelia.errors import AdeliaError, DataError, ModelError, Span, UnknownNameError

#: Values of ``prior h(t) = helper(...)`` and inside ``hyper = list(...)`` written as calls.
from adelia.compiler.resolve import _is_prior_helper


@dataclass
class Prepared:
    """Everything :func:`adelia.fit` needs, read and checked."""

    model: ModelFile
    data: pd.DataFrame                           # with the file's derived columns
    formula: ir.Formula                          # with the file's priors merged into f() terms
    family: str | list[str]                      # a list for several likelihoods
    likelihood: dict[str, Any] = field(default_factory=dict)      # E, Ntrials, offset, scale
    control_family: dict[str, Any] | list[dict[str, Any]] | None = None
    control_fixed: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)         # int_strategy, n_samples, seed, ...
    objects: dict[str, Any] = field(default_factory=dict)         # named objects the formula uses
    inputs: tuple[Path, ...] = ()                                 # files read (never overwritten)
    definitions: dict[str, Any] = field(default_factory=dict)     # every named object built

    @property
    def formula_text(self) -> str:
        return print_formula(self.formula)

    @property
    def family_label(self) -> str:
        return self.family if isinstance(self.family, str) else " + ".join(self.family)


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


def _numeric_table(path: Path, label: str, span: Span | None, sep: str = ",") -> np.ndarray:
    """A numeric table (an optional header line is skipped) as a 2-D float array."""
    if not path.is_file():
        raise DataError(f"{label} '{path.name}' not found", span=span,
                        hint=f"looked for {path}; paths are relative to the model file")
    try:
        raw = pd.read_csv(path, sep=sep, header=None, dtype=str, skipinitialspace=True, comment="#")
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot read {label} '{path.name}': {msg}", span=span) from None
    if len(raw) and pd.to_numeric(raw.iloc[0], errors="coerce").isna().any():
        raw = raw.iloc[1:]                                   # a header line
    if len(raw) == 0:
        raise DataError(f"{label} '{path.name}' has no rows", span=span)
    try:
        out = raw.apply(pd.to_numeric).to_numpy(dtype=float)
    except (ValueError, TypeError):
        raise DataError(f"{label} '{path.name}' must hold numbers only (after an optional header line)",
                        span=span) from None
    if np.isnan(out).any():
        r, c = np.argwhere(np.isnan(out))[0]
        raise DataError(f"{label} '{path.name}' has an empty or missing value (row {r + 1}, column {c + 1})",
                        span=span)
    return out


def _whole(a: np.ndarray, label: str, span) -> np.ndarray:
    if not np.all(a == np.round(a)):
        raise DataError(f"{label} must hold whole numbers", span=span)
    return a.astype(np.int64)


def _arg_value(decl: ObjectDecl, name: str, default=None):
    v = decl.arguments().get(name)
    return default if v is None else _py(v, name)


def _coordinates(df: pd.DataFrame | None, cols: list[ir.Expr], what: str, span) -> np.ndarray:
    if df is None:
        raise DataError(f"{what} needs the data", span=span)
    names = [c.id if isinstance(c, ir.Name) else c.value for c in cols]
    for c, n in zip(cols, names):
        if n not in df.columns:
            import difflib

            close = difflib.get_close_matches(n, list(map(str, df.columns)), n=1)
            raise UnknownNameError(f"'{n}' ({what}) is not a column of the data", span=c.span,
                                   hint=(f"did you mean '{close[0]}'? " if close else "") +
                                   f"data columns: {', '.join(map(str, list(df.columns)[:12]))}")
    try:
        xy = df[names].to_numpy(dtype=float)
    except (ValueError, TypeError):
        raise DataError(f"the coordinates {', '.join(names)} ({what}) must be numeric", span=span) from None
    bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
    if bad.size:
        raise DataError(f"the coordinates {', '.join(names)} ({what}) are missing in rows {bad[:5].tolist()}",
                        span=span)
    return xy


def read_mesh(decl: ObjectDecl, mf: ModelFile, df: pd.DataFrame | None = None):
    """A ``mesh`` statement -> :class:`adelia.compiler.mesh.Mesh` (and the files read)."""
    from adelia.compiler.mesh import Mesh

    a = decl.arguments()
    if decl.reader == "delaunay":
        xy = _coordinates(df, [a["x"], a["y"]], "delaunay() coordinates", decl.span)
        opts = {k: float(_py(a[k])) for k in ("offset", "spacing") if k in a}
        if "spacing" in opts and "offset" not in opts:
            raise ModelError("delaunay(spacing = ...) needs offset = (the margin the grid covers)",
                             span=a["spacing"].span)
        try:
            return Mesh.from_delaunay(xy, **opts), []
        except AdeliaError as err:
            raise DataError(err.message, span=decl.span, hint=err.hint) from None
    sep = _arg_value(decl, "sep", ",")
    files = [mf.resolve_path(a["nodes"].value), mf.resolve_path(a["triangles"].value)]
    nodes = _numeric_table(files[0], "mesh nodes file", a["nodes"].span, sep)
    tri = _numeric_table(files[1], "mesh triangles file", a["triangles"].span, sep)
    if nodes.shape[1] not in (2, 3):
        raise DataError(f"mesh nodes file '{a['nodes'].value}' must have 2 or 3 coordinate columns, not "
                        f"{nodes.shape[1]}", span=a["nodes"].span)
    if tri.shape[1] != 3:
        raise DataError(f"mesh triangles file '{a['triangles'].value}' must have 3 vertex columns, not {tri.shape[1]}",
                        span=a["triangles"].span)
    tri = _whole(tri, f"mesh triangles file '{a['triangles'].value}'", a["triangles"].span)
    base = _arg_value(decl, "base")
    base = int(base) if base is not None else (0 if tri.min() == 0 else 1)
    tri = tri - base
    if tri.min() < 0 or tri.max() >= len(nodes):
        raise DataError(f"mesh triangles file '{a['triangles'].value}' numbers vertices {int(tri.min()) + base}.."
                        f"{int(tri.max()) + base}, but {len(nodes)} nodes with base = {base} allow "
                        f"{base}..{len(nodes) - 1 + base}", span=a["triangles"].span,
                        hint="base = 1 for R's 1-based vertex numbers, base = 0 for 0-based ones")
    try:
        mesh = Mesh(nodes, tri)
        mesh.fem()        # degenerate triangles / unused vertices are reported here, at the statement
    except AdeliaError as err:
        raise DataError(err.message, span=decl.span, hint=err.hint) from None
    return mesh, files


def read_matrix(decl: ObjectDecl, mf: ModelFile):
    """A ``matrix`` statement -> a dense array or a scipy.sparse CSR matrix (and the files read)."""
    import scipy.sparse as sp

    a = decl.arguments()
    if decl.reader == "rbind":
        rows = [_py(r) for r in decl.args]
        return np.atleast_2d(np.array([r if isinstance(r, list) else [r] for r in rows], dtype=float)), []
    if decl.reader == "matrix":
        vals = _py(a["data"])
        vals = np.asarray(vals if isinstance(vals, list) else [vals], dtype=float)
        nr, nc = _arg_value(decl, "nrow"), _arg_value(decl, "ncol")
        nr = int(nr) if nr is not None else len(vals) // int(nc)
        nc = int(nc) if nc is not None else len(vals) // nr
        return vals.reshape((nr, nc), order="C" if _arg_value(decl, "byrow", False) else "F"), []
    path = mf.resolve_path(a["path"].value)
    label = "matrix file"
    table = _numeric_table(path, label, a["path"].span, _arg_value(decl, "sep", ","))
    nr, nc = _arg_value(decl, "nrow"), _arg_value(decl, "ncol")
    if decl.reader == "csv":
        want = (table.shape[0] if nr is None else int(nr), table.shape[1] if nc is None else int(nc))
        if want != table.shape:
            raise DataError(f"matrix file '{a['path'].value}' is {table.shape[0]} x {table.shape[1]}, not "
                            f"{want[0]} x {want[1]}", span=a["path"].span)
        return table, [path]
    if table.shape[1] != 3:
        raise DataError(f"coo() reads three columns (row, col, value); '{a['path'].value}' has {table.shape[1]}",
                        span=a["path"].span)
    ij = _whole(table[:, :2], f"the row and column numbers of '{a['path'].value}'", a["path"].span)
    base = int(_arg_value(decl, "base", 1))
    ij = ij - base
    if ij.min() < 0:
        raise DataError(f"coo() file '{a['path'].value}' has row/column numbers below {base}", span=a["path"].span,
                        hint="base = 0 for 0-based numbers")
    shape = (int(nr) if nr is not None else int(ij[:, 0].max()) + 1,
             int(nc) if nc is not None else int(ij[:, 1].max()) + 1)
    if ij[:, 0].max() >= shape[0] or ij[:, 1].max() >= shape[1]:
        raise DataError(f"coo() file '{a['path'].value}' has entries outside {shape[0]} x {shape[1]}",
                        span=a["path"].span)
    return sp.csr_matrix((table[:, 2], (ij[:, 0], ij[:, 1])), shape=shape), [path]


def build_spde(decl: ObjectDecl, mf: ModelFile, df: pd.DataFrame | None, objects: dict[str, Any]):
    """An ``spde`` statement -> :class:`adelia.compiler.latent.spde.SPDE` (and the files read)."""
    from adelia.compiler.latent.spde import SPDE

    a = decl.arguments()
    mesh = objects[a["mesh"].id]
    kw: dict[str, Any] = {"prior_range": tuple(_py(a["prior.range"])), "prior_sigma": tuple(_py(a["prior.sigma"])),
                          "constr": bool(_arg_value(decl, "constr", False)), "alpha": _arg_value(decl, "alpha", 2)}
    files = []
    loc = a.get("loc")
    if isinstance(loc, ir.Vector):
        kw["loc"] = _coordinates(df, list(loc.items), "spde(loc = ...)", loc.span)
    elif isinstance(loc, ir.Str):
        path = mf.resolve_path(loc.value)
        table = _numeric_table(path, "locations file", loc.span)
        if table.shape[1] != 2:
            raise DataError(f"locations file '{loc.value}' must have 2 columns, not {table.shape[1]}", span=loc.span)
        kw["loc"], files = table, [path]
    if "A" in a:
        kw["A"] = objects[a["A"].id]
    try:
        return SPDE(mesh, **kw), files
    except AdeliaError as err:
        where = loc.span if loc is not None and "outside the mesh" in err.message else decl.span
        raise type(err)(err.message, span=where, hint=err.hint) from None


def add_columns(mf: ModelFile, df: pd.DataFrame, probs: "_Problems") -> pd.DataFrame:
    """The data with the file's ``column`` statements added, in file order."""
    from adelia.compiler.resolve import Resolver

    if not mf.columns:
        return df
    df = df.copy()
    original = set(map(str, df.columns))
    for c in mf.columns:
        if c.name in original:
            probs.add(ModelError, f"'{c.name}' is already a column of the data", c.name_span,
                      "choose another name for the derived column")
            continue
        v = c.value
        missing = [n for n in _names_in(v) if n.id not in df.columns]
        for n in missing:
            _column_problem(probs, df, n, f"column {c.name}")
        if missing:
            continue
        try:
            if isinstance(v, ir.Call) and v.func == "row":
                df[c.name] = np.arange(1, len(df) + 1)
            elif isinstance(v, (ir.Str, ir.Bool)):
                df[c.name] = v.value
            elif isinstance(v, ir.Name) and v.id in df.columns:
                df[c.name] = df[v.id].to_numpy()
            else:
                df[c.name] = Resolver(mf.source, df, {}, mf.filename).numeric(v, f"column {c.name}", allow_nan=True)
        except AdeliaError as err:
            probs.adopt(err, v.span)
    return df


# ---------------------------------------------------------------------------------------------
# priors into the formula

def _merge_priors(mf: ModelFile, formula: ir.Formula, probs: _Problems) -> tuple[ir.Formula, list[dict]]:
    """Put ``prior h(term) = v`` into ``f(term, hyper = list(h = v))``; likelihood priors -> one
    ``hyper`` dict per family."""
    n_fam = len(mf.families) or 1
    family_hyper: list[dict[str, Any]] = [{} for _ in range(n_fam)]
    for k, fam in enumerate(mf.families):
        if fam.kwarg("hyper") is not None:
            try:
                family_hyper[k].update(_py(fam.kwarg("hyper").value, "hyper"))
            except AdeliaError as err:
                probs.adopt(err)
    labels = {t.label: t for t in formula.latent}
    terms = list(formula.terms)
    for p in mf.priors:
        if p.target == LIKELIHOOD:
            k = p.likelihood - 1
            if not 0 <= k < n_fam or p.index is not None and not float(p.index).is_integer():
                continue                                  # reported by structural_problems
            if p.hyper in family_hyper[k]:
                which = "likelihood" if n_fam == 1 else f"likelihood[{k + 1}]"
                probs.add(ModelError, f"the prior of {p.hyper}({which}) is also set by family(hyper = ...)",
                          p.span, "give it once")
                continue
            try:
                family_hyper[k][p.hyper] = _py(p.value, "a prior")
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
        case ir.BinOp(left=a, right=b):           # I(x/10), y/n
            yield from _names_in(a)
            yield from _names_in(b)
        case ir.Neg(operand=a):
            yield from _names_in(a)


def _column_problem(probs: _Problems, df: pd.DataFrame, name: ir.Name, what: str, objects=()) -> None:
    if name.id in df.columns or name.id in objects:
        return
    import difflib

    close = difflib.get_close_matches(name.id, list(map(str, df.columns)), n=1)
    cols = ", ".join(map(str, list(df.columns)[:12])) + (" ..." if len(df.columns) > 12 else "")
    probs.add(UnknownNameError, f"'{name.id}' ({what}) is not a column of the data", name.span,
              (f"did you mean '{close[0]}'? " if close else "") + f"data columns: {cols}")


def _unknown_object(probs: _Problems, name: ir.Name, kind: str, kinds: dict[str, str], example: str) -> None:
    import difflib

    pool = sorted(k for k, kk in kinds.items() if kk == kind)
    close = difflib.get_close_matches(name.id, pool, n=1)
    message = (f"'{name.id}' is {article(kinds[name.id])}, not {article(kind)}" if name.id in kinds
               else f"{kind} '{name.id}' is not defined in the model file")
    probs.add(UnknownNameError if name.id not in kinds else ModelError, message, name.span,
              (f"did you mean '{close[0]}'? " if close else "") + f"add: {example}")


def _static_checks(mf: ModelFile, formula: ir.Formula, df: pd.DataFrame | None, objects: dict[str, Any],
                   probs: _Problems) -> None:
    """Name checks that need the registries and (when read) the data, one problem per mistake."""
    from adelia.compiler.latent import LATENT
    from adelia.compiler.likelihoods import FAMILIES
    from adelia.compiler.model import COMMON_ARGS

    several = len(mf.families) > 1
    for k, fam_decl in enumerate(mf.families or [None]):
        fam = None
        which = f"likelihood[{k + 1}]" if several else "likelihood"
        try:
            fam = FAMILIES.get(fam_decl.name if fam_decl else "gaussian", source=mf.source,
                               span=fam_decl.span if fam_decl else None, filename=mf.filename)
        except AdeliaError as err:
            probs.adopt(err)
        if fam is not None and fam_decl is not None:
            for kw in fam_decl.kwargs:
                if kw.name in ("E", "Ntrials", "scale") and kw.name not in fam.extras:
                    probs.add(ModelError, f"{kw.name} = does not apply to the {fam.name} family", kw.span,
                              f"the {fam.name} family takes: {', '.join(fam.extras) or 'no per-observation arguments'}")
            if fam.name == "binomial" and fam_decl.kwarg("Ntrials") is None:
                probs.add(ModelError, "the binomial family needs Ntrials = <column>", fam_decl.span,
                          "write: family binomial(Ntrials = n)")
        elif fam is not None and fam.name == "binomial":
            probs.add(ModelError, "the binomial family needs Ntrials = <column>", Span(1, 1, 0, 1),
                      "write: family binomial(Ntrials = n)")
        if fam is not None:
            known_h = {h.short for h in fam.hypers}
            for p in mf.priors:
                if p.target == LIKELIHOOD and p.likelihood == k + 1 and p.hyper not in known_h:
                    probs.add(ModelError, f"the {fam.name} family ({which}) has no hyperparameter '{p.hyper}'"
                              if several else f"the {fam.name} family has no hyperparameter '{p.hyper}'", p.span,
                              f"known: {', '.join(sorted(known_h)) or 'none'}")
            if fam_decl is not None and fam_decl.kwarg("hyper") is not None:
                group = fam_decl.kwarg("hyper").value
                for kw in getattr(group, "kwargs", ()):
                    if kw.name not in known_h:
                        probs.add(ModelError, f"the {fam.name} family has no hyperparameter '{kw.name}'", kw.span,
                                  f"known: {', '.join(sorted(known_h)) or 'none'}")

    if df is not None:
        if formula.response is not None:
            for n in _names_in(formula.response):
                _column_problem(probs, df, n, "the response")
        for fam_decl in mf.families:
            for kw in fam_decl.kwargs:
                if kw.name in ("E", "Ntrials", "offset", "scale"):
                    v = kw.value
                    if isinstance(v, ir.Str):
                        v = ir.Name(v.value, v.span)
                    if isinstance(v, ir.Name):
                        _column_problem(probs, df, v, f"{kw.name} =")
        for t in formula.fixed:
            for factor in t.factors:
                for n in _names_in(factor):
                    _column_problem(probs, df, n, "a fixed effect")
        for t in formula.offsets:
            for n in _names_in(t.expr):
                _column_problem(probs, df, n, "offset()")

    kinds = mf.object_kinds()
    graph_names = {g for g, kind in kinds.items() if kind == "graph"}
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
            if isinstance(model_kw.value if model_kw else None, ir.Name) and name in kinds:
                if kinds[name] == "spde":
                    lm = LATENT.get("spde")
                else:
                    probs.add(ModelError,
                              f"'{name}' is {article(kinds[name])}: model = takes a model name or an spde object",
                              model_kw.value.span,
                              f"e.g. f({t.label}, model = \"besag\", graph = {name})" if kinds[name] == "graph"
                              else f"define: spde sp = spde({name}, prior.range = c(...), prior.sigma = c(...))"
                              if kinds[name] == "mesh" else None)
            else:
                try:
                    lm = LATENT.get(name, source=mf.source, span=model_kw.value.span if model_kw else t.span,
                                    filename=mf.filename)
                except AdeliaError as err:
                    spdes = sorted(k for k, kind in kinds.items() if kind == "spde")
                    if isinstance(model_kw.value, ir.Name) and spdes:
                        import difflib

                        close = difflib.get_close_matches(name, spdes + sorted(LATENT.names()), n=1)
                        probs.add(UnknownNameError, f"'{name}' is neither a latent model nor an spde object of the "
                                  "model file", model_kw.value.span,
                                  (f"did you mean '{close[0]}'? " if close else "") +
                                  f"spde objects: {', '.join(spdes)}; models: {', '.join(sorted(LATENT.names()))}")
                    else:
                        probs.adopt(err)
        graph_kw = t.kwarg("graph")
        if graph_kw is not None and isinstance(graph_kw.value, ir.Name):
            g = graph_kw.value.id
            if g not in graph_names and (df is None or g not in df.columns):
                _unknown_object(probs, graph_kw.value, "graph", kinds, f"graph {g} = inla_graph(\"file.graph\")")
        spde_kw = t.kwarg("spde")
        if spde_kw is not None and isinstance(spde_kw.value, ir.Name) and kinds.get(spde_kw.value.id) != "spde":
            _unknown_object(probs, spde_kw.value, "spde", kinds,
                            f"spde {spde_kw.value.id} = spde(mesh, prior.range = c(...), prior.sigma = c(...))")
        ec_kw = t.kwarg("extraconstr")
        matrix_names: set[str] = set()
        if ec_kw is not None and isinstance(ec_kw.value, ir.Call):
            a_kw = ec_kw.value.kwarg("A")
            if a_kw is not None and isinstance(a_kw.value, ir.Name):
                matrix_names.add(a_kw.value.id)
                if kinds.get(a_kw.value.id) != "matrix" and a_kw.value.id not in objects:
                    _unknown_object(probs, a_kw.value, "matrix", kinds,
                                    f"matrix {a_kw.value.id} = matrix(c(...), nrow = 1)")
        if df is not None:       # any other bare name in an argument: a column or a named object
            for kw in t.kwargs:
                if kw is model_kw or kw is graph_kw or kw is spde_kw:
                    continue
                for n in _names_in(kw.value):
                    if n.id in matrix_names or n.id in df.columns or n.id in kinds or n.id in objects:
                        continue
                    import difflib

                    close = difflib.get_close_matches(n.id, list(map(str, df.columns)) + list(kinds), n=1)
                    probs.add(UnknownNameError, f"'{n.id}' (in {kw.name} = of f({t.label})) is neither a data column "
                              "nor an object defined in the model file", n.span,
                              (f"did you mean '{close[0]}'? " if close else "") + "quote it if it is a name: \"...\"")
        if lm is not None:
            allowed = set(COMMON_ARGS) | set(lm.arguments)
            for kw in t.kwargs:
                key = kw.name.replace("_", ".") if kw.name.replace("_", ".") in allowed else kw.name
                if key not in allowed:
                    import difflib

                    close = difflib.get_close_matches(key, sorted(allowed), n=1)
                    probs.add(ModelError, f"f() has no argument '{kw.name}' for model '{lm.name}'", kw.span,
                              (f"did you mean '{close[0]}'? " if close else "") + f"known: {', '.join(sorted(allowed))}")
            known_h = {h.short for h in lm.hyper_specs()}
            for p in mf.priors:
                if p.target == t.label and p.hyper not in known_h:
                    probs.add(ModelError, f"model '{lm.name}' of f({t.label}) has no hyperparameter '{p.hyper}'",
                              p.span, f"known: {', '.join(sorted(known_h))}")


def _likelihood_args(mf: ModelFile, df: pd.DataFrame, formula: ir.Formula) -> dict[str, Any]:
    """E, Ntrials, offset, scale for adelia.fit: column names (or numbers) for one family; with
    several, each family's values on its own rows (a column name when one family gives the key,
    NA elsewhere; the offset is 0 on other families' rows)."""
    def value(kw):
        v = kw.value
        return v.id if isinstance(v, ir.Name) else v.value if isinstance(v, (ir.Str, ir.Num)) else None

    keys = ("E", "Ntrials", "offset", "scale")
    if len(mf.families) <= 1:
        fam = mf.family
        return {} if fam is None else {k.name: value(k) for k in fam.kwargs if k.name in keys}
    from adelia.compiler.resolve import Resolver

    res = Resolver(mf.source, df, {}, mf.filename)
    items = response_items(formula.response) or ()
    present = [~np.isnan(res.numeric(i, "a response", allow_nan=True)) for i in items]
    first = np.argmax(np.column_stack(present), axis=1) if present else np.zeros(len(df), dtype=np.int64)
    any_present = np.column_stack(present).any(axis=1) if present else np.zeros(len(df), dtype=bool)
    out: dict[str, Any] = {}
    for key in keys:
        givers = [(k, value(fam.kwarg(key))) for k, fam in enumerate(mf.families) if fam.kwarg(key) is not None]
        if not givers:
            continue
        if len(givers) == 1 and key != "offset":
            out[key] = givers[0][1]
            continue
        arr = np.full(len(df), 0.0 if key == "offset" else np.nan)
        for k, v in givers:
            rows = any_present & (first == k)
            col = res.column_or_array(v, key, allow_nan=True)
            arr[rows] = col[rows]
        out[key] = arr
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
    structural = structural_problems(mf)
    probs.items.extend(structural)
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

    if df is not None:
        df = add_columns(mf, df, probs)

    built: dict[str, Any] = {}                # every named object that could be built
    failed: set[str] = set()
    for g in mf.graphs:
        if g.reader in ("inla_graph", "edges") and isinstance(g.path, ir.Str) and g.name not in built:
            try:
                built[g.name], p = read_graph(g, mf)
                inputs.append(p)
            except AdeliaError as err:
                probs.adopt(err, g.span)
                failed.add(g.name)

    def ok_decl(o: ObjectDecl) -> bool:
        """Not defined before and free of structural problems (those are reported already)."""
        return o.name not in built and o.name not in failed and not any(
            e.span is not None and o.span is not None and o.span.start <= e.span.start < o.span.end
            for e in structural)

    for kind, reader in (("matrix", lambda o: read_matrix(o, mf)), ("mesh", lambda o: read_mesh(o, mf, df)),
                         ("spde", lambda o: build_spde(o, mf, df, built))):
        for o in (o for o in mf.objects if o.kind == kind):
            if not ok_decl(o):
                if o.name not in built:
                    failed.add(o.name)
                continue
            if kind == "spde":
                refs = [v.id for k, v in o.arguments().items() if k in ("mesh", "A") and isinstance(v, ir.Name)]
                if any(r in failed or r not in built for r in refs):
                    failed.add(o.name)
                    continue
            if df is None and (kind == "mesh" and o.reader == "delaunay" or
                               kind == "spde" and isinstance(o.arguments().get("loc"), ir.Vector)):
                failed.add(o.name)      # needs the data, whose problem is reported already
                continue
            try:
                built[o.name], files = reader(o)
                inputs.extend(files)
            except AdeliaError as err:
                probs.adopt(err, o.span)
                failed.add(o.name)

    formula, family_hyper = _merge_priors(mf, mf.formula, probs)
    formula = dataclasses.replace(formula, source=mf.source)
    _static_checks(mf, formula, df, built, probs)
    if probs.items or df is None:
        probs.items.sort(key=lambda e: (e.span.start if e.span else -1))
        return None, _dedupe(probs.items)

    used = {n.id for t in formula.latent for k in t.kwargs for n in _names_in(k.value)}
    objects = {k: v for k, v in built.items() if k in used}
    several = len(mf.families) > 1
    family: str | list[str] = list(mf.family_names) if several else mf.family_name
    if several:
        control_family = [{"hyper": h} if h else {} for h in family_hyper] if any(family_hyper) else None
    else:
        control_family = {"hyper": family_hyper[0]} if family_hyper[0] else None
    try:
        options = _options(mf)
        cf = _control_fixed(mf)
        likelihood = _likelihood_args(mf, df, formula)
    except AdeliaError as err:
        probs.adopt(err)
        return None, probs.items
    prepared = Prepared(mf, df, formula, family, likelihood, control_family, cf, options, objects,
                        tuple(dict.fromkeys(inputs)), built)
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


def fit_arguments(prepared: Prepared, **overrides: Any) -> tuple[tuple, dict[str, Any]]:
    """``(args, kwargs)`` of the :func:`adelia.fit` call that fits ``prepared``: the printed
    formula, the data (with derived columns), the family (a list for several likelihoods) and the
    keywords (likelihood arguments, control_family, control_fixed, options, named objects).
    ``overrides`` replace file options; None values are ignored."""
    options = {**prepared.options, **{k: v for k, v in overrides.items() if v is not None}}
    kwargs: dict[str, Any] = {}
    if prepared.control_family is not None:
        kwargs["control_family"] = prepared.control_family
    if prepared.control_fixed is not None:
        kwargs["control_fixed"] = prepared.control_fixed
    kwargs.update(prepared.likelihood)
    kwargs.update(options)
    kwargs.update(prepared.objects)
    return (prepared.formula_text, prepared.data, prepared.family), kwargs


def fit_model(prepared: Prepared, *, progress: Callable[[str], None] | None = None, **overrides: Any):
    """Fit a prepared model with :func:`adelia.fit`; ``overrides`` replace file options
    (``n_samples``, ``seed``, ``int_strategy``, ``strategy``...)."""
    from adelia.api import fit

    args, kwargs = fit_arguments(prepared, **overrides)
    return fit(*args, progress=progress, **kwargs)


def run_model(source: str | os.PathLike, *, data: Any = None, progress: Callable[[str], None] | None = None,
              **overrides: Any):
    """Parse, check and fit a model file; returns the result DataTree."""
    return fit_model(load_model(source, data=data), progress=progress, **overrides)
