"""A separable space–time model, SPDE ⊗ AR1 (the Piemonte PM10 shape), end to end on the
general sparse path: latent size ns·nt, 4 hyperparameters (Gaussian precision, range, σ, ρ).

Prints one JSON object per size: latent size, fit seconds (first call with JIT, second call),
objective and AD-gradient seconds per evaluation after compilation, the central-FD gradient cost
(2d + 1 objectives) for comparison, and R-INLA's reference time for a model of this class (~67 s
for ~10k latents, DEVELOPERS.md).

    OPENBLAS_NUM_THREADS=1 python benchmarks/spacetime.py [--quick]
"""

import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import adelia  # noqa: E402
from adelia.compiler.model import compile_model  # noqa: E402
from adelia.dsl.parser import parse_formula  # noqa: E402
from adelia.runtime.laplace_sparse import SparseLaplaceProblem  # noqa: E402
from _cases import FORMULA, simulate  # noqa: E402


def best(fn, repeat=3):
    jax.block_until_ready(fn())
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        out.append(time.perf_counter() - t0)
    return min(out)


def main(argv):
    sizes = [(60, 10)] if "--quick" in argv else [(60, 10), (100, 40)]
    for n_sites, nt in sizes:
        data, spde = simulate(n_sites, nt)
        t0 = time.perf_counter()
        dt = adelia.fit(FORMULA, data, sp=spde, solver="sparse", n_samples=0)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        dt = adelia.fit(FORMULA, data, sp=spde, solver="sparse", n_samples=0)
        second = time.perf_counter() - t0
        model = compile_model(parse_formula(FORMULA), data, "gaussian", objects={"sp": spde})
        prob = SparseLaplaceProblem(model)
        theta = jnp.asarray(dt["inla"]["theta_mode"].values)
        f = jax.jit(prob.log_posterior)
        g = jax.jit(jax.grad(prob.log_posterior))
        k = iter(range(1, 1000))     # move θ each call: the sparse path would reuse its cached factor
        t_f, t_g = best(lambda: f(theta + 1e-7 * next(k))), best(lambda: g(theta + 1e-7 * next(k)))
        print(json.dumps({
            "name": f"spde_x_ar1_{n_sites}x{nt}", "N": model.N, "m": model.m, "d": model.d,
            "mesh_nodes": spde.n, "t_fit_first": round(first, 2), "t_fit_second": round(second, 2),
            "n_theta_points": int(dt["inla"].attrs["n_theta_points"]),
            "t_objective": t_f, "t_grad_ad": t_g, "t_grad_fd": (2 * model.d + 1) * t_f,
            "grad_over_objective": t_g / t_f, "fd_over_ad": (2 * model.d + 1) * t_f / t_g,
            "rinla_reference_s": 67.0,
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
