"""adelia.runtime.arrays.device: host arrays onto the device without compiling a program."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adelia.runtime.arrays import device


@pytest.mark.parametrize("value", [np.arange(7), np.linspace(0, 1, 5), np.array([True, False]), 2.5, [1.0, 2.0]])
def test_same_values_and_dtype_as_numpy(value):
    out = device(value)
    assert isinstance(out, jax.Array)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(value))
    assert out.dtype == np.asarray(value).dtype
    assert device(value, dtype=np.float64).dtype == np.float64


def test_jax_arrays_and_tracers_pass_through():
    x = jnp.arange(3.0)
    assert device(x) is x
    assert jax.jit(lambda v: device(v) * 2)(x).tolist() == [0.0, 2.0, 4.0]


def test_compiles_nothing(caplog):
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        device(np.arange(37, dtype=np.int64) * 3)
        device(np.linspace(0.0, 1.0, 43))
    assert not [r for r in caplog.records if "ompil" in r.getMessage()]
