"""The runtime's solvers side by side on the same models: the general sparse path (CHOLMOD +
supernodal selected inversion) against the BTA path (pure JAX, ``lax.scan`` over time blocks),
and against the dense path where that fits.

Cases: space–time SPDE ⊗ AR1 (``y ~ 1 + f(site, model = sp, group = time, control.group =
list(model = "ar1"))``, Gaussian, d = 4) over a range of mesh sizes b and time points nt, and a
spatial-only SPDE (no time blocks: BTA does not apply; a single dense block is the dense path).
Per case and solver: objective and AD-gradient seconds per evaluation after compilation (min of
repeats), the factorisation flops each solver's cost model predicts (BTA: (7/3)·nt·b³ + arrow;
CHOLMOD: from its supernodes) and which solver ``solver = "auto"`` picks.

    OPENBLAS_NUM_THREADS=1 python benchmarks/solvers.py [--quick]
"""

import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from adelia.compiler.model import compile_model  # noqa: E402
from adelia.dsl.parser import parse_formula  # noqa: E402
from adelia.runtime.inference import choose_solver  # noqa: E402
from adelia.runtime.laplace import LaplaceProblem  # noqa: E402
from adelia.runtime.laplace_bta import BTALaplaceProblem  # noqa: E402
from adelia.runtime.laplace_sparse import SparseLaplaceProblem  # noqa: E402
from spacetime import best, simulate  # noqa: E402

SPACETIME = 'y ~ 1 + f(site, model = sp, group = time, control.group = list(model = "ar1"))'
SPATIAL = "y ~ 1 + f(site, model = sp)"


def timings(prob, theta):
    """Seconds per objective and per gradient; θ moves by 1e-7 per call, so that no solver can
    reuse a factorisation of the previous call (the sparse path caches its last factor)."""
    f = jax.jit(prob.log_posterior)
    g = jax.jit(jax.grad(prob.log_posterior))
    k = iter(range(1, 1000))
    return best(lambda: f(theta + 1e-7 * next(k))), best(lambda: g(theta + 1e-7 * next(k)))


def case(name, formula, n_sites, nt, spacing, solvers):
    data, spde = simulate(n_sites, nt, spacing=spacing)
    model = compile_model(parse_formula(formula), data, "gaussian", objects={"sp": spde})
    theta = jnp.asarray([t.initial for t in model.thetas])
    rec = {"name": name, "N": model.N, "m": model.m, "d": model.d, "mesh_nodes": spde.n, "nt": nt,
           "auto_choice": choose_solver(model, "auto")}
    probs = {"sparse": SparseLaplaceProblem, "bta": BTALaplaceProblem, "dense": LaplaceProblem}
    for s in solvers:
        prob = probs[s](model)
        t_f, t_g = timings(prob, theta)
        rec[f"t_objective_{s}"], rec[f"t_grad_{s}"] = t_f, t_g
        if s == "sparse":
            rec["flops_cholmod"] = prob.analysis.flops()
        if s == "bta":
            lay = prob.layout
            rec.update(b=lay.b, a=lay.a, flops_bta=lay.flops())
    if "sparse" in solvers and "bta" in solvers:
        rec["bta_over_sparse_grad"] = rec["t_grad_bta"] / rec["t_grad_sparse"]
        rec["flops_ratio_bta_cholmod"] = rec["flops_bta"] / rec["flops_cholmod"]
    print(json.dumps(rec), flush=True)


def main(argv):
    quick = "--quick" in argv
    st = [(30, 20, 0.2), (60, 10, 0.1)] if quick else [(30, 20, 0.2), (30, 100, 0.2), (60, 10, 0.1),
                                                       (60, 40, 0.1), (100, 40, 0.1), (100, 20, 0.06)]
    for n_sites, nt, spacing in st:
        case(f"spde_x_ar1_{n_sites}x{nt}_h{spacing}", SPACETIME, n_sites, nt, spacing, ("sparse", "bta"))
    for n_sites, spacing in ([(200, 0.1)] if quick else [(200, 0.1), (400, 0.04)]):
        case(f"spde_spatial_{n_sites}_h{spacing}", SPATIAL, n_sites, 1, spacing, ("sparse", "dense"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
