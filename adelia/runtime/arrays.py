"""Host data onto the device without compiling anything.

``jnp.asarray`` of a NumPy array runs a conversion program compiled for each new shape and
dtype (8–12 ms each in a new process, JAX 0.12 on CPU): a model's set-up converts a few dozen
arrays, a third of a small fit's time in a new process. ``jax.device_put`` copies the buffer
and compiles nothing.
"""

from __future__ import annotations

__all__ = ["device"]

import jax
import numpy as np


def device(x, dtype=None) -> jax.Array:
    """``x`` (NumPy array, scalar or nested sequence) as a JAX array of the same values and
    NumPy's dtype (or ``dtype``); a JAX array (or tracer) is returned as it is."""
    if isinstance(x, jax.Array):
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    return jax.device_put(np.asarray(x, dtype=dtype))
