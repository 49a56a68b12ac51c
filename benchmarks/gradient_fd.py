"""What the exact gradient gains in the θ-mode search: AD against R-INLA's central differences.

For each reference case (S1–S5, the models of ``fit_reference.py``) the θ-mode search (L-BFGS-B,
``adelia.runtime.optimize.find_mode``) runs twice on the same compiled model, from the same
initial θ: with the AD gradient (one value-and-gradient program call per search evaluation) and
with ``gradient = "fd"`` (f at θ and θ ± h eᵢ, h = 0.005: 2d + 1 objective calls per search
evaluation, as R-INLA). Each search runs once to compile its programs and is then timed (best
of 3). One JSON object per case:

    name, N, d, solver,
    ad / fd: {objective_evals, gradient_evals, bfgs_evals, bfgs_iterations, seconds, theta, f},
    theta_max_abs_diff (fd − ad mode), evals_ratio (fd / ad objective evaluations),
    seconds_ratio (fd / ad)

    OPENBLAS_NUM_THREADS=1 python benchmarks/gradient_fd.py [--only S1,S3]
"""

import argparse
import functools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_reference import REF, s1, s2, s3, s4, s5  # noqa: E402

CASES = {"S1_gaussian_linear": s1, "S2_germany_bym2_rw2": s2, "S3_seeds_binomial_iid": s3, "S4_spdetoy_spde": s4,
         "S5_tokyo_rw2_cyclic": s5}


def search(cp, gradient: str, h: float = 0.005):
    from adelia.runtime.inference import Evaluations
    from adelia.runtime.optimize import find_mode

    ev = Evaluations(cp)
    vg = ev.value_and_grad if gradient == "ad" else functools.partial(ev.value_and_fd_grad, h=h)
    t = time.perf_counter()
    mode = find_mode(vg, cp.initial[cp.free])
    seconds = time.perf_counter() - t
    return {"objective_evals": ev.n_objective, "gradient_evals": ev.n_gradient, "bfgs_evals": mode.n_eval,
            "bfgs_iterations": mode.n_iter, "seconds": seconds, "theta": mode.theta.tolist(), "f": mode.f}


def measure(name):
    import inspect

    import adelia
    from adelia.runtime.inference import choose_solver, compiled

    formula, data, kw = CASES[name]()
    own = inspect.signature(adelia.compile_formula).parameters
    model = adelia.compile_formula(formula, data, **{k: v for k, v in kw.items() if k in own},
                                   objects={k: v for k, v in kw.items() if k not in own})
    problem = model.problem
    cp = compiled(problem, choose_solver(problem))
    row = {"name": name, "N": problem.N, "d": len(cp.free), "solver": cp.solver}
    for gradient in ("ad", "fd"):
        search(cp, gradient)                                   # compiles the programs it uses
        runs = [search(cp, gradient) for _ in range(3)]
        best = min(runs, key=lambda r: r["seconds"])
        row[gradient] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in best.items()}
    row["theta_max_abs_diff"] = max(abs(a - b) for a, b in zip(row["ad"]["theta"], row["fd"]["theta"]))
    row["evals_ratio"] = round(row["fd"]["objective_evals"] / row["ad"]["objective_evals"], 2)
    row["seconds_ratio"] = round(row["fd"]["seconds"] / row["ad"]["seconds"], 2)
    return row


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated case prefixes, e.g. S1,S3")
    args = ap.parse_args(argv)
    names = list(CASES)
    if args.only:
        names = [n for n in names if any(n.startswith(p) for p in args.only.split(","))]
    for name in names:
        if not (REF / name).is_dir():
            print(json.dumps({"name": name, "skipped": f"absent: {REF / name}"}), flush=True)
            continue
        try:
            print(json.dumps(measure(name)), flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on with the next case
            print(json.dumps({"name": name, "ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
