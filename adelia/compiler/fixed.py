"""Fixed effects: the design matrix of the formula's fixed part, built by formulaic.

adelia parses the whole formula; the fixed terms are re-serialised and handed to formulaic,
which provides factors (``C(g)``), interactions and transforms, and keeps a model spec that
replays levels on new data. Columns are renamed as R-INLA names them (``(Intercept)``).

Terms that are plain numeric columns and their interactions (``x``, ``x1:x2``) are built here
instead, as formulaic builds them (intercept first, terms by degree, then as written; a repeated
term once): importing formulaic is about 95 ms of a new process's first fit.
"""

from __future__ import annotations

__all__ = ["FixedEffects", "build_fixed", "design_on"]

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from adelia.dsl import ir
from adelia.dsl.printer import print_expr, print_term
from adelia.errors import DataError, ModelError


@dataclass(frozen=True)
class FixedEffects:
    names: tuple[str, ...]
    X: np.ndarray          # (m, p)
    spec: Any              # formulaic ModelSpec, _Products for plain numeric terms, or None without fixed effects


@dataclass(frozen=True)
class _Products:
    """The design of an intercept and products of numeric columns: each column's factor names."""

    columns: tuple[tuple[str, ...], ...]

    def matrix(self, df: pd.DataFrame) -> np.ndarray:
        X = np.ones((len(df), len(self.columns)))
        for k, factors in enumerate(self.columns):
            for name in factors:
                v = np.asarray(df[name], dtype=float)
                if np.isnan(v).any():
                    raise ValueError(f"column {name!r} has missing values")
                X[:, k] *= v
        return X


def _plain_products(terms, intercept: bool, df: pd.DataFrame, res) -> _Products | None:
    """The :class:`_Products` of these terms when each factor names a numeric data column
    (float or non-boolean integer, no missing value), else None (formulaic builds them)."""
    seen, by_degree = set(), {}
    for t in terms:
        names = []
        for f in t.factors:
            if not isinstance(f, ir.Name) or f.id in res.objects or f.id not in df.columns:
                return None
            col = df[f.id]
            if (not isinstance(col, pd.Series) or not isinstance(col.dtype, np.dtype) or col.dtype.kind not in "fiu"
                    or col.isna().any()):
                return None
            names.append(f.id)
        key = frozenset(names)
        if len(key) < len(names):
            return None
        if key not in seen:
            seen.add(key)
            by_degree.setdefault(len(names), []).append(tuple(names))
    columns = [()] if intercept else []
    for degree in sorted(by_degree):
        columns += by_degree[degree]
    return _Products(tuple(columns))


def design_on(fixed: FixedEffects, df: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """(column names, design matrix) of the fit's fixed effects on the rows of ``df`` (levels and
    transforms replayed by formulaic's spec). Raises what the design's builder raises: missing
    columns, unseen levels, missing values."""
    if isinstance(fixed.spec, _Products):
        return list(fixed.names), fixed.spec.matrix(df)
    mm = fixed.spec.get_model_matrix(df, na_action="raise")
    return ["(Intercept)" if c == "Intercept" else str(c) for c in mm.columns], np.asarray(mm.to_numpy(), float)


def _names_in(expr: ir.Expr):
    match expr:
        case ir.Name():
            yield expr
        case ir.Call(args=args, kwargs=kws):
            for a in args:
                yield from _names_in(a)
            for k in kws:
                yield from _names_in(k.value)
        case ir.Vector(items=items):
            for i in items:
                yield from _names_in(i)
        case ir.BinOp(left=a, right=b):
            yield from _names_in(a)
            yield from _names_in(b)
        case ir.Neg(operand=a):
            yield from _names_in(a)


def build_fixed(formula: ir.Formula, df: pd.DataFrame, res) -> FixedEffects:
    terms = formula.fixed
    if not terms and not formula.intercept:
        return FixedEffects((), np.zeros((len(df), 0)), None)
    for t in terms:
        for f in t.factors:
            for name in _names_in(f):
                if name.id not in df.columns and name.id not in res.objects:
                    raise res._unknown(name, "a fixed effect")
    for t in terms:
        for f in t.factors:
            _check_python(f, formula, res)
    products = _plain_products(terms, formula.intercept, df, res)
    if products is not None:
        names = tuple("(Intercept)" if not c else ":".join(c) for c in products.columns)
        return FixedEffects(names, products.matrix(df), products)
    # formulaic evaluates the terms as Python (x**2, True); the columns get R's names back below
    rhs = " + ".join(["1" if formula.intercept else "0"] + [print_term(t, python=True) for t in terms])
    import formulaic

    context = {k: v for k, v in res.objects.items()}
    try:
        mm = formulaic.model_matrix(rhs, df, na_action="raise", context=context)
    except Exception as err:  # formulaic reports evaluation problems with many exception types
        msg = str(err).split("\n")[0]
        span = terms[0].span if terms else formula.span
        raise DataError(f"cannot build the fixed-effect design matrix: {msg}", source=formula.source, span=span,
                        filename=res.filename, hint="check the fixed-effect columns for missing values and types") from None
    names = _r_names(mm, terms)
    X = np.asarray(mm.to_numpy(), dtype=float)
    return FixedEffects(names, X, mm.model_spec)


def _check_python(e: ir.Expr, formula: ir.Formula, res) -> None:
    """R's ':' sequence has no Python spelling inside a fixed-effect expression."""
    match e:
        case ir.BinOp(op=":"):
            raise ModelError(f"'{print_expr(e)}' (a sequence) cannot be part of a fixed-effect term",
                             source=formula.source, span=e.span, filename=res.filename,
                             hint="a:b between terms is an interaction; inside I(...) use arithmetic only")
        case ir.BinOp(left=a, right=b):
            _check_python(a, formula, res)
            _check_python(b, formula, res)
        case ir.Neg(operand=a):
            _check_python(a, formula, res)
        case ir.Call(args=args, kwargs=kws):
            for a in args:
                _check_python(a, formula, res)
            for k in kws:
                _check_python(k.value, formula, res)
        case ir.Vector(items=items):
            for i in items:
                _check_python(i, formula, res)


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _r_names(mm, terms: tuple[ir.FixedTerm, ...]) -> tuple[str, ...]:
    """Column names as R (and so R-INLA) prints them: ``(Intercept)``, ``I(x/10)``, ``I(x^2)``.

    formulaic names a column after its factors' Python text (``I(x / 10)``, ``I(x ** 2)``) plus a
    level suffix for categorical factors (``C(g)[b]``), joined by ':'. Each factor's Python text
    (compared without spaces, as formulaic re-formats it) is replaced by the factor's R text.
    """
    r_of = {}
    for t in terms:
        for f in t.factors:
            r_of.setdefault(_squeeze(print_expr(f, python=True)), print_expr(f))
    names = ["(Intercept)" if c == "Intercept" else str(c) for c in mm.columns]
    try:
        for term, cols in mm.model_spec.term_indices.items():
            factors = [str(f) for f in getattr(term, "factors", ())]
            if not factors or not any(_squeeze(f) in r_of for f in factors):
                continue
            for k in cols:
                names[k] = _rename(names[k], factors, r_of)
    except Exception:  # formulaic internals changed: keep its names rather than fail the fit
        pass
    return tuple(names)


def _rename(column: str, factors: list[str], r_of: dict[str, str]) -> str:
    out, pos = [], 0
    for i, f in enumerate(factors):
        if not column.startswith(f, pos):
            return column
        end = pos + len(f)
        nxt = column.find(":" + factors[i + 1], end) if i + 1 < len(factors) else len(column)
        if nxt < 0:
            return column
        out.append(r_of.get(_squeeze(f), f) + column[end:nxt])
        pos = nxt + 1
    return ":".join(out)
