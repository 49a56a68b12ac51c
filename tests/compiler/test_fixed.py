"""Fixed-effect design matrices (adelia.compiler.fixed): the plain-numeric path against formulaic."""

from __future__ import annotations

import formulaic
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adelia.api import compile_formula
from adelia.compiler.fixed import _Products, design_on
from adelia.errors import DataError

COLUMNS = ("x1", "x2", "n", "z")


def _frame(seed: int, m: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.normal(size=m), "x1": rng.normal(size=m), "x2": rng.uniform(-2, 2, m),
                         "n": rng.integers(-5, 9, m), "z": rng.normal(size=m) * 10})


terms = st.lists(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=3, unique=True).map(":".join),
                 min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 1000), rhs=terms, intercept=st.booleans())
def test_plain_numeric_terms_match_formulaic(seed, rhs, intercept):
    """Columns, names and order as formulaic builds them: intercept first, terms by degree, then
    as written, a repeated term (in any factor order) once."""
    df = _frame(seed)
    model = compile_formula("y ~ " + " + ".join(["1" if intercept else "-1"] + rhs), df)
    assert isinstance(model.fixed.spec, _Products)
    mm = formulaic.model_matrix(" + ".join(["1" if intercept else "0"] + rhs), df, na_action="raise")
    want = ["(Intercept)" if c == "Intercept" else str(c) for c in mm.columns]
    assert list(model.fixed.names) == want
    np.testing.assert_array_equal(model.fixed.X, mm.to_numpy())
    names, X = design_on(model.fixed, df.iloc[3:7])
    assert names == want
    np.testing.assert_array_equal(X, mm.to_numpy()[3:7])


def test_other_terms_still_go_through_formulaic():
    df = _frame(1).assign(b=lambda d: d.n > 0, g=lambda d: np.where(d.n > 2, "a", "b"))
    for rhs, python in (("b", "b"), ("C(g)", "C(g)"), ("I(x1^2)", "I(x1**2)"), ("log(z^2)", "log(z**2)")):
        model = compile_formula(f"y ~ 1 + {rhs}", df)
        assert not isinstance(model.fixed.spec, _Products)
        np.testing.assert_array_equal(model.fixed.X, formulaic.model_matrix(f"1 + {python}", df).to_numpy())


def test_missing_values_are_located_errors_on_both_paths():
    df = _frame(2)
    df.loc[4, "x1"] = np.nan
    with pytest.raises(DataError, match="fixed-effect design"):
        compile_formula("y ~ 1 + x1", df)
    model = compile_formula("y ~ 1 + x1:x2", _frame(2))
    with pytest.raises(ValueError, match="missing values"):
        design_on(model.fixed, df)
