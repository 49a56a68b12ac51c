"""JAX-written functions evaluated on the host with NumPy, without compiling anything.

A model's small functions — θ → natural scale (``exp``, ``tanh(θ/2)``...), log-priors, the
coefficients of Q(θ)'s pieces — are written once with ``jax.numpy`` so the compiled objective
can trace them. The host also needs their values: on a grid for the result tables and plots, at
θ₀ for the sparsity pattern. Called eagerly, each JAX operation is compiled as its own XLA
program for each new shape (10–40 ms apiece on a CPU), which a fresh process paid some 20 times
per fit: 0.2–0.7 s of its time.

:func:`numpy_eval` traces the function once (``jax.make_jaxpr``, microseconds to a millisecond)
and runs the traced equations with the NumPy/SciPy functions of the same primitives. A function
using a primitive outside the table is simply evaluated by JAX as before, so coverage only
decides speed, never the result. :func:`numpy_outputs` does the same for whole programs (any
output tree; gathers, scatters, dot products, Cholesky, LU and triangular solves, scans, while
loops, conds): a tiny model's Gaussian approximation, draws and criteria run this way instead of
being compiled (:class:`adelia.runtime.inference.Program`'s ``host_max``), the caller compiling
where a primitive is not covered. Each primitive follows XLA's operation semantics
(https://openxla.org/xla/operation_semantics); tests compare every one with JAX.
"""

from __future__ import annotations

__all__ = ["numpy_eval", "numpy_outputs"]

import math
import warnings
import weakref
from typing import Callable

import jax
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


#: broadcasts to at most this many entries are copied out: np.broadcast_to's view costs ~4 µs of
#: Python, a small copy under 1 µs (a small model's first fit broadcasts ~4k times)
_BROADCAST_COPY_MAX = 1024


def _broadcast_in_dim(x, shape, broadcast_dimensions, **_):
    x = np.asarray(x)
    expanded = [1] * len(shape)
    for src, dst in enumerate(broadcast_dimensions):
        expanded[dst] = x.shape[src]
    if math.prod(shape) <= _BROADCAST_COPY_MAX:
        out = np.empty(shape, x.dtype)
        out[...] = x.reshape(expanded)
        return out
    return np.broadcast_to(x.reshape(expanded), shape)


def _index_mode(mode) -> str:
    """The name of a gather's or scatter's out-of-bounds mode, where it is one modelled here."""
    name = getattr(mode, "name", str(mode))
    if name not in ("CLIP", "PROMISE_IN_BOUNDS", "FILL_OR_DROP"):
        raise _Unsupported(f"index mode {name}")
    return name


def _placed(values, positions, rank):
    """``values`` reshaped to broadcast along output dimensions ``positions`` of a rank-``rank`` array."""
    shape = [1] * rank
    for p, n in zip(positions, values.shape):
        shape[p] = n
    return values.reshape(shape)


def _starts(indices, ndim, index_map, batching):
    """Per batch position b of ``indices`` (all dimensions but the last), the operand start index:
    dimension ``index_map[k]`` at indices[b, k]; for each (operand dimension d, indices batch axis)
    pair of ``batching`` (vmap's gathers and scatters), d at b's coordinate along that axis; 0 elsewhere."""
    batch_shape = indices.shape[:-1]
    start = np.zeros(batch_shape + (ndim,), dtype=np.int64)
    for k, d in enumerate(index_map):
        start[..., d] = indices[..., k]
    for d, axis in batching:
        start[..., d] = _placed(np.arange(batch_shape[axis]), [axis], len(batch_shape))
    return start


def _gather(operand, indices, *, dimension_numbers, slice_sizes, mode, fill_value=None, **_):
    """XLA's gather (operation semantics, "Gather"): for each batch position b of the indices
    (every dimension but the last), the slice of ``slice_sizes`` starting at the operand index
    whose dimensions ``start_index_map`` take indices[b] and whose ``operand_batching_dims`` take
    b's coordinate along the paired ``start_indices_batching_dims`` (0 elsewhere), clamped into
    bounds, or filled where out of bounds under FILL_OR_DROP; collapsed and batching dimensions
    (size 1) dropped, the others placed at output positions ``offset_dims``, the batch dimensions
    filling the rest in order. Evaluated as one NumPy advanced index."""
    dn = dimension_numbers
    mode_name = _index_mode(mode)
    operand, indices = np.asarray(operand), np.asarray(indices)
    rows = _row_gather(operand, indices, dn, slice_sizes, mode_name)
    if rows is not None:
        return rows
    batch_shape = indices.shape[:-1]
    batching = list(zip(dn.operand_batching_dims, dn.start_indices_batching_dims))
    dropped = set(dn.collapsed_slice_dims) | {d for d, _ in batching}
    kept = [d for d in range(operand.ndim) if d not in dropped]
    rank = len(batch_shape) + len(kept)
    offset_pos = list(dn.offset_dims)
    batch_pos = [p for p in range(rank) if p not in offset_pos]
    start = _starts(indices, operand.ndim, dn.start_index_map, batching)
    high = np.asarray(operand.shape) - np.asarray(slice_sizes)
    outside = np.any((start < 0) | (start > high), axis=-1)
    start = np.clip(start, 0, high)
    index = []
    for d in range(operand.ndim):
        i = _placed(start[..., d], batch_pos, rank)
        if d in kept:
            i = i + _placed(np.arange(slice_sizes[d]), [offset_pos[kept.index(d)]], rank)
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
        out = np.where(_placed(outside, batch_pos, rank), np.asarray(fill_value, operand.dtype), out)
    return out


def _row_gather(operand, indices, dn, slice_sizes, mode_name):
    """The common ``x[rows]`` (whole rows, the indices' batch dimensions first) as one NumPy
    index, rows clamped into bounds as XLA does; None for any other gather, or where
    FILL_OR_DROP meets a row out of bounds (the general path fills it)."""
    lead = indices.ndim - 1
    if (dn.operand_batching_dims or tuple(dn.start_index_map) != (0,) or indices.shape[-1] != 1
            or tuple(dn.collapsed_slice_dims) != (0,) or operand.ndim < 1
            or tuple(slice_sizes) != (1,) + operand.shape[1:]
            or tuple(dn.offset_dims) != tuple(range(lead, lead + operand.ndim - 1))):
        return None
    rows = indices[..., 0].astype(np.int64, copy=False)
    n = operand.shape[0]
    if mode_name == "FILL_OR_DROP" and rows.size and (rows.min() < 0 or rows.max() >= n):
        return None
    return operand[np.clip(rows, 0, n - 1)]


def _scatter(operand, indices, updates, *, dimension_numbers, mode, combine, **_):
    """XLA's scatter (operation semantics, "Scatter") with ``combine`` None (replace) or an
    np.ufunc (scatter-add: np.add): the update element at (b, w) — b the indices' batch position,
    w its window position in ``update_window_dims`` — goes to the operand index whose dimensions
    ``scatter_dims_to_operand_dims`` start at indices[b], the batching dimensions at b's
    coordinate, ``inserted_window_dims`` at 0 and the rest offset by w. Updates whose window
    falls outside the operand are dropped (clip mode clamps the start instead)."""
    dn = dimension_numbers
    mode_name = _index_mode(mode)
    operand, indices, updates = np.array(operand), np.asarray(indices), np.asarray(updates)
    if _row_scatter(operand, indices, updates, dn, mode_name, combine):
        return operand
    batching = list(zip(dn.operand_batching_dims, dn.scatter_indices_batching_dims))
    window = [d for d in range(operand.ndim) if d not in set(dn.inserted_window_dims) | {d for d, _ in batching}]
    upd_batch = [p for p in range(updates.ndim) if p not in dn.update_window_dims]
    start = _starts(indices, operand.ndim, dn.scatter_dims_to_operand_dims, batching)
    extent = np.ones(operand.ndim, dtype=np.int64)
    for d, p in zip(window, dn.update_window_dims):
        extent[d] = updates.shape[p]
    high = np.asarray(operand.shape) - extent
    if mode_name == "CLIP":
        start = np.clip(start, 0, high)
    inside = np.all((start >= 0) & (start <= high), axis=-1)
    index = []
    for d in range(operand.ndim):
        i = _placed(start[..., d], upd_batch, updates.ndim)
        if d in window:
            i = i + _placed(np.arange(extent[d]), [dn.update_window_dims[window.index(d)]], updates.ndim)
        index.append(np.broadcast_to(i, updates.shape))
    keep = np.broadcast_to(_placed(inside, upd_batch, updates.ndim), updates.shape)
    index = tuple(i[keep] for i in index)
    if combine is None:
        operand[index] = updates[keep]
    elif combine is np.add and operand.dtype == np.float64 and updates.size * 8 >= operand.size:
        # a segment sum: bincount adds ~20x faster than np.add.at's indexed loop (the order
        # of the additions is unspecified in XLA too)
        flat = np.ravel_multi_index(index, operand.shape)
        operand += np.bincount(flat, weights=updates[keep], minlength=operand.size).reshape(operand.shape)
    else:
        combine.at(operand, index, updates[keep])
    return operand


def _row_scatter(operand, indices, updates, dn, mode_name, combine) -> bool:
    """The common ``x.at[rows].set/add(u)`` with whole rows as windows, done in place with one
    fancy index (np.add.at's per-element loop only where a row repeats); False, untouched, for
    any other scatter."""
    lead = indices.ndim - 1
    if (dn.operand_batching_dims or tuple(dn.scatter_dims_to_operand_dims) != (0,) or indices.shape[-1] != 1
            or tuple(dn.inserted_window_dims) != (0,) or operand.ndim < 1
            or tuple(dn.update_window_dims) != tuple(range(lead, updates.ndim))
            or updates.shape[lead:] != operand.shape[1:]):
        return False
    rows = indices.reshape(-1).astype(np.int64)
    upd = updates.reshape((-1,) + operand.shape[1:])
    n = operand.shape[0]
    if mode_name == "CLIP":
        rows = np.clip(rows, 0, n - 1)
    else:
        inside = (rows >= 0) & (rows < n)
        if not inside.all():
            rows, upd = rows[inside], upd[inside]
    if combine is None:
        operand[rows] = upd
    elif len(rows) and np.bincount(rows, minlength=n).max() > 1:
        combine.at(operand, rows, upd)
    else:
        operand[rows] = combine(operand[rows], upd)
    return True


def _dot_general(lhs, rhs, *, dimension_numbers, preferred_element_type=None, **_):
    """Batch dimensions first, then lhs's free dimensions, then rhs's (as XLA's DotGeneral)."""
    (lc, rc), (lb, rb) = dimension_numbers
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    ls, rs = [None] * np.ndim(lhs), [None] * np.ndim(rhs)
    for a, b in zip(lb, rb):
        ls[a] = rs[b] = next(letters)
    for a, b in zip(lc, rc):
        ls[a] = rs[b] = next(letters)
    batch = [ls[a] for a in lb]
    for i in range(len(ls)):
        ls[i] = ls[i] or next(letters)
    for i in range(len(rs)):
        rs[i] = rs[i] or next(letters)
    free_l = [ls[i] for i in range(len(ls)) if i not in lb and i not in lc]
    free_r = [rs[i] for i in range(len(rs)) if i not in rb and i not in rc]
    out = np.einsum(f"{''.join(ls)},{''.join(rs)}->{''.join(batch + free_l + free_r)}", lhs, rhs)
    return out if preferred_element_type is None else out.astype(preferred_element_type)


def _pad(x, value, *, padding_config, **_):
    x = np.asarray(x)
    for axis, (lo, hi, interior) in enumerate(padding_config):
        n = x.shape[axis]
        if interior and n > 1:
            shape = list(x.shape)
            shape[axis] = n + (n - 1) * interior
            spread = np.full(shape, value, dtype=x.dtype)
            where = [slice(None)] * x.ndim
            where[axis] = slice(None, None, interior + 1)
            spread[tuple(where)] = x
            x = spread
        parts = []
        for width in (lo, hi):
            shape = list(x.shape)
            shape[axis] = max(width, 0)
            parts.append(np.full(shape, value, dtype=x.dtype))
        x = np.concatenate([parts[0], x, parts[1]], axis=axis)
        keep = [slice(None)] * x.ndim
        keep[axis] = slice(max(-lo, 0), x.shape[axis] - max(-hi, 0))
        x = x[tuple(keep)]
    return x


def _cholesky(x, **_):
    """Lower factor; NaN where a matrix is not positive definite (as jax's CPU lowering)."""
    x = np.asarray(x)
    flat = x.reshape((-1,) + x.shape[-2:])
    out = np.empty_like(flat)
    for k, a in enumerate(flat):
        try:
            out[k] = np.linalg.cholesky(np.tril(a) + np.tril(a, -1).T)
        except np.linalg.LinAlgError:
            out[k] = np.nan
    return out.reshape(x.shape)


def _triangular_solve(a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal, **_):
    """op(a) x = b (``left_side``) or x op(a) = b, a triangular, batched over leading dimensions."""
    from scipy.linalg import solve_triangular

    a, b = np.asarray(a), np.asarray(b)
    if conjugate_a and np.iscomplexobj(a):
        raise _Unsupported("triangular_solve conjugate")
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a_ = np.broadcast_to(a, batch + a.shape[-2:]).reshape((-1,) + a.shape[-2:])
    b_ = np.broadcast_to(b, batch + b.shape[-2:]).reshape((-1,) + b.shape[-2:])
    out = np.empty(b_.shape, dtype=np.result_type(a, b))
    for k in range(len(b_)):
        if left_side:
            out[k] = solve_triangular(a_[k], b_[k], lower=lower, trans=1 if transpose_a else 0,
                                      unit_diagonal=unit_diagonal)
        else:   # x op(a) = b  <=>  op(a)ᵀ xᵀ = bᵀ
            out[k] = solve_triangular(a_[k], b_[k].T, lower=lower, trans=0 if transpose_a else 1,
                                      unit_diagonal=unit_diagonal).T
    return out.reshape(batch + b.shape[-2:])


def _lu(x, **_):
    """(LU packed, LAPACK's 0-based row swaps, the permutation they make), as jax.lax.linalg.lu."""
    from scipy.linalg import lu_factor

    x = np.asarray(x)
    m, n = x.shape[-2:]
    flat = x.reshape((-1, m, n))
    lu, pivots, perms = np.empty_like(flat), np.empty((len(flat), min(m, n)), np.int32), np.empty((len(flat), m), np.int32)
    for k, a in enumerate(flat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # a singular matrix: LAPACK's factors, as XLA's
            lu[k], pivots[k] = lu_factor(a, check_finite=False)
        perm = np.arange(m)
        for i, j in enumerate(pivots[k]):
            perm[[i, j]] = perm[[j, i]]
        perms[k] = perm
    return [lu.reshape(x.shape), pivots.reshape(x.shape[:-2] + (min(m, n),)), perms.reshape(x.shape[:-2] + (m,))]


def _iota(*, dtype, shape, dimension, **_):
    values = np.arange(shape[dimension], dtype=dtype)
    return np.broadcast_to(values.reshape([-1 if a == dimension else 1 for a in range(len(shape))]), shape)


def _platform_index(*, platforms, **_):
    default = None
    for i, names in enumerate(platforms):
        if names is None:
            default = i
        elif "cpu" in names:
            return np.int32(i)
    if default is None:
        raise _Unsupported("platform_index")
    return np.int32(default)


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


def _integer_pow(x, y: int):
    """x**y by repeated squaring, as XLA expands it (np.power's general pow is 10–20× slower on
    floats)."""
    x = np.asarray(x)
    if y < 0:
        return 1 / _integer_pow(x, -y)
    out, base = np.ones_like(x), x
    while y:
        if y & 1:
            out = out * base
        y >>= 1
        if y:
            base = base * base
    return out


def _sort(*operands, dimension, num_keys, **_):
    """All operands reordered by the first ``num_keys`` of them along ``dimension``
    (lexicographically, first key most significant; stable, as np.lexsort)."""
    keys = [np.asarray(k) for k in operands[:num_keys]]
    if num_keys == 1:
        order = np.argsort(keys[0], axis=dimension, kind="stable")
    else:
        moved = [np.moveaxis(k, dimension, -1) for k in keys]
        order = np.moveaxis(np.lexsort(moved[::-1], axis=-1), -1, dimension)
    return [np.take_along_axis(np.asarray(o), order, axis=dimension) for o in operands]


def _eigh(x, *, lower, sort_eigenvalues=True, subset_by_index=None, **_):
    """(eigenvectors, eigenvalues) from the ``lower`` (or upper) triangle, eigenvalues ascending
    (LAPACK's syevd, as XLA's CPU kernel); eigenvector signs are LAPACK's."""
    if subset_by_index is not None and tuple(subset_by_index) != (0, np.shape(x)[-1]):
        raise _Unsupported("eigh of an index subset")
    w, v = np.linalg.eigh(x, UPLO="L" if lower else "U")
    return [v, w]


def _buffer_callback(*args, callback, result_avals, input_output_aliases=(), **_):
    """A host function called from the program (:func:`adelia.runtime.host.host_call` on CPU):
    called here directly, writing its one result into a fresh array (``ctx``, XLA's execution
    context, is None: host_call's functions do not read it)."""
    if input_output_aliases or len(result_avals) != 1:
        raise _Unsupported("buffer_callback with aliased or several results")
    out = np.empty(result_avals[0].shape, result_avals[0].dtype)
    callback(None, out, *args)
    return [out]


def _pure_callback(*args, callback, result_avals, **_):
    return [np.asarray(o, dtype=a.dtype).reshape(a.shape) for o, a in zip(callback(*args), result_avals)]


#: primitive name -> f(*input values, **params) (a list where the primitive has several results)
_OPS: dict[str, Callable] = {
    **{k: (lambda f: lambda x, **_: f(x))(f) for k, f in _UNARY.items()},
    **{k: (lambda f: lambda x, y, **_: f(x, y))(f) for k, f in _BINARY.items()},
    "integer_pow": lambda x, y, **_: _integer_pow(x, y),
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
    "scatter": lambda x, i, u, **p: _scatter(x, i, u, combine=None, **p),
    "scatter-add": lambda x, i, u, **p: _scatter(x, i, u, combine=np.add, **p),
    "dot_general": _dot_general,
    "pad": _pad,
    "transpose": lambda x, permutation, **_: np.transpose(x, permutation),
    "iota": _iota,
    "cholesky": _cholesky,
    "triangular_solve": _triangular_solve,
    "lu": _lu,
    "platform_index": _platform_index,
    "reduce_and": lambda x, axes, **_: np.all(x, axis=tuple(axes)),
    "reduce_or": lambda x, axes, **_: np.any(x, axis=tuple(axes)),
    "argmax": lambda x, axes, index_dtype, **_: np.argmax(x, axis=axes[0]).astype(index_dtype),
    "argmin": lambda x, axes, index_dtype, **_: np.argmin(x, axis=axes[0]).astype(index_dtype),
    "sort": _sort,
    "split": lambda x, sizes, axis, **_: np.split(x, np.cumsum(sizes)[:-1].astype(int), axis=axis),
    "eigh": _eigh,
    "buffer_callback": _buffer_callback,
    "pure_callback": _pure_callback,
}
#: primitives whose body is a traced sub-program: name -> the parameter holding it
_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
          "custom_vjp_call": "call_jaxpr", "remat": "jaxpr", "checkpoint": "jaxpr"}


class _Unsupported(Exception):
    pass


#: jaxpr -> its equations prepared for :func:`_run` (built on first use)
_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

_OP, _OP_MULTIPLE, _CONTROL_FLOW, _CALL, _ELEMENTWISE = range(5)


def _is_literal(v) -> bool:
    """Whether a jaxpr input is a literal (``jax.extend.core.Literal``: a constant with ``val``, where
    a variable has none), told without importing ``jax.extend``, whose package imports Pallas:
    20 ms of every new process."""
    return hasattr(v, "val")


def _plan(jaxpr) -> list[tuple]:
    """Per equation: (kind, rule or sub-program, inputs as (is_literal, value or variable),
    output variables, their dtypes, params). Literals become NumPy scalars of their dtype once
    (JAX's literal objects cost microseconds per arithmetic use)."""
    steps = _PLANS.get(jaxpr)
    if steps is not None:
        return steps
    steps = []
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        ins = tuple((True, np.asarray(v.val, dtype=v.aval.dtype)) if _is_literal(v) else (False, v)
                    for v in eqn.invars)
        if name in _CONTROL:
            kind, rule = _CONTROL_FLOW, _CONTROL[name]
        elif name in _CALLS:
            sub = eqn.params.get(_CALLS[name])
            if sub is None:
                raise _Unsupported(name)
            kind, rule = _CALL, (sub.jaxpr, sub.consts) if hasattr(sub, "consts") else (sub, ())
        elif name in _UNARY or name in _BINARY:
            # the NumPy function itself, called without the params (none matters for these):
            # most equations are elementwise, and a small model's first fit runs ~25k of them
            kind, rule = _ELEMENTWISE, _UNARY.get(name) or _BINARY[name]
        elif name in _OPS:
            kind, rule = (_OP_MULTIPLE if eqn.primitive.multiple_results else _OP), _OPS[name]
        else:
            raise _Unsupported(name)
        steps.append((kind, rule, ins, tuple(eqn.outvars), tuple(v.aval.dtype for v in eqn.outvars), eqn.params))
    _PLANS[jaxpr] = steps
    return steps


def _run(jaxpr, consts, args):
    env = {}
    for v, c in zip(jaxpr.constvars, consts):
        env[v] = np.asarray(c)
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    for kind, rule, ins, outvars, dtypes, params in _plan(jaxpr):
        vals = [x if literal else env[x] for literal, x in ins]
        if kind == _ELEMENTWISE:
            outs = (rule(*vals),)
        elif kind == _OP:
            outs = (rule(*vals, **params),)
        elif kind == _OP_MULTIPLE:
            outs = rule(*vals, **params)
        elif kind == _CONTROL_FLOW:
            outs = rule(vals, **params)
        else:
            outs = _run(rule[0], rule[1], vals)
        for v, o, dtype in zip(outvars, outs, dtypes):
            env[v] = np.asarray(o, dtype=dtype)
    return [v.val if _is_literal(v) else env[v] for v in jaxpr.outvars]


def _closed(sub, args):
    return _run(sub.jaxpr, sub.consts, args)


def _scan(vals, *, jaxpr, length, reverse, ft_in=None, num_consts=None, num_carry=None, **_):
    if ft_in is not None:       # JAX ≥ 0.9 groups the operands as a flat tree (consts, carry, xs)
        consts, carry, xs = (list(group) for group in ft_in.update(vals).unpack())
        num_carry = len(carry)
    elif num_consts is not None and num_carry is not None:
        consts, carry, xs = vals[:num_consts], vals[num_consts:num_consts + num_carry], vals[num_consts + num_carry:]
    else:
        raise _Unsupported("scan")
    ys = []
    for i in (range(length - 1, -1, -1) if reverse else range(length)):
        out = _closed(jaxpr, [*consts, *carry, *(x[i] for x in xs)])
        carry, y = out[:num_carry], out[num_carry:]
        ys.append(y)
    if reverse:
        ys.reverse()
    stacked = [np.stack([y[k] for y in ys]) if ys else np.zeros((0,) + tuple(v.aval.shape), v.aval.dtype)
               for k, v in enumerate(jaxpr.jaxpr.outvars[num_carry:])]
    return [*carry, *stacked]


def _while(vals, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts, **_):
    cc, bc, carry = vals[:cond_nconsts], vals[cond_nconsts:cond_nconsts + body_nconsts], vals[cond_nconsts + body_nconsts:]
    while bool(_closed(cond_jaxpr, [*cc, *carry])[0]):
        carry = _closed(body_jaxpr, [*bc, *carry])
    return carry


def _custom_linear_solve(vals, *, const_lengths, jaxprs, **_):
    """The forward solve: the ``solve`` program on its constants and the right-hand side."""
    counts = [const_lengths.matvec, const_lengths.vecmat, const_lengths.solve, const_lengths.transpose_solve]
    start = sum(counts[:2])
    return _closed(jaxprs.solve, [*vals[start:start + counts[2]], *vals[sum(counts):]])


def _cond(vals, *, branches, **_):
    index = int(np.clip(vals[0], 0, len(branches) - 1))
    return _closed(branches[index], vals[1:])


#: control flow: name -> f(input values, **params) -> output values
_CONTROL = {"scan": _scan, "while": _while, "cond": _cond, "custom_linear_solve": _custom_linear_solve}


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


def _evaluate(fn, args, one_output: bool = False) -> tuple[list | None, object]:
    """(fn's flat outputs, or None where it cannot run on NumPy, or has several outputs while
    ``one_output`` asks for one; their tree)."""
    per_fn, key = _traced(fn, args)
    entry = per_fn[key]
    if entry is None or (one_output and entry[1].num_leaves != 1):
        return None, None
    closed, tree = entry
    try:
        with np.errstate(all="ignore"):    # inf/NaN follow IEEE arithmetic, as in XLA
            return [np.asarray(o) for o in _run(closed.jaxpr, closed.consts, args)], tree
    except Exception:  # noqa: BLE001 - an uncovered primitive, or a case a rule did not foresee
        per_fn[key] = None      # JAX from now on: the interpreter costs speed, never a result
        return None, None


def numpy_eval(fn: Callable, *args) -> np.ndarray:
    """``fn(*args)`` as a NumPy array, ``fn`` written with ``jax.numpy``: traced once per argument
    shape, then run with NumPy (see the module docstring); evaluated by JAX where it uses other
    primitives or does not return one array."""
    args = [np.asarray(a) for a in args]
    outs, _ = _evaluate(fn, args, one_output=True)
    return outs[0] if outs is not None else np.asarray(fn(*args))


def numpy_outputs(fn: Callable, *args):
    """``fn(*args)``, any pytree of arrays, computed with NumPy from fn's traced equations; None
    where fn uses a primitive outside the table, or an argument is not concrete (a tracer: the
    caller is being traced), and the caller compiles it instead."""
    if any(isinstance(a, jax.core.Tracer) for a in args):
        return None
    args = [np.asarray(a) for a in args]
    outs, tree = _evaluate(fn, args)
    return None if outs is None else jax.tree.unflatten(tree, outs)
