"""Fixed effects: the design matrix of the formula's fixed part, built by formulaic.

adelia parses the whole formula; the fixed terms are re-serialised and handed to formulaic,
which provides factors (``C(g)``), interactions and transforms, and keeps a model spec that
replays levels on new data. Columns are renamed as R-INLA names them (``(Intercept)``).
"""

from __future__ import annotations

__all__ = ["FixedEffects", "build_fixed"]

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from adelia.dsl import ir
from adelia.dsl.printer import print_term
from adelia.errors import DataError, ModelError


@dataclass(frozen=True)
class FixedEffects:
    names: tuple[str, ...]
    X: np.ndarray          # (m, p)
    spec: Any              # formulaic ModelSpec, or None without fixed effects


def _names_in(expr: ir.Expr):
    match expr:
        case ir.Name():
            yield expr
        case ir.Call(args=args, kwargs=kws):
            for a in args:
                yield from _names_in(a)
            for k in kws:
                yield from _names_in(k.value)
        case ir.Vector(items=items):
            for i in items:
                yield from _names_in(i)


def build_fixed(formula: ir.Formula, df: pd.DataFrame, res) -> FixedEffects:
    terms = formula.fixed
    if not terms and not formula.intercept:
        return FixedEffects((), np.zeros((len(df), 0)), None)
    for t in terms:
        for f in t.factors:
            for name in _names_in(f):
                if name.id not in df.columns and name.id not in res.objects:
                    raise res._unknown(name, "a fixed effect")
    rhs = " + ".join(["1" if formula.intercept else "0"] + [print_term(t) for t in terms])
    import formulaic

    context = {k: v for k, v in res.objects.items()}
    try:
        mm = formulaic.model_matrix(rhs, df, na_action="raise", context=context)
    except Exception as err:  # formulaic reports evaluation problems with many exception types
        msg = str(err).split("\n")[0]
        span = terms[0].span if terms else formula.span
        raise DataError(f"cannot build the fixed-effect design matrix: {msg}", source=formula.source, span=span,
                        filename=res.filename, hint="check the fixed-effect columns for missing values and types") from None
    names = tuple("(Intercept)" if c == "Intercept" else str(c) for c in mm.columns)
    X = np.asarray(mm.to_numpy(), dtype=float)
    return FixedEffects(names, X, mm.model_spec)
