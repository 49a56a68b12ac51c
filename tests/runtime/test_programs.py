"""Compiled programs reused across processes: exported into the compilation cache directory by
the first process, loaded (not traced again) by the next, with identical results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, sys
import numpy as np, pandas as pd
import adelia
from adelia.runtime import inference
rng = np.random.default_rng(3)
m = 25
df = pd.DataFrame({"g": np.arange(1, m + 1), "x": rng.normal(size=m)})
df["y"] = rng.poisson(np.exp(0.3 + 0.5 * df["x"] + 0.3 * rng.normal(size=m)))
import os
from concurrent.futures import wait
for _ in range(int(os.environ.get("FITS", "1"))):
    dt = adelia.fit('y ~ 1 + x + f(g, model = "iid")', df, family="poisson", n_samples=50)
# what a first fit ran on NumPy is exported and compiled in the background: wait for it
wait([f for cp in inference._CACHE.values() for p in cp.programs for f in p._pending.values()])
sources = sorted({s for cp in inference._CACHE.values() for p in cp.programs for s in p.sources})
print(json.dumps({"sources": sources, "summary": adelia.summary(dt)["mean"].tolist(),
                  "mlik": dt["inla"].attrs["mlik_integration"],
                  "draws": float(dt["posterior"]["x"].values.sum())}))
"""


def _run(cache_dir, fits: int = 1) -> dict:
    env = {**os.environ, "ADELIA_COMPILATION_CACHE": str(cache_dir), "FITS": str(fits)}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_the_exported_programs(tmp_path):
    """The first process's fit runs on NumPy and exports its programs after it; the next
    process's first fit loads them, and a third's results equal the second's to the bit."""
    first = _run(tmp_path)
    second = _run(tmp_path)
    third = _run(tmp_path)
    assert first["sources"] == ["exported"]
    assert second["sources"] == third["sources"] == ["loaded"]
    assert list((tmp_path / "adelia-exported").glob("*.jaxexport"))
    assert third["summary"] == second["summary"]
    assert third["mlik"] == second["mlik"]
    assert third["draws"] == second["draws"]
    # NumPy's arithmetic against XLA's: the same fit to rounding
    assert second["summary"] == pytest.approx(first["summary"], rel=1e-9, abs=1e-12)
    assert second["mlik"] == pytest.approx(first["mlik"], rel=1e-12)
    assert second["draws"] == pytest.approx(first["draws"], rel=1e-9)


def test_without_a_cache_nothing_is_exported(tmp_path):
    """The first fit runs on NumPy and leaves nothing behind; a second fit compiles."""
    assert _run("off")["sources"] == []
    assert _run("off", fits=2)["sources"] == ["traced"]


def test_sparse_path_programs_are_traced_not_exported(tmp_path):
    """Host callbacks (CHOLMOD) cannot be serialised: the sparse path does not try (its second
    fit compiles; the first ran on NumPy)."""
    fit = 'adelia.fit(\'y ~ 1 + x + f(g, model = "iid")\', df, family="poisson", n_samples=50, solver="sparse")'
    child = CHILD.replace('dt = adelia.', f'{fit}\ndt = adelia.').replace(
        'family="poisson", n_samples=50)', 'family="poisson", n_samples=50, solver="sparse")')
    env = {**os.environ, "ADELIA_COMPILATION_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["sources"] == ["traced"]


def test_export_keeps_the_direct_lowering_of_log_gamma():
    """Exported with the lowering a direct jit uses (XLA CPU's log Γ kernel), not the
    forward-compatible polynomial expansion that doubled a binomial objective's compile time;
    the global flag is restored afterwards."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import gammaln

    from adelia.runtime.inference import _current_lowering

    def exported_text():
        return jax.export.export(jax.jit(gammaln))(jnp.ones(3)).mlir_module()

    before = jax.config.jax_export_ignore_forward_compatibility
    with _current_lowering():
        inside = exported_text()
    assert jax.config.jax_export_ignore_forward_compatibility == before
    assert "cpu_lgamma_ffi" in inside
    assert "cpu_lgamma_ffi" not in exported_text()


def test_small_calls_run_on_numpy_and_equal_the_compiled_program():
    """A Program with host_max evaluates small calls from its traced equations with NumPy (no
    compilation), equal to the compiled program; larger calls, and programs using a primitive
    NumPy does not cover, are compiled."""
    import functools

    import jax.numpy as jnp
    import numpy as np
    from jax.scipy.special import gammaln

    from adelia.runtime import criteria
    from adelia.runtime.inference import Program

    rng = np.random.default_rng(5)
    K, m = 3, 7
    y = rng.poisson(2.0, size=m).astype(float)
    idx = np.array([0])

    def loglik(eta, theta):
        lam = eta + 0.1 * theta[idx][0]
        return y * lam - jnp.exp(lam) - gammaln(y + 1.0)

    args = (rng.normal(size=(K, m)), rng.uniform(0.1, 0.5, size=(K, m)), rng.normal(size=(K, 1)),
            np.log(rng.dirichlet(np.ones(K))), rng.normal(size=m), rng.normal(size=1))
    fn = functools.partial(criteria.terms, loglik)
    host, compiled = Program(fn, host_max=10_000), Program(fn)
    for a, b in zip(host(*args), compiled(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    assert host.sources == [] and compiled.sources == ["traced"]
    too_large = Program(fn, host_max=10)
    too_large(*args)
    assert too_large.sources == ["traced"]
    small_but_uncovered = Program(lambda a: jnp.linalg.svd(a)[1], host_max=10_000)
    small_but_uncovered(rng.normal(size=(3, 3)))
    assert small_but_uncovered.sources == ["traced"]


@pytest.mark.parametrize("formula,family,extra", [
    ("y ~ 1 + x", "gaussian", {}),
    ('y ~ 1 + x + f(g, model = "iid")', "poisson", {}),
    ('y ~ 1 + x + f(t, model = "rw1")', "binomial", {"Ntrials": "n"}),
])
def test_fits_on_numpy_programs_equal_compiled_fits(monkeypatch, formula, family, extra):
    """Tiny dense models run their Gaussian approximations, draws, criteria and draws'
    log-likelihood on NumPy; the fit equals the one with every program compiled."""
    import numpy as np
    import pandas as pd

    import adelia
    from adelia.runtime import inference

    rng = np.random.default_rng(8)
    m = 40
    df = pd.DataFrame({"x": rng.normal(size=m), "g": rng.integers(1, 9, m), "t": rng.integers(1, 11, m),
                       "n": rng.integers(2, 8, m)})
    eta = 0.2 + 0.5 * df["x"]
    df["y"] = {"gaussian": eta + 0.3 * rng.normal(size=m), "poisson": rng.poisson(np.exp(eta)),
               "binomial": rng.binomial(df["n"], 1 / (1 + np.exp(-eta)))}[family]

    def fit():
        inference._CACHE.clear()
        return adelia.fit(formula, df, family=family, n_samples=200, **extra)

    on_numpy = fit()
    for name in ("LOGLIK_HOST_MAX", "CRITERIA_HOST_MAX", "GAUSSIAN_HOST_MAX", "SAMPLER_HOST_MAX"):
        monkeypatch.setattr(inference, name, 0)
    compiled = fit()
    for group in ("posterior", "log_likelihood"):
        for var in on_numpy[group].data_vars:
            np.testing.assert_allclose(on_numpy[group][var].values, compiled[group][var].values, rtol=1e-8, atol=1e-10)
    a, b = adelia.summary(on_numpy), adelia.summary(compiled)
    np.testing.assert_allclose(a.select_dtypes("number").values, b.select_dtypes("number").values, rtol=1e-8, atol=1e-10)
    for key in ("dic", "waic", "mlik_integration"):
        assert on_numpy["inla"].attrs[key] == pytest.approx(compiled["inla"].attrs[key], rel=1e-10)


def test_small_sparse_model_first_fit_on_numpy_equals_the_compiled_second():
    """A small model on the sparse path fits first on NumPy (nothing compiled), then compiles:
    both fits give the same posterior."""
    import numpy as np
    import pandas as pd

    import adelia
    from adelia.runtime import inference

    rng = np.random.default_rng(4)
    m = 60
    df = pd.DataFrame({"x": rng.normal(size=m), "t": np.arange(1, m + 1)})
    df["y"] = rng.poisson(np.exp(0.3 + 0.4 * df["x"] + np.sin(df["t"] / 9)))
    inference._CACHE.clear()
    first = adelia.fit('y ~ 1 + x + f(t, model = "rw2")', df, family="poisson", solver="sparse", n_samples=100)
    (cp,) = inference._CACHE.values()
    assert cp.solver == "sparse"
    assert cp.value_and_grad.sources == [] and cp.gaussian["simplified.laplace"].sources == []
    second = adelia.fit('y ~ 1 + x + f(t, model = "rw2")', df, family="poisson", solver="sparse", n_samples=100)
    assert cp.value_and_grad.sources == ["traced"] and cp.gaussian["simplified.laplace"].sources == ["traced"]
    a, b = adelia.summary(first), adelia.summary(second)
    np.testing.assert_allclose(a.select_dtypes("number").values, b.select_dtypes("number").values, rtol=1e-6, atol=1e-8)
    for key in ("dic", "waic", "mlik_integration"):
        assert first["inla"].attrs[key] == pytest.approx(second["inla"].attrs[key], rel=1e-8)


def test_prepared_program_compiles_in_the_background_once():
    """Program.prepare compiles ahead on the compile thread; the call with that signature uses
    that executable (no second compilation) and gives the same result."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from adelia.runtime import inference

    p = inference.Program(lambda a, b: jnp.sin(a) @ b)
    p.prepare(jax.ShapeDtypeStruct((3, 4), np.float64), jax.ShapeDtypeStruct((4,), np.float64))
    if (os.cpu_count() or 1) < 2:
        assert not p._pending                   # one core: nothing ahead of time
    else:
        assert len(p._pending) == 1
    a, b = np.arange(12.0).reshape(3, 4), np.ones(4)
    np.testing.assert_allclose(np.asarray(p(a, b)), np.sin(a) @ b, rtol=1e-14)
    assert p.sources == ["traced"] and not p._pending
    p.prepare(jax.ShapeDtypeStruct((3, 4), np.float64), jax.ShapeDtypeStruct((4,), np.float64))
    assert not p._pending                       # already compiled: nothing to do


def test_a_failed_background_compilation_compiles_again_at_the_call(monkeypatch):
    import jax
    import numpy as np

    from adelia.runtime import inference

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    p = inference.Program(lambda a: a * 2.0)
    real = p._compile
    calls = []

    def flaky(key, args):
        calls.append(type(args[0]).__name__)
        if len(calls) == 1:
            raise RuntimeError("background failure")
        return real(key, args)

    p._compile = flaky
    p.prepare(jax.ShapeDtypeStruct((5,), np.float64))
    np.testing.assert_allclose(np.asarray(p(np.ones(5))), 2.0 * np.ones(5))
    assert calls == ["ShapeDtypeStruct", "ndarray"]


def test_a_fit_prepares_its_later_programs_in_the_background(monkeypatch):
    """On the sparse path (above the NumPy first fit's size) the objective, the per-point
    Gaussian approximation and the sampler are compiled ahead, each once, and the fit matches
    one that compiled everything at first call."""
    import numpy as np
    import pandas as pd

    import adelia
    from adelia.runtime import inference

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(inference, "FIRST_FIT_NUMPY_MAX_LATENT", 0)
    rng = np.random.default_rng(7)
    m = 80
    df = pd.DataFrame({"x": rng.normal(size=m), "t": np.arange(1, m + 1)})
    df["y"] = rng.poisson(np.exp(0.2 + 0.3 * df["x"] + np.sin(df["t"] / 11)))
    formula = 'y ~ 1 + x + f(t, model = "rw2")'
    prepared = []
    real = inference.Program.prepare
    monkeypatch.setattr(inference.Program, "prepare", lambda self, *specs: prepared.append(self) or real(self, *specs))
    inference._CACHE.clear()
    ahead = adelia.fit(formula, df, family="poisson", solver="sparse", n_samples=200)
    (cp,) = inference._CACHE.values()
    for p in (cp.value, cp.gaussian["simplified.laplace"], cp.sampler):
        assert p in prepared and p.sources == ["traced"]
    monkeypatch.setattr(inference.Program, "prepare", lambda self, *specs: None)
    inference._CACHE.clear()
    plain = adelia.fit(formula, df, family="poisson", solver="sparse", n_samples=200)
    a, b = adelia.summary(ahead), adelia.summary(plain)
    np.testing.assert_allclose(a.select_dtypes("number").values, b.select_dtypes("number").values, rtol=1e-10)
    np.testing.assert_allclose(ahead["posterior"]["x"].values, plain["posterior"]["x"].values, rtol=1e-10)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
def test_exit_with_a_background_compilation_in_flight_is_clean(delay):
    """A process that ends while its compile thread traces or compiles exits normally (a thread
    tracing through the interpreter's teardown crashed it with SIGSEGV)."""
    child = f"""
import os, time
os.cpu_count = lambda: 2
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from adelia.runtime import inference
def f(x):
    for i in range(60):
        x = jnp.sin(x) @ jnp.cos(x.T) + i
    return x
p = inference.Program(f)
p.prepare(jax.ShapeDtypeStruct((20, 20), np.float64))
assert p._pending
time.sleep({delay})
print("done")
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "done"
