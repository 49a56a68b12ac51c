"""adelia: INLA for latent Gaussian models on a differentiable JAX runtime.

>>> import adelia
>>> dt = adelia.fit("y ~ 1 + x", data)             # doctest: +SKIP
>>> adelia.summary(dt)                              # doctest: +SKIP
"""

import gc as _gc

# Importing JAX, SciPy, pandas and xarray creates about a million long-lived objects; the cyclic
# collector would scan them again and again while they are made (some 390 collections, 0.2 s of a
# 1.3 s import). None of them is garbage, so collection waits until the imports are done.
_gc_was_enabled = _gc.isenabled()
_gc.disable()

try:
    from adelia import config  # noqa: F401  (float64, persistent compilation cache)
    from adelia.errors import (AdeliaError, DataError, FitError, FormulaSyntaxError, ModelError,
                               UnknownNameError)
    from adelia.dsl.parser import parse_formula
    from adelia.api import fit, compile_formula
    from adelia.prediction import predict
    from adelia.model_criteria import criteria
    from adelia.results import summary, to_datatree
    from adelia.config import set_compilation_cache

    # What the imports made lives as long as the process; every full collection during a fit
    # would scan it all again (some 80 ms, the first of them inside a fresh process's first fit).
    # gc.freeze moves it into the permanent generation, as the CPython documentation advises for
    # such objects (https://docs.python.org/3/library/gc.html#gc.freeze); later objects are
    # collected as usual.
    _gc.freeze()
finally:
    if _gc_was_enabled:
        _gc.enable()

__version__ = "0.1.0"


#: loaded on first use: adelia.plots imports matplotlib (the optional plot extra); the .adl reader
#: and the NUTS comparison are not needed by fit() (their modules cost 35 ms of a fresh import)
_LAZY = {"plots": ("adelia.plots", None), "parse_model": ("adelia.dsl.adl", "parse_model"),
         "compare": ("adelia.nuts", "compare")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        loaded = importlib.import_module(module)
        return loaded if attr is None else getattr(loaded, attr)
    raise AttributeError(f"module 'adelia' has no attribute {name!r}")


__all__ = [
    "fit", "predict", "criteria", "summary", "compare", "set_compilation_cache", "parse_formula", "parse_model", "compile_formula", "to_datatree",
    "AdeliaError", "FormulaSyntaxError", "ModelError", "UnknownNameError", "DataError", "FitError",
    "__version__",
]
