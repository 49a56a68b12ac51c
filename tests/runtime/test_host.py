"""adelia.runtime.host.host_call: host NumPy code inside compiled programs, as pure_callback."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adelia.runtime.host import host_call


def _affine(a, b):
    return 2.0 * np.asarray(a) + np.asarray(b)[:, None]


def _call(a, b):
    return host_call(_affine, jax.ShapeDtypeStruct(a.shape, jnp.float64), a, b)


def _reference(a, b):
    return jax.pure_callback(_affine, jax.ShapeDtypeStruct(a.shape, jnp.float64), a, b, vmap_method="sequential")


@pytest.fixture
def args():
    rng = np.random.default_rng(3)
    return jnp.asarray(rng.normal(size=(5, 3))), jnp.asarray(rng.normal(size=5))


def test_same_values_as_pure_callback_eager_and_jitted(args):
    want = _affine(*args)
    np.testing.assert_array_equal(np.asarray(_call(*args)), want)
    np.testing.assert_array_equal(np.asarray(jax.jit(_call)(*args)), want)
    np.testing.assert_array_equal(np.asarray(jax.jit(_reference)(*args)), want)


def test_vmap_calls_once_per_element(args):
    a, b = args
    seen = []

    def record(x):
        seen.append(np.array(x))
        return np.asarray(x).sum(keepdims=True)

    batch = jnp.stack([a[:, 0], a[:, 1], a[:, 2]])
    out = jax.jit(jax.vmap(lambda x: host_call(record, jax.ShapeDtypeStruct((1,), jnp.float64), x)))(batch)
    np.testing.assert_allclose(np.asarray(out)[:, 0], np.asarray(batch).sum(axis=1))
    assert len(seen) == 3 and all(s.shape == (5,) for s in seen)


def test_scalar_result_inside_a_loop(args):
    a, _ = args

    def body(i, acc):
        return acc + host_call(lambda x: np.array(np.sum(x)), jax.ShapeDtypeStruct((), jnp.float64), a)

    total = jax.jit(lambda: jax.lax.fori_loop(0, 4, body, jnp.zeros(())))()
    assert float(total) == pytest.approx(4 * float(np.sum(a)))


def test_arguments_are_read_not_consumed(args):
    """The function sees the values of its arguments; they are the same afterwards."""
    a, b = args
    a_before = np.array(a)
    jax.block_until_ready(jax.jit(_call)(a, b))
    np.testing.assert_array_equal(np.asarray(a), a_before)


def test_a_failing_host_function_raises():
    def fail(x):
        raise ValueError("host function failed")

    with pytest.raises(Exception, match="host function failed"):
        jax.block_until_ready(jax.jit(lambda x: host_call(fail, jax.ShapeDtypeStruct((2,), jnp.float64), x))(
            jnp.ones(2)))


def test_without_buffer_callback_it_is_pure_callback(args, monkeypatch):
    """A JAX release without the experimental buffer_callback keeps working through pure_callback."""
    import adelia.runtime.host as host

    monkeypatch.setattr(host, "buffer_callback", None)
    used = []
    real = jax.pure_callback
    monkeypatch.setattr(jax, "pure_callback", lambda *a, **k: used.append(1) or real(*a, **k))
    fresh = jax.jit(lambda a, b: host_call(_affine, jax.ShapeDtypeStruct(a.shape, jnp.float64), a, b))
    np.testing.assert_array_equal(np.asarray(fresh(*args)), _affine(*args))
    assert used
