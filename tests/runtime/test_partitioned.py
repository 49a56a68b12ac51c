"""Time-partitioned BTA kernels (adelia.runtime.bta_partitioned) against the single-device ones
and dense NumPy, on 4 forced host devices.

The pytest process has already started JAX with one CPU device, so the checks run once in a
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (this file run as a
script prints one JSON line per case) and the tests read its output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOL = 1e-10
# (P devices asked for, nt, b, a): nt divisible by P or not, nt < 2P (fewer partitions), no arrow
CASES = [(2, 7, 3, 2), (2, 4, 2, 1), (4, 13, 3, 2), (4, 5, 3, 2), (4, 3, 2, 1), (4, 9, 3, 0)]


def _run_cases() -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from test_bta import random_spd_bta

    from adelia.runtime import laplace_bta
    from adelia.runtime.bta import (BTA, bta_cholesky, bta_logdet, bta_selected_inverse, bta_to_dense,
                                    bta_trace_contract, dense_to_bta)
    from adelia.runtime.bta_partitioned import (partitions, pbta_cholesky, pbta_logdet, pbta_selected_inverse,
                                                pbta_solve, pbta_solve_upper, time_mesh)

    out = []
    for P, nt, b, a in CASES:
        rng = np.random.default_rng(nt * 10 + P)
        Q, M = random_spd_bta(rng, b, nt, a)
        used, n = partitions(nt, P)
        mesh = time_mesh(jax.devices()[:used])
        L = bta_cholesky(Q)
        N = nt * b + a
        r = rng.normal(size=(N, 2))
        z = rng.normal(size=(N, 3))

        @jax.jit
        def partitioned(Q, r, z):   # one program per case: fewer compilations than op by op
            F = pbta_cholesky(Q, mesh)
            return (pbta_logdet(F), pbta_solve(F, r), pbta_solve(F, r[:, 0]), pbta_selected_inverse(F),
                    pbta_solve_upper(F, z))

        logdet, x, x_vec, S, xu = partitioned(Q, r, z)
        xu = np.asarray(xu)

        def rel(x, y):
            x, y = np.asarray(x), np.asarray(y)
            if x.size == 0:
                return 0.0 if x.shape == y.shape else np.inf
            return float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-300))

        S1 = bta_selected_inverse(L)
        Sd = dense_to_bta(np.linalg.inv(M), b, nt, a)
        # xu = L⁻ᵀ z of the permuted factor: xᵀ Q x = zᵀ z for every column
        # the gradient the Laplace objective takes: d/dθ [log|Q(θ)| + rᵀQ(θ)⁻¹r] with
        # Q(θ) = Q + θ₀ dQ₀ + θ₁ dQ₁, through laplace_bta's custom VJPs (selected inverse, solves)
        dQs = []
        for _ in range(2):
            D = np.asarray(bta_to_dense(BTA(*(rng.uniform(-1, 1, np.shape(x)) for x in Q))))
            dQs.append(dense_to_bta(0.05 * (D + D.T), b, nt, a))
        rv = r[:, 0]

        def objective(theta, factor):
            Qt = BTA(*(q + theta[0] * d0 + theta[1] * d1 for q, d0, d1 in zip(Q, *dQs)))
            Lt = factor(jax.lax.stop_gradient(Qt))
            return laplace_bta._logdet(Qt, Lt) + rv @ laplace_bta._solve(Qt, Lt, rv)

        theta = jnp.array([0.1, -0.2])
        g_part = jax.grad(objective)(theta, lambda q: pbta_cholesky(q, mesh))
        g_single = jax.grad(objective)(theta, bta_cholesky)
        Md = M + 0.1 * np.asarray(bta_to_dense(dQs[0])) - 0.2 * np.asarray(bta_to_dense(dQs[1]))
        xd = np.linalg.solve(Md, rv)
        g_dense = [np.trace(np.linalg.solve(Md, np.asarray(bta_to_dense(d)))) - xd @ np.asarray(bta_to_dense(d)) @ xd
                   for d in dQs]
        out.append({
            "case": [P, nt, b, a], "partitions": used, "blocks": n,
            "logdet_vs_single": abs(float(logdet - bta_logdet(L))) / abs(float(bta_logdet(L))),
            "logdet_vs_dense": abs(float(logdet) - np.linalg.slogdet(M)[1]) / abs(np.linalg.slogdet(M)[1]),
            "solve_vs_dense": max(rel(x, np.linalg.solve(M, r)), rel(x_vec, np.linalg.solve(M, r[:, 0]))),
            "solve_vector_shape": list(np.shape(x_vec)),
            "selinv_vs_single": max(rel(s, s1) for s, s1 in zip(S, S1)),
            "selinv_vs_dense": max(rel(s, sd) for s, sd in zip(S, Sd)),
            "selinv_shapes_equal": all(np.shape(s) == np.shape(s1) for s, s1 in zip(S, S1)),
            "trace_vs_dense": max(abs(float(bta_trace_contract(S, d)) - np.trace(np.linalg.solve(M, bta_to_dense(d))))
                                  / abs(np.trace(np.linalg.solve(M, bta_to_dense(d)))) for d in dQs),
            "sample_quadratic": float(np.max(np.abs(np.einsum("ik,ij,jk->k", xu, M, xu) - np.sum(z * z, 0))
                                             / np.sum(z * z, 0))),
            "grad_vs_single": rel(g_part, g_single),
            "grad_vs_dense": rel(g_part, np.array(g_dense)),
        })
    return out


@pytest.fixture(scope="module")
def results() -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {tuple(r["case"]): r for r in rows}


@pytest.mark.parametrize("case", [tuple(c) for c in CASES], ids=lambda c: "P{}-nt{}-b{}-a{}".format(*c))
def test_partitioned_kernels_match_single_device_and_dense(results, case):
    r = results[case]
    for key in ("logdet_vs_single", "logdet_vs_dense", "solve_vs_dense", "selinv_vs_single", "selinv_vs_dense",
                "trace_vs_dense", "sample_quadratic", "grad_vs_single", "grad_vs_dense"):
        assert r[key] < TOL, (key, r[key])
    assert r["selinv_shapes_equal"]
    assert r["solve_vector_shape"] == [case[1] * case[2] + case[3]]


def test_partition_counts(results):
    """nt < 2P uses ⌊nt/2⌋ partitions of ⌈nt/used⌉ blocks (every range needs two boundary blocks)."""
    from adelia.runtime.bta_partitioned import partitions

    assert partitions(13, 4) == (4, 4)
    assert partitions(5, 4) == (2, 3)
    assert partitions(3, 4) == (1, 3)
    assert partitions(7, 2) == (2, 4)
    assert results[(4, 5, 3, 2)]["partitions"] == 2
    assert results[(4, 13, 3, 2)]["partitions"] == 4


if __name__ == "__main__":
    for row in _run_cases():
        print(json.dumps(row), flush=True)
