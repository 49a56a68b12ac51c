"""The Python entry point: ``adelia.fit(formula, data, family, ...) -> xarray.DataTree``."""

from __future__ import annotations

__all__ = ["fit", "compile_formula"]

import json
import time
from typing import Any, Mapping

import xarray as xr

from adelia.compiler.model import Model, compile_model
from adelia.config import no_hugepage_advice
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
        posterior_predictive: bool = False, marginals=("fixed", "hyperpar"), method: str = "inla", gradient: str = "ad", chains: int = 4,
        warmup: int = 1000, draws: int = 1000, **objects: Any) -> xr.DataTree:
    """Fit a latent Gaussian model with INLA (or, to check it, sample it exactly with NUTS).

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
        ``"auto"`` (grid for ≤ 2 hyperparameters, else ccd), ``"grid"``, ``"ccd"``, ``"eb"`` or
        ``"nuts"`` (θ drawn by NUTS on the Laplace objective π̃(θ | y) with its AD gradient, the
        draws, thinned to at most 1000, equally weighted integration points; ``chains``,
        ``warmup``, ``draws`` set the chains).
    strategy
        Latent marginals: ``"auto"`` (R-INLA's rule: simplified Laplace below 5000 latent nodes,
        else adaptive), ``"gaussian"``, ``"simplified.laplace"`` (skew-normal corrected) or
        ``"adaptive"`` (simplified Laplace for the fixed effects and the components of at most 25
        nodes, Gaussian for the larger ones; any solver, any size) or ``"laplace"`` (as "auto", and
        the full Laplace approximation for the fixed effects and the components of at most 25
        nodes: a constrained mode and log-determinant per abscissa, node and θ point).
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
    method
        ``"inla"``, or ``"nuts"``: the same compiled model sampled exactly (θ and the latent field
        jointly) by numpyro's NUTS with ``chains`` chains of ``warmup`` + ``draws`` iterations; the
        result has the same schema with a ``chain`` dimension (``arviz.summary(dt)`` gives R-hat
        and ESS) and summaries computed from the draws. See :mod:`adelia.nuts`; compare fits with
        :func:`adelia.compare`.
    gradient
        θ-mode search: ``"ad"`` (exact gradient) or ``"fd"`` (R-INLA's central differences,
        h = 0.005, 2d + 1 objective evaluations per gradient), to measure what AD gains.
    marginals
        Marginal density tables stored in the ``inla`` group (R-INLA's ``marginals.*``): any of
        ``"fixed"``, ``"hyperpar"`` (both by default, with ``kld_fixed``), ``"random"`` (with
        ``kld_random_<name>``) and ``"linear_predictor"``; ``()`` for none.
    posterior_predictive
        Also store y_rep draws of the observed rows (group ``posterior_predictive``, one per
        posterior draw, with the observation noise), so that ``az.plot_ppc(dt)`` works.
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
                               progress=progress, devices=devices, gradient=gradient, chains=int(chains),
                               warmup=int(warmup), draws=int(draws))
    if method not in ("inla", "nuts"):
        raise ModelError(f"unknown method '{method}'", hint="known: inla, nuts (exact sampling, for checking)")
    t0 = time.perf_counter()
    ir = parse_formula(formula)
    t1 = time.perf_counter()
    model = compile_model(ir, data, family, objects=objects, E=E, Ntrials=Ntrials, offset=offset, scale=scale,
                          control_family=control_family, control_fixed=control_fixed)
    _check_objects_used(ir, objects)
    t2 = time.perf_counter()
    if method == "nuts":
        from adelia.nuts import fit_nuts

        dt = fit_nuts(model, chains=int(chains), warmup=int(warmup), draws=int(draws), seed=int(seed),
                      quantiles=tuple(quantiles))
        dt["inla"].attrs["timings"] = json.dumps({"parse": t1 - t0, "compile": t2 - t1,
                                                  "total": time.perf_counter() - t0})
        return dt
    with no_hugepage_advice():     # see adelia.config: large fresh arrays, 4 kB pages
        result = run_inla(model, options)
        result.timings = {"parse": t1 - t0, "compile": t2 - t1, **result.timings}
        t3 = time.perf_counter()
        dt = to_datatree(result)
        from adelia.prediction import FitCall, add_posterior_predictive, remember

        remember(dt, FitCall(formula, data, family, {"E": E, "Ntrials": Ntrials, "offset": offset, "scale": scale},
                             control_family, control_fixed, dict(objects)), model, result)
        if posterior_predictive:
            add_posterior_predictive(dt, model, result, seed)
        if marginals:
            from adelia.marginal_tables import add_marginal_tables

            add_marginal_tables(dt, model, result, (marginals,) if isinstance(marginals, str) else tuple(marginals))
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
                              "int_strategy, strategy, solver, n_samples, seed, dz, diff_logdens, quantiles, "
                              "posterior_predictive, marginals, method, gradient, chains, warmup, draws, devices, "
                              "distributed")
