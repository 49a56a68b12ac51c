"""Benchmarks of the general sparse CPU path: CHOLMOD + supernodal selected inversion.

    OPENBLAS_NUM_THREADS=1 python benchmarks/sparse.py --quick    # < 1 minute
    OPENBLAS_NUM_THREADS=1 python benchmarks/sparse.py            # full sizes (a few minutes)

Prints one JSON object per case on stdout. Cases (PERFORMANCE.md "General sparse on CPU"):

* ``grid300`` — SPDE-like spatial precision on a 300 × 300 grid: K² = κ⁴I + 2κ²G + G² (K = κ²I + G,
  G the 5-point Laplacian, i.e. κ⁴C + 2κ²G + GC⁻¹G with lumped mass C = I), range ≈ 10 cells.
* ``spacetime40x40x50`` — AR1(ρ = 0.9, 50 times) ⊗ that spatial precision on 40 × 40.
  (``--quick``: 30 × 30 × 20.)

Fields: ``t_analyse`` (ordering + symbolic, once per pattern), ``t_factor`` (numeric
refactorisation in place, the per-θ cost; ``t_factor_first`` allocates the factor),
``t_selinv`` (supernodal selected inversion into a reused buffer; ``t_selinv_first`` allocates
it), ``selinv_over_factor`` = t_selinv / t_factor (goal ≤ 3), ``t_to_csc`` (Σ as a scipy CSC in
the original ordering, both triangles, maps cached), ``t_selinv_pkg`` (the ``selinv`` PyPI package's
``selinvfull`` with the same permutation — its own LDLᵀ factorisation included — or null when it
is not installed), ``max_abs_diff_pkg`` (diag(Σ) against it), ``t_jax_value`` /
``t_jax_value_and_grad`` (``sparse_logdet`` through ``jax.pure_callback``; the gradient adds one
selected inversion, the factor is reused). Times are minima over repeats; ``loadavg`` is the
1-minute load average at the start of the case (other processes on the machine inflate times).
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


def timed(fn, repeats: int):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_case(name: str, Q: sp.csc_matrix, *, repeats: int, ordering: str, pkg: bool, jax_timing: bool) -> dict:
    from adelia.runtime import selinv as si
    from adelia.runtime import sparse

    rec: dict = {"name": name, "n": Q.shape[0], "nnz_Q": int(Q.nnz), "ordering": ordering,
                 "loadavg": round(os.getloadavg()[0], 2),
                 "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    t0 = time.perf_counter()
    an = sparse.analyse(Q, ordering=ordering)
    rec["t_analyse"] = time.perf_counter() - t0
    v = an.values_of(Q)
    t0 = time.perf_counter()
    F = sparse.factor(an, v)
    rec["t_factor_first"] = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        F = sparse.factor(an, v, reuse=F)
        best = min(best, time.perf_counter() - t0)
    rec["t_factor"] = best
    S, x = F.factor_values()
    rec["nnz_L"] = S.nnz
    rec["nsuper"] = S.nsuper
    rec["direct_supernodal_access"] = bool(an._direct)
    rec["logdet"] = F.logdet()
    rec["t_logdet"], _ = timed(F.logdet, repeats)
    b = np.random.default_rng(0).standard_normal(an.n)
    rec["t_solve"], _ = timed(lambda: F.solve(b), repeats)
    t0 = time.perf_counter()
    buf = si.selected_inverse(S, x)
    rec["t_selinv_first"] = time.perf_counter() - t0
    rec["t_selinv"], _ = timed(lambda: si.selected_inverse(S, x, out=buf), repeats)
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

        rec["t_jax_value"], _ = timed(fresh(f), repeats)
        rec["t_jax_value_and_grad"], _ = timed(fresh(fg), repeats)
        rec["grad_over_value"] = rec["t_jax_value_and_grad"] / rec["t_jax_value"]
    an.clear_cache()
    return rec


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small space-time case, one repeat (< 1 minute)")
    ap.add_argument("--ordering", default="nesdis")
    ap.add_argument("--no-pkg", action="store_true", help="skip the selinv package baseline")
    args = ap.parse_args(argv)
    from adelia.runtime import sparse

    if not sparse.available():
        print(json.dumps({"error": "scikit-sparse (CHOLMOD) is not installed", "hint": sparse.INSTALL_HINT}))
        return
    if args.quick:
        cases = [("grid300", lambda: spatial(300)), ("spacetime30x30x20", lambda: spacetime(30, 20))]
        repeats = 2
    else:
        cases = [("grid300", lambda: spatial(300)), ("spacetime40x40x50", lambda: spacetime(40, 50))]
        repeats = 3
    for name, build in cases:
        rec = run_case(name, build(), repeats=repeats, ordering=args.ordering, pkg=not args.no_pkg,
                       jax_timing=True)
        print(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) and k != "logdet" else v)
                          for k, v in rec.items()}), flush=True)


if __name__ == "__main__":
    main()
