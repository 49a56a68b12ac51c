"""JAX-written scalar maps evaluated on the host with NumPy, without compiling anything.

A model's small functions — θ → natural scale (``exp``, ``tanh(θ/2)``...), log-priors, the
coefficients of Q(θ)'s pieces — are written once with ``jax.numpy`` so the compiled objective
can trace them. The host also needs their values: on a grid for the result tables and plots, at
θ₀ for the sparsity pattern. Called eagerly, each JAX operation is compiled as its own XLA
program for each new shape (10–40 ms apiece on a CPU), which a fresh process paid some 20 times
per fit: 0.2–0.7 s of its time.

:func:`numpy_eval` traces the function once (``jax.make_jaxpr``, microseconds to a millisecond)
and runs the traced equations with the NumPy/SciPy functions of the same primitives. A function
using a primitive outside :data:`_OPS` is simply evaluated by JAX as before, so coverage only
decides speed, never the result.
"""

from __future__ import annotations

__all__ = ["numpy_eval", "numpy_outputs"]

import weakref
from typing import Callable

import jax
from jax.extend.core import Literal
import numpy as np
from scipy import special


def _select_n(pred, *cases):
    return np.where(pred, cases[1], cases[0]) if len(cases) == 2 else np.choose(pred.astype(int), cases)


def _reshape(x, new_sizes, dimensions=None, **_):
    if dimensions is not None:      # lax.reshape's transpose-first form: not modelled, JAX runs it
        raise _Unsupported("reshape with dimensions")
    return np.reshape(x, new_sizes)


def _slice(x, start_indices, limit_indices, strides=None, **_):
    return x[tuple(slice(a, b, s) for a, b, s in zip(start_indices, limit_indices, strides or [1] * len(start_indices)))]


def _dynamic_slice(x, *starts, slice_sizes, **_):
    # XLA clamps each start so that the slice stays inside the operand
    starts = [min(max(int(a), 0), n - k) for a, n, k in zip(starts, x.shape, slice_sizes)]
    return x[tuple(slice(a, a + k) for a, k in zip(starts, slice_sizes))]


def _broadcast_in_dim(x, shape, broadcast_dimensions, **_):
    x = np.asarray(x)
    expanded = [1] * len(shape)
    for src, dst in enumerate(broadcast_dimensions):
        expanded[dst] = x.shape[src]
    return np.broadcast_to(x.reshape(expanded), shape)


def _gather(operand, indices, *, dimension_numbers, slice_sizes, mode, fill_value=None, **_):
    """XLA's gather (operation semantics, "Gather"): for each batch position b of the indices
    (every dimension but the last), the slice of ``slice_sizes`` starting at the operand index
    whose dimensions ``start_index_map`` take indices[b] and whose ``operand_batching_dims`` take
    b's coordinate along the paired ``start_indices_batching_dims`` (0 elsewhere), clamped into
    bounds, or filled where out of bounds under FILL_OR_DROP; collapsed and batching dimensions
    (size 1) dropped, the others placed at output positions ``offset_dims``, the batch dimensions
    filling the rest in order. Evaluated as one NumPy advanced index."""
    dn = dimension_numbers
    mode_name = getattr(mode, "name", str(mode))
    if mode_name not in ("CLIP", "PROMISE_IN_BOUNDS", "FILL_OR_DROP"):
        raise _Unsupported("gather")
    operand, indices = np.asarray(operand), np.asarray(indices)
    batch_shape = indices.shape[:-1]
    batching = list(zip(getattr(dn, "operand_batching_dims", ()), getattr(dn, "start_indices_batching_dims", ())))
    dropped = set(dn.collapsed_slice_dims) | {d for d, _ in batching}
    kept = [d for d in range(operand.ndim) if d not in dropped]
    rank = len(batch_shape) + len(kept)
    offset_pos = list(dn.offset_dims)
    batch_pos = [p for p in range(rank) if p not in offset_pos]

    def placed(values, positions):
        shape = [1] * rank
        for p, n in zip(positions, values.shape):
            shape[p] = n
        return values.reshape(shape)

    start = np.zeros(batch_shape + (operand.ndim,), dtype=np.int64)
    for k, d in enumerate(dn.start_index_map):
        start[..., d] = indices[..., k]
    for d, axis in batching:        # vmap's gathers: operand dimension d follows the indices' batch axis
        start[..., d] = np.arange(batch_shape[axis]).reshape([-1 if a == axis else 1 for a in range(len(batch_shape))])
    high = np.asarray(operand.shape) - np.asarray(slice_sizes)
    outside = np.any((start < 0) | (start > high), axis=-1)
    start = np.clip(start, 0, high)
    index = []
    for d in range(operand.ndim):
        i = placed(start[..., d], batch_pos)
        if d in kept:
            i = i + placed(np.arange(slice_sizes[d]), [offset_pos[kept.index(d)]])
        index.append(i)
    shape = [0] * rank
    for p, n in zip(batch_pos, batch_shape):
        shape[p] = n
    for p, d in zip(offset_pos, kept):
        shape[p] = slice_sizes[d]
    out = np.broadcast_to(operand[tuple(index)], shape)
    if mode_name == "FILL_OR_DROP" and outside.any():
        if fill_value is None:
            fill_value = np.nan if np.issubdtype(operand.dtype, np.inexact) else (
                True if operand.dtype == bool else np.iinfo(operand.dtype).min
                if np.issubdtype(operand.dtype, np.signedinteger) else np.iinfo(operand.dtype).max)
        out = np.where(placed(outside, batch_pos), np.asarray(fill_value, operand.dtype), out)
    return out


_UNARY = {
    "exp": np.exp, "exp2": np.exp2, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
    "tanh": np.tanh, "sinh": np.sinh, "cosh": np.cosh, "atanh": np.arctanh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "sin": np.sin, "cos": np.cos, "tan": np.tan, "atan": np.arctan,
    "asin": np.arcsin, "acos": np.arccos, "sqrt": np.sqrt, "cbrt": np.cbrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x), "logistic": special.expit, "neg": np.negative,
    "abs": np.abs, "sign": np.sign, "square": np.square, "floor": np.floor, "ceil": np.ceil,
    "lgamma": special.gammaln, "digamma": special.digamma, "erf": special.erf, "erfc": special.erfc,
    "erf_inv": special.erfinv, "not": np.logical_not, "is_finite": np.isfinite,
    "stop_gradient": lambda x: x, "copy": np.copy, "copy_p": np.copy,
}
_BINARY = {
    "add": np.add, "add_any": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide, "pow": np.power,
    "max": np.maximum, "min": np.minimum, "atan2": np.arctan2, "rem": np.fmod, "nextafter": np.nextafter,
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "eq": np.equal,
    "ne": np.not_equal, "and": np.logical_and, "or": np.logical_or,
    "polygamma": lambda m, x: special.polygamma(np.asarray(m).astype(int), x),
    "igamma": special.gammainc, "igammac": special.gammaincc,
}
#: primitive name -> f(*input values, **params)
_OPS: dict[str, Callable] = {
    **{k: (lambda f: lambda x, **_: f(x))(f) for k, f in _UNARY.items()},
    **{k: (lambda f: lambda x, y, **_: f(x, y))(f) for k, f in _BINARY.items()},
    "integer_pow": lambda x, y, **_: np.power(x, y),
    "convert_element_type": lambda x, new_dtype, **_: np.asarray(x).astype(new_dtype),
    "select_n": lambda pred, *cases, **_: _select_n(pred, *cases),
    "broadcast_in_dim": _broadcast_in_dim,
    "slice": _slice,
    "dynamic_slice": _dynamic_slice,
    "reshape": _reshape,
    "squeeze": lambda x, dimensions, **_: np.squeeze(x, axis=tuple(dimensions)),
    "expand_dims": lambda x, dimensions, **_: np.expand_dims(x, tuple(dimensions)),
    "reduce_sum": lambda x, axes, **_: np.sum(x, axis=tuple(axes)),
    "reduce_max": lambda x, axes, **_: np.max(x, axis=tuple(axes)),
    "reduce_min": lambda x, axes, **_: np.min(x, axis=tuple(axes)),
    "concatenate": lambda *xs, dimension, **_: np.concatenate(xs, axis=dimension),
    "clamp": lambda lo, x, hi, **_: np.clip(x, lo, hi),
    "gather": _gather,
}
#: primitives whose body is a traced sub-program: name -> the parameter holding it
_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
          "custom_vjp_call": "call_jaxpr", "remat": "jaxpr", "checkpoint": "jaxpr"}


class _Unsupported(Exception):
    pass


def _run(jaxpr, consts, args):
    env = {}

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    for v, c in zip(jaxpr.constvars, consts):
        env[v] = np.asarray(c)
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        vals = [read(v) for v in eqn.invars]
        if name in _CALLS:
            sub = eqn.params.get(_CALLS[name])
            if sub is None:
                raise _Unsupported(name)
            inner, inner_consts = (sub.jaxpr, sub.consts) if hasattr(sub, "consts") else (sub, ())
            outs = _run(inner, inner_consts, vals)
        elif name in _OPS:
            outs = [_OPS[name](*vals, **eqn.params)]
        else:
            raise _Unsupported(name)
        for v, o in zip(eqn.outvars, outs):
            env[v] = np.asarray(o, dtype=v.aval.dtype)
    return [read(v) for v in jaxpr.outvars]


#: fn -> {argument shapes and dtypes: its traced program, or None where it cannot run on NumPy}
_TRACED: "weakref.WeakKeyDictionary[Callable, dict]" = weakref.WeakKeyDictionary()


def _traced(fn, args) -> tuple[dict, tuple]:
    """(fn's traced programs by argument signature, this call's signature), traced if new. A
    program is (closed jaxpr, output tree), or None where fn cannot run on NumPy."""
    key = tuple((a.shape, a.dtype.str) for a in args)
    try:
        per_fn = _TRACED.setdefault(fn, {})
    except TypeError:       # not weakly referable: traced on every call
        per_fn = {}
    if key not in per_fn:
        try:
            closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        except Exception:   # noqa: BLE001 - not traceable (concrete Python control flow): JAX eagerly
            per_fn[key] = None
        else:
            per_fn[key] = (closed, jax.tree.structure(shapes))
    return per_fn, key


def _evaluate(fn, args) -> tuple[list | None, object]:
    """(fn's flat outputs, or None where it cannot run on NumPy; their tree)."""
    per_fn, key = _traced(fn, args)
    entry = per_fn[key]
    if entry is None:
        return None, None
    closed, tree = entry
    try:
        with np.errstate(all="ignore"):    # inf/NaN follow IEEE arithmetic, as in XLA
            return [np.asarray(o) for o in _run(closed.jaxpr, closed.consts, args)], tree
    except _Unsupported:
        per_fn[key] = None      # JAX from now on
        return None, None


def numpy_eval(fn: Callable, *args) -> np.ndarray:
    """``fn(*args)`` as a NumPy array, ``fn`` written with ``jax.numpy``: traced once per argument
    shape, then run with NumPy (see the module docstring); evaluated by JAX where it uses other
    primitives or does not return one array."""
    args = [np.asarray(a) for a in args]
    outs, _ = _evaluate(fn, args)
    if outs is not None and len(outs) == 1:
        return outs[0]
    return np.asarray(fn(*args))


def numpy_outputs(fn: Callable, *args):
    """``fn(*args)``, any pytree of arrays, computed with NumPy from fn's traced equations; None
    where fn uses a primitive outside the table (the caller then compiles it instead)."""
    args = [np.asarray(a) for a in args]
    outs, tree = _evaluate(fn, args)
    return None if outs is None else jax.tree.unflatten(tree, outs)
