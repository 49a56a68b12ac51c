"""Benchmarks of the BTA kernels and of the ADELIA Gaussian gradient on CPU.

    OPENBLAS_NUM_THREADS=1 python benchmarks/kernels.py --quick     # < 1 minute
    OPENBLAS_NUM_THREADS=1 python benchmarks/kernels.py             # full sizes
    python benchmarks/kernels.py --paper --only gradient             # the paper's sizes (GPU)

Prints one JSON object per case on stdout.

* ``factor`` cases: random SPD BTA matrices with dense blocks.  JAX ``bta_cholesky``
  (scan) against a Python block loop over SciPy's LAPACK/BLAS (potrf, trsm, syrk —
  one BLAS library only, PERFORMANCE.md §8) and against CHOLMOD (scikit-sparse,
  supernodal, on the same matrix as a SciPy CSC lower triangle; numeric
  factorisation with the symbolic analysis done once beforehand, natural ordering —
  the BTA order has no fill outside the pattern), plus selected inversion and solve.
  Rates use the standard flop count (7/3)·nt·b³ for all three.  ``t_factor`` /
  ``t_factor_scipy``: the factor is kept (``bta_cholesky``; the SciPy loop keeps the
  arrays LAPACK returns); ``t_logdet`` / ``t_logdet_scipy``: log-det only, nothing
  stored (``bta_factor_logdet``, the objective's use).  Keeping the factor costs the
  SciPy loop fresh allocations too (1.25 GB at b = 2000, nt = 20), so the two pairs
  are the like-for-like comparisons.
* ``gradient`` cases: a DEMF(1,2,1)-like space-time model (METHOD.md §9) on a
  regular grid (c0 = h²I, g1 = 5-point stiffness), Gaussian likelihood with point
  observations projected through the grid's triangles (:func:`grid_projection`: three
  neighbouring nodes per row, so AᵀA is sparse as for a mesh projection), a = 6 fixed
  effects, d = 4 (θ = log τ, log r_s, log r_t, log σ); and coregional (LMC) models
  (METHOD.md §10) with k = 2, 3 such fields per time block (b = k·ns), one Gaussian
  precision per response, nb = 2 fixed effects per response, d = 9 and 15 (shaped
  like GST-C2 / GST-C3 with a smaller ns).  Objective, ADELIA value-and-gradient
  (custom VJP), naive value-and-gradient (reverse mode through the scan,
  "AD-Loop"), and central finite differences (2d + 1 sequential objective
  evaluations).  Each model runs twice: ``prior_logdet = "spectral"`` takes log|Q_p|
  from the spatial spectrum (:func:`~adelia.runtime.coregional.demf_logdet`; only
  Q_c goes through the BTA sweeps — the way to run these models), then
  ``"factorised"`` with Q_p factorised and selected-inverted by the generic core.

Times are the minimum over repeats after a warm-up call (JIT compilation excluded);
a gradient case times its objective, AD and FD gradients in alternating rounds, so
their ratios are not skewed by the machine speeding up or slowing down between them.
Peak memory = temp + output bytes of the compiled executable
(``jax.jit(f).lower(...).compile().memory_analysis()`` of the executable timed).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy/scipy/jax load BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")  # CHOLMOD's OpenMP loops

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.linalg import blas, lapack  # noqa: E402

try:  # optional: CHOLMOD side by side with the BTA factorisation
    from sksparse import cholmod  # noqa: E402
except ImportError:  # pragma: no cover
    cholmod = None

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from adelia.runtime.bta import (  # noqa: E402
    BTA,
    bta_cholesky,
    bta_factor_logdet,
    bta_logdet,
    bta_sample,
    bta_selected_inverse,
    bta_solve,
)
from adelia.runtime.bta_gradient import (  # noqa: E402
    assemble_precisions,
    gaussian_objective,
    gaussian_objective_naive,
    make_gaussian_data,
)
from adelia.runtime.coregional import (  # noqa: E402
    coregional_generators,
    coregional_prior_logdet,
    coregional_observations,
    demf_generators,
    demf_prior_logdet,
    demf_temporal,
    fem_powers,
)

# ---------------------------------------------------------------------------
# Timing and memory helpers
# ---------------------------------------------------------------------------


def _cpu_ticks() -> tuple[int, int]:
    """(busy ticks of the whole machine, ticks used by this process) from /proc."""
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
        busy = sum(f) - f[3] - f[4]  # all but idle and iowait
        with open("/proc/self/stat") as fh:
            g = fh.read().rsplit(")", 1)[1].split()
        return busy, int(g[11]) + int(g[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return 0, 0


MIN_TOTAL = 0.5  # seconds of timed runs per measurement (--quick lowers it)


def best_time(fn, *args, repeats: int = 3, min_total: float | None = None) -> float:
    """Min wall time of ``fn(*args)`` after one warm-up call (JIT excluded).

    At least ``repeats`` clean runs, and more for fast functions until ``min_total``
    seconds were spent (at most 200 runs).  On a shared machine a run during which
    other processes used more than one clock tick per 0.1 s of CPU is not counted as
    clean; if no clean run is left the plain minimum is returned."""
    max_rounds = max(3 * repeats, 200)
    return best_times([fn], *args, repeats=repeats, min_total=min_total, max_rounds=max_rounds)[0]


def best_times(fns, *args, repeats: int = 3, min_total: float | None = None, max_rounds=2000):
    """Min wall times of several ``fn(*args)`` timed in alternating rounds (one run of
    each per round), so that drift in the machine's speed (a shared VM) hits all of
    them alike and their ratios stay comparable.  Rounds continue until every
    function has ``repeats`` clean runs (see :func:`best_time`) and the rounds took
    ``min_total`` seconds per function — or, on a busy machine, until 3·``repeats``
    rounds took that long — for at most ``max_rounds`` rounds."""
    min_total = MIN_TOTAL if min_total is None else min_total
    for fn in fns:
        jax.block_until_ready(fn(*args))
    clean = [[] for _ in fns]
    everything = [[] for _ in fns]
    for rounds in range(1, max_rounds + 1):
        for k, fn in enumerate(fns):
            busy0, own0 = _cpu_ticks()
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            dt = time.perf_counter() - t0
            busy1, own1 = _cpu_ticks()
            everything[k].append(dt)
            if (busy1 - busy0) - (own1 - own0) <= 1 + 10 * dt:
                clean[k].append(dt)
        if sum(sum(e) for e in everything) >= min_total * len(fns):
            if all(len(c) >= repeats for c in clean) or rounds >= 3 * repeats:
                break
    return [min(c or e) for c, e in zip(clean, everything)]


def compiled(fn, *args):
    """Ahead-of-time compiled ``jax.jit(fn)`` for these argument shapes: one
    compilation serves both the timings and :func:`peak_bytes`."""
    return jax.jit(fn).lower(*args).compile()


def peak_bytes(exe) -> int | None:
    """temp + output bytes of a compiled executable, or None if unavailable."""
    try:
        stats = exe.memory_analysis()
        return int(stats.temp_size_in_bytes + stats.output_size_in_bytes)
    except Exception:  # memory_analysis is backend-dependent
        return None


def factor_rates(flops: float, t_factor: float, t_scipy: float) -> dict:
    """The factorisation fields of a record: times, GFLOP/s of each, and the rate ratio."""
    return dict(
        t_factor=t_factor,
        t_factor_scipy=t_scipy,
        gflops_factor=flops / t_factor / 1e9,
        gflops_factor_scipy=flops / t_scipy / 1e9,
        factor_rate_vs_scipy=t_scipy / t_factor,
    )


def bta_bytes(b: int, nt: int, a: int) -> int:
    return 8 * (nt * b * b + (nt - 1) * b * b + nt * a * b + a * a)


# ---------------------------------------------------------------------------
# SciPy-BLAS reference loop (METHOD.md §4 recurrence, potrf/trsm/syrk)
# ---------------------------------------------------------------------------


def scipy_bta_cholesky(diag, lower, arrow, tip, store: bool = True):
    """BTA Cholesky as a Python loop over SciPy LAPACK/BLAS; returns log|Q|.

    With ``store`` the factor blocks L_D,i, L_B,iᵀ, L_C,iᵀ are kept (the arrays LAPACK
    and BLAS return, in lists: no copy), as :func:`bta_cholesky` keeps its factor;
    without, only the Schur carries live between blocks (as
    :func:`bta_factor_logdet`).
    Blocks are symmetric, so ``D.T`` is a free Fortran-ordered view; B L⁻ᵀ is
    computed as (L⁻¹ Bᵀ)ᵀ on Fortran views to avoid layout copies."""
    nt = diag.shape[0]
    kept = []
    S = R = None
    T = np.asfortranarray(tip.copy())
    logdet = 0.0
    for i in range(nt):
        X = diag[i].T if S is None else diag[i].T - S
        L, info = lapack.dpotrf(X, lower=1, clean=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"block {i} not positive definite")
        logdet += 2.0 * np.log(np.diagonal(L)).sum()
        C = arrow[i] if R is None else arrow[i] - R
        LCt = blas.dtrsm(1.0, L, np.asfortranarray(C.T), lower=1)  # L⁻¹ Cᵀ = L_Cᵀ
        T = blas.dsyrk(-1.0, LCt, beta=1.0, c=T, trans=1, lower=1)  # T − L_C L_Cᵀ
        if store:
            kept += [L, LCt]
        if i + 1 < nt:
            LBt = blas.dtrsm(1.0, L, lower[i].T, lower=1)  # L⁻¹ Bᵀ = L_Bᵀ (Fortran)
            S = blas.dsyrk(1.0, LBt, trans=1, lower=1)  # L_B L_Bᵀ (lower part)
            R = blas.dgemm(1.0, LCt, LBt, trans_a=1)  # L_C L_Bᵀ
            if store:
                kept.append(LBt)
    if tip.shape[0]:
        LT, info = lapack.dpotrf(T, lower=1, clean=1)
        logdet += 2.0 * np.log(np.diagonal(LT)).sum()
    return logdet


def bta_lower_csc(diag, lower, arrow, tip) -> sp.csc_matrix:
    """Lower triangle of a symmetric BTA (NumPy blocks) as a SciPy CSC matrix, built
    column panel by column panel ([D_i; B_i; C_i] below the diagonal) without ever
    forming the dense N x N matrix or a COO intermediate."""
    nt, b, _ = diag.shape
    a = tip.shape[0]
    n = nt * b + a
    data, indices, counts = [], [], []
    for i in range(nt):
        panel = [diag[i]] + ([lower[i]] if i + 1 < nt else []) + [arrow[i]]
        P = np.concatenate(panel, axis=0)  # rows i·b.. of block column i
        rows = i * b + np.arange(P.shape[0])
        rows[P.shape[0] - a :] = nt * b + np.arange(a)
        keep = np.arange(P.shape[0])[:, None] >= np.arange(b)[None, :]  # D_i lower part
        keep[b:] = True
        data.append(P.T[keep.T])
        indices.append(np.broadcast_to(rows, (b, P.shape[0]))[keep.T])
        counts.append(keep.sum(axis=0))
    keep = np.tril(np.ones((a, a), bool))
    data.append(tip.T[keep.T])
    indices.append(np.broadcast_to(nt * b + np.arange(a), (a, a))[keep.T])
    counts.append(keep.sum(axis=0))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    return sp.csc_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=(n, n))


def cholmod_factor_timing(Qn, repeats: int):
    """(t_numeric, t_analyse, log|Q|) of CHOLMOD on the BTA matrix, or Nones."""
    if cholmod is None:
        return None, None, None
    A = bta_lower_csc(*Qn)
    t0 = time.perf_counter()
    F = cholmod.analyze(A, mode="supernodal", ordering_method="natural")
    t_analyse = time.perf_counter() - t0
    t_numeric = best_time(F.cholesky_inplace, A, repeats=repeats)
    return t_numeric, t_analyse, float(F.logdet())


# ---------------------------------------------------------------------------
# Factorisation cases
# ---------------------------------------------------------------------------


def random_spd_bta(b: int, nt: int, a: int, seed: int = 0) -> BTA:
    """Random SPD BTA with dense blocks, strictly diagonally dominant: off-diagonal
    entries U(−1, 1)/b, diagonal 4 + (a-dependent margin)."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / b
    diag = rng.uniform(-scale, scale, (nt, b, b))
    diag = 0.5 * (diag + diag.transpose(0, 2, 1))
    idx = np.arange(b)
    diag[:, idx, idx] = 4.0 + a * scale
    lower = rng.uniform(-scale, scale, (nt - 1, b, b))
    arrow = rng.uniform(-scale, scale, (nt, a, b))
    tip = rng.uniform(-scale, scale, (a, a))
    tip = 0.5 * (tip + tip.T) + (4.0 + nt * b * scale) * np.eye(a)
    return BTA(diag, lower, arrow, tip)


def factor_case(b: int, nt: int, a: int, repeats: int, extras: bool) -> dict:
    Qn = random_spd_bta(b, nt, a)
    Q = BTA(*map(jnp.asarray, Qn))
    flops = nt * (7.0 / 3.0) * b**3

    chol = compiled(bta_cholesky, Q)
    t_factor = best_time(chol, Q, repeats=repeats)
    L = chol(Q)
    logdet = float(bta_logdet(L))

    t_scipy = best_time(scipy_bta_cholesky, *Qn, repeats=repeats)
    logdet_scipy = scipy_bta_cholesky(*Qn)
    # log-det only (nothing stored), the objective's use of the factorisation
    t_logdet = best_time(compiled(bta_factor_logdet, Q), Q, repeats=repeats)
    t_logdet_scipy = best_time(partial(scipy_bta_cholesky, store=False), *Qn, repeats=repeats)
    t_cholmod, t_analyse, logdet_cholmod = cholmod_factor_timing(Qn, repeats)

    out = dict(
        name=f"factor_b{b}_nt{nt}_a{a}",
        kind="factor",
        b=b,
        nt=nt,
        a=a,
        d=None,
        t_objective=None,
        t_grad_ad=None,
        t_grad_fd=None,
        t_grad_naive=None,
        **factor_rates(flops, t_factor, t_scipy),
        t_logdet=t_logdet,
        t_logdet_scipy=t_logdet_scipy,
        logdet_rate_vs_scipy=t_logdet_scipy / t_logdet,
        logdet_rel_diff_vs_scipy=abs(logdet - logdet_scipy) / abs(logdet_scipy),
        t_factor_cholmod=t_cholmod,
        t_analyse_cholmod=t_analyse,
        gflops_factor_cholmod=None if t_cholmod is None else flops / t_cholmod / 1e9,
        factor_rate_vs_cholmod=None if t_cholmod is None else t_cholmod / t_factor,
        logdet_rel_diff_vs_cholmod=(
            None if t_cholmod is None else abs(logdet - logdet_cholmod) / abs(logdet_cholmod)
        ),
        peak_bytes_grad=None,
        peak_bytes_factor=peak_bytes(chol),
        factor_bytes=bta_bytes(b, nt, a),
    )
    if extras:
        selinv = jax.jit(bta_selected_inverse)
        solve = jax.jit(bta_solve)
        r = jnp.ones(nt * b + a)
        out["t_selinv"] = best_time(selinv, L, repeats=repeats)
        out["t_solve"] = best_time(solve, L, r, repeats=repeats)
        out["selinv_over_factor"] = out["t_selinv"] / t_factor
    return out


# ---------------------------------------------------------------------------
# DEMF(1,2,1)-like gradient cases (METHOD.md §9)
# ---------------------------------------------------------------------------


def grid_fem(nx: int, ny: int, h: float = 1.0):
    """Lumped mass c0 = h²I and 5-point stiffness g1 on an nx x ny grid (Neumann)."""

    def lap1(n):
        g = 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
        g[0, 0] = g[-1, -1] = 1.0
        return g

    g1 = np.kron(lap1(ny), np.eye(nx)) + np.kron(np.eye(ny), lap1(nx))
    c0 = h * h * np.ones(nx * ny)
    return c0, g1


def grid_projection(nx: int, ny: int, u: np.ndarray):
    """Nodes (..., 3) and barycentric weights (..., 3) of points u (..., 2) in the unit
    square on the nx x ny grid, each square split into two triangles along its diagonal:
    the projection matrix rows of point observations on a mesh (as in the paper's GST
    data), three neighbouring nodes per row; node (x, y) is y·nx + x."""
    p = u * np.array([nx - 1, ny - 1])
    cell = np.minimum(np.floor(p).astype(int), np.array([nx - 2, ny - 2]))
    fx, fy = (p - cell)[..., 0], (p - cell)[..., 1]
    x0, y0 = cell[..., 0], cell[..., 1]
    lower = fx >= fy  # triangle (x0, y0), (x0 + 1, y0), (x0 + 1, y0 + 1), else the upper one
    mid = np.where(lower, y0 * nx + x0 + 1, (y0 + 1) * nx + x0)
    nodes = np.stack([y0 * nx + x0, mid, (y0 + 1) * nx + x0 + 1], axis=-1)
    w = np.stack(
        [1 - np.maximum(fx, fy), np.abs(fx - fy), np.minimum(fx, fy)], axis=-1
    )
    return nodes, w


def demf_problem(nx: int, ny: int, nt: int, a: int, obs_per_node: float, seed: int = 0):
    """Synthetic data set simulated from the model at θ_true."""
    rng = np.random.default_rng(seed)
    b = nx * ny
    m_t = max(1, int(round(obs_per_node * b)))
    c0, g1 = grid_fem(nx, ny)
    gen_data = fem_powers(c0, g1)
    m_diag, m_lower = demf_temporal(nt)
    A = np.zeros((nt, m_t, b))
    nodes, w = grid_projection(nx, ny, rng.uniform(0, 1, (nt, m_t, 2)))
    for k in range(3):
        np.add.at(A, (np.arange(nt)[:, None], np.arange(m_t)[None, :], nodes[..., k]), w[..., k])
    A_tip = np.concatenate([np.ones((nt, m_t, 1)), rng.standard_normal((nt, m_t, a - 1))], axis=-1)
    theta_true = jnp.array([np.log(4.0), np.log(0.3 * nx), np.log(3.0), np.log(1.0)])
    tmp = make_gaussian_data(
        m_diag=m_diag, m_lower=m_lower, tip_prec=np.full(a, 1e-3),
        A_blocks=A, A_tip=A_tip, y=np.zeros((nt, m_t)), gen_data=gen_data,
    )
    Qp, _, _ = assemble_precisions(demf_generators, theta_true, tmp)
    Qp = Qp._replace(tip=jnp.eye(a))  # β ~ N(0, I) for the simulation
    x = bta_sample(bta_cholesky(Qp), jax.random.PRNGKey(seed))
    u, beta = np.asarray(x[: nt * b]).reshape(nt, b), np.asarray(x[nt * b :])
    y = np.einsum("tmb,tb->tm", A, u) + A_tip @ beta + rng.standard_normal((nt, m_t)) / 2.0
    data = make_gaussian_data(
        m_diag=m_diag, m_lower=m_lower, tip_prec=np.full(a, 1e-3),
        A_blocks=A, A_tip=A_tip, y=y, gen_data=gen_data,
    )
    return data, theta_true + 0.1


def coregional_problem(k: int, nx: int, ny: int, nt: int, nb: int, obs_per_node: float, seed=0):
    """Synthetic k-variate LMC data set (METHOD.md §10) simulated at θ_true: at every
    time, each variable is observed ``obs_per_node``·ns times at random nodes (one
    variable, one node per observation), with an intercept and nb − 1 random
    covariates per variable; noise precision 4 for every response."""
    rng = np.random.default_rng(seed)
    ns = nx * ny
    c0, g1 = grid_fem(nx, ny)
    gen_data = fem_powers(c0, g1)
    m_diag, m_lower = demf_temporal(nt)
    per = max(1, int(round(obs_per_node * ns)))
    time_ = np.repeat(np.arange(nt), k * per)
    var = np.tile(np.repeat(np.arange(k), per), nt)
    node = rng.integers(0, ns, time_.size)
    X = np.concatenate([np.ones((time_.size, 1)), rng.standard_normal((time_.size, nb - 1))], 1)
    fields = [[np.log(0.3 * nx), np.log(3.0), 0.0]] * k
    lambdas = [0.5, -0.3, 0.4][: k * (k - 1) // 2]
    theta_true = jnp.array([np.log(4.0)] * k + sum(fields, []) + lambdas)
    obs = coregional_observations(time_, var, node, X, np.zeros(time_.size), k=k, ns=ns, nt=nt)
    common = dict(m_diag=m_diag, m_lower=m_lower, tip_prec=np.full(k * nb, 1e-3), gen_data=gen_data)
    prior_only = make_gaussian_data(**common, **obs)
    Qp, _, _ = assemble_precisions(coregional_generators, theta_true, prior_only)
    Qp = Qp._replace(tip=jnp.eye(k * nb))  # β ~ N(0, I) for the simulation
    x = np.asarray(bta_sample(bta_cholesky(Qp), jax.random.PRNGKey(seed)))
    u, beta = x[: nt * k * ns].reshape(nt, k * ns), x[nt * k * ns :]
    eta = np.einsum("tmb,tb->tm", obs["A_blocks"], u) + obs["A_tip"] @ beta
    obs["y"] = (eta + rng.standard_normal(eta.shape) / 2.0) * obs["mask"]
    return make_gaussian_data(**common, **obs), theta_true + 0.1


def gradient_case(name, gens, data, theta, repeats, naive=True, prior_logdet=None) -> dict:
    """Objective, AD-BTA / naive / FD gradients of one model.  With ``prior_logdet``
    log|Q_p| comes from the spatial spectrum (objective and gradients alike) and only
    Q_c runs through the BTA sweeps; without it Q_p is factorised too."""
    nt, b = data.AtA_diag.shape[1:3]
    a, d = data.AtA_tip.shape[-1], theta.shape[0]
    f = partial(gaussian_objective, gens, prior_logdet=prior_logdet)
    f_naive = partial(gaussian_objective_naive, gens, prior_logdet=prior_logdet)
    obj = compiled(f, theta, data)
    vg = compiled(jax.value_and_grad(f), theta, data)
    h = 1e-4
    shifts = [jnp.zeros(d)] + [s * h * jnp.eye(d)[k] for k in range(d) for s in (1.0, -1.0)]

    def fd_gradient(theta, data):
        vals = [obj(theta + e, data) for e in shifts]  # 2d + 1 sequential evaluations
        vals = [float(v) for v in vals]
        return np.array([(vals[2 * k + 1] - vals[2 * k + 2]) / (2 * h) for k in range(d)])

    t_objective, t_grad_ad, t_grad_fd = best_times(
        [obj, vg, fd_gradient], theta, data, repeats=repeats
    )
    val, g_ad = vg(theta, data)
    g_fd = fd_gradient(theta, data)

    t_grad_naive = peak_naive = None
    g_naive_err = None
    if naive:
        vg_naive = compiled(jax.value_and_grad(f_naive), theta, data)
        t_grad_naive = best_time(vg_naive, theta, data, repeats=repeats)
        g_naive = vg_naive(theta, data)[1]
        g_naive_err = float(jnp.max(jnp.abs(g_naive - g_ad)) / jnp.max(jnp.abs(g_ad)))
        peak_naive = peak_bytes(vg_naive)

    _, Qc, _ = assemble_precisions(gens, theta, data)
    Qc = jax.block_until_ready(Qc)
    t_factor = best_time(jax.jit(bta_cholesky), Qc, repeats=repeats)
    Qn = tuple(np.asarray(t) for t in Qc)
    t_scipy = best_time(scipy_bta_cholesky, *Qn, repeats=repeats)
    flops = nt * (7.0 / 3.0) * b**3

    return dict(
        name=name,
        kind="gradient",
        prior_logdet="spectral" if prior_logdet is not None else "factorised",
        b=b,
        nt=nt,
        a=a,
        d=d,
        m=int(jnp.sum(data.n_obs)),
        objective=float(val),
        t_objective=t_objective,
        t_grad_ad=t_grad_ad,
        t_grad_fd=t_grad_fd,
        t_grad_naive=t_grad_naive,
        **factor_rates(flops, t_factor, t_scipy),
        grad_ad_over_objective=t_grad_ad / t_objective,
        fd_over_ad=t_grad_fd / t_grad_ad,
        naive_over_ad=None if t_grad_naive is None else t_grad_naive / t_grad_ad,
        grad_fd_max_rel_err=float(np.max(np.abs(g_fd - np.asarray(g_ad))) / np.max(np.abs(g_fd))),
        grad_naive_max_rel_err=g_naive_err,
        peak_bytes_objective=peak_bytes(obj),
        peak_bytes_grad=peak_bytes(vg),
        peak_bytes_grad_naive=peak_naive,
        factor_bytes=bta_bytes(b, nt, a),
    )


# ---------------------------------------------------------------------------


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, < 1 minute")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--only", choices=["factor", "gradient", "coregional"], default=None)
    p.add_argument(
        "--paper",
        action="store_true",
        help="gradient cases at the paper's GST-S/M/C2/C3 sizes (METHOD.md §14.1; for GPUs)",
    )
    args = p.parse_args(argv)

    global MIN_TOTAL
    rep = args.repeats or 3
    factor_sizes = [(500, 50, 5), (1000, 50, 5), (2000, 20, 5)]
    if args.quick:
        MIN_TOTAL = 0.2
        factor_sizes = [(200, 10, 5), (400, 8, 5)]
        grad_cases = [("GST-S-like", 23, 4, 5, 6, 10.0), ("GST-M-like-small", 10, 10, 20, 6, 2.0)]
        coreg_cases = [("GST-C2-like-small", 2, 6, 6, 12, 2), ("GST-C3-like-small", 3, 6, 6, 8, 2)]
    elif args.paper:  # ns = 92, 812, 361 (paper: 354), observations as in the paper's data sets
        grad_cases = [("GST-S", 23, 4, 5, 6, 10.0), ("GST-M", 28, 29, 100, 6, 2.0)]
        coreg_cases = [("GST-C2", 2, 19, 19, 12, 2), ("GST-C3", 3, 19, 19, 8, 3)]
    else:
        grad_cases = [("GST-S-like", 23, 4, 5, 6, 10.0), ("GST-M-like", 20, 20, 50, 6, 2.0)]
        coreg_cases = [("GST-C2-like", 2, 12, 12, 12, 2), ("GST-C3-like", 3, 12, 12, 8, 2)]

    if args.only in (None, "factor"):
        for b, nt, a in factor_sizes:
            r = rep if b < 2000 else min(rep, 2)
            print(json.dumps(factor_case(b, nt, a, r, extras=True)), flush=True)
    # Each model twice: log|Q_p| from the spectrum (the default way to run these
    # models), then with Q_p factorised by the generic core (no naive AD there).
    if args.only in (None, "gradient"):
        for name, nx, ny, nt, a, opn in grad_cases:
            data, theta = demf_problem(nx, ny, nt, a, opn)
            for pl in (demf_prior_logdet, None):
                case = gradient_case(
                    name, demf_generators, data, theta, rep, naive=pl is not None, prior_logdet=pl
                )
                print(json.dumps(case), flush=True)
    if args.only in (None, "gradient", "coregional"):
        for name, k, nx, ny, nt, nb in coreg_cases:
            data, theta = coregional_problem(k, nx, ny, nt, nb, obs_per_node=2.0)
            for pl in (coregional_prior_logdet, None):
                case = gradient_case(
                    name, coregional_generators, data, theta, rep, naive=pl is not None,
                    prior_logdet=pl,
                )
                print(json.dumps(case), flush=True)


if __name__ == "__main__":
    main()
