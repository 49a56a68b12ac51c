"""Host (NumPy / CHOLMOD) code called from inside compiled JAX programs.

:func:`host_call` is ``jax.pure_callback`` with ``vmap_method="sequential"``, made cheaper on
the CPU backend. ``pure_callback`` first copies each argument into a new ``jax.Array`` (a
``device_put`` per argument) and copies the result back into XLA's buffer: about 100 µs per call
on a 2-core x86 CPU (JAX 0.12), paid a few hundred times per fit of a sparse model (every
factorisation, solve and selected inversion of the inner Newton iterations is a callback). On
CPU the arguments already are host memory, so :func:`jax.experimental.buffer_callback.buffer_callback`
hands them to the function as zero-copy NumPy views and lets it write its result straight into
the output buffer: about 5 µs per call. Other backends keep ``pure_callback`` (its copies are the
device-to-host transfers they need).

The views are valid only during the call: a host function that keeps an argument (a cache key,
say) must copy it, as :mod:`adelia.runtime.sparse` does.
"""

from __future__ import annotations

__all__ = ["host_call"]

from typing import Callable

import jax
import numpy as np


try:            # experimental in JAX: a release without it keeps pure_callback everywhere
    from jax.experimental.buffer_callback import buffer_callback
except ImportError:     # pragma: no cover - depends on the installed JAX
    buffer_callback = None


def host_call(fn: Callable[..., np.ndarray], result: jax.ShapeDtypeStruct, *args) -> jax.Array:
    """``fn(*args)`` (NumPy arrays in, one NumPy array of ``result``'s shape out) evaluated on
    the host inside a traced program; under ``vmap`` one call per batch element."""
    if buffer_callback is None or jax.default_backend() != "cpu":
        return jax.pure_callback(fn, result, *args, vmap_method="sequential")
    return _buffer_call(fn, result)(*args)


def _buffer_call(fn, result):
    def write(ctx, out, *bufs):
        np.asarray(out)[...] = fn(*(np.asarray(b) for b in bufs))

    return buffer_callback(write, result, vmap_method="sequential")
