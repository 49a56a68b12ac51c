"""Process-wide JAX settings adelia relies on: float64, and the persistent compilation cache.

A fit JIT-compiles a handful of XLA programs (the Laplace objective with its gradient, the
Gaussian approximation at the integration points, the sampler). Compiling them costs seconds
while running them on a small model costs milliseconds, so every new Python process would pay
the compilation again. JAX's persistent compilation cache
(https://docs.jax.dev/en/latest/persistent_compilation_cache.html) stores the compiled
executables on disk, keyed by the program text, the JAX/XLA version and the device, so a later
process fitting the same model (or any model that lowers to the same program) loads them
instead of compiling.

The cache is on by default, in ``$XDG_CACHE_HOME/adelia/jax`` (``~/.cache/adelia/jax``).
``ADELIA_COMPILATION_CACHE`` overrides it: a directory, or ``off`` (also ``0``, ``false``,
``none``) to disable it. :func:`set_compilation_cache` does the same from Python.

:func:`no_hugepage_advice` (around each fit): NumPy advises the kernel to back every array of
4 MB or more with transparent huge pages (``madvise(MADV_HUGEPAGE)``). Where guest memory is
backed lazily by a hypervisor (cloud VMs), each fresh 2 MB page is zeroed and faulted in whole:
the posterior draws of the Germany space–time fit (70 MB of latent draws, 35 MB of linear
predictor) took 1.0–1.7 s to write instead of 0.27–0.37 s with 4 kB pages, and the warm fit
6.9–7.5 s against 6.0–6.8 s, interleaved in one process on a 2-core Firecracker VM. Small
models allocate nothing that large and are unchanged. NumPy's own switch, the environment
variable ``NUMPY_MADVISE_HUGEPAGE``, wins when it is set.
"""

from __future__ import annotations

__all__ = ["set_compilation_cache", "compilation_cache_dir", "default_cache_dir", "no_hugepage_advice"]

import contextlib
import os
from pathlib import Path

import jax
import numpy as np

from adelia.cache_home import ENV, cache_home, caches_off

jax.config.update("jax_enable_x64", True)   # float32 breaks the log-determinants (PERFORMANCE §5)


def default_cache_dir() -> Path:
    return cache_home() / "jax"


def set_compilation_cache(path: str | os.PathLike | None) -> Path | None:
    """Store compiled XLA programs in ``path`` (``None``: no persistent cache). Returns the
    directory in use. An unwritable directory disables the cache rather than failing fits."""
    if path is None:
        jax.config.update("jax_compilation_cache_dir", None)
        return None
    directory = Path(path).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        jax.config.update("jax_compilation_cache_dir", None)
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # JAX's defaults keep only programs that took ≥ 1 s to compile; adelia's take 0.05–1 s each
    # and a fresh process pays all of them, so keep every program worth more than a disk read
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.02)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def compilation_cache_dir() -> Path | None:
    value = jax.config.jax_compilation_cache_dir
    return Path(value) if value else None


@contextlib.contextmanager
def no_hugepage_advice():
    """NumPy's transparent-huge-page advice off inside the block, restored after (see the module
    docstring); left alone where ``NUMPY_MADVISE_HUGEPAGE`` is set or NumPy has no such switch."""
    switch = getattr(getattr(np, "_core", None), "multiarray", None)
    switch = getattr(switch, "_set_madvise_hugepage", None)
    if switch is None or "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        yield
        return
    before = switch(False)
    try:
        yield
    finally:
        switch(before)


def _from_environment() -> None:
    if caches_off():
        set_compilation_cache(None)
    else:
        set_compilation_cache(os.environ.get(ENV) or default_cache_dir())


_from_environment()
