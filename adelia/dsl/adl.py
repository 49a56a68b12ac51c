"""Model files (``.adl``) -> :class:`ModelFile` IR.

A model file describes one INLA fit: where the data live, derived columns, named objects
(graphs, meshes, SPDE models, matrices), the likelihood families, the formula, priors and inference
options. The grammar (``grammars/model.lark``) imports the formula and argument syntax from
``formula.lark``, so everything inside ``formula``, ``f(...)``, ``family binomial(...)`` and
``options(...)`` is written exactly as in a formula string (R-INLA spellings: ``scale.model =
TRUE``, ``c(1, 0.01)``, ``list(...)``). Statements start with a keyword; newlines and indentation
are free; ``#`` starts a comment::

    # Seeds (Crowder 1978): germination of seeds on 21 plates
    data seeds = csv("seeds.csv")                 # csv / parquet / netcdf, relative to this file
    graph g = inla_graph("regions.graph")         # or edges("edges.csv", from = "i", to = "j")
    family binomial(Ntrials = n)                  # E, Ntrials, offset, scale: column names
    formula r ~ 1 + x1*x2 +
        f(plate, model = "iid")
    prior prec(plate) = pc.prec(1, 0.01)          # hyperparameter 'prec' of f(plate)
    prior prec(likelihood) = loggamma(1, 5e-5)    # hyperparameters of the family
    fixed(prec = 0.001, prec.intercept = 0)       # control.fixed
    options(int_strategy = "auto", n_samples = 500, seed = 1)

A spatial model on a triangle mesh (R-INLA's SPDEtoy)::

    data d = csv("spdetoy.csv")                   # columns s1, s2, y
    column intercept = 1                          # derived columns
    column site = row()                           # 1, 2, ..., number of rows
    mesh m = mesh(nodes = "nodes.csv", triangles = "triangles.csv")
    spde sp = spde(m, prior.range = c(0.3, 0.5), prior.sigma = c(10, 0.01), loc = c(s1, s2))
    formula y ~ -1 + intercept + f(site, model = sp)

Several likelihoods (one response column each, NA outside its block)::

    family gaussian, poisson(E = E)               # or two 'family' statements, in this order
    formula cbind(y1, y2) ~ 1 + f(i, model = "iid")
    prior prec(likelihood[1]) = pc.prec(1, 0.01)  # the Gaussian's precision ('likelihood' = [1])

Statements (each at most once, except ``column``, ``graph``, ``mesh``, ``spde``, ``matrix``,
``family`` and ``prior``):

``data [name =] csv(path, sep = ",") | parquet(path) | netcdf(path, group = "...")``
    The observations, one row per observation. Required for checking and fitting (the CLI's
    ``--data`` can supply or replace it).
``column name = value``
    A derived data column, computed in file order after the data are read: a number (a
    constant column), another column's name (a copy, e.g. a second index for the same regions),
    ``row()`` (the row numbers 1..n) or ``log``/``exp``/``sqrt``/``log1p``/``abs`` of a column.
    It may not replace a column of the data.
``graph name = inla_graph(path) | edges(path, from = "col", to = "col", n = N) | "path"``
    An adjacency graph the formula refers to by ``name`` (``f(r, model = "besag", graph = name)``).
    A bare path string is an edge list if it ends in ``.csv``, else an R-INLA graph file.
``mesh name = mesh(nodes = path, triangles = path, base = 1, sep = ",")``
    A triangle mesh from two tables: node coordinates (n rows, 2 or 3 numeric columns) and
    triangles (3 vertex numbers per row). ``base`` is 1 for R's 1-based vertex numbers, 0 for
    0-based; by default it is read off the file (0-based when a vertex 0 appears). Tables may
    have a header line. Positional form: ``mesh(path_nodes, path_triangles)``.
``mesh name = delaunay(x = col, y = col, offset = d, spacing = h)``
    The Delaunay triangulation of the data's coordinates (distinct points), plus, with
    ``offset``, a regular grid of extra nodes (step ``spacing``, default ``offset / 2``) over the
    bounding box enlarged by ``offset``. Positional form: ``delaunay(s1, s2)`` or
    ``delaunay(data_name, s1, s2)``.
``spde name = spde(mesh, prior.range = c(r0, p), prior.sigma = c(s0, p), loc = c(xcol, ycol), A = matrix, constr = FALSE, alpha = 2)``
    A Matérn SPDE model with the PC prior P(range < r0) = p, P(σ > s0) = p (R-INLA's
    ``inla.spde2.pcmatern``, also accepted as the function name). With ``loc`` (two data columns,
    or the path of a two-column table) or ``A`` (a projector ``matrix``), the ``f()`` index holds
    location numbers (row i of the data at location i: ``column site = row()``); without them it
    holds mesh node numbers. Used as ``f(site, model = name)`` or
    ``f(site, model = "spde", spde = name)``.
``matrix name = csv(path, sep = ",") | coo(path, nrow = k, ncol = n, base = 1) | matrix(c(...), nrow = k, ncol = n, byrow = FALSE) | rbind(c(...), c(...))``
    A numeric matrix: a dense table (optional header), a sparse (row, col, value) table
    (1-based unless ``base = 0``), or inline values (R's column-major ``matrix()`` unless
    ``byrow = TRUE``; ``rbind`` stacks rows). Used e.g. as
    ``f(x, extraconstr = list(A = name, e = c(0)))`` or ``spde(m, A = name, ...)``.
``family name`` or ``family name(E = col, Ntrials = col, offset = col, scale = col, hyper = list(...))``
    The likelihood (default ``gaussian``). ``hyper`` is R-INLA's ``control.family$hyper``.
    Several likelihoods: ``family gaussian, poisson(E = E)`` or several ``family`` statements;
    they are numbered 1, 2, ... in file order and the formula's response is
    ``cbind(y1, y2, ...)`` with one column per family (NA outside each family's rows). A family's
    ``E``/``Ntrials``/``scale``/``offset`` columns apply to its own rows only.
``formula response ~ terms``
    Required. R-INLA / Wilkinson syntax, may span lines.
``prior hyper(target) = value``
    ``target`` is an ``f()`` term's name (its index variable), ``likelihood`` or
    ``likelihood[k]`` (the k-th family; ``likelihood`` is ``likelihood[1]``); ``hyper`` is the
    hyperparameter's short name (``prec``, ``phi``, ``range``, ...). ``value`` is a prior call
    (``pc.prec(u, alpha)``, ``loggamma(a, b)``, ``normal(mean, prec)``, ``flat()``) or a full
    R-INLA entry ``list(prior = "pc.prec", param = c(1, 0.01), initial = 4, fixed = FALSE)``.
    It is the same as writing ``hyper = list(hyper = value)`` inside ``f(target, ...)`` (or the
    family); giving both is an error.
``fixed(mean = 0, prec = 0.001, mean.intercept = 0, prec.intercept = 0)``
    Priors of the fixed effects (R-INLA ``control.fixed``).
``options(int_strategy = "auto", strategy = "auto", n_samples = 1000, seed = 0, dz = 0.75, diff_logdens = 6, quantiles = c(0.025, 0.5, 0.975))``
    Inference options (``adelia.fit`` keywords).

Named objects (graphs, meshes, SPDE models, matrices) share one namespace; those the formula
refers to are passed to :func:`adelia.fit` as keyword objects. Paths are relative to the model
file.

:func:`parse_model` checks the file's structure (statements, argument names, value types,
references between statements) but not its meaning against the data or the registries: that is
:mod:`adelia.adl_run`'s job.
"""

from __future__ import annotations

__all__ = [
    "DataDecl", "ColumnDecl", "GraphDecl", "ObjectDecl", "FamilyDecl", "PriorDecl", "ModelFile",
    "parse_model", "model_parser", "structural_problems", "response_items",
    "DATA_READERS", "GRAPH_READERS", "MESH_READERS", "SPDE_READERS", "MATRIX_READERS", "OBJECT_READERS",
    "COLUMN_FUNCTIONS", "FAMILY_ARGS", "FIXED_ARGS", "OPTION_ARGS", "FIT_KEYWORDS",
]

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from adelia.dsl.grammar_files import open_grammar
from lark import Lark, Tree, v_args
from lark.exceptions import UnexpectedInput

from adelia.dsl import ir
from adelia.dsl.evaluate import fold, fold_call_args
from adelia.dsl.parser import _nesting_error, _span_of, _syntax_error, _ToIR, transform
from adelia.errors import AdeliaError, DataError, FormulaSyntaxError, ModelError, Span

#: data readers and the keyword arguments each accepts.
DATA_READERS = {"csv": ("sep", "comment", "na_values", "skiprows"), "parquet": ("columns",),
                "netcdf": ("group",)}
#: graph readers and their keyword arguments.
GRAPH_READERS = {"inla_graph": (), "edges": ("from", "to", "n", "sep")}
#: family(...) keyword arguments (per-observation columns, then control.family's hyper).
FAMILY_ARGS = ("E", "Ntrials", "offset", "scale", "hyper")
FIXED_ARGS = ("mean", "prec", "mean.intercept", "prec.intercept")
OPTION_ARGS = ("int_strategy", "strategy", "solver", "n_samples", "seed", "dz", "diff_logdens", "quantiles")
from adelia.options import INT_STRATEGIES, SOLVERS, STRATEGIES  # noqa: E402
#: adelia.fit's own keyword names: a named object may not be called like one of them.
FIT_KEYWORDS = frozenset({"formula", "data", "family", "E", "Ntrials", "offset", "scale", "control_family",
                          "control_fixed", "int_strategy", "strategy", "solver", "n_samples", "seed", "dz", "diff_logdens",
                          "quantiles", "progress"})
#: Readers of named objects: positional parameter names, then every accepted keyword.
MESH_READERS = {"mesh": (("nodes", "triangles"), ("nodes", "triangles", "base", "sep")),
                "delaunay": (("x", "y"), ("data", "x", "y", "offset", "spacing"))}
SPDE_READERS = {name: (("mesh",), ("mesh", "prior.range", "prior.sigma", "loc", "A", "constr", "alpha"))
                for name in ("spde", "inla.spde2.pcmatern", "pcmatern")}
MATRIX_READERS = {"csv": (("path",), ("path", "sep")),
                  "coo": (("path",), ("path", "nrow", "ncol", "base", "sep")),
                  "matrix": (("data",), ("data", "nrow", "ncol", "byrow")),
                  "rbind": ((), ())}
OBJECT_READERS = {"mesh": MESH_READERS, "spde": SPDE_READERS, "matrix": MATRIX_READERS}
#: Functions of a ``column`` statement (``row()`` = 1..n; the rest elementwise on a column).
COLUMN_FUNCTIONS = ("row", "log", "exp", "sqrt", "log1p", "abs")
#: The target of ``prior h(likelihood) = ...``.
LIKELIHOOD = "likelihood"


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DataDecl:
    """``data [name =] reader(path, key = value...)``."""

    name: str | None
    reader: str
    path: ir.Expr | None          # normally ir.Str; anything else is reported by structural_problems
    kwargs: tuple[ir.Keyword, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ColumnDecl:
    """``column name = value``: a derived data column."""

    name: str
    value: ir.Expr
    span: Span | None = _span()
    name_span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class GraphDecl:
    """``graph name = reader(path, ...)`` or ``graph name = "path"``."""

    name: str
    reader: str
    path: ir.Expr | None
    kwargs: tuple[ir.Keyword, ...] = ()
    span: Span | None = _span()
    name_span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ObjectDecl:
    """``mesh|spde|matrix name = reader(args..., key = value...)``."""

    kind: str                      # "mesh", "spde" or "matrix"
    name: str
    reader: str                    # the function called ("" when the value is not a call)
    args: tuple[ir.Expr, ...] = ()
    kwargs: tuple[ir.Keyword, ...] = ()
    span: Span | None = _span()
    name_span: Span | None = _span()
    value: ir.Expr | None = field(default=None, compare=False, repr=False)

    @property
    def signature(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(positional parameter names, accepted keywords) of the reader ((), ()) if unknown."""
        return OBJECT_READERS.get(self.kind, {}).get(self.reader, ((), ()))

    def arguments(self) -> dict[str, ir.Expr]:
        """Parameter name -> value, positional arguments bound in order (R's dotted spellings);
        surplus positional arguments and unknown keywords are left out (see structural_problems)."""
        positional, allowed = self.signature
        if self.kind == "mesh" and self.reader == "delaunay" and len(self.args) == 3:
            positional = ("data", "x", "y")
        out = {name: a for name, a in zip(positional, self.args)}
        for k in self.kwargs:
            name = _canon(k.name, allowed)
            if name in allowed and name not in out:
                out[name] = k.value
        return out


@dataclass(frozen=True, slots=True)
class FamilyDecl:
    """``family name`` or ``family name(key = value, ...)`` (one item of a ``family`` statement)."""

    name: str
    args: tuple[ir.Expr, ...] = ()
    kwargs: tuple[ir.Keyword, ...] = ()
    span: Span | None = _span()

    def kwarg(self, name: str) -> ir.Keyword | None:
        for k in self.kwargs:
            if k.name == name:
                return k
        return None


@dataclass(frozen=True, slots=True)
class PriorDecl:
    """``prior hyper(target) = value`` or ``prior hyper(likelihood[k]) = value``."""

    hyper: str
    target: str
    value: ir.Expr
    span: Span | None = _span()
    target_span: Span | None = _span()
    index: float | None = None          # k of likelihood[k] as written (None: not given)
    index_span: Span | None = _span()

    @property
    def likelihood(self) -> int:
        """The family number (1-based) a likelihood prior targets."""
        return int(self.index) if self.index is not None else 1


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A parsed ``.adl`` file. Statements keep their order of appearance within each kind."""

    data: tuple[DataDecl, ...] = ()
    graphs: tuple[GraphDecl, ...] = ()
    families: tuple[FamilyDecl, ...] = ()
    formulas: tuple[ir.Formula, ...] = ()
    priors: tuple[PriorDecl, ...] = ()
    fixed: tuple[tuple[ir.Keyword, ...], ...] = ()
    options: tuple[tuple[ir.Keyword, ...], ...] = ()
    source: str = field(default="", compare=False, repr=False)
    filename: str = field(default="<model>", compare=False)
    base_dir: str = field(default=".", compare=False)
    columns: tuple[ColumnDecl, ...] = ()
    objects: tuple[ObjectDecl, ...] = ()          # meshes, spde models and matrices, in file order

    @property
    def formula(self) -> ir.Formula | None:
        return self.formulas[0] if self.formulas else None

    @property
    def family(self) -> FamilyDecl | None:
        """The first family (the only one for a single likelihood)."""
        return self.families[0] if self.families else None

    @property
    def family_name(self) -> str:
        return self.family.name if self.family else "gaussian"

    @property
    def family_names(self) -> tuple[str, ...]:
        """Every likelihood family in order (``("gaussian",)`` when none is given)."""
        return tuple(f.name for f in self.families) or ("gaussian",)

    @property
    def meshes(self) -> tuple[ObjectDecl, ...]:
        return tuple(o for o in self.objects if o.kind == "mesh")

    @property
    def spdes(self) -> tuple[ObjectDecl, ...]:
        return tuple(o for o in self.objects if o.kind == "spde")

    @property
    def matrices(self) -> tuple[ObjectDecl, ...]:
        return tuple(o for o in self.objects if o.kind == "matrix")

    def object_kinds(self) -> dict[str, str]:
        """Every named object -> its kind ("graph", "mesh", "spde", "matrix"); first definition wins."""
        out: dict[str, str] = {}
        for g in self.graphs:
            out.setdefault(g.name, "graph")
        for o in self.objects:
            out.setdefault(o.name, o.kind)
        return out

    def option_keywords(self) -> tuple[ir.Keyword, ...]:
        return tuple(k for group in self.options for k in group if isinstance(k, ir.Keyword))

    def fixed_keywords(self) -> tuple[ir.Keyword, ...]:
        return tuple(k for group in self.fixed for k in group if isinstance(k, ir.Keyword))

    def resolve_path(self, path: str) -> Path:
        """``path`` relative to the model file's directory (absolute paths unchanged)."""
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else Path(self.base_dir) / p


@lru_cache(maxsize=None)
def model_parser() -> Lark:
    """The LALR parser for model files, built once from the packaged grammar."""
    return open_grammar("model.lark")


_PREFIX = "formula__"


def _strip_namespace(tree: Tree) -> Tree:
    """Imported formula rules arrive as ``formula__<alias>``; give them their own names back."""
    for t in tree.iter_subtrees():
        if isinstance(t.data, str) and t.data.startswith(_PREFIX):
            t.data = t.data[len(_PREFIX):]
    return tree


@v_args(meta=True)
class _ToModel(_ToIR):
    """Builds :class:`ModelFile`; formula and argument nodes come from :class:`_ToIR`."""

    def data_decl(self, meta, c):
        name_tok, call = (c[0], c[1]) if len(c) == 2 else (None, c[0])
        call = fold(call)
        args, kwargs = self._reader_parts(call)
        return DataDecl(str(name_tok) if name_tok is not None else None, call.func if isinstance(call, ir.Call)
                        else "c", args, kwargs, _span_of(meta))

    def _reader_parts(self, value):
        if isinstance(value, ir.Call):
            return (value.args[0] if value.args else None), value.kwargs
        if isinstance(value, ir.Vector):   # c("x.csv") parsed as a vector
            return (value.items[0] if value.items else None), ()
        return value, ()

    def graph_decl(self, meta, c):
        name_tok, value = c
        if isinstance(value, ir.Str):
            reader = "edges" if value.value.lower().endswith(".csv") else "inla_graph"
            path, kwargs = value, ()
        elif isinstance(value, ir.Call):
            reader = value.func
            path, kwargs = self._reader_parts(value)
        else:
            reader, path, kwargs = "", value, ()
        return GraphDecl(str(name_tok), reader, path, kwargs, _span_of(meta), _span_of(name_tok))

    def column_decl(self, meta, c):
        name_tok, value = c[0], fold(c[1])
        return ColumnDecl(str(name_tok), value, _span_of(meta), _span_of(name_tok))

    def _object(self, kind, meta, c):
        name_tok, value = c[0], fold(c[1])
        if isinstance(value, ir.Call):
            reader, args, kwargs = value.func, value.args, value.kwargs
        elif isinstance(value, ir.Vector):        # "c(...)"
            reader, args, kwargs = "c", value.items, ()
        else:
            reader, args, kwargs = "", (value,), ()
        return ObjectDecl(kind, str(name_tok), reader, tuple(args), tuple(kwargs), _span_of(meta),
                          _span_of(name_tok), value)

    def mesh_decl(self, meta, c):
        return self._object("mesh", meta, c)

    def spde_decl(self, meta, c):
        return self._object("spde", meta, c)

    def matrix_decl(self, meta, c):
        return self._object("matrix", meta, c)

    def family_decl(self, meta, c):
        out = []
        for v in map(fold, c):
            span = _span_of(meta) if len(c) == 1 else v.span
            if isinstance(v, ir.Name):
                out.append(FamilyDecl(v.id, (), (), span))
            elif isinstance(v, ir.Vector):      # "family c(...)"
                out.append(FamilyDecl("c", v.items, (), span))
            else:
                out.append(FamilyDecl(v.func, v.args, v.kwargs, span))
        return ("families", out)

    def formula_decl(self, meta, c):
        return c[0]

    def prior_decl(self, meta, c):
        c = [*c[:-1], fold(c[-1])]
        if len(c) == 4:
            hyper, target, index, value = c
            return PriorDecl(hyper.id, target.id, value, _span_of(meta), target.span, float(index), _span_of(index))
        hyper, target, value = c
        if isinstance(target, ir.Call):      # prior prec(inla.group(x, n = 20)): the component's label
            target = fold_call_args(target)
            return PriorDecl(hyper.id, ir.expr_label(target), value, _span_of(meta), target.span)
        return PriorDecl(hyper.id, target.id, value, _span_of(meta), target.span)

    def fixed_decl(self, meta, c):
        return ("fixed", _fold_items(c[0]) if c else [], _span_of(meta))

    def options_decl(self, meta, c):
        return ("options", _fold_items(c[0]) if c else [], _span_of(meta))

    def arglist(self, meta, c):
        return list(c)

    def model_file(self, meta, c):
        groups: dict[str, list] = {k: [] for k in ("data", "graphs", "families", "formulas", "priors", "fixed",
                                                   "options", "columns", "objects")}
        for s in c:
            match s:
                case DataDecl():
                    groups["data"].append(s)
                case ColumnDecl():
                    groups["columns"].append(s)
                case GraphDecl():
                    groups["graphs"].append(s)
                case ObjectDecl():
                    groups["objects"].append(s)
                case ("families", items):
                    groups["families"].extend(items)
                case ir.Formula():
                    groups["formulas"].append(s)
                case PriorDecl():
                    groups["priors"].append(s)
                case ("fixed" | "options", items, span):
                    groups[s[0]].append(tuple(items))
                    self._check_unique(items)
        return groups


def _fold_items(items: list) -> list:
    """Arguments of fixed(...)/options(...) with constant arithmetic evaluated (prec = 1/1000)."""
    return [ir.Keyword(i.name, fold(i.value), i.span) if isinstance(i, ir.Keyword) else fold(i) for i in items]


def _adl_hint(text: str, token: str | None) -> str | None:
    if token == "=":
        return ("'=' names an argument inside (...), or follows 'data name', 'column name', 'graph name', "
                "'mesh name', 'spde name', 'matrix name' or 'prior h(target)'")
    return None


_STATEMENTS = "data, column, graph, mesh, spde, matrix, family, formula, prior, fixed, options"


def _read(path_or_text: str | os.PathLike, filename: str | None) -> tuple[str, str, str]:
    """(text, filename, base directory) from a path or from model text."""
    if isinstance(path_or_text, os.PathLike) or _looks_like_path(path_or_text):
        path = Path(path_or_text)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"model file '{path}' not found",
                            hint="give the path of a .adl file, or the model text itself") from None
        except OSError as err:
            raise DataError(f"cannot read model file '{path}': {err.strerror}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
            raise FormulaSyntaxError("the model file is not valid UTF-8 text", filename=filename or str(path),
                                     span=Span(line, col, err.start, err.start + 1),
                                     hint="save the file as UTF-8") from None
        return text, filename or str(path), str(path.resolve().parent)
    if not isinstance(path_or_text, str):
        raise AdeliaError(f"parse_model() takes a path or the model text, not {type(path_or_text).__name__}")
    return path_or_text, filename or "<model>", os.getcwd()


def _looks_like_path(s) -> bool:
    if not isinstance(s, str) or "\n" in s or not s.strip() or len(s) > 4096:
        return False
    if os.path.isfile(s) or s.rstrip().endswith(".adl"):
        return True
    return not any(ch in s for ch in " ()=~#\"'")


def parse_model(path_or_text: str | os.PathLike, *, filename: str | None = None,
                validate: bool = True) -> ModelFile:
    """Parse a ``.adl`` model file (a path, or the text itself) into a :class:`ModelFile`.

    A string is a path when it names an existing file, ends in ``.adl``, or is one line without
    spaces, brackets, quotes, ``=``, ``~`` or ``#``; otherwise it is the model text. Relative data and graph
    paths resolve against the file's directory (the working directory for text). Errors are
    :class:`~adelia.errors.AdeliaError` s whose ``line``/``column`` point into the file. With
    ``validate`` (default) the first problem found by :func:`structural_problems` is raised.
    """
    text, filename, base_dir = _read(path_or_text, filename)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    nested = _nesting_error(text, filename)
    if nested is not None:
        raise nested
    parser = model_parser()
    try:
        tree = parser.parse(text)
    except UnexpectedInput as err:
        e = _syntax_error(text, err, filename, parser=parser, what="model file", hint_for=_adl_hint)
        if isinstance(err, UnexpectedInput) and getattr(err, "token", None) is not None \
                and "'data'" in e.expected and "'formula'" in e.expected:
            e = FormulaSyntaxError(e.message, source=text, span=e.span, filename=filename, expected=e.expected,
                                   hint=f"each statement starts with one of: {_STATEMENTS}")
        raise e from None
    groups = transform(_ToModel(text, filename), _strip_namespace(tree), text, filename)
    mf = ModelFile(data=tuple(groups["data"]), graphs=tuple(groups["graphs"]), families=tuple(groups["families"]),
                   formulas=tuple(groups["formulas"]), priors=tuple(groups["priors"]), fixed=tuple(groups["fixed"]),
                   options=tuple(groups["options"]), source=text, filename=filename, base_dir=base_dir,
                   columns=tuple(groups["columns"]), objects=tuple(groups["objects"]))
    if validate:
        problems = structural_problems(mf)
        if problems:
            raise problems[0]
    return mf


# ---------------------------------------------------------------------------------------------
# structure checks (no data, no registries)

def _eof_span(text: str) -> Span:
    end = len(text.rstrip())
    line = text.count("\n", 0, end) + 1
    col = end - (text.rfind("\n", 0, end) + 1) + 1
    return Span(line, max(col, 1), end, end + 1)


def structural_problems(mf: ModelFile) -> list[AdeliaError]:
    """Every structural problem of ``mf`` (duplicate statements, unknown arguments, wrong value
    types), in file order. Meaning against data and registries is checked by adl_run."""
    out: list[AdeliaError] = []

    def err(message, span, hint=None, cls=ModelError):
        out.append(cls(message, source=mf.source, span=span, filename=mf.filename, hint=hint))

    def once(items, what, hint):
        for extra in items[1:]:
            span = extra.span if hasattr(extra, "span") else (extra[0].span if extra else None)
            err(f"{what} is given more than once", span, hint)

    once(mf.data, "'data'", "a model reads one data table")
    once(mf.formulas, "'formula'", "a model file holds one formula")
    if not mf.formulas:
        err("the model file has no formula", _eof_span(mf.source) if mf.source.strip() else Span(1, 1, 0, 1),
            "add a line such as: formula y ~ 1 + x + f(g, model = \"iid\")")

    for d in mf.data:
        if d.reader not in DATA_READERS:
            err(f"unknown data reader '{d.reader}'", d.span, f"use one of: {', '.join(DATA_READERS)}")
            continue
        _check_path(d.path, d.reader, d.span, err)
        _check_kwargs(d.kwargs, DATA_READERS[d.reader], f"{d.reader}()", err)

    seen_columns: dict[str, ColumnDecl] = {}
    for c in mf.columns:
        if c.name in seen_columns:
            err(f"column '{c.name}' is defined twice", c.name_span, "give each derived column its own name")
        seen_columns[c.name] = c
        _check_column_value(c.value, err)

    # named objects: one namespace for graphs, meshes, spde models and matrices
    seen_objects: dict[str, str] = {}
    for decl in sorted([*mf.graphs, *mf.objects], key=lambda d: d.span.start if d.span else 0):
        kind = "graph" if isinstance(decl, GraphDecl) else decl.kind
        if decl.name in seen_objects:
            what = "defined twice" if seen_objects[decl.name] == kind else f"already {article(seen_objects[decl.name])}"
            err(f"{kind} '{decl.name}' is {what}", decl.name_span, "give each named object its own name")
        else:
            seen_objects[decl.name] = kind
        if decl.name in FIT_KEYWORDS:
            err(f"'{decl.name}' cannot name {article(kind)}: it is an adelia.fit() argument", decl.name_span,
                "choose another name, e.g. 'adj'" if kind == "graph" else f"choose another name, e.g. '{kind[0]}1'")

    for g in mf.graphs:
        if g.reader not in GRAPH_READERS:
            err(f"a graph is read with inla_graph(path) or edges(path), not '{g.reader or ir.expr_label(g.path)}'",
                g.span, "write: graph g = inla_graph(\"regions.graph\")  or  graph g = edges(\"edges.csv\")")
            continue
        _check_path(g.path, g.reader, g.span, err)
        _check_kwargs(g.kwargs, GRAPH_READERS[g.reader], f"{g.reader}()", err)

    kinds = mf.object_kinds()
    data_names = {d.name for d in mf.data if d.name}
    for o in mf.objects:
        _check_object(o, kinds, data_names, err, mf.source)

    n_fam = len(mf.families) or 1
    for fam in mf.families:
        if fam.args:
            err(f"family {fam.name}(...) takes only named arguments", fam.args[0].span,
                f"e.g. family {fam.name}(E = expected)")
        _check_kwargs(fam.kwargs, FAMILY_ARGS, f"family {fam.name}()", err)
        seen_kw: set[str] = set()
        for k in fam.kwargs:
            if k.name in seen_kw:
                err(f"family {fam.name}() gets '{k.name}' twice", k.span)
            seen_kw.add(k.name)
            if k.name in ("E", "Ntrials", "offset", "scale") and not isinstance(k.value, (ir.Name, ir.Str, ir.Num)):
                err(f"{k.name} = must be a column name (or a number)", k.value.span, f"e.g. {k.name} = {k.name.lower()}")
            if k.name == "hyper" and not _is_group(k.value):
                err("hyper = must be list(name = ...)", k.value.span,
                    "e.g. hyper = list(prec = list(prior = \"pc.prec\", param = c(1, 0.01)))")
    if mf.formulas and mf.formula.response is not None:
        items = response_items(mf.formula.response)
        n_resp = len(items) if items is not None else 1
        if n_fam > n_resp:
            err(f"{n_fam} likelihood families are given but the formula has "
                f"{'one response' if n_resp == 1 else f'{n_resp} responses'}", mf.families[n_resp].span,
                "several likelihoods need one response column each: formula cbind(y1, y2) ~ ..."
                if n_resp == 1 else f"give {n_fam} columns in cbind(...), or drop a family")
        elif n_resp > n_fam:
            given = "one likelihood family is" if n_fam == 1 else f"{n_fam} likelihood families are"
            err(f"the response has {n_resp} columns but {given} given",
                mf.formula.response.span,
                "name one family per column, in order: family gaussian, poisson(E = E)")

    seen_priors: dict[tuple[str, str, int], PriorDecl] = {}
    for p in mf.priors:
        if p.index is not None:
            if p.target != LIKELIHOOD:
                err(f"only 'likelihood' takes a family number, not '{p.target}'", p.index_span,
                    f"write: prior {p.hyper}({p.target}) = ...")
            elif not (float(p.index).is_integer() and 1 <= p.index <= n_fam):
                err(f"likelihood[{ir.expr_label(ir.Num(p.index))}] does not exist: the model has "
                    f"{n_fam} likelihood famil{'y' if n_fam == 1 else 'ies'}", p.index_span,
                    f"families are numbered 1..{n_fam} in the order of the family statements")
        key = (p.hyper, p.target, p.likelihood if p.target == LIKELIHOOD and p.index is not None
               and float(p.index).is_integer() else 1)
        if key in seen_priors:
            err(f"the prior of {p.hyper}({p.target}{f'[{key[2]}]' if key[2] != 1 else ''}) is given twice", p.span)
        seen_priors[key] = p
        if not isinstance(p.value, ir.Call):
            err(f"a prior is a call such as pc.prec(1, 0.01) or list(prior = ..., param = ...), "
                f"not {ir.expr_label(p.value)}", p.value.span)

    for k in mf.fixed_keywords():
        _check_kwargs((k,), FIXED_ARGS, "fixed()", err)
        if _canon(k.name, FIXED_ARGS) in FIXED_ARGS and not isinstance(k.value, ir.Num):
            err(f"fixed({k.name} = ...) must be a number", k.value.span)
    for group in mf.fixed:
        for item in group:
            if not isinstance(item, ir.Keyword):
                err("fixed() takes named arguments only", item.span, "e.g. fixed(prec = 0.001)")
    for group in mf.options:
        for item in group:
            if not isinstance(item, ir.Keyword):
                err("options() takes named arguments only", item.span, "e.g. options(n_samples = 500)")
    for k in mf.option_keywords():
        _check_option(k, err)
    seen: dict[str, ir.Keyword] = {}
    for k in mf.option_keywords():
        name = _canon(k.name, OPTION_ARGS)
        if name in seen:
            err(f"option '{name}' is given twice", k.span)
        seen[name] = k
    seen = {}
    for k in mf.fixed_keywords():
        name = _canon(k.name, FIXED_ARGS)
        if name in seen:
            err(f"fixed() option '{name}' is given twice", k.span)
        seen[name] = k
    out.sort(key=lambda e: (e.span.start if e.span else 1 << 60))
    return out


def _is_group(e: ir.Expr) -> bool:
    return isinstance(e, ir.Call) and e.func in ("list", "dict") and not e.args


def _canon(name: str, allowed) -> str:
    """R's dotted and Python's snake_case spellings of the same argument."""
    if name in allowed:
        return name
    for a in allowed:
        if a.replace(".", "_") == name.replace(".", "_"):
            return a
    return name


def _check_path(path, reader, span, err) -> None:
    if path is None:
        err(f"{reader}() needs a file path as its first argument", span, f"e.g. {reader}(\"file\")")
    elif not isinstance(path, ir.Str):
        err(f"the path given to {reader}() must be a quoted string", path.span, f"e.g. {reader}(\"file\")")
    elif not path.value.strip():
        err(f"the path given to {reader}() is empty", path.span)


def _check_kwargs(kwargs, allowed, what, err) -> None:
    import difflib

    for k in kwargs:
        if _canon(k.name, allowed) not in allowed:
            close = difflib.get_close_matches(k.name, list(allowed), n=1)
            err(f"{what} has no argument '{k.name}'", k.span,
                (f"did you mean '{close[0]}'? " if close else "") + f"known: {', '.join(allowed) or 'none'}")


def _check_option(k: ir.Keyword, err) -> None:
    name = _canon(k.name, OPTION_ARGS)
    v = k.value
    if name not in OPTION_ARGS:
        _check_kwargs((k,), OPTION_ARGS, "options()", err)
    elif name == "int_strategy":
        if not isinstance(v, (ir.Str, ir.Name)) or (v.value if isinstance(v, ir.Str) else v.id) not in INT_STRATEGIES:
            err(f"int_strategy must be one of {', '.join(map(repr, INT_STRATEGIES))}, not {ir.expr_label(v)}",
                v.span, "e.g. options(int_strategy = \"ccd\")")
    elif name == "strategy":
        if not isinstance(v, (ir.Str, ir.Name)) or (v.value if isinstance(v, ir.Str) else v.id) not in STRATEGIES:
            err(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, not {ir.expr_label(v)}",
                v.span, "e.g. options(strategy = \"gaussian\")")
    elif name == "solver":
        if not isinstance(v, (ir.Str, ir.Name)) or (v.value if isinstance(v, ir.Str) else v.id) not in SOLVERS:
            err(f"solver must be one of {', '.join(map(repr, SOLVERS))}, not {ir.expr_label(v)}",
                v.span, "e.g. options(solver = \"sparse\")")
    elif name in ("n_samples", "seed"):
        if not (isinstance(v, ir.Num) and float(v.value).is_integer() and v.value >= 0):
            err(f"{name} must be a whole number >= 0, not {ir.expr_label(v)}", v.span)
    elif name in ("dz", "diff_logdens"):
        if not (isinstance(v, ir.Num) and v.value > 0):
            err(f"{name} must be a positive number, not {ir.expr_label(v)}", v.span)
    elif name == "quantiles":
        items = v.items if isinstance(v, ir.Vector) else ()
        if not items or not all(isinstance(i, ir.Num) and 0 < i.value < 1 for i in items):
            err("quantiles must be a vector of probabilities strictly between 0 and 1", v.span,
                "e.g. quantiles = c(0.025, 0.5, 0.975)")


def response_items(response: ir.Expr | None) -> tuple[ir.Expr, ...] | None:
    """The columns of a several-likelihood response ``cbind(y1, y2)`` / ``list(...)`` / ``[y1, y2]``
    (None for an ordinary response)."""
    if isinstance(response, ir.Vector):
        return response.items
    if isinstance(response, ir.Call) and response.func in ("cbind", "list") and not response.kwargs:
        return response.args
    return None


def _check_column_value(v: ir.Expr, err) -> None:
    """``column name = value``: a number, a column name, row() or fn(column)."""
    match v:
        case ir.Num() | ir.Name() | ir.Str() | ir.Bool():
            return
        case ir.Call(func="row", args=args, kwargs=kwargs):
            if args or kwargs:
                err("row() takes no arguments: it numbers the data rows 1..n", v.span, "write: column i = row()")
            return
        case ir.Call(func=f, args=args, kwargs=kwargs) if f in COLUMN_FUNCTIONS:
            if len(args) != 1 or kwargs:
                err(f"{f}() takes one argument: a column name or an expression", v.span, f"e.g. column lx = {f}(x)")
                return
            _check_column_value(args[0], err)
            return
    err(f"a column is a number, a column name, row() or {', '.join(f + '(...)' for f in COLUMN_FUNCTIONS[1:])}, "
        f"not {ir.expr_label(v)}", v.span, "e.g. column intercept = 1, column i = row(), column lE = log(E)")


def article(kind: str) -> str:
    """'a mesh', 'an spde'."""
    return f"an {kind}" if kind == "spde" else f"a {kind}"


def _positive_int(v) -> bool:
    return isinstance(v, ir.Num) and float(v.value).is_integer() and v.value >= 1


def _check_object(o: ObjectDecl, kinds: dict[str, str], data_names: set[str], err, source: str = "") -> None:
    """Arguments of a mesh / spde / matrix statement: reader, names, value types, references."""
    def label(e: ir.Expr) -> str:           # the expression as written
        sp = e.span
        return source[sp.start:sp.end] if sp is not None and source and sp.end <= len(source) else ir.expr_label(e)

    readers = OBJECT_READERS[o.kind]
    if o.reader not in readers:
        examples = {"mesh": 'mesh m = mesh(nodes = "nodes.csv", triangles = "triangles.csv")  or  '
                            "mesh m = delaunay(x = s1, y = s2)",
                    "spde": "spde sp = spde(m, prior.range = c(0.3, 0.5), prior.sigma = c(1, 0.01), loc = c(s1, s2))",
                    "matrix": 'matrix M = csv("A.csv")  or  matrix M = matrix(c(1, 1, 1), nrow = 1)'}[o.kind]
        names = [r for r in readers if r != "pcmatern"]
        err(f"{article(o.kind)} is made with {', '.join(n + '()' for n in names)}, not "
            f"{(o.reader + '()') if o.reader else label(o.value)}", o.value.span if o.value else o.span,
            f"write: {examples}")
        return
    positional, allowed = o.signature
    what = f"{o.reader}()"
    if o.kind == "mesh" and o.reader == "delaunay" and len(o.args) == 3:
        positional = ("data", "x", "y")
    if o.reader == "rbind":
        positional = ()
    elif len(o.args) > len(positional):
        extra = o.args[len(positional)]
        err(f"{what} takes at most {len(positional)} unnamed argument{'s' if len(positional) != 1 else ''}"
            + (f" ({', '.join(positional)})" if positional else ""), extra.span,
            f"name the others, e.g. {allowed[-1]} = ...")
    _check_kwargs(o.kwargs, allowed, what, err)
    bound_pos = set(positional[:len(o.args)])
    seen: set[str] = set()
    for k in o.kwargs:
        name = _canon(k.name, allowed)
        if name in bound_pos or name in seen:
            err(f"{what} gets '{name}' twice", k.span)
        seen.add(name)
    a = o.arguments()

    def need(name, example):
        if name not in a:
            err(f"{what} needs {name} = ...", o.value.span if o.value is not None else o.span, f"e.g. {example}")
            return False
        return True

    def path(name):
        v = a.get(name)
        if v is not None:
            if not isinstance(v, ir.Str):
                err(f"{name} = must be a quoted file path", v.span, f'e.g. {name} = "{name}.csv"')
            elif not v.value.strip():
                err(f"the path given as {name} = is empty", v.span)

    def column(name):
        v = a.get(name)
        if v is not None and not isinstance(v, (ir.Name, ir.Str)):
            err(f"{name} = must be a column name", v.span, f"e.g. {name} = s1")

    def positive(name, integer=False):
        v = a.get(name)
        if v is None:
            return
        ok = _positive_int(v) if integer else isinstance(v, ir.Num) and v.value > 0
        if not ok:
            err(f"{name} must be a {'whole number >= 1' if integer else 'positive number'}, not {label(v)}",
                v.span)

    def base(name="base"):
        v = a.get(name)
        if v is not None and not (isinstance(v, ir.Num) and v.value in (0, 1)):
            err(f"base must be 0 or 1, not {label(v)}", v.span,
                "base = 1: vertex/row numbers start at 1 (R); base = 0: at 0 (Python)")

    def sep():
        v = a.get("sep")
        if v is not None and not (isinstance(v, ir.Str) and v.value):
            err("sep = must be a quoted separator", v.span, 'e.g. sep = ";"')

    def ref(name, kind, example):
        v = a.get(name)
        if v is None:
            return
        if not isinstance(v, ir.Name):
            err(f"{name} = must name {article(kind)} defined in the model file, not {label(v)}", v.span,
                f"e.g. {example}")
        elif kinds.get(v.id) != kind:
            import difflib

            pool = sorted(k for k, kk in kinds.items() if kk == kind)
            close = difflib.get_close_matches(v.id, pool, n=1)
            message = (f"'{v.id}' is {article(kinds[v.id])}, not {article(kind)}" if v.id in kinds
                       else f"{kind} '{v.id}' is not defined in the model file")
            err(message, v.span,
                (f"did you mean '{close[0]}'? " if close else "") + f"define it first: {example}")

    if o.kind == "mesh" and o.reader == "mesh":
        if need("nodes", 'nodes = "nodes.csv"'):
            path("nodes")
        if need("triangles", 'triangles = "triangles.csv"'):
            path("triangles")
        base()
        sep()
    elif o.kind == "mesh":
        d = a.get("data")
        if d is not None and not (isinstance(d, ir.Name) and (not data_names or d.id in data_names)):
            err(f"{label(d)} is not the name of the data table", d.span,
                f"the data statement names it {', '.join(sorted(data_names))}" if data_names
                else "write: delaunay(x = s1, y = s2)")
        if need("x", "x = s1"):
            column("x")
        if need("y", "y = s2"):
            column("y")
        positive("offset")
        positive("spacing")
    elif o.kind == "spde":
        if need("mesh", "spde(m, prior.range = c(0.3, 0.5), prior.sigma = c(1, 0.01))"):
            ref("mesh", "mesh", 'mesh m = mesh(nodes = "nodes.csv", triangles = "triangles.csv")')
        for name, example in (("prior.range", "prior.range = c(0.3, 0.5)  # P(range < 0.3) = 0.5"),
                              ("prior.sigma", "prior.sigma = c(1, 0.01)   # P(sigma > 1) = 0.01")):
            if need(name, example):
                v = a[name]
                items = v.items if isinstance(v, ir.Vector) else ()
                if not (len(items) == 2 and all(isinstance(i, ir.Num) for i in items)
                        and items[0].value > 0 and 0 < items[1].value < 1):
                    err(f"{name} must be c(value, probability) with value > 0 and 0 < probability < 1, "
                        f"not {label(v)}", v.span, f"e.g. {example}")
        loc = a.get("loc")
        if loc is not None:
            ok = (isinstance(loc, ir.Str) and loc.value.strip()) or (
                isinstance(loc, ir.Vector) and len(loc.items) == 2
                and all(isinstance(i, (ir.Name, ir.Str)) for i in loc.items))
            if not ok:
                err(f"loc = must be two coordinate columns c(x, y) or a quoted file path, not {label(loc)}",
                    loc.span, "e.g. loc = c(s1, s2)")
        ref("A", "matrix", 'matrix Aobs = coo("A.csv", nrow = 200, ncol = 315)')
        if loc is not None and "A" in a:
            err("give spde() either loc = or A =, not both", a["A"].span)
        v = a.get("constr")
        if v is not None and not isinstance(v, ir.Bool):
            err(f"constr must be TRUE or FALSE, not {label(v)}", v.span)
        v = a.get("alpha")
        if v is not None and not (isinstance(v, ir.Num) and v.value == 2):
            err(f"only alpha = 2 is supported, not {label(v)}", v.span)
    elif o.reader in ("csv", "coo"):
        if need("path", f'{o.reader}("A.csv")'):
            path("path")
        sep()
        positive("nrow", integer=True)
        positive("ncol", integer=True)
        base()
    elif o.reader == "matrix":
        if need("data", "matrix(c(1, 1, 0), nrow = 1)"):
            v = a["data"]
            items = v.items if isinstance(v, ir.Vector) else (v,)
            if not items or not all(isinstance(i, ir.Num) for i in items):
                err(f"matrix() takes numbers c(...), not {label(v)}", v.span, "e.g. matrix(c(1, 1, 0), nrow = 1)")
            elif "nrow" not in a and "ncol" not in a:
                err("matrix() needs nrow = or ncol =", o.value.span, "e.g. matrix(c(1, 1, 0), nrow = 1)")
            else:
                nr, nc = a.get("nrow"), a.get("ncol")
                positive("nrow", integer=True)
                positive("ncol", integer=True)
                if _positive_int(nr) and _positive_int(nc) and nr.value * nc.value != len(items):
                    err(f"matrix() has {len(items)} values for {int(nr.value)} x {int(nc.value)}", o.value.span)
                elif nr is not None and nc is None and _positive_int(nr) and len(items) % int(nr.value):
                    err(f"matrix(): {len(items)} values do not fill {int(nr.value)} rows", nr.span)
                elif nc is not None and nr is None and _positive_int(nc) and len(items) % int(nc.value):
                    err(f"matrix(): {len(items)} values do not fill {int(nc.value)} columns", nc.span)
        v = a.get("byrow")
        if v is not None and not isinstance(v, ir.Bool):
            err(f"byrow must be TRUE or FALSE, not {label(v)}", v.span)
    elif o.reader == "rbind":
        if o.kwargs:
            err("rbind() takes rows c(...), not named arguments", o.kwargs[0].span)
        lengths = set()
        for row in o.args:
            items = row.items if isinstance(row, ir.Vector) else (row,)
            if not all(isinstance(i, ir.Num) for i in items):
                err(f"rbind() takes rows of numbers c(...), not {label(row)}", row.span)
            lengths.add(len(items))
        if not o.args:
            err("rbind() needs at least one row c(...)", o.value.span)
        elif len(lengths) > 1:
            err(f"the rows of rbind() have different lengths {sorted(lengths)}", o.value.span)
