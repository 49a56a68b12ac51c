"""The resolve pass: IR expressions -> Python values, data columns and objects.

Names resolve to data columns first, then to objects the caller passed. Every failure is an
:class:`~adelia.errors.AdeliaError` pointing at the offending expression.
"""

from __future__ import annotations

__all__ = ["Resolver", "FUNCTIONS"]

import difflib
from typing import Any

import numpy as np
import pandas as pd

from adelia.dsl import ir
from adelia.dsl.evaluate import fold
from adelia.errors import DataError, ModelError, UnknownNameError

#: Elementwise functions allowed in the response, offsets and weights.
FUNCTIONS = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "log1p": np.log1p, "abs": np.abs}

def _is_prior_helper(name: str) -> bool:
    """Prior helpers usable as values inside hyper = list(...): every registered prior."""
    from adelia.compiler.priors import PRIORS

    return name in ("fixed", "pc.matern", "pc_matern") or name in PRIORS or name.replace("_", ".") in PRIORS


class Resolver:
    def __init__(self, source: str, data: pd.DataFrame, objects: dict[str, Any], filename: str = "<formula>"):
        self.source = source
        self.data = data
        self.objects = objects
        self.filename = filename
        self.used_objects: set[str] = set()

    def _err(self, cls, message, expr, hint=None):
        return cls(message, source=self.source, span=getattr(expr, "span", None), filename=self.filename, hint=hint)

    # ---- data-valued expressions ----
    def column(self, expr: ir.Expr, what: str) -> np.ndarray:
        """Raw values of a data column (or an array object) named by ``expr``."""
        if not isinstance(expr, ir.Name):
            raise self._err(ModelError, f"{what} must be a column name", expr)
        if expr.id in self.data.columns:
            return self.data[expr.id].to_numpy()
        if expr.id in self.objects:
            self.used_objects.add(expr.id)
            arr = np.asarray(self.objects[expr.id])
            if arr.shape != (len(self.data),):
                raise self._err(DataError, f"'{expr.id}' has shape {arr.shape}, but the data have {len(self.data)} rows",
                                expr)
            return arr
        raise self._unknown(expr, what)

    def _unknown(self, expr: ir.Name, what: str) -> UnknownNameError:
        pool = list(self.data.columns.astype(str)) + list(self.objects)
        close = difflib.get_close_matches(expr.id, pool, n=1)
        hint = (f"did you mean '{close[0]}'? " if close else "") + \
            f"data columns: {', '.join(map(str, list(self.data.columns)[:12]))}" + \
            (" ..." if len(self.data.columns) > 12 else "")
        return self._err(UnknownNameError, f"'{expr.id}' ({what}) is neither a data column nor a passed object",
                         expr, hint)

    def numeric(self, expr: ir.Expr, what: str, allow_nan: bool = False) -> np.ndarray:
        """Evaluate a numeric per-observation expression: a column, a number, or f(column)."""
        m = len(self.data)
        match expr:
            case ir.Num(value=v):
                return np.full(m, float(v))
            case ir.Name():
                raw = self.column(expr, what)
                try:
                    out = np.asarray(raw, dtype=float)
                except (TypeError, ValueError):
                    raise self._err(DataError, f"column '{expr.id}' ({what}) is not numeric", expr,
                                    "convert it to numbers, or use it as a factor in a fixed-effect term") from None
            case ir.BinOp(op=op, left=left, right=right) if op in _ELEMENTWISE:
                a = self.numeric(left, what, allow_nan)
                b = self.numeric(right, what, allow_nan)
                with np.errstate(all="ignore"):
                    out = _ELEMENTWISE[op](a, b)
                bad = np.flatnonzero(~np.isfinite(out) & np.isfinite(a) & np.isfinite(b))
                if bad.size:
                    raise self._err(DataError, f"{ir.expr_label(expr)} ({what}) is not finite in rows "
                                    f"{bad[:5].tolist()}", expr, "check for a division by zero")
            case ir.Neg(operand=x):
                out = -self.numeric(x, what, allow_nan)
            case ir.Call(func=f, args=args, kwargs=()) if f in FUNCTIONS and len(args) == 1:
                inner = self.numeric(args[0], what, allow_nan)
                with np.errstate(all="ignore"):
                    out = FUNCTIONS[f](inner)
                bad = np.flatnonzero(~np.isfinite(out) & np.isfinite(inner))
                if bad.size:
                    raise self._err(DataError, f"{f}() of {what} is not finite in rows {bad[:5].tolist()}", expr)
            case _:
                raise self._err(ModelError, f"cannot evaluate {ir.expr_label(expr)!s} as {what}", expr,
                                f"use a column name or one of {', '.join(FUNCTIONS)}(column)")
        if not allow_nan:
            bad = np.flatnonzero(~np.isfinite(out))
            if bad.size:
                raise self._err(DataError, f"{what} has missing or infinite values in rows {bad[:5].tolist()}", expr)
        return out

    def column_or_array(self, value: Any, what: str, allow_nan: bool = False) -> np.ndarray:
        """A likelihood argument (E=, Ntrials=, offset=): a column name or an array of length m."""
        m = len(self.data)
        if isinstance(value, str):
            if value not in self.data.columns:
                close = difflib.get_close_matches(value, list(self.data.columns.astype(str)), n=1)
                raise DataError(f"{what}='{value}' is not a data column",
                                hint=f"did you mean '{close[0]}'?" if close else None)
            arr, label = self.data[value].to_numpy(), f"column '{value}'"
        else:
            arr, label = np.asarray(value), what
            if arr.ndim == 0:
                arr = np.full(m, float(arr))
        try:
            arr = np.asarray(arr, dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"{what} ({label}) must be numeric") from None
        if arr.shape != (m,):
            raise DataError(f"{what} has {arr.size} values but the data have {m} rows")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size and not allow_nan:
            raise DataError(f"{what} ({label}) has missing or infinite values in rows {bad[:5].tolist()}")
        return arr

    def index(self, expr: ir.Expr, what: str) -> np.ndarray:
        """The index of f(): a column, or R-INLA's ``inla.group(x, n = 25, method = "cut")``."""
        if isinstance(expr, ir.Name):
            return self.column(expr, what)
        if isinstance(expr, ir.Call) and expr.func == "inla.group":
            return self._inla_group(expr, what)
        raise self._err(ModelError, "the first argument of f() must be a variable name", expr,
                        'or inla.group(x, n = 20) to bin a covariate; e.g. f(region, model = "iid")')

    def _inla_group(self, call: ir.Call, what: str) -> np.ndarray:
        from adelia.compiler.grouping import inla_group

        formals = ("x", "n", "method", "idx.only")
        if len(call.args) > len(formals):
            raise self._err(ModelError, "inla.group() takes (x, n, method, idx.only)", call.args[len(formals)])
        given: dict[str, ir.Expr] = dict(zip(formals, call.args))
        for kw in call.kwargs:
            key = kw.name.replace("_", ".")
            if key not in formals or key in given:
                raise self._err(ModelError, f"inla.group() has no argument '{kw.name}'" if key not in formals
                                else f"inla.group() gets '{key}' twice", kw, "inla.group(x, n = 25, method = \"cut\")")
            given[key] = kw.value
        if "x" not in given:
            raise self._err(ModelError, "inla.group() needs the covariate to group", call,
                            "e.g. f(inla.group(x, n = 20), model = \"rw2\")")
        x = self.numeric(given["x"], f"the covariate of {ir.expr_label(call)}", allow_nan=True)
        n, method, idx_only = 25, "cut", False
        if "n" in given:
            v = given["n"]
            if not (isinstance(v, ir.Num) and v.value >= 1 and float(v.value).is_integer()):
                raise self._err(ModelError, f"inla.group(n = ...) must be a whole number >= 1, not "
                                f"{ir.expr_label(v)}", v, "e.g. n = 20 (R-INLA's default is 25)")
            n = int(v.value)
        if "method" in given:
            v = given["method"]
            method = v.value if isinstance(v, ir.Str) else v.id if isinstance(v, ir.Name) else None
            if method not in ("cut", "quantile"):
                raise self._err(ModelError, f"inla.group(method = ...) must be \"cut\" or \"quantile\", "
                                f"not {ir.expr_label(v)}", v, "\"cut\": equal-width bins (the default); "
                                "\"quantile\": bins with equal counts")
        if "idx.only" in given:
            v = given["idx.only"]
            if not isinstance(v, ir.Bool):
                raise self._err(ModelError, "inla.group(idx.only = ...) must be TRUE or FALSE", v)
            idx_only = v.value
        try:
            return inla_group(x, n, method, idx_only)
        except ValueError as err:
            raise self._err(DataError, f"{ir.expr_label(call)}: {err}", call) from None

    # ---- argument values ----
    def model_name(self, expr: ir.Expr) -> str:
        if isinstance(expr, ir.Str):
            return expr.value
        if isinstance(expr, ir.Name):
            return expr.id
        raise self._err(ModelError, "model = must be a name such as \"iid\"", expr)

    def value(self, expr: ir.Expr, *, prior_call=None, argument: str = "") -> Any:
        """A keyword argument's value as Python data; names resolve to passed objects, then columns."""
        match expr:
            case ir.Str(value=v) | ir.Bool(value=v):
                return v
            case ir.Num(value=v):
                return v
            case ir.Vector(items=items):
                return [self.value(i, prior_call=prior_call, argument=argument) for i in items]
            case ir.Call(func=("list" | "dict"), args=(), kwargs=kws):
                return {k.name: self.value(k.value, prior_call=prior_call, argument=argument) for k in kws}
            case ir.Call(func=f, args=args, kwargs=()) if prior_call is not None and _is_prior_helper(f):
                params = [self.value(a) for a in args]
                if not all(isinstance(p, (int, float)) for p in params):
                    raise self._err(ModelError, f"the parameters of {f}() must be numbers", expr)
                name = f if f in ("fixed", "pc.matern") or f in _prior_names() else f.replace("_", ".")
                return prior_call(name, tuple(float(p) for p in params))
            case ir.BinOp() | ir.Neg() | ir.Call(func=("seq" | "seq_len" | "rep")) | \
                    ir.Call(func=("exp" | "log" | "log10" | "log2" | "log1p" | "expm1" | "sqrt" | "abs")):
                return self._computed(expr, argument)
            case ir.Name(id=n):
                if n in self.objects:
                    self.used_objects.add(n)
                    return self.objects[n]
                if n in self.data.columns:
                    return self.data[n].to_numpy()
                if argument == "graph":
                    raise self._unknown(expr, "a graph")
                raise self._unknown(expr, f"the value of {argument or 'an argument'}")
        raise self._err(ModelError, f"cannot use {ir.expr_label(expr)} as a value here", expr)


    def _computed(self, expr: ir.Expr, argument: str) -> Any:
        """Arithmetic / seq / rep over passed objects (numbers or 1-D arrays), as R evaluates
        ``values = 1:n`` with ``n`` defined by the caller: the names are replaced by their
        values and the expression folded by the same rules as constants."""
        def substitute(e: ir.Expr) -> ir.Expr:
            match e:
                case ir.Name(id=n):
                    if n not in self.objects:
                        raise self._unknown(e, f"the value of {argument or 'an argument'}")
                    self.used_objects.add(n)
                    arr = np.asarray(self.objects[n])
                    if arr.ndim > 1 or not np.issubdtype(arr.dtype, np.number):
                        raise self._err(ModelError, f"'{n}' must be a number or a vector of numbers to be used in "
                                        f"{ir.expr_label(expr)}", e)
                    if arr.ndim == 0:
                        return ir.Num(float(arr), e.span)
                    return ir.Vector(tuple(ir.Num(float(v), e.span) for v in arr), e.span)
                case ir.BinOp(op=op, left=a, right=b):
                    return ir.BinOp(op, substitute(a), substitute(b), e.span)
                case ir.Neg(operand=a):
                    return ir.Neg(substitute(a), e.span)
                case ir.Vector(items=items):
                    return ir.Vector(tuple(substitute(i) for i in items), e.span)
                case ir.Call(func=f, args=args, kwargs=kws):
                    return ir.Call(f, tuple(substitute(a) for a in args),
                                   tuple(ir.Keyword(k.name, substitute(k.value), k.span) for k in kws), e.span)
            return e

        try:
            folded = fold(substitute(expr))
        except ModelError as err:
            raise self._err(ModelError, err.message, err, err.hint) from None
        match folded:
            case ir.Num(value=v):
                return v
            case ir.Vector(items=items) if all(isinstance(i, (ir.Num, ir.Bool, ir.Str)) for i in items):
                return [i.value for i in items]
        raise self._err(ModelError, f"cannot evaluate {ir.expr_label(expr)} as a value", expr)


#: Elementwise arithmetic of per-observation expressions (response, offsets, weights, I()).
_ELEMENTWISE = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}


def _prior_names():
    from adelia.compiler.priors import PRIORS

    return PRIORS
