"""Constant folding of argument expressions: ``c(1/0.31, 0.01)``, ``10^-3``, ``exp(1)``, ``1:50``,
``seq(1, 50, by = 2)``, ``rep(1, 10)`` -> :class:`~adelia.dsl.ir.Num` / :class:`~adelia.dsl.ir.Vector`.

R-INLA users write argument values as R expressions; R evaluates them before ``inla()`` sees
them. :func:`fold` does the same for the expressions whose operands are all literals, with R's
semantics (R Core Team, *R Language Definition* §3.4 precedence; ``seq.default``, ``rep`` and
``:`` as documented in ``?seq``, ``?rep``, ``?Colon``): every value is a vector, arithmetic
recycles a length-1 operand, ``from:to`` steps by ±1. Expressions that involve names (data
columns, passed objects) are left as they are, with their constant parts folded, for the compiler
to evaluate. Every mistake is a :class:`~adelia.errors.ModelError` at the offending span.
"""

from __future__ import annotations

__all__ = ["fold", "fold_call_args", "CONSTANT_FUNCTIONS", "SEQUENCE_FUNCTIONS", "MAX_LENGTH"]

import math
from dataclasses import replace
from typing import Callable

import numpy as np

from adelia.dsl import ir
from adelia.errors import ModelError, Span

#: Elementwise functions folded when their argument is constant.
CONSTANT_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp, "log": np.log, "log10": np.log10, "log2": np.log2, "log1p": np.log1p,
    "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs,
}
#: Vector builders (R's seq, seq_len, rep).
SEQUENCE_FUNCTIONS = ("seq", "seq_len", "rep")
#: Longest vector a sequence may build (``1:1e9`` is a typo, not a prior).
MAX_LENGTH = 10_000_000
#: R's seq_colon tolerance (FLT_EPSILON) and seq.default's (1e-10).
_FLT_EPS = 1.1920928955078125e-07

_Leaf = ir.Num | ir.Bool | ir.Str


class _Value:
    """A folded value: R vector items (IR leaves) and whether it prints as a vector."""

    __slots__ = ("items", "vector")

    def __init__(self, items: tuple[_Leaf, ...], vector: bool):
        self.items, self.vector = items, vector

    def numbers(self, what: str, span: Span | None) -> np.ndarray:
        if not all(isinstance(i, ir.Num) for i in self.items):
            bad = next(i for i in self.items if not isinstance(i, ir.Num))
            raise ModelError(f"{what} needs numbers, not {ir.expr_label(bad)}", span=bad.span or span,
                             hint="arithmetic, seq() and ':' work on numbers only")
        return np.array([i.value for i in self.items], dtype=float)


def _err(message: str, span: Span | None, hint: str | None = None) -> ModelError:
    return ModelError(message, span=span, hint=hint)


def _from_numbers(values: np.ndarray, vector: bool, span: Span | None, what: str) -> _Value:
    bad = ~np.isfinite(values)
    if bad.any():
        kind = "not a number" if np.isnan(values[bad][0]) else "infinite"
        raise _err(f"{what} is {kind}", span, "check for a division by zero or the log of a number <= 0")
    return _Value(tuple(ir.Num(float(v), span) for v in values), vector or values.size != 1)


def _check_length(n: float, span: Span | None, what: str) -> int:
    if not n <= MAX_LENGTH:
        raise _err(f"{what} would have {n:.4g} elements (at most {MAX_LENGTH:,} are allowed)", span)
    return int(n)


def _as_ir(v: _Value, span: Span | None) -> ir.Expr:
    if not v.vector and len(v.items) == 1:
        return replace(v.items[0], span=span)
    return ir.Vector(v.items, span)


def _value(e: ir.Expr) -> _Value | None:
    """The constant value of an already folded expression, or None when it is not constant."""
    match e:
        case ir.Num() | ir.Bool() | ir.Str():
            return _Value((e,), False)
        case ir.Vector(items=items) if all(isinstance(i, (ir.Num, ir.Bool, ir.Str)) for i in items):
            return _Value(tuple(items), True)
    return None


def _recycle(a: np.ndarray, b: np.ndarray, span: Span | None, op: str) -> tuple[np.ndarray, np.ndarray]:
    if a.size == b.size or a.size == 1 or b.size == 1:
        return a, b
    raise _err(f"'{op}' needs operands of the same length or one of length 1, not {a.size} and {b.size}", span)


_ARITH: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power,
}


def _binop(e: ir.BinOp, left: _Value, right: _Value) -> _Value:
    span = e.span
    a = left.numbers(f"'{e.op}'", e.left.span)
    b = right.numbers(f"'{e.op}'", e.right.span)
    if e.op == ":":
        return _colon(a, b, e)
    if a.size == 0 or b.size == 0:
        return _Value((), True)
    a, b = _recycle(a, b, span, e.op)
    with np.errstate(all="ignore"):
        out = _ARITH[e.op](a, b)
    return _from_numbers(np.atleast_1d(out), left.vector or right.vector, span, f"'{ir.expr_label(e)}'")


def _colon(a: np.ndarray, b: np.ndarray, e: ir.BinOp) -> _Value:
    """R's ``from:to``: from, from ± 1, ... while not past ``to`` (R's seq_colon)."""
    for v, side in ((a, e.left), (b, e.right)):
        if v.size != 1:
            raise _err(f"each side of ':' must be one number, not {v.size}", side.span,
                       "use seq(from, to, by = ...) for other steps")
    lo, hi = float(a[0]), float(b[0])
    n = _check_length(math.floor(abs(hi - lo) + 1 + _FLT_EPS), e.span, f"'{ir.expr_label(e)}'")
    step = 1.0 if hi >= lo else -1.0
    return _from_numbers(lo + step * np.arange(n), True, e.span, f"'{ir.expr_label(e)}'")


def _one_number(v: _Value, what: str, span: Span | None) -> float:
    x = v.numbers(what, span)
    if x.size != 1:
        raise _err(f"{what} must be one number, not {x.size}", span)
    return float(x[0])


def _count(v: _Value, what: str, span: Span | None) -> int:
    x = _one_number(v, what, span)
    if not (x >= 0 and float(x).is_integer()):
        raise _err(f"{what} must be a whole number >= 0, not {ir.expr_label(ir.Num(x))}", span)
    return _check_length(x, span, what)


def _bind(call: ir.Call, formals: tuple[str, ...], aliases: dict[str, str], values: list[_Value | None],
          kw_values: dict[str, _Value | None], example: str) -> dict[str, tuple[_Value, Span | None]]:
    """Match a call's arguments to ``formals`` as R does (positional in order, then by name)."""
    if len(call.args) > len(formals):
        extra = call.args[len(formals)]
        raise _err(f"{call.func}() takes at most {len(formals)} positional arguments "
                   f"({', '.join(formals)})", extra.span, f"e.g. {example}")
    bound: dict[str, tuple[_Value, Span | None]] = {}
    for name, arg, v in zip(formals, call.args, values):
        bound[name] = (v, arg.span)
    for kw in call.kwargs:
        name = aliases.get(kw.name, kw.name)
        if name not in formals:
            raise _err(f"{call.func}() has no argument '{kw.name}'", kw.span,
                       f"{call.func}() takes {', '.join(formals)}; e.g. {example}")
        if name in bound:
            raise _err(f"{call.func}() gets '{name}' twice", kw.span)
        bound[name] = (kw_values[kw.name], kw.value.span)
    return bound


def _seq(call: ir.Call, values, kw_values) -> _Value:
    """R's ``seq.default(from, to, by, length.out)``."""
    example = "seq(1, 50, by = 2) or seq(0, 1, length.out = 11)"
    b = _bind(call, ("from", "to", "by", "length.out"),
              {"length": "length.out", "len": "length.out", "length_out": "length.out"},
              values, kw_values, example)
    num = {k: _one_number(v, f"seq({k} = ...)", s) for k, (v, s) in b.items() if k != "length.out"}
    span = call.span
    what = f"'{ir.expr_label(call)}'"
    if "length.out" in b:
        v, s = b["length.out"]
        x = _one_number(v, "seq(length.out = ...)", s)
        if not x >= 0:
            raise _err(f"length.out must be >= 0, not {ir.expr_label(ir.Num(x))}", s)
        n = _check_length(math.ceil(x), s, what)
        if {"from", "to", "by"} <= set(b):
            raise _err("seq() takes at most three of from, to, by and length.out", span, f"e.g. {example}")
        if "by" not in b:
            lo = num.get("from", 1.0)
            if "to" not in num:
                out = lo + np.arange(n)
            elif "from" not in num:
                out = num["to"] - np.arange(n)[::-1]
            elif n > 2:
                out = np.concatenate([[lo], lo + np.arange(1, n - 1) * ((num["to"] - lo) / (n - 1)), [num["to"]]])
                if lo == num["to"]:
                    out = np.full(n, lo)
            else:
                out = np.array([lo, num["to"]])[:n]
        elif "to" in num:
            out = num["to"] - np.arange(n)[::-1] * num["by"]
        else:
            out = num.get("from", 1.0) + np.arange(n) * num["by"]
        return _from_numbers(out, True, span, what)
    if "to" not in num:
        raise _err(f"seq() needs where to end: {example}", span,
                   "give 'to' (seq(1, 10)) or 'length.out' (seq(1, by = 2, length.out = 5))")
    lo, hi = num.get("from", 1.0), num["to"]
    if "by" not in num:
        return _colon(np.array([lo]), np.array([hi]), ir.BinOp(":", ir.Num(lo, span), ir.Num(hi, span), span))
    by = num["by"]
    d = hi - lo
    if d == 0:
        return _from_numbers(np.array([lo]), True, span, what)
    if by == 0 or d / by < 0:
        raise _err(f"by = {ir.expr_label(ir.Num(by))} does not lead from {ir.expr_label(ir.Num(lo))} "
                   f"to {ir.expr_label(ir.Num(hi))}", b["by"][1],
                   "by must be non-zero with the sign of to - from")
    n = _check_length(math.floor(d / by + 1e-10), span, what)
    out = lo + np.arange(n + 1) * by
    out = np.minimum(out, hi) if by > 0 else np.maximum(out, hi)
    return _from_numbers(out, True, span, what)


def _seq_len(call: ir.Call, values, kw_values) -> _Value:
    b = _bind(call, ("length.out",), {"length": "length.out"}, values, kw_values, "seq_len(10)")
    if "length.out" not in b:
        raise _err("seq_len() needs a length", call.span, "e.g. seq_len(10)")
    v, s = b["length.out"]
    return _from_numbers(1.0 + np.arange(_count(v, "seq_len()'s length", s)), True, call.span,
                         f"'{ir.expr_label(call)}'")


def _rep(call: ir.Call, values, kw_values) -> _Value:
    """R's ``rep(x, times = 1, length.out = NA, each = 1)``: each first, then times (a count,
    or one count per element), then length.out cuts or recycles."""
    example = "rep(1, 10), rep(c(1, 2), times = 3) or rep(c(1, 2), each = 2)"
    b = _bind(call, ("x", "times", "length.out", "each"),
              {"length": "length.out", "len": "length.out", "length_out": "length.out"}, values, kw_values,
              example)
    if "x" not in b:
        raise _err("rep() needs the value to repeat", call.span, f"e.g. {example}")
    items = list(b["x"][0].items)
    if "each" in b:
        each = _count(b["each"][0], "rep(each = ...)", b["each"][1])
        items = [i for i in items for _ in range(each)]
    if "times" in b:
        v, s = b["times"]
        times = v.numbers("rep(times = ...)", s)
        if times.size == 1:
            k = _count(v, "rep(times = ...)", s)
            _check_length(len(items) * k, call.span, f"'{ir.expr_label(call)}'")
            items = items * k
        elif times.size == len(items):
            counts = [_count(_Value((ir.Num(t),), False), "each of rep(times = ...)", s) for t in times]
            items = [i for i, k in zip(items, counts) for _ in range(k)]
        else:
            raise _err(f"rep(times = ...) must be one count or one per element ({len(items)}), not {times.size}", s)
    if "length.out" in b:
        v, s = b["length.out"]
        n = _count(v, "rep(length.out = ...)", s)
        if n and not items:
            raise _err("rep() cannot fill length.out from an empty vector", s)
        items = [items[k % len(items)] for k in range(n)] if n else []
    _check_length(len(items), call.span, f"'{ir.expr_label(call)}'")
    return _Value(tuple(replace(i, span=call.span) for i in items), True)


def _function(call: ir.Call, values: list[_Value]) -> _Value:
    f = CONSTANT_FUNCTIONS[call.func]
    if call.func == "log" and call.kwargs:
        raise _err("log() of a constant takes the base as a second positional argument", call.kwargs[0].span,
                   "e.g. log(100, 10)")
    n_max = 2 if call.func == "log" else 1
    if not 1 <= len(values) <= n_max:
        raise _err(f"{call.func}() takes {'one or two arguments' if n_max == 2 else 'one argument'}, "
                   f"not {len(values)}", call.span, f"e.g. {call.func}(2)")
    x = values[0].numbers(f"{call.func}()", call.args[0].span)
    with np.errstate(all="ignore"):
        out = f(x)
        if len(values) == 2:
            out = out / np.log(_one_number(values[1], "log()'s base", call.args[1].span))
    return _from_numbers(np.atleast_1d(out), values[0].vector, call.span, f"'{ir.expr_label(call)}'")


def _flatten_vector(e: ir.Vector, computed: list[bool]) -> ir.Vector:
    """c(1:3, 10) concatenates as in R: items that folding turned into vectors are spliced in
    (vectors written as literals, e.g. ``[[1, 2], [3, 4]]``, stay nested)."""
    items: list[ir.Expr] = []
    for item, spliced in zip(e.items, computed):
        if spliced and isinstance(item, ir.Vector):
            items.extend(item.items)
        else:
            items.append(item)
    return ir.Vector(tuple(items), e.span)


def fold(e: ir.Expr) -> ir.Expr:
    """``e`` with every constant sub-expression evaluated (see the module docstring).

    Names stay names; ``I(...)`` keeps its expression as written (it becomes a fixed-effect
    column named after it). Raises :class:`ModelError` (span set, no source: the caller adds it).
    """
    match e:
        case ir.BinOp(op=op, left=left, right=right):
            lf, rf = fold(left), fold(right)
            lv, rv = _value(lf), _value(rf)
            if lv is not None and rv is not None:
                return _as_ir(_binop(ir.BinOp(op, lf, rf, e.span), lv, rv), e.span)
            return ir.BinOp(op, lf, rf, e.span)
        case ir.Name(id="Inf"):
            return ir.Num(math.inf, e.span)           # R's Inf (range = c(0, Inf) of clinear)
        case ir.Neg(operand=x):
            xf = fold(x)
            xv = _value(xf)
            if xv is not None:
                v = xv.numbers("'-'", x.span)
                if np.isinf(v).any():                 # -Inf: negation makes no new infinity
                    return _as_ir(_Value(tuple(ir.Num(float(-t), e.span) for t in v), xv.vector), e.span)
                return _as_ir(_from_numbers(-v, xv.vector, e.span, "'-'"), e.span)
            return ir.Neg(xf, e.span)
        case ir.Vector(items=items):
            folded = [fold(i) for i in items]
            computed = [isinstance(i, (ir.BinOp, ir.Neg, ir.Call)) and isinstance(f, ir.Vector)
                        for i, f in zip(items, folded)]
            return _flatten_vector(ir.Vector(tuple(folded), e.span), computed)
        case ir.Call(func="I"):
            return e
        case ir.Call(func=func, args=args, kwargs=kwargs):
            fa = tuple(fold(a) for a in args)
            fk = tuple(ir.Keyword(k.name, fold(k.value), k.span) for k in kwargs)
            out = ir.Call(func, fa, fk, e.span)
            if func in CONSTANT_FUNCTIONS or func in SEQUENCE_FUNCTIONS:
                values = [_value(a) for a in fa]
                kw_values = {k.name: _value(k.value) for k in fk}
                if all(v is not None for v in values) and all(v is not None for v in kw_values.values()):
                    if func in CONSTANT_FUNCTIONS:
                        return _as_ir(_function(out, values), e.span)
                    builder = {"seq": _seq, "seq_len": _seq_len, "rep": _rep}[func]
                    return _as_ir(builder(out, values, kw_values), e.span)
                if func in SEQUENCE_FUNCTIONS and not fa and not fk:
                    builder = {"seq": _seq, "seq_len": _seq_len, "rep": _rep}[func]
                    builder(out, [], {})            # raises the located "needs ..." error
            return out
    return e


def fold_call_args(call: ir.Call) -> ir.Call:
    """``call`` with its arguments folded (the call itself is kept)."""
    return ir.Call(call.func, tuple(fold(a) for a in call.args),
                   tuple(ir.Keyword(k.name, fold(k.value), k.span) for k in call.kwargs), call.span)
