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


def _prior_names():
    from adelia.compiler.priors import PRIORS

    return PRIORS
