"""adelia: INLA for latent Gaussian models on a differentiable JAX runtime.

>>> import adelia
>>> dt = adelia.fit("y ~ 1 + x", data)             # doctest: +SKIP
>>> adelia.summary(dt)                              # doctest: +SKIP
"""

from adelia import config  # noqa: F401  (float64, persistent compilation cache)

__version__ = "0.1.0"

from adelia.errors import (AdeliaError, DataError, FitError, FormulaSyntaxError, ModelError,  # noqa: E402
                           UnknownNameError)
from adelia.dsl.parser import parse_formula  # noqa: E402
from adelia.dsl.adl import parse_model  # noqa: E402
from adelia.api import fit, compile_formula  # noqa: E402
from adelia.prediction import predict  # noqa: E402
from adelia.model_criteria import criteria  # noqa: E402
from adelia.results import summary, to_datatree  # noqa: E402
from adelia.nuts import compare  # noqa: E402
from adelia.config import set_compilation_cache  # noqa: E402

import gc as _gc  # noqa: E402

# The imports above (JAX, SciPy, pandas, xarray) leave about a million objects that live as long
# as the process; every full collection during a fit would scan them all again (some 80 ms, the
# first of them inside a fresh process's first fit). gc.freeze moves what exists now into the
# permanent generation, as the CPython documentation advises for such objects
# (https://docs.python.org/3/library/gc.html#gc.freeze); later objects are collected as usual.
_gc.freeze()


def __getattr__(name: str):
    # adelia.plots imports matplotlib (the optional plot extra): loaded on first use only
    if name == "plots":
        import importlib

        return importlib.import_module("adelia.plots")
    raise AttributeError(f"module 'adelia' has no attribute {name!r}")


__all__ = [
    "fit", "predict", "criteria", "summary", "compare", "set_compilation_cache", "parse_formula", "parse_model", "compile_formula", "to_datatree",
    "AdeliaError", "FormulaSyntaxError", "ModelError", "UnknownNameError", "DataError", "FitError",
    "__version__",
]
