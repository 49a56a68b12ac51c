"""Model files (``.adl``) -> :class:`ModelFile` IR.

A model file describes one INLA fit: where the data live, named objects (graphs), the
likelihood family, the formula, priors and inference options. The grammar
(``grammars/model.lark``) imports the formula and argument syntax from ``formula.lark``, so
everything inside ``formula``, ``f(...)``, ``family binomial(...)`` and ``options(...)`` is written
exactly as in a formula string (R-INLA spellings: ``scale.model = TRUE``, ``c(1, 0.01)``,
``list(...)``). Statements start with a keyword; newlines and indentation are free; ``#``
starts a comment::

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

Statements (each at most once, except ``graph`` and ``prior``):

``data [name =] csv(path, sep = ",") | parquet(path) | netcdf(path, group = "...")``
    The observations, one row per observation. Required for checking and fitting (the CLI's
    ``--data`` can supply or replace it).
``graph name = inla_graph(path) | edges(path, from = "col", to = "col", n = N) | "path"``
    An adjacency graph the formula refers to by ``name`` (``f(r, model = "besag", graph = name)``).
    A bare path string is an edge list if it ends in ``.csv``, else an R-INLA graph file.
``family name`` or ``family name(E = col, Ntrials = col, offset = col, scale = col, hyper = list(...))``
    The likelihood (default ``gaussian``). ``hyper`` is R-INLA's ``control.family$hyper``.
``formula response ~ terms``
    Required. R-INLA / Wilkinson syntax, may span lines.
``prior hyper(target) = value``
    ``target`` is an ``f()`` term's name (its index variable) or ``likelihood``; ``hyper`` is
    the hyperparameter's short name (``prec``, ...). ``value`` is a prior call
    (``pc.prec(u, alpha)``, ``loggamma(a, b)``, ``normal(mean, prec)``, ``flat()``) or a full
    R-INLA entry ``list(prior = "pc.prec", param = c(1, 0.01), initial = 4, fixed = FALSE)``.
    It is the same as writing ``hyper = list(hyper = value)`` inside ``f(target, ...)``; giving
    both is an error.
``fixed(mean = 0, prec = 0.001, mean.intercept = 0, prec.intercept = 0)``
    Priors of the fixed effects (R-INLA ``control.fixed``).
``options(int_strategy = "auto", n_samples = 1000, seed = 0, dz = 0.75, diff_logdens = 6, quantiles = c(0.025, 0.5, 0.975))``
    Inference options (``adelia.fit`` keywords).

:func:`parse_model` checks the file's structure (statements, argument names, value types) but
not its meaning against the data or the registries: that is :mod:`adelia.adl_run`'s job.
"""

from __future__ import annotations

__all__ = [
    "DataDecl", "GraphDecl", "FamilyDecl", "PriorDecl", "ModelFile",
    "parse_model", "model_parser", "structural_problems",
    "DATA_READERS", "GRAPH_READERS", "FAMILY_ARGS", "FIXED_ARGS", "OPTION_ARGS", "FIT_KEYWORDS",
]

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from adelia.dsl.grammar_files import open_grammar
from lark import Lark, Tree, v_args
from lark.exceptions import UnexpectedInput

from adelia.dsl import ir
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
OPTION_ARGS = ("int_strategy", "n_samples", "seed", "dz", "diff_logdens", "quantiles")
INT_STRATEGIES = ("auto", "grid", "ccd", "eb")
#: adelia.fit's own keyword names: a graph may not be called like one of them.
FIT_KEYWORDS = frozenset({"formula", "data", "family", "E", "Ntrials", "offset", "scale", "control_family",
                          "control_fixed", "int_strategy", "n_samples", "seed", "dz", "diff_logdens",
                          "quantiles", "progress"})
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
class GraphDecl:
    """``graph name = reader(path, ...)`` or ``graph name = "path"``."""

    name: str
    reader: str
    path: ir.Expr | None
    kwargs: tuple[ir.Keyword, ...] = ()
    span: Span | None = _span()
    name_span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class FamilyDecl:
    """``family name`` or ``family name(key = value, ...)``."""

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
    """``prior hyper(target) = value``."""

    hyper: str
    target: str
    value: ir.Expr
    span: Span | None = _span()
    target_span: Span | None = _span()


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

    @property
    def formula(self) -> ir.Formula | None:
        return self.formulas[0] if self.formulas else None

    @property
    def family(self) -> FamilyDecl | None:
        return self.families[0] if self.families else None

    @property
    def family_name(self) -> str:
        return self.family.name if self.family else "gaussian"

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

    def family_decl(self, meta, c):
        v = c[0]
        if isinstance(v, ir.Name):
            return FamilyDecl(v.id, (), (), _span_of(meta))
        if isinstance(v, ir.Vector):      # "family c(...)"
            return FamilyDecl("c", v.items, (), _span_of(meta))
        return FamilyDecl(v.func, v.args, v.kwargs, _span_of(meta))

    def formula_decl(self, meta, c):
        return c[0]

    def prior_decl(self, meta, c):
        hyper, target, value = c
        return PriorDecl(hyper.id, target.id, value, _span_of(meta), target.span)

    def fixed_decl(self, meta, c):
        return ("fixed", c[0] if c else [], _span_of(meta))

    def options_decl(self, meta, c):
        return ("options", c[0] if c else [], _span_of(meta))

    def arglist(self, meta, c):
        return list(c)

    def model_file(self, meta, c):
        groups: dict[str, list] = {k: [] for k in ("data", "graphs", "families", "formulas", "priors", "fixed",
                                                   "options")}
        for s in c:
            match s:
                case DataDecl():
                    groups["data"].append(s)
                case GraphDecl():
                    groups["graphs"].append(s)
                case FamilyDecl():
                    groups["families"].append(s)
                case ir.Formula():
                    groups["formulas"].append(s)
                case PriorDecl():
                    groups["priors"].append(s)
                case ("fixed" | "options", items, span):
                    groups[s[0]].append(tuple(items))
                    self._check_unique(items)
        return groups


def _adl_hint(text: str, token: str | None) -> str | None:
    if token == "=":
        return "'=' names an argument inside (...), or follows 'data name', 'graph name' or 'prior h(target)'"
    return None


_STATEMENTS = "data, graph, family, formula, prior, fixed, options"


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
    mf = ModelFile(tuple(groups["data"]), tuple(groups["graphs"]), tuple(groups["families"]),
                   tuple(groups["formulas"]), tuple(groups["priors"]), tuple(groups["fixed"]),
                   tuple(groups["options"]), text, filename, base_dir)
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
    once(mf.families, "'family'", "a model has one likelihood family")
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

    seen_graphs: dict[str, GraphDecl] = {}
    for g in mf.graphs:
        if g.name in seen_graphs:
            err(f"graph '{g.name}' is defined twice", g.name_span, "give each graph its own name")
        seen_graphs[g.name] = g
        if g.name in FIT_KEYWORDS:
            err(f"'{g.name}' cannot name a graph: it is an adelia.fit() argument", g.name_span,
                "choose another name, e.g. 'adj'")
        if g.reader not in GRAPH_READERS:
            err(f"a graph is read with inla_graph(path) or edges(path), not '{g.reader or ir.expr_label(g.path)}'",
                g.span, "write: graph g = inla_graph(\"regions.graph\")  or  graph g = edges(\"edges.csv\")")
            continue
        _check_path(g.path, g.reader, g.span, err)
        _check_kwargs(g.kwargs, GRAPH_READERS[g.reader], f"{g.reader}()", err)

    for fam in mf.families:
        if fam.args:
            err(f"family {fam.name}(...) takes only named arguments", fam.args[0].span,
                f"e.g. family {fam.name}(E = expected)")
        _check_kwargs(fam.kwargs, FAMILY_ARGS, f"family {fam.name}()", err)
        for k in fam.kwargs:
            if k.name in ("E", "Ntrials", "offset", "scale") and not isinstance(k.value, (ir.Name, ir.Str, ir.Num)):
                err(f"{k.name} = must be a column name (or a number)", k.value.span, f"e.g. {k.name} = {k.name.lower()}")
            if k.name == "hyper" and not _is_group(k.value):
                err("hyper = must be list(name = ...)", k.value.span,
                    "e.g. hyper = list(prec = list(prior = \"pc.prec\", param = c(1, 0.01)))")

    seen_priors: dict[tuple[str, str], PriorDecl] = {}
    for p in mf.priors:
        key = (p.hyper, p.target)
        if key in seen_priors:
            err(f"the prior of {p.hyper}({p.target}) is given twice", p.span)
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
