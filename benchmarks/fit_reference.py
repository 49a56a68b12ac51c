"""End-to-end fit times as users meet them, beside R-INLA's own timing (1 thread).

Every cold number comes from a NEW Python process: this file run again with the hidden argument
``--child NAME``, given a fresh, empty JAX compilation cache through the environment variable
``ADELIA_COMPILATION_CACHE`` (a directory for JAX's persistent compilation cache, or ``off``).
adelia's bytecode is written first (:func:`byte_compile`), as after the README's ``pip install``.
Per case:

* ``cold_s``: first process, empty cache; from the child's first statement (before any import)
  to the end of the fit: imports of adelia and JAX, data, compilation, the fit itself;
* ``cold_again_s``: a second process on the same cache directory (compilation cache warm);
* ``warm_s``: the same fit called again inside the second process (best of 3 under 5 s, else 1);
  ``warm_first_s`` the first of those calls (a small sparse model compiles its programs there:
  its first fit in a process runs on NumPy, see ``adelia.runtime.inference.CompiledProblem``);
* ``process_s``, ``process_again_s``: the parent's wall clock of each subprocess (interpreter
  start and exit included; the second also runs the warm fits); ``cache_files``: files the
  first process left in the cache directory.

One JSON line per case: name, N (latent size), m (rows), d (hyperparameters), solver, the times,
R-INLA's ``Running`` and ``Total`` seconds, n_objective and n_gradient (null where adelia does
not report them), ``stages`` (the warm fit's ``timings``) and ``ok``, or ``ok: false`` with
``error`` (a failed or timed-out case does not stop the run); ``{"name", "skipped"}`` where the
case's data is absent. Fits use adelia's defaults (``n_samples = 1000``, ``solver = "auto"``).

Cases: S1–S5 (../shared/reference), germany_spacetime (../shared/peer-data: besag ⊗ ar1 over
8 years + iid, Poisson), simulated SPDE ⊗ AR1 models of ≈ 10k and ≈ 37k latent nodes.

    OPENBLAS_NUM_THREADS=1 python benchmarks/fit_reference.py            # every case
    OPENBLAS_NUM_THREADS=1 python benchmarks/fit_reference.py --quick    # without SPDE ⊗ AR1
    OPENBLAS_NUM_THREADS=1 python benchmarks/fit_reference.py --only S1,S3 --timeout 300
"""

import time

T0 = time.perf_counter()  # a child's clock starts here, before any other import

import argparse  # noqa: E402
import functools  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

REF = Path(__file__).resolve().parents[2] / "shared" / "reference"
PEER = REF.parent / "peer-data"
GERMANY_GRAPH = REF / "S2_germany_bym2_rw2" / "germany.graph"


# ---- cases: each returns (formula, data, keyword arguments of adelia.fit) ----

def _read(path):
    import pandas as pd
    return pd.read_csv(path)


def s1():
    return "y ~ 1 + x", _read(REF / "S1_gaussian_linear" / "data.csv"), {"family": "gaussian"}


def s2():
    return ("Y ~ 1 + f(region, model = 'bym2', graph = g) + f(x, model = 'rw2')",
            _read(REF / "S2_germany_bym2_rw2" / "data.csv"), {"family": "poisson", "E": "E", "g": str(GERMANY_GRAPH)})


def s3():
    return ('r ~ 1 + x1*x2 + f(plate, model = "iid")', _read(REF / "S3_seeds_binomial_iid" / "data.csv"),
            {"family": "binomial", "Ntrials": "n"})


def s4():
    import numpy as np
    from adelia.compiler.latent.spde import SPDE
    from adelia.compiler.mesh import Mesh

    path = REF / "S4_spdetoy_spde"
    data = _read(path / "data.csv")
    mesh = Mesh(_read(path / "nodes.csv").to_numpy(), _read(path / "triangles.csv").to_numpy() - 1)
    prior = json.loads((path / "results.json").read_text())["priors"]["spde_pcmatern"]
    spde = SPDE(mesh, prior_range=prior["prior.range"], prior_sigma=prior["prior.sigma"],
                loc=data[["s1", "s2"]].to_numpy())
    data = data.assign(intercept=1.0, spatial=np.arange(1, len(data) + 1))
    return "y ~ -1 + intercept + f(spatial, model = 'spde', spde = spde)", data, {"family": "gaussian", "spde": spde}


def s5():
    return ("y ~ -1 + f(time, model = 'rw2', cyclic = TRUE, constr = TRUE)",
            _read(REF / "S5_tokyo_rw2_cyclic" / "data.csv"), {"family": "binomial", "Ntrials": "n"})


def germany_spacetime():
    return ('Y ~ 1 + f(region, model = "besag", graph = g, group = year, control.group = list(model = "ar1"))'
            ' + f(idx, model = "iid")',
            _read(PEER / "germany_spacetime" / "data.csv"), {"family": "poisson", "E": "E", "g": str(GERMANY_GRAPH)})


def spde_x_ar1(n_sites, nt, spacing):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _cases import FORMULA, simulate

    data, spde = simulate(n_sites, nt, spacing=spacing)
    return FORMULA, data, {"family": "gaussian", "sp": spde}


def _reference(case):
    """R-INLA's 1-thread Running and Total seconds from the case's results.json."""
    cpu = json.loads((REF / case / "results.json").read_text())["cpu.used.threads_1_1"]
    return {"rinla_running_s": cpu["Running"], "rinla_total_s": cpu["Total"]}


# name: (case, files it needs, R-INLA's times)
CASES = {
    **{name: (fn, [REF / name / "results.json"], functools.partial(_reference, name)) for name, fn in [
        ("S1_gaussian_linear", s1), ("S2_germany_bym2_rw2", s2), ("S3_seeds_binomial_iid", s3),
        ("S4_spdetoy_spde", s4), ("S5_tokyo_rw2_cyclic", s5)]},
    # no results.json for the next three: R-INLA's times as reported in issue 14, which asked for
    # these cases (germany_spacetime: running 12.1 s, total 12.9 s; SPDE ⊗ AR1: 67 s at ~10k
    # latent nodes, unfinished after 810 s at ~37k)
    "germany_spacetime": (germany_spacetime, [PEER / "germany_spacetime" / "data.csv", GERMANY_GRAPH],
                          lambda: {"rinla_running_s": 12.1, "rinla_total_s": 12.9}),
    "spde_x_ar1_10k": (functools.partial(spde_x_ar1, 300, 20, 0.08), [],      # 498 nodes x 20 times
                       lambda: {"rinla_running_s": 67.0, "rinla_total_s": None}),
    "spde_x_ar1_37k": (functools.partial(spde_x_ar1, 300, 38, 0.05), [],      # 969 nodes x 38 times
                       lambda: {"rinla_running_s": None, "rinla_total_s": None, "rinla_note": "> 810 s unfinished"}),
}
QUICK = [name for name in CASES if not name.startswith("spde_x_ar1")]


# ---- child: one process, one case ----

def _sizes(formula, data, kw):
    """N, m, d of the model (compile only; the objects are the keywords compile_formula lacks)."""
    import adelia

    own = inspect.signature(adelia.compile_formula).parameters
    model = adelia.compile_formula(formula, data, **{k: v for k, v in kw.items() if k in own},
                                   objects={k: v for k, v in kw.items() if k not in own})
    return {"N": model.N, "m": model.m, "d": model.d}


def _warm_fit(fit):
    """(best of 3 calls when the first is under 5 s, else the one call; the first call; the fit)."""
    times = []
    while not times or (len(times) < 3 and times[0] < 5.0):
        t = time.perf_counter()
        dt = fit()
        times.append(time.perf_counter() - t)
    return min(times), times[0], dt


def child(name, warm):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import adelia
        from adelia.compiler.latent.spde import SPDE

        formula, data, kw = CASES[name][0]()
        dt = adelia.fit(formula, data, **kw)
        out = {"fit_s": time.perf_counter() - T0}
        if warm:
            out["warm_s"], out["warm_first_s"], dt = _warm_fit(lambda: adelia.fit(formula, data, **kw))
    attrs = dt["inla"].attrs
    out.update(_sizes(formula, data, kw), solver=attrs["solver"], n_objective=attrs.get("n_objective"),
               n_gradient=attrs.get("n_gradient"),
               stages={k: round(v, 4) for k, v in json.loads(attrs["timings"]).items()})
    out.update({"mesh_nodes": v.n for v in kw.values() if isinstance(v, SPDE)})
    out["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    print(json.dumps(out, default=float), flush=True)


# ---- parent: two processes per case, one JSON line ----

def run_child(name, cache, warm, timeout):
    """(the child's JSON, the parent's wall seconds) of one new process on the cache directory."""
    env = {**os.environ, "ADELIA_COMPILATION_CACHE": cache}
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name] + (["--warm"] if warm else [])
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{'second' if warm else 'cold'} process timed out after {timeout} s") from None
    wall = time.perf_counter() - t
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{'second' if warm else 'cold'} process exit {proc.returncode}: "
                           + " | ".join(proc.stderr.strip().splitlines()[-4:]))
    return json.loads(lines[-1]), wall


FIELDS = ("name", "N", "m", "d", "solver", "mesh_nodes", "cold_s", "cold_again_s", "warm_s", "warm_first_s", "process_s",
          "process_again_s", "cache_files", "rinla_running_s", "rinla_total_s", "rinla_note", "n_objective",
          "n_gradient", "stages", "cold_stages", "warnings", "ok", "error")


def measure(name, timeout):
    """The case's JSON row; when the second process fails, the cold numbers and the cold fit's stages."""
    _, needs, rinla = CASES[name]
    missing = [str(p) for p in needs if not p.exists()]
    if missing:
        return {"name": name, "skipped": f"absent: {', '.join(missing)}"}
    row = {"name": name, **rinla()}
    cache = tempfile.mkdtemp(prefix="adelia-jax-cache-")
    try:
        cold, row["process_s"] = run_child(name, cache, False, timeout)
        row["cache_files"] = sum(len(files) for _, _, files in os.walk(cache))
        row["cold_stages"] = cold.pop("stages")
        row.update(cold, cold_s=cold["fit_s"])
        again, row["process_again_s"] = run_child(name, cache, True, timeout)
        row.update(again, cold_again_s=again["fit_s"], warnings=sorted(set(cold["warnings"]) | set(again["warnings"])),
                   ok=True)
        del row["cold_stages"]
    except Exception as e:  # noqa: BLE001 - report and go on with the next case
        row.update(ok=False, error=str(e))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {k: round(row[k], 3) if isinstance(row[k], float) else row[k] for k in FIELDS if k in row}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="S1–S5 and germany_spacetime only")
    ap.add_argument("--only", help="comma-separated case names (or prefixes ending before '_', e.g. S1,S3)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per child process (default 900)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.warm)
        return 0
    names = QUICK if args.quick else list(CASES)
    if args.only:
        picks = args.only.split(",")
        names = [n for n in CASES if any(n == p or n.startswith(p + "_") for p in picks)]
        if not names:
            ap.error(f"no case matches {args.only!r}; cases: {', '.join(CASES)}")
    byte_compile()
    for name in names:
        print(json.dumps(measure(name, args.timeout)), flush=True)
    return 0


def byte_compile() -> None:
    """Write adelia's bytecode, as ``pip install`` does, so that every new process loads its
    modules as users' do. An editable install run with PYTHONDONTWRITEBYTECODE=1 otherwise
    compiles some 80 modules from source in each process: 0.13–0.3 s more on every cold number."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("adelia")
    if spec is not None and spec.origin:
        compileall.compile_dir(str(Path(spec.origin).parent), quiet=2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
