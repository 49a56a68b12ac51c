"""The Python entry point: ``adelia.fit(formula, data, family, ...) -> xarray.DataTree``."""

from __future__ import annotations

__all__ = ["fit", "compile_formula"]

import json
import time
from typing import Any, Mapping

import xarray as xr

from adelia.compiler.model import Model, compile_model
from adelia.dsl.parser import parse_formula
from adelia.errors import ModelError
from adelia.results import to_datatree
from adelia.runtime.inference import InferenceOptions, run_inla


def compile_formula(formula: str, data, family: str = "gaussian", *, E=None, Ntrials=None, offset=None,
                    scale=None, control_family: Mapping | None = None, control_fixed: Mapping | None = None,
                    objects: Mapping[str, Any] | None = None, filename: str = "<formula>") -> Model:
    """Parse and resolve a formula against the data without fitting (fast validation)."""
    ir = parse_formula(formula, filename=filename)
    return compile_model(ir, data, family, objects=objects, E=E, Ntrials=Ntrials, offset=offset, scale=scale,
                         control_family=control_family, control_fixed=control_fixed, filename=filename)


def fit(formula: str, data, family: str = "gaussian", *, E=None, Ntrials=None, offset=None, scale=None,
        control_family: Mapping | None = None, control_fixed: Mapping | None = None,
        int_strategy: str = "auto", strategy: str = "auto", solver: str = "auto", n_samples: int = 1000, seed: int = 0, dz: float = 0.75,
        diff_logdens: float = 6.0, quantiles=(0.025, 0.5, 0.975), progress=None, devices=None,
        distributed: bool = False,
        **objects: Any) -> xr.DataTree:
    """Fit a latent Gaussian model with INLA.

    Parameters
    ----------
    formula
        R-INLA-style formula, e.g. ``"r ~ 1 + x1*x2 + f(plate, model = 'iid')"``.
    data
        pandas DataFrame (or dict of arrays); formula names resolve to its columns first.
    family
        ``"gaussian"``, ``"poisson"`` or ``"binomial"``.
    E, Ntrials, offset, scale
        Per-observation likelihood arguments: a column name or an array.
    control_family
        ``{"hyper": {"prec": {"prior": "pc.prec", "param": [1, 0.01], "initial": 4}}}`` as in R-INLA.
    control_fixed
        ``{"prec": 0.001, "mean": 0, "prec_intercept": 0}`` (R-INLA defaults).
    int_strategy
        ``"auto"`` (grid for ≤ 2 hyperparameters, else ccd), ``"grid"``, ``"ccd"`` or ``"eb"``.
    strategy
        Latent marginals: ``"auto"`` (R-INLA's rule: simplified Laplace below 5000 latent nodes,
        else Gaussian), ``"gaussian"`` or ``"simplified.laplace"`` (skew-normal corrected).
    solver
        ``"auto"`` (dense below 2000 latent nodes; above, BTA for space–time models where its
        flop count beats CHOLMOD's or CHOLMOD is missing or JAX runs on a GPU, else CHOLMOD),
        ``"dense"``, ``"sparse"`` (CHOLMOD factorisations, supernodal selected inversion for the
        gradient) or ``"bta"`` (block-tridiagonal-arrowhead kernels in JAX: time blocks from
        ``group``/``replicate``, fixed effects and small components as the arrow).
    n_samples, seed
        Posterior draws stored in the result (θ from the integration points, then x | θ).
    devices
        ``None`` (every device JAX sees, when there are several: the integration points and the
        Hessian's gradients are evaluated as batches sharded over them), an int (the first that
        many) or a list of ``jax.Device``. With ``solver = "bta"`` named devices split every
        factorisation's time blocks over them instead (for models whose factor does not fit one
        device). See :mod:`adelia.runtime.devices`.
    distributed
        Join a multi-process run first (``jax.distributed.initialize``: Slurm and Open MPI are
        detected, else ``ADELIA_COORDINATOR``, ``ADELIA_NUM_PROCESSES``, ``ADELIA_PROCESS_ID``);
        every process runs the same fit and θ batches are sharded over all their devices.
    **objects
        Objects the formula names, e.g. ``graph = W`` for ``f(region, model = "besag", graph = W)``.

    Returns
    -------
    xarray.DataTree in the ArviZ schema (see :func:`adelia.results.to_datatree`).
    """
    if distributed:
        from adelia.runtime.devices import initialize_distributed

        initialize_distributed()
    options = InferenceOptions(int_strategy=int_strategy, strategy=strategy, solver=solver, dz=dz, diff_logdens=diff_logdens,
                               n_samples=int(n_samples), seed=int(seed), quantiles=tuple(quantiles),
                               progress=progress, devices=devices)
    t0 = time.perf_counter()
    ir = parse_formula(formula)
    t1 = time.perf_counter()
    model = compile_model(ir, data, family, objects=objects, E=E, Ntrials=Ntrials, offset=offset, scale=scale,
                          control_family=control_family, control_fixed=control_fixed)
    _check_objects_used(ir, objects)
    t2 = time.perf_counter()
    result = run_inla(model, options)
    result.timings = {"parse": t1 - t0, "compile": t2 - t1, **result.timings}
    t3 = time.perf_counter()
    dt = to_datatree(result)
    dt["inla"].attrs["timings"] = json.dumps({**result.timings, "results": time.perf_counter() - t3,
                                              "total": time.perf_counter() - t0})
    return dt


def _check_objects_used(ir, objects: Mapping[str, Any]) -> None:
    from adelia.dsl.printer import print_formula

    text = print_formula(ir)
    unused = [k for k in objects if k not in text]
    if unused:
        raise ModelError(f"unexpected keyword argument(s) {', '.join(map(repr, unused))}: not a fit() option and "
                         "not a name used in the formula",
                         hint="fit() options: E, Ntrials, offset, scale, control_family, control_fixed, "
                              "int_strategy, strategy, solver, n_samples, seed, dz, diff_logdens, quantiles")
