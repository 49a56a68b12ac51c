"""Benchmarks of the general sparse CPU path: CHOLMOD + supernodal selected inversion.

    OPENBLAS_NUM_THREADS=1 python benchmarks/sparse.py --quick    # < 1 minute
    OPENBLAS_NUM_THREADS=1 python benchmarks/sparse.py            # full sizes (a few minutes)
    ... --backend cvxopt --ordering amd                           # one backend, another ordering

Prints one JSON object per (case, CHOLMOD backend) on stdout; the installed backends of
``adelia.runtime.sparse`` (cvxopt; scikit-sparse on the system SuiteSparse) run side by side on
the same matrix, one after the other. Cases (PERFORMANCE.md "General sparse on CPU"):

* ``grid300`` — SPDE-like spatial precision on a 300 × 300 grid: K² = κ⁴I + 2κ²G + G² (K = κ²I + G,
  G the 5-point Laplacian, i.e. κ⁴C + 2κ²G + GC⁻¹G with lumped mass C = I), range ≈ 10 cells.
* ``spacetime40x40x50`` — AR1(ρ = 0.9, 50 times) ⊗ that spatial precision on 40 × 40.
  (``--quick``: 30 × 30 × 20.)

Fields: ``backend`` (and its version), ``ordering`` (requested) and ``ordering_used`` (what
CHOLMOD used: with cvxopt, ``metis-nd`` is METIS_NodeND from pymetis), ``nnz_L`` (CHOLMOD's
relaxed supernodes, explicit zeros included), ``flops`` (supernodal factorisation),
``t_analyse`` (ordering + symbolic, once per pattern), ``t_factor`` (numeric
refactorisation in place, the per-θ cost; ``t_factor_first`` allocates the factor),
``t_selinv`` (supernodal selected inversion into a reused buffer; ``t_selinv_first`` allocates
it), ``selinv_over_factor`` = t_selinv / t_factor (goal ≤ 3), ``t_to_csc`` (Σ as a scipy CSC in
the original ordering, both triangles, maps cached), ``t_selinv_pkg`` (the ``selinv`` PyPI package's
``selinvfull`` with the same permutation — its own LDLᵀ factorisation included — or null when it
is not installed), ``max_abs_diff_pkg`` (diag(Σ) against it), ``t_jax_value`` /
``t_jax_value_and_grad`` (``sparse_logdet`` through a host callback; the gradient adds one
selected inversion, the factor is reused), ``t_logdet`` and ``t_solve`` (one right-hand side).
``logdet_rel_diff`` and ``diag_sigma_max_abs_diff`` compare a backend with the first one of the
same case (null for the first). Times are minima over repeats; ``loadavg`` is the 1-minute load
average at the start of the case (other processes on the machine inflate times); the ``cpu_*``
fields are the matching minima of this process's CPU time (single-threaded BLAS: less sensitive
to a busy machine than wall time, though not to cache contention).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy/scipy/jax load BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def lap1d(m: int) -> sp.spmatrix:
    return sp.diags([-np.ones(m - 1), 2 * np.ones(m), -np.ones(m - 1)], [-1, 0, 1])


def spatial(m: int, range_cells: float = 10.0) -> sp.csc_matrix:
    kappa2 = 8.0 / range_cells**2
    eye = sp.identity(m)
    K = kappa2 * sp.identity(m * m) + sp.kron(lap1d(m), eye) + sp.kron(eye, lap1d(m))
    return sp.csc_matrix(K @ K)


def ar1(nt: int, rho: float = 0.9) -> sp.spmatrix:
    d = np.full(nt, 1 + rho**2)
    d[0] = d[-1] = 1.0
    return sp.diags([-rho * np.ones(nt - 1), d, -rho * np.ones(nt - 1)], [-1, 0, 1]) / (1 - rho**2)


def spacetime(m: int, nt: int) -> sp.csc_matrix:
    return sp.csc_matrix(sp.kron(ar1(nt), spatial(m)))


def timed(fn, repeats: int, cpu: dict | None = None, key: str = ""):
    """Best wall time over ``repeats`` calls (and, into ``cpu[key]``, the best process CPU time)."""
    best, best_cpu, out = np.inf, np.inf, None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    if cpu is not None:
        cpu[key] = best_cpu
    return best, out


def run_case(name: str, Q: sp.csc_matrix, *, backend: str, repeats: int, ordering: str, pkg: bool,
             jax_timing: bool) -> tuple[dict, np.ndarray]:
    from adelia.runtime import selinv as si
    from adelia.runtime import sparse

    be = sparse._load(backend)
    rec: dict = {"name": name, "backend": backend, "backend_version": be.version, "n": Q.shape[0],
                 "nnz_Q": int(Q.nnz), "ordering": ordering,
                 "loadavg": round(os.getloadavg()[0], 2),
                 "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    t0 = time.perf_counter()
    an = sparse.analyse(Q, ordering=ordering, backend=backend)
    rec["t_analyse"] = time.perf_counter() - t0
    rec["ordering_used"] = an.ordering_used
    v = an.values_of(Q)
    t0 = time.perf_counter()
    F = sparse.factor(an, v)
    rec["t_factor_first"] = time.perf_counter() - t0
    cpu: dict = {}
    live = [F]

    def refactor():                    # in place: each call overwrites (and invalidates) the last factor
        live[0] = sparse.factor(an, v, reuse=live[0])
        return live[0]

    rec["t_factor"], F = timed(refactor, repeats, cpu, "cpu_factor")
    S, x = F.factor_values()
    rec["nnz_L"] = S.nnz
    rec["nsuper"] = S.nsuper
    rec["flops"] = an.flops()
    rec["direct_supernodal_access"] = bool(an._direct)
    rec["logdet"] = F.logdet()
    rec["t_logdet"], _ = timed(F.logdet, repeats, cpu, "cpu_logdet")
    b = np.random.default_rng(0).standard_normal(an.n)
    rec["t_solve"], _ = timed(lambda: F.solve(b), repeats, cpu, "cpu_solve")
    t0 = time.perf_counter()
    buf = si.selected_inverse(S, x)
    rec["t_selinv_first"] = time.perf_counter() - t0
    rec["t_selinv"], _ = timed(lambda: si.selected_inverse(S, x, out=buf), repeats, cpu, "cpu_selinv")
    rec["selinv_over_factor"] = rec["t_selinv"] / rec["t_factor"]
    F._sigma = buf
    Sig = F.selinv()
    t0 = time.perf_counter()
    Sig.tocsc()
    rec["t_to_csc_first"] = time.perf_counter() - t0
    rec["t_to_csc"], _ = timed(Sig.tocsc, 1)
    d = Sig.diagonal()
    rec["t_selinv_pkg"] = None
    rec["max_abs_diff_pkg"] = None
    if pkg:
        try:
            import selinv as selinv_pkg
        except ImportError:
            selinv_pkg = None
        if selinv_pkg is not None:
            low = sp.tril(Q, format="csc")
            perm = an.perm.astype(np.int32)
            t_pkg, (_, Ainv, invp) = timed(lambda: selinv_pkg.selinvfull(low.copy(), perm.copy()), 1)
            rec["t_selinv_pkg"] = t_pkg
            rec["max_abs_diff_pkg"] = float(np.abs(np.asarray(Ainv.diagonal())[invp] - d).max())
            del Ainv
    if jax_timing:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        vj = jnp.asarray(v)
        f = jax.jit(lambda v: sparse.sparse_logdet(v, an))
        fg = jax.jit(jax.value_and_grad(lambda v: sparse.sparse_logdet(v, an)))
        f(vj).block_until_ready()
        fg(vj)[1].block_until_ready()

        def fresh(fn):  # a different θ each call: no cached factor
            state = {"s": 1.0}

            def call():
                state["s"] *= 1.0000001
                out = fn(vj * state["s"])
                jax.block_until_ready(out)
                return out
            return call

        rec["t_jax_value"], _ = timed(fresh(f), repeats, cpu, "cpu_jax_value")
        rec["t_jax_value_and_grad"], _ = timed(fresh(fg), repeats, cpu, "cpu_jax_value_and_grad")
        rec["grad_over_value"] = rec["t_jax_value_and_grad"] / rec["t_jax_value"]
    rec.update(cpu)
    an.clear_cache()
    return rec, d


def main(argv=None) -> None:
    from adelia.runtime import sparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small space-time case, two repeats (< 1 minute)")
    ap.add_argument("--ordering", default="nesdis", choices=sparse.ORDERINGS)
    ap.add_argument("--no-pkg", action="store_true", help="skip the selinv package baseline")
    ap.add_argument("--backend", action="append", choices=sparse.BACKENDS,
                    help="CHOLMOD backend to run (repeatable; default: every installed one)")
    args = ap.parse_args(argv)

    backends = args.backend or list(sparse.backends())
    if not backends:
        print(json.dumps({"error": "no CHOLMOD backend is installed", "hint": sparse.INSTALL_HINT}))
        return
    if args.quick:
        cases = [("grid300", lambda: spatial(300)), ("spacetime30x30x20", lambda: spacetime(30, 20))]
        repeats = 2
    else:
        cases = [("grid300", lambda: spatial(300)), ("spacetime40x40x50", lambda: spacetime(40, 50))]
        repeats = 3
    for name, build in cases:
        Q = build()
        first = None
        for i, backend in enumerate(backends):
            rec, diag = run_case(name, Q, backend=backend, repeats=repeats, ordering=args.ordering,
                                 pkg=not args.no_pkg and i == 0, jax_timing=True)
            if first is None:
                first = (rec["logdet"], diag)
                rec["logdet_rel_diff"] = rec["diag_sigma_max_abs_diff"] = None
            else:
                rec["logdet_rel_diff"] = abs(rec["logdet"] - first[0]) / abs(first[0])
                rec["diag_sigma_max_abs_diff"] = float(np.abs(diag - first[1]).max())
            print(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) and k != "logdet" else v)
                              for k, v in rec.items()}), flush=True)


if __name__ == "__main__":
    main()
