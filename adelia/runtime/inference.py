"""The INLA pipeline for one compiled model: θ mode -> Hessian -> integration points ->
latent marginals (Gaussian mixture) -> θ marginals -> marginal likelihood -> posterior draws.

Defaults follow R-INLA's ``control.inla``: int.strategy "auto" (grid for d ≤ 2, ccd
otherwise), dz = 0.75, diff.logdens = 6, h = 0.005 (RINLA.md §6.2).
"""

from __future__ import annotations

__all__ = ["InferenceOptions", "FitResult", "run_inla"]

import atexit
import contextlib
import functools
import hashlib
import math
import os
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from adelia.errors import FitError, ModelError
from adelia.runtime import criteria
from adelia.runtime.arrays import device
from adelia.runtime.devices import plan as devices_plan, theta_batch
from adelia.runtime.integrate import ccd_design, grid_design, standardise
from adelia.runtime.laplace import GaussianApprox, LaplaceProblem
from adelia.runtime.marginals import (QUANTILES, density_summary, laplace_mixture_summary, mixture_summary,
                                      skew_mixture_summary, skew_normal_from_sla, theta_marginal_ccd,
                                      theta_marginal_grid, theta_marginal_lattice)
from adelia.runtime.optimize import ModeResult, central_difference_gradient, find_mode, hessian_at
from adelia.runtime.numpy_eval import numpy_eval, numpy_outputs
from adelia.runtime.problem import Problem, as_problem

from adelia.options import INT_STRATEGIES, SOLVERS, STRATEGIES  # noqa: E402
#: "auto" uses the general sparse path (CHOLMOD) above this latent size: a dense factorisation
#: costs N³/3 flops whatever the graph, so already at N = 366 (S5, a cyclic rw2) a fit took 0.9 s
#: dense against 0.3 s sparse; below it the dense path's few small BLAS calls beat the callbacks
DENSE_MAX_LATENT = 200
#: On CPU a BTA flop (JAX scan over dense blocks, selected inversion for the gradient) costs about
#: this many CHOLMOD flops (supernodal factor + our supernodal selected inversion): gradient-time
#: ratio over flop ratio 0.5–1.04 for SPDE ⊗ AR1 at b = 80–611, nt = 10–100 (benchmarks/solvers.py,
#: quiet 2-core CPU); with 1.0 the rule picks the faster path in all six cases measured
BTA_FLOP_COST = 1.0
#: dense models up to this latent size compile without XLA's backend optimisation (see CompiledProblem)
FAST_COMPILE_DENSE_MAX = 128
#: R-INLA's rule: "auto" means simplified.laplace below this latent size, else "adaptive".
SLA_MAX_LATENT = 5000
#: below these argument sizes a program runs its traced equations on NumPy instead of being
#: compiled (:class:`Program`'s ``host_max``): the draws' log-likelihood, the criteria's node
#: moments, and the Gaussian approximations and draws of tiny dense models (S1: 13 ms and 1 ms
#: a call, where compiling took 0.23 and 0.08 s)
LOGLIK_HOST_MAX = 150_000
CRITERIA_HOST_MAX = 5_000
GAUSSIAN_HOST_MAX = 2_000
SAMPLER_HOST_MAX = 10_000
#: sparse-path models up to this latent size, and dense ones until their programs are exported,
#: run their first fit in a process on NumPy (see CompiledProblem): a Gaussian approximation
#: costs 4–6 ms a call there at S4's and S5's size, 4 compiled (0.45 s to compile), but 56
#: against 40 at S2's 1174
FIRST_FIT_NUMPY_MAX_LATENT = 1_000
#: strategy = "laplace": standardised points x_j = x̂_j + σ_j s where log π̃(x_j | θ, y) is computed
LAPLACE_ABSCISSAE = np.linspace(-4.0, 4.0, 11)
#: R-INLA's control.inla adaptive.max: the adaptive strategy corrects the fixed effects and the
#: components of at most this many nodes
ADAPTIVE_MAX = 25


def adaptive_nodes(model: Problem, adaptive_max: int = ADAPTIVE_MAX) -> np.ndarray:
    """The nodes R-INLA's adaptive strategy gives the simplified-Laplace correction: every fixed
    effect and every component of length ≤ ``adaptive_max``; the other marginals stay Gaussian."""
    small = [np.arange(c.offset, c.offset + c.n) for c in model.components if c.n <= adaptive_max]
    return np.concatenate([*small, np.arange(model.fixed_offset, model.N)]).astype(int)


@dataclass(frozen=True)
class InferenceOptions:
    int_strategy: str = "auto"
    strategy: str = "auto"
    solver: str = "auto"
    dz: float = 0.75
    diff_logdens: float = 6.0
    h: float = 0.005
    n_samples: int = 1000
    seed: int = 0
    quantiles: tuple[float, ...] = QUANTILES
    progress: Callable[[str], None] | None = None
    devices: Any = None                  # None, an int or jax devices (adelia.runtime.devices.plan)
    gradient: str = "ad"                 # θ-mode search: "ad" (exact) or "fd" (R-INLA's central differences)
    chains: int = 4                      # int_strategy = "nuts": chains, warm-up and draws per chain
    warmup: int = 1000
    draws: int = 1000

    def __post_init__(self):
        if self.int_strategy not in INT_STRATEGIES:
            import difflib
            close = difflib.get_close_matches(self.int_strategy, INT_STRATEGIES, n=1)
            raise ModelError(f"unknown int_strategy '{self.int_strategy}'",
                             hint=(f"did you mean '{close[0]}'? " if close else "") + f"known: {', '.join(INT_STRATEGIES)}")
        if self.strategy not in STRATEGIES:
            import difflib
            close = difflib.get_close_matches(self.strategy, STRATEGIES, n=1)
            raise ModelError(f"unknown strategy '{self.strategy}'",
                             hint=(f"did you mean '{close[0]}'? " if close else "") + f"known: {', '.join(STRATEGIES)}")
        if self.solver not in SOLVERS:
            raise ModelError(f"unknown solver '{self.solver}'", hint=f"known: {', '.join(SOLVERS)}")
        if self.gradient not in ("ad", "fd"):
            raise ModelError(f"unknown gradient '{self.gradient}'", hint="known: ad (exact, automatic "
                             "differentiation), fd (R-INLA's central differences, 2d + 1 objective evaluations)")
        if self.chains < 1 or self.warmup < 1 or self.draws < 2:
            raise ModelError("chains and warmup must be >= 1 and draws >= 2")
        if self.n_samples < 0 or self.dz <= 0 or self.diff_logdens <= 0 or self.h <= 0:
            raise ModelError("n_samples must be >= 0 and dz, diff_logdens, h > 0")


@dataclass
class FitResult:
    model: Any                           # what run_inla was given (the front end's model, for results)
    problem: Problem
    options: InferenceOptions
    theta_mode: np.ndarray               # full internal θ at the mode
    free: np.ndarray                     # indices of estimated (not fixed) θ
    mode_info: ModeResult
    hessian: np.ndarray
    strategy: str
    points: np.ndarray                   # (K, d) full θ at the integration points
    log_post: np.ndarray                 # (K,) log π̃(θ_k | y)
    weights: np.ndarray                  # (K,) normalised mixture weights
    latent: dict[str, np.ndarray]        # mixture summaries of x (N,)
    linear_predictor: dict[str, np.ndarray]
    hyper_summary: dict[str, dict]       # label -> {"internal": {...}, "natural": {...}}
    mlik: dict[str, float]
    criteria: dict = field(default_factory=dict)
    draws_theta: np.ndarray | None = None     # (S, d)
    draws_x: np.ndarray | None = None         # (S, N)
    draws_loglik: np.ndarray | None = None    # (S, m_obs)
    draws_eta: np.ndarray | None = None       # (S, m)
    timings: dict[str, float] = field(default_factory=dict)
    evaluations: dict[str, int] = field(default_factory=dict)   # n_objective, n_gradient
    solver: str = ""                      # the linear-algebra path used (dense, sparse, bta)
    latent_strategy: str = ""             # the latent marginals' approximation used (gaussian, simplified.laplace...)
    #: per integration point (K, ·): the latent marginals' Gaussian means/sds, skew-normal parameters
    #: (xi, omega, alpha, when corrected) and η's mean (shift included)/sd — what the marginal
    #: density tables, PIT and predictions mix over
    point_marginals: dict | None = None


class Program:
    """A jitted function compiled ahead of time on its first call for each argument signature.

    Compilation is timed (:attr:`compile_seconds`) so a fit can report its JIT cost apart from
    its run time, and the executable is kept, so later calls skip JAX's dispatch-time checks.

    With ``export_key`` and a persistent compilation cache configured, the lowered program is
    also serialised there (``jax.export``, keyed by the model's fingerprint, the program and its
    argument signature): a new process fitting the same model deserialises it instead of tracing
    and lowering the Python code again, and JAX's cache then supplies the compiled executable.
    Programs that cannot be exported (host callbacks: the CHOLMOD path) are traced as usual.

    :meth:`prepare` compiles for a signature ahead of its first call, on a background thread
    (:func:`_in_background`), so that XLA compiles one program while the fit runs or compiles
    another: XLA's compiler releases the GIL.

    With ``host_max``, calls whose arguments hold at most that many numbers run the traced
    equations with NumPy instead (:func:`~adelia.runtime.numpy_eval.numpy_outputs`): a few
    milliseconds at that size, where compiling costs 50–150 ms of a small model's first fit.
    A program using a primitive NumPy does not cover is compiled as usual. With ``first_fit``
    every call runs on NumPy until :meth:`tier_up` (a model's first fit in this process; see
    :class:`CompiledProblem`), except a signature the compilation cache holds exported, which
    is loaded; an exportable program that ran on NumPy is exported (and compiled) in the
    background once that fit is over, for the next process.
    """

    def __init__(self, fn: Callable, static_argnums: tuple[int, ...] = (), *, export_key: str | None = None,
                 compiler_options: dict | None = None, host_max: int = 0, first_fit: bool = False):
        self._fn, self._host_max = fn, 0 if static_argnums else host_max
        self._first_fit = first_fit and not static_argnums
        self._jit = jax.jit(fn, static_argnums=static_argnums)
        self._options = dict(compiler_options or {})
        self._static = frozenset(static_argnums)
        self._export_key = export_key
        self._executables: dict = {}
        self._pending: dict[tuple, Future] = {}
        self._first_keys: dict[tuple, None] = {}   # signatures run on NumPy in the first fit, to export
        self._exported: dict[tuple, bool] = {}
        self.compile_seconds = 0.0
        self.sources: list[str] = []     # per compilation: "exported", "loaded" or "traced"

    def __call__(self, *args):
        small = self._host_max and sum(np.size(a) for a in args) <= self._host_max
        key = self._signature(args) if self._first_fit and not small else None
        first = key is not None and not self._loadable(key)
        if first or small:
            out = numpy_outputs(self._fn, *args)
            if out is not None:
                if first and self._export_key is not None:
                    self._first_keys[key] = None
                return out
        key = self._signature(args) if key is None else key
        exe = self._executables.get(key)
        if exe is None:
            t = time.perf_counter()
            exe = self._prepared(key, args)
            self.compile_seconds += time.perf_counter() - t     # only what the caller waited for
            self._executables[key] = exe
        return exe(*(a for i, a in enumerate(args) if i not in self._static))

    def prepare(self, *specs: jax.ShapeDtypeStruct) -> None:
        """Start compiling for arguments of these shapes and dtypes in the background (nothing
        when the calls would run on NumPy, when it is already compiled or started, or on a
        single core, where it would only take turns with the fit). A later call with that
        signature waits for it; should it fail, the call compiles as usual."""
        if self._first_fit or self._static or (os.cpu_count() or 1) < 2:
            return
        if self._host_max and sum(math.prod(s.shape) for s in specs) <= self._host_max:
            return
        key = self._signature(specs)
        if key not in self._executables and key not in self._pending:
            self._pending[key] = _in_background(self._compile, key, specs)

    def _signature(self, args) -> tuple:
        """The executables' key: static arguments as they are, the others' shapes and dtypes
        (arrays or ``jax.ShapeDtypeStruct``)."""
        return tuple(a if i in self._static else (jnp.shape(a), jnp.result_type(a)) for i, a in enumerate(args))

    def _prepared(self, key, args):
        """The executable for ``key``: its background compilation's, else compiled now."""
        pending = self._pending.pop(key, None)
        if pending is not None:
            try:
                return pending.result()
            except Exception:  # noqa: BLE001 - compiled again below, where its error is the caller's
                pass
        return self._compile(key, args)

    def tier_up(self) -> None:
        """From the next call on, NumPy only below ``host_max``: the first fit is over. An
        exportable program that ran on NumPy is exported for those signatures in the background
        (on more than one core), so that a later process's first fit loads it (:meth:`_loadable`)."""
        if self._first_fit and (os.cpu_count() or 1) > 1:
            for key in self._first_keys:     # (shape, dtype) per argument: no static ones here
                if self._export_path(key) is not None:
                    specs = tuple(jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in key)
                    self._pending.setdefault(key, _in_background(self._compile, key, specs))
        self._first_fit = False
        self._first_keys.clear()

    def _loadable(self, key) -> bool:
        """Whether the compilation cache holds this program exported for ``key`` (looked up once
        per signature): then a first fit loads it rather than run on NumPy."""
        if key not in self._exported:
            path = self._export_path(key)
            self._exported[key] = path is not None and path.is_file()
        return self._exported[key]

    def _compile(self, key, args):
        path = self._export_path(key)
        if path is not None:
            dynamic = [a for i, a in enumerate(args) if i not in self._static]
            source = "loaded"
            try:
                exported = jax.export.deserialize(bytearray(path.read_bytes())) if path.is_file() else None
            except Exception:  # noqa: BLE001 - a stale or corrupt file: export it again
                exported = None
            if exported is None:
                source = "exported"
                try:
                    with _current_lowering():
                        exported = jax.export.export(self._jit)(*args)
                except Exception:  # noqa: BLE001 - not exportable: trace as usual
                    exported = None
                else:
                    try:
                        _write_atomically(path, exported.serialize())
                    except OSError:  # an unwritable cache: this process still uses the export
                        pass
            if exported is not None:
                self.sources.append(source)
                return jax.jit(exported.call).lower(*dynamic).compile(self._options)
        self.sources.append("traced")
        return self._jit.lower(*args).compile(self._options)

    def _export_path(self, key):
        cache = jax.config.jax_compilation_cache_dir
        if self._export_key is None or not cache:
            return None
        digest = hashlib.sha256(repr((self._export_key, key, sorted(self._options.items()), _code_version(), jax.__version__,
                                      jax.default_backend())).encode())
        return Path(cache) / "adelia-exported" / f"{digest.hexdigest()[:32]}.jaxexport"


_BACKGROUND: tuple[queue.SimpleQueue, threading.Thread] | None = None


def _in_background(fn: Callable, *args) -> Future:
    """``fn(*args)`` on adelia's compile thread (one, started on first use), as a future."""
    global _BACKGROUND
    if _BACKGROUND is None:
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        thread = threading.Thread(target=_background_worker, args=(jobs,), name="adelia-compile", daemon=True)
        thread.start()
        _BACKGROUND = (jobs, thread)
        atexit.register(_stop_background)
    future: Future = Future()
    _BACKGROUND[0].put((future, fn, args))
    return future


def _background_worker(jobs: queue.SimpleQueue) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        future, fn, args = job
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the caller, who compiles again
            future.set_exception(e)


def _stop_background() -> None:
    """At exit: drop the compilations not started and wait for the one running. A thread still
    tracing while the interpreter tears down crashes the process (SIGSEGV); a fit can leave a
    compilation behind, the sampler's for a chunk size the weights then changed."""
    jobs, thread = _BACKGROUND
    pending = []
    while True:
        try:
            pending.append(jobs.get_nowait())
        except queue.Empty:
            break
    for job in pending:
        if job is not None:
            job[0].cancel()
    jobs.put(None)
    thread.join()


#: jax.export's lowering switch is process-wide: one export at a time flips it
_EXPORT_LOCK = threading.Lock()


@contextlib.contextmanager
def _current_lowering():
    """Export with the lowerings a direct ``jit`` uses. By default ``jax.export`` picks the
    forward-compatible ones, which expand ops such as log Γ and ψ (XLA CPU's ``cpu_lgamma_ffi``
    and ``cpu_digamma_ffi`` kernels) into polynomial code: twice the HLO and twice the compile
    time of a binomial model's objective. An exported program here is only read back by the same
    adelia and JAX versions (both are in its cache key), so forward compatibility buys nothing."""
    flag = "jax_export_ignore_forward_compatibility"
    with _EXPORT_LOCK:
        before = getattr(jax.config, flag)
        jax.config.update(flag, True)
        try:
            yield
        finally:
            jax.config.update(flag, before)


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    """A hash of adelia's own source: an exported program is stale once the code that traced it
    has changed, whatever the model."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class CompiledProblem:
    """The jitted functions of one model, kept across fits of the same model and data.

    Built once per content fingerprint (see :func:`compiled`), so refitting a model pays no
    compilation (JIT of the Newton loop, the Laplace objective and its gradient costs seconds;
    one evaluation costs microseconds to milliseconds). Every function takes the start ``x0`` of
    the inner Newton iteration: the mode at a nearby θ, so most evaluations need one or two
    Newton steps instead of a full solve from zero.
    """

    def __init__(self, model: Problem, solver: str = "dense", key: str | None = None, devices=None):
        if solver == "sparse":
            from adelia.runtime.laplace_sparse import SparseLaplaceProblem

            prob = SparseLaplaceProblem(model)
        elif solver == "bta":
            from adelia.runtime.laplace_bta import BTALaplaceProblem

            prob = BTALaplaceProblem(model, devices)
        else:
            prob = LaplaceProblem(model)
        self.prob, self.solver = prob, solver
        self.initial = np.array([t.initial for t in model.thetas], dtype=float)
        self.free = np.array([i for i, t in enumerate(model.thetas) if not t.fixed], dtype=int)
        initial, free = device(self.initial), device(self.free)

        def full(th_free):
            return initial.at[free].set(th_free) if len(self.free) else initial

        def neg_and_mode(theta, x0):
            value, x = prob.log_posterior_and_mode(theta, x0)
            return -value, x

        # XLA's backend optimisation halves compile times and gains nothing where the matrices
        # are tiny; larger models keep it (the dense objective at N = 366 ran 3-4x slower without
        # it, the sparse path's scatters over Q_c's pattern 1.4x slower on S2)
        fast = solver == "dense" and model.N <= FAST_COMPILE_DENSE_MAX

        # CHOLMOD runs in host callbacks, which jax.export cannot serialise: trying would only
        # trace those programs twice
        exportable = key is not None and solver != "sparse"

        # A small model on the sparse path runs its first fit in this process on NumPy and
        # compiles from its second: its programs cannot be exported (host calls), so a new
        # process paid tracing and compiling (or loading) each of them, 2–3 s on S4 and S5,
        # where NumPy costs at most ~10 ms more per call than the compiled program. A small
        # dense model does so too until its programs are exported (Program.tier_up exports
        # them once the first fit is over): compiling them cost S1 and S3 0.4–0.65 s of their
        # first fit ever, loading the exports less than NumPy does. BTA kernels stay compiled
        # (their scans over blocks would run block by block in Python).
        first = solver in ("sparse", "dense") and model.N <= FIRST_FIT_NUMPY_MAX_LATENT
        dense = solver == "dense"

        def program(name, fn, static_argnums=(), host_max=0, first_fit=False):
            return Program(fn, static_argnums, export_key=(key, solver, name) if exportable else None,
                           compiler_options={"xla_backend_optimization_level": 0} if fast else None,
                           host_max=host_max, first_fit=first_fit)

        #: ((f, x̂), ∇f) at free θ
        self.value_and_grad = program("value_and_grad", jax.value_and_grad(
            lambda tf, x0: neg_and_mode(full(tf), x0), has_aux=True), first_fit=first)
        #: (f, x̂) at a full θ
        self.value = program("value", neg_and_mode, first_fit=first)
        self.value_batch = program("value_batch", jax.vmap(neg_and_mode))
        self.neg_and_mode, self.full = neg_and_mode, full   # for θ batches sharded over devices
        # one point at a time (lax.map): the covariance the simplified-Laplace coefficients need
        # is N × N per point
        nodes = adaptive_nodes(model)
        corrected = {"gaussian": (False, None), "simplified.laplace": (True, None), "adaptive": (True, nodes)}
        self.gaussian = {name: program(f"gaussian_{name}", lambda pts, xs, sla=sla, nodes=nodes: jax.lax.map(
            lambda a: prob.gaussian(a[0], a[1], sla=sla, nodes=nodes), (pts, xs)),
            host_max=GAUSSIAN_HOST_MAX if dense else 0, first_fit=first)
            for name, (sla, nodes) in corrected.items()}
        #: strategy = "laplace": log π̃(x_j | θ, y) at the abscissae, for the fixed effects and small components
        self.laplace_nodes = nodes
        self.laplace = program("laplace", lambda pts, xs: jax.lax.map(
            lambda a: prob.laplace_log_density(a[0], nodes, LAPLACE_ABSCISSAE, a[1]), (pts, xs)))
        self.loglik_grid = program("loglik_grid", jax.vmap(jax.vmap(prob.loglik_terms, in_axes=(0, None)),
                                                           in_axes=(0, 0)))
        self.loglik_draws = program("loglik_draws", jax.vmap(prob.loglik_terms), host_max=LOGLIK_HOST_MAX,
                                    first_fit=first)
        #: DIC/WAIC/CPO's per-observation moments over the points' Gauss–Hermite nodes, and DIC's
        #: log-likelihood at the posterior means
        self.criteria_terms = program("criteria_terms", functools.partial(criteria.terms, prob.loglik_terms),
                                      host_max=CRITERIA_HOST_MAX, first_fit=first)
        self.eta_draws = program("eta_draws", jax.vmap(prob.eta))
        #: draws of x at θ from host-made standard normals (prob.n_normals × n)
        self.sampler = program("sampler", prob.sample_latent_from,
                               host_max=SAMPLER_HOST_MAX if dense else 0, first_fit=first)
        self.programs = (self.value_and_grad, self.value, self.value_batch, *self.gaussian.values(), self.laplace,
                         self.loglik_grid, self.loglik_draws, self.criteria_terms, self.eta_draws, self.sampler)

    @property
    def compile_seconds(self) -> float:
        return sum(p.compile_seconds for p in self.programs)

    def prepare(self, value: bool, gaussian_per_point: str | None) -> None:
        """Compile in the background, while the θ-mode search compiles and runs its objective
        and gradient, what a fit of this model calls later with shapes known now: the objective
        alone (``value``: the sparse paths' integration design) and, with ``gaussian_per_point``,
        that strategy's Gaussian approximation one point at a time."""
        d, N = len(self.initial), self.prob.model.N
        if value:
            self.value.prepare(_f64(d), _f64(N))
        if gaussian_per_point is not None:
            self.gaussian[gaussian_per_point].prepare(_f64(1, d), _f64(1, N))

    def prepare_sampler(self, chunk: int) -> None:
        """Compile the sampler for draws in chunks of ``chunk`` in the background."""
        d, N = len(self.initial), self.prob.model.N
        self.sampler.prepare(_f64(d), _f64(self.prob.n_normals, chunk), _f64(N))

    def prepare_results(self, n_points: int, n_samples: int) -> None:
        """Compile the criteria's terms over ``n_points`` integration points and the draws'
        log-likelihood in the background (the argument order of :func:`criteria.compute` and
        :func:`_draw`)."""
        d, m = len(self.initial), self.prob.model.m
        if self.prob.model.observed.any():
            self.criteria_terms.prepare(_f64(n_points, m), _f64(n_points, m), _f64(n_points, d), _f64(n_points),
                                        _f64(m), _f64(d))
        if n_samples:
            self.loglik_draws.prepare(_f64(n_samples, m), _f64(n_samples, d))

    def fitted(self) -> None:
        """A fit of this model ended: programs that ran on NumPy for the first one compile now."""
        for p in self.programs:
            p.tier_up()


def _f64(*shape: int) -> jax.ShapeDtypeStruct:
    """A float64 argument of this shape, for :meth:`Program.prepare`."""
    return jax.ShapeDtypeStruct(shape, np.float64)


def _memo_key(theta_free: np.ndarray) -> bytes:
    """One θ row as a dictionary key: rounded, so a point computed twice by the same design maps
    to one evaluation despite the last bits of its arithmetic."""
    return np.round(theta_free, 12).tobytes()


class Evaluations:
    """f(θ) = −log π̃(θ|y) and its gradient for one fit, counted, memoised, warm-started.

    Each Newton iteration starts from the latest mode (value and gradient calls, which walk the
    θ-mode search) or from the mode at θ* (points of the integration design). Values at a batch
    of points run one after the other on a CPU — one factorisation at a time uses the BLAS
    best there, and ``vmap`` over factorisations is slower than a loop (PERFORMANCE.md §6) — and
    as one vmapped batch on an accelerator. On the dense path the value comes from the
    value-and-gradient program (its gradient costs less than compiling a second program).
    """

    def __init__(self, cp: CompiledProblem, devices=None):
        self.cp = cp
        self.x = cp.prob.x_feasible
        self.x_mode = None
        self.n_objective = 0
        self.n_gradient = 0
        self._memo: dict[bytes, tuple[float, jax.Array]] = {}
        # θ batches sharded over several devices (adelia.runtime.devices), and the gradients
        # they computed ahead for the Hessian
        self._sharded = None if devices is None else theta_batch(cp, devices)
        #: how a batch of θ is evaluated: sharded over devices, as one vmapped batch (an
        #: accelerator), by the value-and-gradient program point by point (dense), or by the
        #: value program point by point
        self._route = ("sharded" if self._sharded is not None else "batched" if jax.default_backend() != "cpu"
                       else "dense" if cp.solver == "dense" else "value")
        self._grads: dict[bytes, np.ndarray] = {}
        self._near_modes: dict[bytes, jax.Array] = {}       # x̂ at the Hessian's points
        self._predictor: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        #: called once, after the first value-and-gradient call returns (see run_inla)
        self.after_first: Callable[[], None] | None = None

    @property
    def uses_value(self) -> bool:
        """Whether designs are evaluated by the value program one point at a time (otherwise:
        the value-and-gradient program on the dense path, batches elsewhere)."""
        return self._route == "value"

    def value_and_grad(self, theta_free, start: jax.Array | None = None) -> tuple[float, np.ndarray]:
        (f, x), g = self.cp.value_and_grad(device(theta_free, dtype=float), self.x if start is None else start)
        if self.after_first is not None:
            self.after_first()
            self.after_first = None
        self.n_objective += 1
        self.n_gradient += 1
        f = float(f)
        if np.isfinite(f):
            self.x = x
        return f, np.asarray(g)

    def value_and_fd_grad(self, theta_free, h: float) -> tuple[float, np.ndarray]:
        """f and R-INLA's central-difference gradient (2d + 1 objective evaluations, each
        Newton iteration started from the latest mode; see
        :func:`~adelia.runtime.optimize.central_difference_gradient`)."""
        x_start = self.x
        full = lambda t: device(self._full(np.asarray(t, dtype=float)[None, :])[0])
        values = []

        def value(t):
            f, x = self.cp.value(full(t), x_start)
            self.n_objective += 1
            values.append((float(f), x))
            return float(f)

        f, g = central_difference_gradient(value, np.asarray(theta_free, dtype=float), h)
        self.n_gradient += 1
        if np.isfinite(f):
            self.x = values[0][1]
        return f, g

    def at_mode(self, theta_free, f: float) -> None:
        """Record θ* (where the mode search ended, so ``self.x`` is its x̂): later Newton
        iterations start there, and the designs' centre point is not evaluated again."""
        self.x_mode = self.x
        self._memo[_memo_key(np.asarray(theta_free, dtype=float))] = (f, self.x)

    def gradient(self, theta_free) -> np.ndarray:
        """∇f near θ* (the Hessian's differences): Newton starts from x̂(θ*), h away."""
        key = _memo_key(np.asarray(theta_free, dtype=float))
        done = self._grads.get(key)
        if done is not None:
            return done
        g = self.value_and_grad(theta_free, self.x_mode)[1]
        self._near_modes[key] = self.x
        return g

    def predict_modes(self, theta_star, h: float) -> None:
        """First-order starts for the design's inner Newton iterations: x̂(θ) ≈ x̂(θ*) + D (θ − θ*),
        with D = dx̂/dθ at θ* from the central differences of the modes the Hessian's gradients
        found at θ* ± h eᵢ (no extra solve; the implicit-function derivative to O(h²)). The
        starts satisfy the constraints (C D = 0), and Newton's answer does not depend on them:
        a CCD point a posterior sd away then needs a step or two fewer."""
        theta_star = np.asarray(theta_star, dtype=float)
        cols = []
        for i in range(len(theta_star)):
            e = np.zeros(len(theta_star))
            e[i] = h
            up, down = (self._near_modes.get(_memo_key(theta_star + s * e)) for s in (1.0, -1.0))
            if up is None or down is None or self.x_mode is None:
                return
            cols.append((np.asarray(up) - np.asarray(down)) / (2 * h))
        D = np.stack(cols, axis=1) if cols else np.zeros((len(np.asarray(self.x_mode)), 0))
        if np.all(np.isfinite(D)):
            self._predictor = (theta_star, np.asarray(self.x_mode), D)

    def _start(self, theta_free: np.ndarray, x0):
        """Newton's start at θ (see :meth:`predict_modes`), else ``x0``."""
        if self._predictor is None:
            return x0
        theta_star, x_star, D = self._predictor
        return device(x_star + D @ (np.asarray(theta_free, dtype=float) - theta_star))

    def prefetch_hessian(self, theta_free, h: float) -> None:
        """With sharded batches: the Hessian's 2d gradients (θ* ± h eᵢ, as
        :func:`~adelia.runtime.optimize.hessian_at` asks for them) as one batch."""
        if self._sharded is None or not len(theta_free):
            return
        steps = h * np.eye(len(theta_free))
        rows = np.concatenate([theta_free + steps, theta_free - steps])
        g = self._sharded.value_and_grads(rows, self.x_mode)[2]
        self.n_objective += len(rows)
        self.n_gradient += len(rows)
        self._grads.update((_memo_key(r), gi) for r, gi in zip(rows, g))

    def _full(self, theta_free: np.ndarray) -> np.ndarray:
        rows = np.repeat(self.cp.initial[None, :], len(theta_free), axis=0)
        rows[:, self.cp.free] = theta_free
        return rows

    def values(self, thetas_free) -> np.ndarray:
        """f at each row of free θ (memoised: the grid's axes and its product share points)."""
        thetas_free = np.atleast_2d(np.asarray(thetas_free, dtype=float))
        keys = [_memo_key(t) for t in thetas_free]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            for i, (f, x) in zip(todo, self._evaluate(thetas_free[todo])):
                self._memo[keys[i]] = (f, x)
        return np.array([self._memo[k][0] for k in keys])

    def modes(self, thetas_free) -> np.ndarray:
        """x̂ at each row (evaluated by :meth:`values` unless it already was)."""
        thetas_free = np.atleast_2d(np.asarray(thetas_free, dtype=float))
        self.values(thetas_free)
        # stacked on the host: an eager jnp.stack compiles a program per number of points
        return np.stack([np.asarray(self._memo[_memo_key(t)][1]) for t in thetas_free])

    def _evaluate(self, thetas_free: np.ndarray):
        x0 = self.x if self.x_mode is None else self.x_mode
        self.n_objective += len(thetas_free)
        if self._route == "sharded":
            f, x = self._sharded.values(self._full(thetas_free), x0)
            return [(float(fi), device(xi)) for fi, xi in zip(f, x)]
        if self._route == "batched":
            n = len(thetas_free)
            size = max(8, 1 << int(np.ceil(np.log2(max(n, 1)))))   # few shapes, few compilations
            rows = np.concatenate([thetas_free, np.repeat(thetas_free[:1], size - n, axis=0)])
            f, x = self.cp.value_batch(device(self._full(rows)), jnp.stack([self._start(r, x0) for r in rows]))
            return [(float(f[i]), x[i]) for i in range(n)]
        if self._route == "dense":
            self.n_gradient += len(thetas_free)
            out = [self.cp.value_and_grad(device(t), self._start(t, x0))[0] for t in thetas_free]
        else:
            out = [self.cp.value(device(full), self._start(t, x0))
                   for t, full in zip(thetas_free, self._full(thetas_free))]
        return [(float(f), x) for f, x in out]


_CACHE: OrderedDict[str, CompiledProblem] = OrderedDict()
_CHOICE: OrderedDict[tuple, str] = OrderedDict()  # solver = "auto" decisions
_CACHE_SIZE = 8


def fingerprint(model: Problem) -> str:
    """A hash of everything the compiled functions depend on: arrays, structure, priors."""
    h = hashlib.sha256()
    A = model.A.tocsr()
    h.update(str(A.shape).encode())
    for arr in (A.data, A.indices, A.indptr, model.y, model.offset, model.C, model.fixed_prec, model.fixed_mean, model.family_index,
                *(model.extra[k] for k in sorted(model.extra))):
        h.update(np.ascontiguousarray(arr, dtype=float).tobytes())
        h.update(str(arr.shape).encode())
    h.update(repr((model.key, [f.name for f in model.families], sorted(model.extra),
                   [(t.label, t.prior_key, t.initial, t.fixed) for t in model.thetas])).encode())
    for cp_ in model.copies:
        h.update(repr((cp_.name, cp_.src_offset, cp_.theta_index)).encode() + np.ascontiguousarray(cp_.B).tobytes())
    for tc in model.theta_covariates:
        h.update(repr((tc.name, tc.theta_index)).encode() + np.ascontiguousarray(tc.w, dtype=float).tobytes())
    for comp in model.components:
        h.update(repr((comp.name, comp.offset, comp.n, comp.rank_def, comp.logdet_star, comp.theta_index,
                       comp.blocks)).encode())
        for K in comp.matrices:
            K = sp.csr_matrix(K)
            for part in (K.data, K.indices, K.indptr):
                h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def choose_solver(model, solver: str = "auto", *, key: str | None = None) -> str:
    """The linear-algebra path for this model (``key``: its :func:`fingerprint`, if known).

    ``"auto"``: dense up to :data:`DENSE_MAX_LATENT` latent nodes and for copies with an
    estimated β. Larger models take the BTA path when their
    precision has a BTA layout (space–time fields; :func:`adelia.runtime.laplace_bta.bta_layout`)
    and either CHOLMOD is missing, JAX runs on an accelerator, or its flop count times
    :data:`BTA_FLOP_COST` is below CHOLMOD's for the same pattern; else the general sparse path
    (CHOLMOD), else dense. The flop ratio is the one measured by ``benchmarks/solvers.py``.
    """
    from adelia.runtime import sparse

    model = as_problem(model)
    if solver == "auto":
        if model.N <= DENSE_MAX_LATENT or model.copies:
            return "dense"
        # the choice builds the Q_c pattern and a CHOLMOD analysis: once per model
        have_cholmod = sparse.available()
        choice = (key or fingerprint(model), have_cholmod, jax.default_backend())
        if choice not in _CHOICE:
            _CHOICE[choice] = _choose_large(model, have_cholmod)
            while len(_CHOICE) > _CACHE_SIZE:
                _CHOICE.popitem(last=False)
        return _CHOICE[choice]
    if solver == "sparse" and not sparse.available():
        raise ModelError("solver = \"sparse\" needs CHOLMOD (cvxopt, or scikit-sparse)", hint=sparse.INSTALL_HINT)
    return solver


def _choose_large(model: Problem, have_cholmod: bool) -> str:
    from adelia.runtime import sparse
    from adelia.runtime.laplace_bta import _PatternIndex, bta_layout
    from adelia.runtime.laplace_sparse import qc_pattern

    pattern = qc_pattern(model).pattern
    index = _PatternIndex(pattern)
    layout = bta_layout(model, index.rows, index.cols)
    if layout is None:
        return "sparse" if have_cholmod else "dense"
    if not have_cholmod or jax.default_backend() != "cpu":
        return "bta"
    flops = sparse.analyse(pattern).flops()
    return "bta" if flops is not None and BTA_FLOP_COST * layout.flops() <= flops else "sparse"


def compiled(model: Problem, solver: str = "dense", *, key: str | None = None, devices=None) -> CompiledProblem:
    """The :class:`CompiledProblem` of ``model`` on ``solver``, cached by content
    (``key``: the model's :func:`fingerprint`, if already computed)."""
    key = (key or fingerprint(model)) + solver + ("" if devices is None else repr([d.id for d in devices]))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    cp = CompiledProblem(model, solver, key, devices)
    _CACHE[key] = cp
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return cp


def _latent_strategy(options: InferenceOptions, model: Problem, prob: LaplaceProblem, solver: str) -> tuple[str, bool]:
    """(the latent marginals' approximation, whether full Laplace follows for the adaptive
    nodes): "auto" is R-INLA's rule (simplified Laplace below SLA_MAX_LATENT nodes, else
    adaptive); checked before the fit, which it would otherwise end after its costly part."""
    strategy_x = options.strategy
    laplace = strategy_x == "laplace"        # full Laplace for the adaptive nodes, on top of "auto"
    if strategy_x in ("auto", "laplace"):
        strategy_x = "simplified.laplace" if model.N < SLA_MAX_LATENT and prob.supports_sla else "adaptive"
    if strategy_x == "simplified.laplace" and not prob.supports_sla:
        raise ModelError(f"strategy = \"simplified.laplace\" is not available on the {solver} path for "
                         f"{model.N} latent nodes", hint="use solver = \"dense\" or strategy = \"adaptive\" "
                         "(fixed effects and small components corrected) or \"gaussian\"")
    return strategy_x, laplace


def run_inla(model, options: InferenceOptions = InferenceOptions()) -> FitResult:
    """INLA for ``model`` (a :class:`Problem`, or the front end's model that lowers to one)."""
    source, model = model, as_problem(model)
    say = options.progress or (lambda msg: None)
    clock = _Clock()
    key = fingerprint(model)  # hashes every array once per fit
    solver = choose_solver(model, options.solver, key=key)
    use = devices_plan(options.devices, solver)
    cp = compiled(model, solver, key=key, devices=use.partition)
    compile_before = cp.compile_seconds
    clock.lap("setup")
    prob, initial, free = cp.prob, cp.initial, cp.free
    ev = Evaluations(cp, use.batch)
    strategy_x, laplace = _latent_strategy(options, model, prob, cp.solver)
    # the latent marginals' points one at a time, each point's draws right after its marginals:
    # its factorisation is still the cached one (the draws refactored every point, at 90 ms each
    # on SPDE ⊗ AR1 10k)
    point_by_point = cp.solver == "sparse" and bool(options.n_samples)
    # XLA's compiler keeps both cores of a small machine busy on its own: the later programs
    # compile in the background once the first objective-and-gradient is compiled, beside the
    # mode search's runs (one core: CHOLMOD and BLAS with one thread)
    ev.after_first = functools.partial(cp.prepare, ev.uses_value, strategy_x if point_by_point else None)

    # ---- θ mode ----
    say("optimising θ")
    iters = [0]

    def callback(xk):
        iters[0] += 1
        say(f"optimising θ: iteration {iters[0]}")

    value_and_grad = ev.value_and_grad if options.gradient == "ad" else functools.partial(ev.value_and_fd_grad,
                                                                                           h=options.h)
    mode = find_mode(value_and_grad, initial[free], callback=callback)
    ev.at_mode(mode.theta, mode.f)
    clock.lap("mode")

    # ---- Hessian and integration design ----
    ev.prefetch_hessian(mode.theta, options.h)
    H = hessian_at(ev.gradient, mode.theta, options.h) if len(free) else np.zeros((0, 0))
    ev.predict_modes(mode.theta, options.h)
    clock.lap("hessian")
    nfree = len(free)
    strategy = options.int_strategy
    if strategy == "auto":
        strategy = "grid" if nfree <= 2 else "ccd"
    if nfree == 0:
        strategy = "eb"
    # the skewness-corrected axes serve the θ marginals whatever the design, "eb" included (R-INLA's
    # hyperparameter summary does not depend on int.strategy): 2 evaluations per free θ
    frame = standardise(mode.theta, H, ev.values, mode.f) if nfree else None
    say(f"integrating θ ({strategy})")
    if strategy == "eb":
        Z = np.zeros((1, nfree))
        fz = np.array([mode.f])
        log_w = np.zeros(1)
    elif strategy == "grid":
        # the tails (rows n_core…) serve the θ marginals and the marginal likelihood only
        Z_all, fz_all, n_core = grid_design(frame, ev.values, mode.f, options.dz, options.diff_logdens)
        Z, fz = Z_all[:n_core], fz_all[:n_core]
        log_w = -(fz - mode.f) + frame.log_volume(Z)
    elif strategy == "nuts":
        # θ drawn by NUTS on π̃(θ | y), the draws equally weighted points (R-INLA's sampling-based
        # integration); the θ marginals below come from every draw
        from adelia.runtime.nuts import theta_design

        say("sampling θ with NUTS")
        theta_nuts, nuts_res = theta_design(cp, ev.x_mode, mode.theta, H, chains=options.chains,
                                            warmup=options.warmup, draws=options.draws, seed=options.seed)
        ev.n_objective += int(nuts_res.num_steps.sum())
        ev.n_gradient += int(nuts_res.num_steps.sum())
        fz = ev.values(theta_nuts)
        Z = np.zeros((len(fz), nfree))
        log_w = np.zeros(len(fz))
    else:
        Z, wccd = ccd_design(nfree)
        if options.n_samples:       # most often every CCD point draws: the draws' chunk size
            cp.prepare_sampler(_DrawPlan.chunk_size(options.n_samples, len(Z)))
        fz = ev.values(frame.theta(Z))
        ok = np.isfinite(fz)
        Z, fz, wccd = Z[ok], fz[ok], wccd[ok]
        log_w = np.log(np.maximum(wccd, 1e-300)) - (fz - mode.f)
    weights = np.exp(log_w - logsumexp(log_w))
    plan = _DrawPlan(options, weights) if options.n_samples else None
    if plan is not None:
        cp.prepare_sampler(plan.chunk)
    cp.prepare_results(len(weights), options.n_samples)
    points = np.repeat(initial[None, :], len(Z), axis=0)
    if nfree:
        points[:, free] = theta_nuts if strategy == "nuts" else frame.theta(Z)
    x_points = ev.modes(points[:, free]) if nfree and strategy != "eb" else np.asarray(ev.x_mode)[None, :]
    clock.lap("integration")

    # ---- marginal likelihood ----
    logdetH = np.linalg.slogdet(H)[1] if nfree else 0.0
    mlik_gauss = -mode.f + 0.5 * nfree * math.log(2 * math.pi) - 0.5 * logdetH
    if strategy == "grid":
        # log_volume holds log|dθ/dz| = −½ log|H| plus the skewness stretch
        mlik_int = float(logsumexp(-fz_all + frame.log_volume(Z_all))) + nfree * math.log(options.dz)
    elif strategy == "ccd":
        gauss_ref = np.log(np.maximum(wccd, 1e-300)) - 0.5 * np.sum(Z ** 2, axis=1)
        mlik_int = mlik_gauss + float(logsumexp(log_w) - logsumexp(gauss_ref))
    else:
        mlik_int = mlik_gauss

    # ---- latent marginals at each point ----
    say(f"latent marginals at {len(points)} θ points")
    made = {}
    if point_by_point:
        parts = []
        for k in range(len(points)):
            parts.append(cp.gaussian[strategy_x](device(points[k:k + 1]), x_points[k:k + 1]))
            if plan.counts[k]:
                made[k] = plan.draws_at(cp, k, points[k], x_points[k])
        gauss = GaussianApprox(*(np.concatenate([np.asarray(a) for a in field]) for field in zip(*parts)))
    else:
        gauss = cp.gaussian[strategy_x](device(points), x_points)
    means, sds = np.asarray(gauss.mode), np.asarray(gauss.sd)
    eta_m, eta_s = np.asarray(gauss.eta_mean), np.asarray(gauss.eta_sd)
    if not (np.all(np.isfinite(means)) and np.all(np.isfinite(sds))):
        raise FitError("the Gaussian approximation of the latent field is not finite at some θ points",
                       hint="the inner Newton iteration failed; check the data and priors")
    if strategy_x != "gaussian":
        # skew-normal marginals x_j = x̂_j + σ_j s; η keeps the Gaussian shape, shifted by A·(mean shift)
        xi, omega, alpha = skew_normal_from_sla(np.asarray(gauss.gamma1), np.asarray(gauss.gamma3))
        latent = skew_mixture_summary(weights, means + sds * xi, sds * omega, alpha, options.quantiles)
        shift = sds * (xi + omega * (alpha / np.sqrt(1 + alpha ** 2)) * np.sqrt(2 / np.pi))
        eta_m = eta_m + (model.A @ shift.T).T
    else:
        latent = mixture_summary(weights, means, sds, options.quantiles)
    if laplace:
        say(f"full Laplace marginals of {len(cp.laplace_nodes)} latent nodes")
        logdens, sd_nodes = cp.laplace(device(points), x_points)
        full = laplace_mixture_summary(weights, means[:, cp.laplace_nodes], np.asarray(sd_nodes), LAPLACE_ABSCISSAE,
                                       np.asarray(logdens), options.quantiles)
        for key, values in full.items():
            latent[key][cp.laplace_nodes] = values
    linpred = mixture_summary(weights, eta_m, eta_s, options.quantiles)

    # ---- θ marginals ----
    hyper = {}
    for j_free, j in enumerate(free):
        t = model.thetas[j]
        if strategy == "nuts":
            from adelia.runtime.nuts import theta_draws_summary

            hyper[t.label] = theta_draws_summary(nuts_res.theta[:, :, j_free].ravel(),
                                                 functools.partial(numpy_eval, t.to_natural),
                                                 options.quantiles)
            continue
        if nfree == 1 and strategy == "grid":
            grid_t, lp = theta_marginal_grid(frame.theta(Z_all)[:, 0], -fz_all)
        elif strategy == "grid":
            grid_t, lp = theta_marginal_lattice(frame, Z_all, -fz_all, options.dz, j_free)
        else:
            grid_t, lp = theta_marginal_ccd(frame, j_free)
        hyper[t.label] = density_summary(grid_t, lp, functools.partial(numpy_eval, t.to_natural),
                                         options.quantiles)
        hyper[t.label]["marginal"] = (np.asarray(grid_t, float), np.asarray(lp, float))   # (θ, log density): plots
    clock.lap("marginals")

    result = FitResult(source, model, options, _full_np(initial, free, mode.theta),
                       free, mode, H, strategy, points, -fz, weights, latent, linpred, hyper,
                       {"integration": float(mlik_int), "gaussian": float(mlik_gauss)})
    result.criteria = criteria.compute(cp, result, eta_m, eta_s)
    result.solver = cp.solver
    result.latent_strategy = strategy_x
    result.point_marginals = {"mean": means, "sd": sds, "eta_mean": eta_m, "eta_sd": eta_s,
                              **({"xi": xi, "omega": omega, "alpha": alpha} if strategy_x != "gaussian" else {})}
    clock.lap("criteria")

    # ---- posterior draws ----
    if options.n_samples:
        say(f"drawing {options.n_samples} posterior samples")
        _draw(cp, result, x_points, plan, made)
    clock.lap("sampling")
    result.timings = {**clock.laps, "jit": cp.compile_seconds - compile_before, "total": clock.total()}
    result.evaluations = {"n_objective": ev.n_objective, "n_gradient": ev.n_gradient}
    cp.fitted()
    return result


class _Clock:
    """Wall time of consecutive stages (each includes the JIT compilation it triggered)."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.start


def _full_np(initial, free, theta_free):
    out = initial.copy()
    out[free] = theta_free
    return out


class _DrawPlan:
    """Which integration point each posterior draw comes from (θ by the points' weights, as
    inla.posterior.sample) and the seeded generator of their standard normals, consumed point
    by point in increasing order, so the draws do not depend on when each point's are made."""

    def __init__(self, options: InferenceOptions, weights: np.ndarray):
        self.rng = np.random.default_rng(options.seed)
        self.S = options.n_samples
        self.which = self.rng.choice(len(weights), size=self.S, p=weights)
        self.counts = np.bincount(self.which, minlength=len(weights))
        # each point draws in chunks of one fixed size (one compiled program), as many as its
        # count needs: padding every point to the largest count drew up to K times too many. The
        # power of two at or below the mean count pads each point by less than that mean (at or
        # above it drew about twice the draws asked for: Germany space–time, 2 176 for 1 000)
        self.chunk = self.chunk_size(self.S, int(np.count_nonzero(self.counts)))

    @staticmethod
    def chunk_size(n_samples: int, points_used: int) -> int:
        used = max(points_used, 1)
        return int(np.clip(1 << int(np.floor(np.log2(max(n_samples / used, 1)))), 16, 256))

    def draws_at(self, cp: CompiledProblem, k: int, theta_k, x_k) -> np.ndarray:
        """The counts[k] draws of x at point k (x_k: its mode)."""
        theta_k, x_k = device(theta_k), device(x_k)
        rows = cp.prob.n_normals
        return np.concatenate([np.asarray(cp.sampler(theta_k, self.rng.standard_normal((rows, self.chunk)), x_k))
                               for _ in range(-(-self.counts[k] // self.chunk))])[: self.counts[k]]


def _draw(cp: CompiledProblem, res: FitResult, x_points: jax.Array, plan: _DrawPlan,
          made: dict[int, np.ndarray]) -> None:
    """θ from the integration points with their weights (as inla.posterior.sample), then x | θ
    (``made``: the draws of points already drawn with ``plan``, beside their marginals)."""
    S, which = plan.S, plan.which
    used = np.flatnonzero(plan.counts)
    x_points = np.asarray(x_points)
    per_point = [made[k] if k in made else plan.draws_at(cp, k, res.points[k], x_points[k]) for k in used]
    # column-major, so xs.T is C-contiguous: SciPy's sparse product A @ xs.T reads it in place (a
    # C-ordered xs made it copy the transpose first: 70 MB and 0.5 s on Germany space–time)
    xs = np.empty((S, res.problem.N), order="F")
    for k, draws in zip(used, per_point):
        xs[which == k] = draws
    thetas = res.points[which]
    if res.problem.copies or res.problem.theta_covariates:
        eta = np.asarray(cp.eta_draws(device(xs), device(thetas)))
    else:
        # row-major again for the device (a column-major array is transposed on its way there)
        eta = np.empty((S, res.problem.A.shape[0]))
        np.add((res.problem.A @ xs.T).T, res.problem.offset, out=eta)
    obs = res.problem.observed
    loglik = cp.loglik_draws(device(eta), device(thetas))
    res.draws_theta, res.draws_x, res.draws_eta = thetas, xs, eta
    res.draws_loglik = np.asarray(loglik)[:, obs]
