"""Where adelia keeps its on-disk caches, and the one switch that turns them off; no JAX here, so
that the DSL can use it without importing the runtime.

``$XDG_CACHE_HOME/adelia`` (``~/.cache/adelia``) holds JAX's compilation cache (``jax/``, see
:mod:`adelia.config`) and the parsers' LALR tables (``lark/``, see
:mod:`adelia.dsl.grammar_files`). ``ADELIA_COMPILATION_CACHE`` set to ``off`` (also ``0``,
``false``, ``no``, ``none`` or empty) turns both off.
"""

from __future__ import annotations

__all__ = ["ENV", "cache_home", "caches_off"]

import os
from pathlib import Path

ENV = "ADELIA_COMPILATION_CACHE"
_OFF = {"off", "0", "false", "no", "none", ""}


def cache_home() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "adelia"


def caches_off() -> bool:
    value = os.environ.get(ENV)
    return value is not None and value.strip().lower() in _OFF
