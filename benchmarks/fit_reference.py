"""End-to-end fit times on the R-INLA reference cases, side by side with R-INLA's own timing.

Prints one JSON object per case: total fit seconds (first call, JIT included, and a second call),
the objective and AD-gradient times per evaluation after compilation, the cost of a central-FD
gradient (2d+1 objective calls) for comparison, and R-INLA's "Running" time (1 thread).

    OPENBLAS_NUM_THREADS=1 python benchmarks/fit_reference.py
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import adelia  # noqa: E402
from adelia.compiler.model import compile_model  # noqa: E402
from adelia.dsl.parser import parse_formula  # noqa: E402
from adelia.runtime.laplace import LaplaceProblem  # noqa: E402

REF = Path(__file__).resolve().parents[2] / "shared" / "reference"
CASES = [
    ("S1_gaussian_linear", "y ~ 1 + x", "gaussian", {}),
    ("S3_seeds_binomial_iid", 'r ~ 1 + x1*x2 + f(plate, model = "iid")', "binomial", {"Ntrials": "n"}),
]


def best(fn, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    if not REF.is_dir():
        print(json.dumps({"name": "fit_reference", "skipped": "../shared/reference absent"}))
        return 0
    for case, formula, family, kw in CASES:
        data = pd.read_csv(REF / case / "data.csv")
        ref = json.loads((REF / case / "results.json").read_text())
        t = time.perf_counter()
        adelia.fit(formula, data, family=family, n_samples=1000, **kw)
        first = time.perf_counter() - t
        t = time.perf_counter()
        dt = adelia.fit(formula, data, family=family, n_samples=1000, **kw)
        second = time.perf_counter() - t
        model = compile_model(parse_formula(formula), data, family, **kw)
        prob = LaplaceProblem(model)
        theta = jnp.asarray(dt["inla"]["theta_mode"].values)
        f = jax.jit(prob.log_posterior)
        g = jax.jit(jax.grad(prob.log_posterior))
        t_f, t_g = best(lambda: f(theta)), best(lambda: g(theta))
        d = model.d
        timings = json.loads(dt["inla"].attrs["timings"])
        print(json.dumps({
            "name": case, "N": model.N, "m": model.m, "d": d,
            "t_fit_first": round(first, 3), "t_fit_second": round(second, 3), "stages_second": timings,
            "t_objective": t_f, "t_grad_ad": t_g, "t_grad_fd": (2 * d + 1) * t_f,
            "grad_over_objective": t_g / t_f, "fd_over_ad": (2 * d + 1) * t_f / t_g,
            "rinla_running_1thread": ref["cpu.used.threads_1_1"].get("Running"),
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
