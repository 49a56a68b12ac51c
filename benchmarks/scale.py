"""Scaling over several devices: θ-batch throughput and the time-partitioned BTA gradient.

    OPENBLAS_NUM_THREADS=1 python benchmarks/scale.py --quick     # < 2 minutes on a 2-core CPU
    OPENBLAS_NUM_THREADS=1 python benchmarks/scale.py             # larger sizes

On a CPU the script asks XLA for 4 host devices (``--xla_force_host_platform_device_count``,
set before JAX starts unless XLA_FLAGS is already set); each host device runs its programs on
its own threads, so on a 2-core machine 2 devices is the most that can run concurrently.
Prints one JSON object per case on stdout:

* ``theta_batch``: f(θ) at K integration points of a space–time model (the BTA Laplace
  objective, Gaussian likelihood) one after the other on one device (``t_single``: the serial
  path of :class:`adelia.runtime.inference.Evaluations`, one program call per point) against
  one batch sharded over 2 devices (``t_parallel``, :class:`adelia.runtime.devices.ThetaBatch`);
  ``t_batch_1_device`` is the same batch program on one device. ``cores_busy_*``: this
  process's CPU time over wall time in each of the three (a bound on the speedup 2 devices can
  bring where the cores are fewer than 2 × what one device keeps busy).
* ``partitioned_gradient``: the gradient of log|Q(θ)| + rᵀQ(θ)⁻¹r for a random SPD BTA
  Q(θ) = Q + θ₀dQ₀ + θ₁dQ₁ through :mod:`adelia.runtime.laplace_bta`'s adjoints (Cholesky,
  selected inverse, solves), single-device kernels against the time-partitioned ones for
  P = 1, 2, 4 (:mod:`adelia.runtime.bta_partitioned`; P = 1 runs the partitioned code on one
  device: its overhead over the plain kernels).

Times are the minimum over repeats after a warm-up call (compilation excluded).  Memory per
device: argument + output + temp bytes of the compiled executable (``memory_analysis()``; for
a sharded program XLA reports one device's share).
"""

from __future__ import annotations

import os

if "XLA_FLAGS" not in os.environ:
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))

from adelia.runtime import laplace_bta  # noqa: E402
from adelia.runtime.bta import BTA, bta_cholesky, bta_to_dense, dense_to_bta  # noqa: E402
from adelia.runtime.bta_partitioned import pbta_cholesky, time_mesh  # noqa: E402
from adelia.runtime.devices import ThetaBatch  # noqa: E402


def best_of(fn, repeats: int) -> float:
    return timed(fn, repeats)[0]


def timed(fn, repeats: int) -> tuple[float, float]:
    """(the best wall time of ``repeats`` calls after a warm-up one, the cores they kept busy:
    this process's CPU time over the wall time of all of them)."""
    jax.block_until_ready(fn())
    best = np.inf
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best, (time.process_time() - cpu) / (time.perf_counter() - wall)


def peak_bytes(compiled) -> int | None:
    m = compiled.memory_analysis()
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


# ---------------------------------------------------------------------------
# θ batches
# ---------------------------------------------------------------------------


def spacetime_problem(n_regions: int, nt: int, seed: int = 0):
    """A ring of regions × nt times, besag ⊗ ar1 field, Gaussian responses, 2 fixed effects."""
    import pandas as pd
    import scipy.sparse as sp

    from adelia.api import compile_formula
    from adelia.runtime.problem import as_problem

    rng = np.random.default_rng(seed)
    n = n_regions
    W = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1]).tolil()
    W[0, n - 1] = W[n - 1, 0] = 1
    region = np.tile(np.arange(1, n + 1), nt)
    t = np.repeat(np.arange(1, nt + 1), n)
    x = rng.normal(size=n * nt)
    y = 0.2 + 0.3 * x + 0.5 * np.sin(region / 2 + t / 3) + 0.3 * rng.normal(size=n * nt)
    d = pd.DataFrame({"y": y, "x": x, "region": region, "t": t})
    f = 'y ~ 1 + x + f(region, model = "besag", graph = W, group = t, control.group = list(model = "ar1"))'
    return as_problem(compile_formula(f, d, objects={"W": sp.csr_matrix(W)}))


def theta_batch_case(n_regions: int, nt: int, K: int, repeats: int) -> dict:
    from adelia.runtime.inference import CompiledProblem

    model = spacetime_problem(n_regions, nt)
    cp = CompiledProblem(model, "bta")
    rng = np.random.default_rng(1)
    thetas = cp.initial[None, :] + 0.3 * rng.normal(size=(K, len(cp.initial)))
    x0 = cp.prob.x_feasible

    def serial():
        return [cp.value(jnp.asarray(t), x0)[0] for t in thetas]

    one, two = (ThetaBatch(cp.neg_and_mode, cp.full, jax.devices()[:k]) for k in (1, 2))
    t1, busy1 = timed(serial, repeats)
    t_one, busy_one = timed(lambda: one.values(thetas, x0)[0], repeats)
    t2, busy2 = timed(lambda: two.values(thetas, x0)[0], repeats)
    f1 = np.array([float(v) for v in serial()])
    f2 = np.asarray(two.values(thetas, x0)[0])
    # the sharded program's per-device memory (the serial program's for comparison)
    rows = two._rows(thetas, x0)
    mem = peak_bytes(two._values.lower(*rows).compile())
    return {"name": "theta_batch", "devices": 2, "partitions": 1, "N": model.N, "nt": nt, "b": n_regions, "K": K,
            "t_single": t1, "t_batch_1_device": t_one, "t_parallel": t2, "speedup": t1 / t2,
            "speedup_vs_batch_1_device": t_one / t2,
            # XLA runs a device's independent operations on several threads: where one device
            # already keeps more than one core busy, two devices on two cores cannot double it
            "cores_busy_single": busy1, "cores_busy_batch_1_device": busy_one, "cores_busy_parallel": busy2,
            "cpu_count": os.cpu_count(),
            "max_rel_err_vs_single": float(np.max(np.abs(f2 - f1) / np.abs(f1))),
            "peak_bytes_per_device": mem}


# ---------------------------------------------------------------------------
# partitioned BTA gradient
# ---------------------------------------------------------------------------


def random_spd_bta(rng, b: int, nt: int, a: int) -> BTA:
    """Random SPD BTA with dense blocks, diagonally dominant (built block by block)."""
    diag = rng.uniform(-1, 1, (nt, b, b))
    diag = 0.5 * (diag + np.swapaxes(diag, 1, 2)) + np.eye(b) * (4.0 * b + a + 1)
    lower = rng.uniform(-1, 1, (nt - 1, b, b))
    arrow = rng.uniform(-1, 1, (nt, a, b))
    tip = rng.uniform(-1, 1, (a, a))
    tip = 0.5 * (tip + tip.T) + np.eye(a) * (nt * b + a + 1)
    return BTA(*(jnp.asarray(x) for x in (diag, lower, arrow, tip)))


def gradient_cases(b: int, nt: int, a: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(2)
    Q = random_spd_bta(rng, b, nt, a)
    dQs = []
    for _ in range(2):
        d = random_spd_bta(rng, b, nt, a)
        dQs.append(BTA(*(0.01 * x for x in d)))
    r = jnp.asarray(rng.normal(size=nt * b + a))

    def objective(theta, factor):
        Qt = BTA(*(q + theta[0] * d0 + theta[1] * d1 for q, d0, d1 in zip(Q, *dQs)))
        Lt = factor(jax.lax.stop_gradient(Qt))
        return laplace_bta._logdet(Qt, Lt) + r @ laplace_bta._solve(Qt, Lt, r)

    theta = jnp.array([0.1, -0.2])

    def compiled_grad(factor):
        fn = jax.jit(jax.value_and_grad(lambda th: objective(th, factor)))
        return fn.lower(theta).compile()

    single = compiled_grad(bta_cholesky)
    t_single = best_of(lambda: single(theta), repeats)
    v_single, g_single = single(theta)
    ref = np.concatenate([[float(v_single)], np.asarray(g_single)])
    mem_single = peak_bytes(single)
    out = []
    for P in (1, 2, 4):
        mesh = time_mesh(jax.devices()[:P])
        part = compiled_grad(lambda q, mesh=mesh: pbta_cholesky(q, mesh))
        t_part = best_of(lambda: part(theta), repeats)
        v, g = part(theta)
        got = np.concatenate([[float(v)], np.asarray(g)])
        out.append({"name": "partitioned_gradient", "devices": P, "partitions": P, "nt": nt, "b": b, "a": a,
                    "t_single": t_single, "t_parallel": t_part, "speedup": t_single / t_part,
                    "max_rel_err_vs_single": float(np.max(np.abs(got - ref) / np.abs(ref))),
                    "peak_bytes_single": mem_single, "peak_bytes_per_device": peak_bytes(part)})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (< 2 minutes on a 2-core CPU)")
    ap.add_argument("--only", choices=("theta", "gradient"), default=None)
    args = ap.parse_args(argv)
    if len(jax.devices()) < 4:
        sys.exit(f"needs 4 devices, JAX sees {len(jax.devices())} (set XLA_FLAGS=--xla_force_host_platform_device_count=4)")
    quick = args.quick
    if args.only in (None, "theta"):
        n_regions, nt, K = (200, 8, 16) if quick else (400, 12, 32)
        print(json.dumps(theta_batch_case(n_regions, nt, K, repeats=2 if quick else 3)), flush=True)
    if args.only in (None, "gradient"):
        b, nt, a = (96, 32, 4) if quick else (256, 64, 6)
        for row in gradient_cases(b, nt, a, repeats=2 if quick else 3):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
