"""adelia.runtime.numpy_eval: JAX-written maps evaluated with NumPy equal JAX's own values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from adelia.compiler.families.base import HyperSpec
from adelia.compiler.latent import LATENT
from adelia.compiler.likelihoods import FAMILIES
from adelia.compiler.priors import make_prior
from adelia.runtime import numpy_eval as ne
from adelia.runtime.numpy_eval import numpy_eval

GRID = np.linspace(-4.0, 4.0, 33)


def _specs() -> list[HyperSpec]:
    specs = {}
    for name in LATENT.names():
        for h in LATENT.get(name).hyper_specs():
            specs.setdefault((h.label, h.to_natural, h.prior), h)
    for name in FAMILIES.names():
        for h in FAMILIES.get(name).hypers:
            specs.setdefault((h.label, h.to_natural, h.prior), h)
    return list(specs.values())


def _on_numpy(fn, *args) -> np.ndarray:
    """numpy_eval's value, failing where it would have fallen back on JAX."""
    args = [np.asarray(a) for a in args]
    per_fn, key = ne._traced(fn, args)
    assert per_fn[key] is not None, "not traceable"
    closed, tree = per_fn[key]
    assert tree.num_leaves == 1, "not one output"
    with np.errstate(all="ignore"):
        return np.asarray(ne._run(closed.jaxpr, closed.consts, args)[0])


@pytest.mark.parametrize("spec", _specs(), ids=lambda h: h.label.format(name="x"))
def test_registered_maps_and_default_priors_run_on_numpy_and_equal_jax(spec):
    prior = make_prior(spec.prior[0], spec.prior[1], spec.scale)
    fns = [spec.to_natural] + ([prior.logpdf] if prior.bind is None and not prior.joint else [])
    for fn in fns:
        want = np.asarray(fn(jnp.asarray(GRID)))
        got = _on_numpy(fn, GRID)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
        np.testing.assert_array_equal(numpy_eval(fn, GRID), got)


def test_graph_bound_priors_of_a_compiled_model():
    """bym2's PC prior on φ sums over the graph's eigenvalues: scalar-only, evaluated through vmap."""
    import pandas as pd
    import scipy.sparse as sp

    import adelia

    n = 12
    ring = sp.coo_matrix((np.ones(n), (np.arange(n), (np.arange(n) + 1) % n)), shape=(n, n))
    graph = sp.csr_matrix(((ring + ring.T) > 0).astype(float))
    data = pd.DataFrame({"y": np.arange(n) % 4, "region": np.arange(n)})
    model = adelia.compile_formula("y ~ 1 + f(region, model = 'bym2', graph = g)", data, "poisson",
                                   objects={"g": graph})
    grid = np.linspace(-3.0, 3.0, 9)
    for t in model.thetas:
        fn = jax.vmap(t.prior.logpdf)
        np.testing.assert_allclose(_on_numpy(fn, grid), np.asarray(fn(jnp.asarray(grid))), rtol=1e-12)


def test_slices_reductions_selects_broadcasts_and_nested_jit():
    inner = jax.jit(lambda v: jnp.where(v > 0, jnp.log1p(v * v), -v))

    def fn(th):
        head = th[1:4] * jnp.exp(th[0]) + th[-1]
        return jnp.concatenate([inner(head), jnp.sum(th ** 2, keepdims=True), jnp.tanh(th[:2] / 2.0)])

    th = np.array([0.3, -1.2, 2.5, 0.0, 4.0])
    np.testing.assert_allclose(_on_numpy(fn, th), np.asarray(fn(jnp.asarray(th))), rtol=1e-13)


@pytest.mark.parametrize("rows", [1, 3, 2000])    # small broadcasts are copied, large ones views
def test_broadcasts_small_and_large(rows):
    def fn(v, s):
        wide = jnp.broadcast_to(v[None, :], (rows, v.shape[0]))       # broadcast_in_dim of a vector
        return wide * s + jnp.broadcast_to(s, (rows, 1)) + jnp.arange(rows)[:, None]

    v, s = np.linspace(-1.0, 1.0, 7), np.asarray(0.5)
    np.testing.assert_allclose(_on_numpy(fn, v, s), np.asarray(fn(jnp.asarray(v), jnp.asarray(s))), rtol=1e-15)


def test_vmapped_scalar_function():
    fn = jax.vmap(lambda t: jnp.sum(jnp.exp(t * jnp.arange(1.0, 4.0))))
    np.testing.assert_allclose(numpy_eval(fn, GRID), np.asarray(fn(jnp.asarray(GRID))), rtol=1e-13)


def test_unsupported_primitive_falls_back_on_jax():
    fn = lambda t: jnp.cumsum(t)    # noqa: E731 - cumsum has no NumPy twin here
    np.testing.assert_allclose(numpy_eval(fn, GRID), np.cumsum(GRID), rtol=1e-13)


def test_untraceable_function_falls_back_on_jax():
    fn = lambda t: jnp.asarray(float(t) ** 2)   # noqa: E731 - concrete Python float(): not traceable
    assert float(numpy_eval(fn, 1.5)) == 2.25


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 6), elements=st.floats(-30, 30)))
def test_arithmetic_matches_jax(x):
    fn = lambda t: jnp.maximum(jnp.exp(-t / 2.0) * 3.0 - t ** 3, jax.nn.sigmoid(t)) / (1.0 + t * t)  # noqa: E731
    np.testing.assert_allclose(numpy_eval(fn, x), np.asarray(fn(jnp.asarray(x))), rtol=1e-12)


def test_reshape_with_a_transpose_falls_back_on_jax():
    fn = lambda t: jax.lax.reshape(t.reshape(2, 3), (6,), dimensions=(1, 0))   # noqa: E731
    x = np.arange(6.0)
    np.testing.assert_array_equal(numpy_eval(fn, x), np.asarray(fn(jnp.asarray(x))))
    np.testing.assert_array_equal(numpy_eval(fn, x), x.reshape(2, 3).T.ravel())


_X3 = np.random.default_rng(0).normal(size=(4, 5, 6))
_GATHERS = [
    ("rows", lambda x, i: x[i], (np.array([0, 3, -1]),)),
    ("2-D index", lambda x, i: x[:, i], (np.array([[0, 4], [2, 2]]),)),
    ("last axis", lambda x, i: x[:, :, i], (np.array([5, 0]),)),
    ("two index arrays", lambda x, i, j: x[i, j], (np.array([0, 3]), np.array([1, 4]))),
    ("split index arrays", lambda x, i, j: x[i, :, j], (np.array([0, 3]), np.array([1, 5]))),
    ("fill", lambda x, i: x.at[i].get(mode="fill", fill_value=-7.0), (np.array([0, 9, -9]),)),
    ("clip", lambda x, i: x.at[i].get(mode="clip"), (np.array([0, 9, -9]),)),
    ("take", lambda x, i: jnp.take(x, i, axis=1), (np.array([[1, 2, 3]]),)),
    ("vmap over both", lambda x, i: jax.vmap(lambda r, k: r[k])(x, i), (np.array([0, 1, 2, 3]),)),
    ("vmap over indices", lambda x, i: jax.vmap(lambda k: x[k, k])(i), (np.array([0, 1, 2, 3]),)),
    ("index and slice", lambda x, i: x[i, 1:4], (np.array([2, 1]),)),
    ("rows by a 2-D index", lambda x, i: x[i], (np.array([[3, 0], [1, 1]]),)),
    ("rows, fill in bounds", lambda x, i: x.at[i].get(mode="fill", fill_value=-7.0), (np.array([3, 1]),)),
]


@pytest.mark.parametrize("fn,indices", [g[1:] for g in _GATHERS], ids=[g[0] for g in _GATHERS])
def test_gathers_run_on_numpy_and_equal_jax(fn, indices):
    """XLA's gather, as jnp indexing and vmap emit it (batching dimensions, clip and fill modes)."""
    from adelia.runtime.numpy_eval import numpy_outputs

    got = numpy_outputs(fn, _X3, *indices)
    assert got is not None, "fell back"
    np.testing.assert_array_equal(got, np.asarray(fn(jnp.asarray(_X3), *map(jnp.asarray, indices))))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.data())
def test_random_row_and_column_gathers_equal_jax(n, k, data):
    from adelia.runtime.numpy_eval import numpy_outputs

    x = np.arange(n * 3.0).reshape(n, 3)
    rows = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=k, max_size=k)))
    cols = np.array(data.draw(st.lists(st.integers(-3, 2), min_size=k, max_size=k)))
    for fn, args in ((lambda x, r: x[r], (rows,)), (lambda x, r, c: x[r, c], (rows, cols)),
                     (lambda x, r: jax.vmap(lambda v: x[v])(r), (rows,))):
        got = numpy_outputs(fn, x, *args)
        assert got is not None
        np.testing.assert_array_equal(got, np.asarray(fn(jnp.asarray(x), *map(jnp.asarray, args))))


def _host(fn, x):
    from adelia.runtime.host import host_call

    return host_call(fn, jax.ShapeDtypeStruct(x.shape, x.dtype), x)


def _spd(n, seed=1):
    a = np.random.default_rng(seed).normal(size=(n, n))
    return a @ a.T + n * np.eye(n)


_R = np.random.default_rng(2)
_PROGRAMS = [
    ("dot_general batched", lambda a, b: jnp.einsum("bij,bjk->bik", a, b), (_R.normal(size=(2, 3, 4)), _R.normal(size=(2, 4, 5)))),
    ("dot_general contract two", lambda a, b: jnp.tensordot(a, b, axes=([0, 2], [1, 0])), (_R.normal(size=(3, 4, 5)), _R.normal(size=(5, 3, 2)))),
    ("matvec", lambda a, b: a @ b, (_R.normal(size=(4, 3)), _R.normal(size=3))),
    ("pad", lambda a: jax.lax.pad(a, -1.5, [(2, -1, 1), (-1, 3, 0)]), (_R.normal(size=(4, 5)),)),
    ("scatter-add duplicates", lambda a, i, u: a.at[i].add(u), (np.zeros(5), np.array([0, 2, 2, 4]), _R.normal(size=4))),
    ("scatter set 2-D", lambda a, i, u: a.at[:, i].set(u), (np.zeros((3, 5)), np.array([1, 3]), _R.normal(size=(3, 2)))),
    ("scatter-add dropped", lambda a, i, u: a.at[i].add(u, mode="drop"), (np.zeros(5), np.array([1, 7]), np.ones(2))),
    ("row scatter-add", lambda a, i, u: a.at[i].add(u), (np.ones((4, 3)), np.array([2, 0, 3]), _R.normal(size=(3, 3)))),
    ("row scatter-add repeated", lambda a, i, u: a.at[i].add(u), (np.ones((4, 3)), np.array([2, 0, 2]), _R.normal(size=(3, 3)))),
    ("row scatter-add dropped", lambda a, i, u: a.at[i].add(u, mode="drop"),
     (np.ones((4, 3)), np.array([5, 1]), _R.normal(size=(2, 3)))),
    ("row scatter clipped", lambda a, i, u: a.at[i].set(u, mode="clip"),
     (np.ones((4, 2, 2)), np.array([7, 1]), _R.normal(size=(2, 2, 2)))),
    ("vmapped scatter", lambda a, i: jax.vmap(lambda r, k: r.at[k].add(1.0))(a, i), (np.zeros((3, 4)), np.array([0, 3, 1]))),
    ("cholesky", lambda a: jnp.linalg.cholesky(a), (_spd(4),)),
    ("cholesky not definite", lambda a: jnp.linalg.cholesky(a), (-_spd(3),)),
    ("solve", lambda a, b: jnp.linalg.solve(a, b), (_spd(4), _R.normal(size=(4, 2)))),
    ("cho_solve", lambda a, b: jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(a), True), b), (_spd(5), _R.normal(size=5))),
    ("triangular right upper transposed", lambda a, b: jax.lax.linalg.triangular_solve(
        jnp.triu(a), b, left_side=False, lower=False, transpose_a=True), (_spd(3), _R.normal(size=(2, 3)))),
    ("triangular left unit", lambda a, b: jax.lax.linalg.triangular_solve(
        jnp.tril(a), b, left_side=True, lower=True, unit_diagonal=True), (_spd(3), _R.normal(size=(3, 2)))),
    ("inverse", lambda a: jnp.linalg.inv(a), (_spd(4),)),
    ("slogdet", lambda a: jnp.linalg.slogdet(a)[1], (_spd(4),)),
    ("iota", lambda a: a + jnp.arange(6).reshape(2, 3), (_R.normal(size=(2, 3)),)),
    ("map", lambda a: jax.lax.map(lambda r: jnp.sum(r ** 2), a), (_R.normal(size=(4, 3)),)),
    ("scan with carry, reversed", lambda a: jax.lax.scan(lambda c, r: (c + r, c * r), jnp.zeros(3), a, reverse=True),
     (_R.normal(size=(4, 3)),)),
    ("while", lambda a: jax.lax.while_loop(lambda s: s[1] < 5, lambda s: (s[0] * 1.5, s[1] + 1), (a, 0))[0],
     (_R.normal(size=3),)),
    ("switch", lambda a, k: jax.lax.switch(k, [jnp.sin, jnp.cos, jnp.exp], a), (_R.normal(size=3), np.array(1))),
    ("argmax", lambda a: jnp.argmax(a, axis=1), (_R.normal(size=(3, 4)),)),
    ("sort by one key", lambda a, b: jax.lax.sort((a, b), num_keys=1), (_R.normal(size=(3, 5)), _R.normal(size=(3, 5)))),
    ("sort by two keys", lambda a, b: jax.lax.sort((a, b), dimension=0, num_keys=2),
     (np.array([[2.0], [1.0], [2.0], [1.0]]), np.array([[0.5], [0.7], [-1.0], [0.1]]))),
    ("split", lambda a: jnp.split(a, [1, 3], axis=1), (_R.normal(size=(2, 5)),)),
    ("argsort", lambda a: jnp.argsort(a), (_R.normal(size=7),)),
    # eigenvector signs are LAPACK's on both sides; V diag(λ^-½) Vᵀ (the low-rank sampler's use) has none
    ("eigh", lambda a: (lambda w, v: ((v / jnp.sqrt(w)) @ v.T, w))(*jnp.linalg.eigh(a)), (_spd(4),)),
    # host functions inside the program (the sparse path's CHOLMOD calls), run under vmap too
    ("host_call", lambda a: jax.vmap(lambda r: 1.0 + _host(np.cumsum, r))(a), (_R.normal(size=(3, 4)),)),
    ("pure_callback", lambda a: 2.0 * jax.pure_callback(np.cumsum, jax.ShapeDtypeStruct(a.shape, a.dtype), a,
                                                        vmap_method="sequential"), (_R.normal(size=5),)),
]


@pytest.mark.parametrize("fn,args", [p[1:] for p in _PROGRAMS], ids=[p[0] for p in _PROGRAMS])
def test_linear_algebra_scatter_and_control_flow_run_on_numpy_and_equal_jax(fn, args):
    """The primitives of the Gaussian approximation and the sampler (tiny dense models run them
    on NumPy): every output equal to JAX's, NaN where JAX gives NaN."""
    from adelia.runtime.numpy_eval import numpy_outputs

    got = numpy_outputs(fn, *args)
    assert got is not None, "fell back"
    want = fn(*map(jnp.asarray, args))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-12, atol=1e-12)


def test_a_rule_that_fails_falls_back_to_jax(monkeypatch):
    """Any error inside the NumPy rules (not only an uncovered primitive) hands the call back to
    JAX: the interpreter can cost speed, never a traceback or a result."""
    from adelia.runtime.numpy_eval import numpy_outputs

    def broken(*_, **__):
        raise ValueError("a case the rule did not foresee")

    monkeypatch.setitem(ne._OPS, "dot_general", broken)
    fn = lambda a, b: a @ b   # noqa: E731
    a, b = np.eye(3), np.arange(3.0)
    assert numpy_outputs(fn, a, b) is None
    np.testing.assert_array_equal(numpy_eval(fn, a, b), a @ b)


def test_tracer_arguments_are_left_to_jax():
    """Called while its caller is traced, numpy_outputs declines (the caller compiles)."""
    from adelia.runtime.numpy_eval import numpy_outputs

    seen = []
    jax.jit(lambda a: seen.append(numpy_outputs(jnp.sin, a)) or a)(np.ones(2))
    assert seen == [None]
    np.testing.assert_allclose(numpy_outputs(jnp.sin, np.ones(2)), np.sin(np.ones(2)))
