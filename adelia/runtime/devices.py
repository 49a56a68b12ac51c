"""Several devices for one fit: θ-level parallelism, time-partitioned BTA, several processes.

All of it is JAX's own distributed runtime (``jax.sharding``, ``jax.shard_map``,
``jax.distributed``):

* **θ batches** (:class:`ThetaBatch`).  The integration design's points and the Hessian's 2d
  gradient columns are independent evaluations of f (METHOD.md §12–13: "vectorise over θ and
  shard the batch across devices").  A batch is padded to a multiple of the device count and
  run as one ``shard_map`` over a 1-D mesh (axis ``"theta"``); each device evaluates its rows one
  after the other on a CPU (``lax.map``: one factorisation at a time uses the BLAS best there,
  PERFORMANCE.md §6) or vectorised on an accelerator (``vmap``).  Every row runs the same
  arithmetic as the serial path.
* **time partitions** (:mod:`adelia.runtime.bta_partitioned`): ``solver = "bta"`` with devices
  named explicitly splits the time blocks of every factorisation over them instead (for models
  whose factor does not fit one device; METHOD.md §11).
* **several processes** (:func:`initialize_distributed`): ``jax.distributed.initialize`` (Slurm
  and Open MPI are detected by JAX; otherwise a coordinator from the environment), CPU
  collectives over gloo.  Every process runs the same fit; the θ batches are sharded over the
  devices of all processes and gathered back to each.

References: METHOD.md §11–13; JAX's "Distributed arrays and automatic parallelization" and
"Multi-process" guides.
"""

from __future__ import annotations

__all__ = ["resolve_devices", "plan", "ThetaBatch", "theta_batch", "initialize_distributed"]

import os
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from adelia.errors import FitError, ModelError

AXIS = "theta"


def resolve_devices(devices=None) -> list | None:
    """The devices a fit spreads over, or None for the single-device path.

    ``None``: every device (of every process once :func:`initialize_distributed` ran) when
    there is more than one, else None; an int k: the first k of them; a list of
    ``jax.Device``: those.  One device means the single-device path."""
    available = jax.devices()
    if devices is None:
        chosen = available
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ModelError(f"devices = {devices}, but JAX sees {len(available)} device(s): {available}",
                             hint="ask for at most that many; on a CPU, more devices need "
                                  "XLA_FLAGS=--xla_force_host_platform_device_count=K set before JAX starts")
        chosen = available[: int(devices)]
    else:
        chosen = list(devices)
        bad = [d for d in chosen if not isinstance(d, jax.Device)]
        if bad or not chosen:
            raise ModelError(f"devices must be None, an int or a list of jax devices, not {devices!r}",
                             hint="e.g. devices = 2 or devices = jax.devices()[:2]")
    return chosen if len(chosen) > 1 else None


@dataclass(frozen=True)
class Plan:
    """Where a fit's devices go: ``partition`` splits each BTA factorisation's time blocks,
    ``batch`` shards θ batches (at most one of the two is set)."""

    partition: tuple | None = None
    batch: tuple | None = None


def plan(devices, solver: str) -> Plan:
    """Named devices on the BTA path partition its time blocks (on this process's devices:
    the factorisation runs inside every jitted evaluation); otherwise the devices, named or
    all of them, shard the θ batches."""
    chosen = resolve_devices(devices)
    if chosen is None:
        return Plan()
    if solver == "bta" and devices is not None:
        local = [d for d in chosen if d.process_index == jax.process_index()]
        return Plan(partition=tuple(local)) if len(local) > 1 else Plan()
    return Plan(batch=tuple(chosen))


class ThetaBatch:
    """f and x̂ (or f, x̂ and ∇f) at a batch of θ rows, sharded over ``devices``.

    ``neg_and_mode(θ_full, x0) -> (f, x̂)`` and ``full(θ_free) -> θ_full`` are the
    per-point functions of :class:`~adelia.runtime.inference.CompiledProblem`.
    """

    def __init__(self, neg_and_mode, full, devices):
        self.devices = tuple(devices)
        self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
        vectorise = self.devices[0].platform != "cpu"

        def per_device(fn):
            if vectorise:
                return jax.vmap(fn)
            return lambda th, x0: jax.lax.map(lambda a: fn(*a), (th, x0))

        def sharded(fn):
            spec = P(AXIS)
            return jax.jit(jax.shard_map(per_device(fn), mesh=self.mesh, in_specs=(spec, spec),
                                         out_specs=spec, check_vma=False))

        grad = jax.value_and_grad(lambda tf, x0: neg_and_mode(full(tf), x0), has_aux=True)
        self._values = sharded(neg_and_mode)
        self._grads = sharded(grad)

    def _rows(self, rows: np.ndarray, x0) -> tuple:
        """The rows padded to a multiple of the device count (by repeating the first) with one
        x0 each, as global arrays sharded over the mesh."""
        k = len(self.devices)
        n = len(rows)
        size = -(-n // k) * k
        rows = np.concatenate([rows, np.repeat(rows[:1], size - n, axis=0)])
        x0s = np.repeat(np.asarray(x0)[None, :], size, axis=0)
        sharding = NamedSharding(self.mesh, P(AXIS))
        return tuple(jax.make_array_from_callback(a.shape, sharding, lambda idx, a=a: a[idx]) for a in (rows, x0s))

    def values(self, thetas_full: np.ndarray, x0) -> tuple[np.ndarray, np.ndarray]:
        """(f (K,), x̂ (K, N)) at the rows of full θ."""
        f, x = self._values(*self._rows(np.asarray(thetas_full, float), x0))
        n = len(thetas_full)
        return _host(f)[:n], _host(x)[:n]

    def value_and_grads(self, thetas_free: np.ndarray, x0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(f, x̂, ∇f) at the rows of free θ."""
        (f, x), g = self._grads(*self._rows(np.asarray(thetas_free, float), x0))
        n = len(thetas_free)
        return _host(f)[:n], _host(x)[:n], _host(g)[:n]


def _host(a) -> np.ndarray:
    """A (possibly multi-process) sharded array as one NumPy array on this host."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)


def theta_batch(cp, devices) -> ThetaBatch:
    """The :class:`ThetaBatch` of a compiled problem on these devices, built (and traced) once."""
    cache = cp.__dict__.setdefault("_theta_batches", {})
    key = tuple(devices)
    if key not in cache:
        cache[key] = ThetaBatch(cp.neg_and_mode, cp.full, key)
    return cache[key]


#: environment variables naming the coordinator when no cluster manager is detected
ENV = ("ADELIA_COORDINATOR", "ADELIA_NUM_PROCESSES", "ADELIA_PROCESS_ID")


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Join this process to a multi-process JAX run (``jax.distributed.initialize``).

    Slurm and Open MPI launches are detected by JAX itself; otherwise give the coordinator
    ("host:port" of process 0), the number of processes and this process's id, as arguments or
    as ``ADELIA_COORDINATOR``, ``ADELIA_NUM_PROCESSES``, ``ADELIA_PROCESS_ID``.  On CPUs the
    collectives run over gloo.  Must run before JAX starts its backends (before any array is
    made); a second call is a no-op."""
    if jax.distributed.is_initialized():
        return
    coordinator = coordinator or os.environ.get(ENV[0])
    if num_processes is None and os.environ.get(ENV[1]):
        num_processes = int(os.environ[ENV[1]])
    if process_id is None and os.environ.get(ENV[2]):
        process_id = int(os.environ[ENV[2]])
    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    except (RuntimeError, ValueError) as e:
        raise FitError(f"could not start the multi-process run: {e}",
                       hint="launch under Slurm or Open MPI (mpirun), or set ADELIA_COORDINATOR=host:port, "
                            "ADELIA_NUM_PROCESSES and ADELIA_PROCESS_ID in every process; call it before "
                            "anything else uses JAX") from e
