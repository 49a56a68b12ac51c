"""A user's matrix argument (``Cmatrix``, ``Z``) -> scipy.sparse CSR, with errors that name it."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import TermInput
from adelia.errors import ModelError


def matrix_argument(term: TermInput, key: str, *, model: str, square: bool = False,
                    symmetric: bool = False) -> sp.csr_matrix:
    """``term.args[key]`` as a float CSR matrix: a scipy.sparse matrix, a 2-D array or nested lists."""
    value = term.args.get(key)
    where = f"{key} of f({term.name}, model = \"{model}\")"
    if value is None:
        raise ModelError(f"f({term.name}, model = \"{model}\") needs {key} = <matrix>", span=term.describe("model"),
                         hint=f"pass {key} = <a scipy.sparse matrix or 2-D array> (as a keyword object of fit())")
    try:
        M = sp.csr_matrix(value, dtype=float) if sp.issparse(value) else sp.csr_matrix(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        raise ModelError(f"{where} must be a numeric matrix, not {type(value).__name__}", span=term.describe(key)) from None
    if M.ndim != 2 or 0 in M.shape:
        raise ModelError(f"{where} must be a non-empty 2-D matrix, got shape {M.shape}", span=term.describe(key))
    if not np.all(np.isfinite(M.data)):
        raise ModelError(f"{where} has non-finite entries", span=term.describe(key))
    if square and M.shape[0] != M.shape[1]:
        raise ModelError(f"{where} must be square, got {M.shape[0]} × {M.shape[1]}", span=term.describe(key))
    if symmetric and abs(M - M.T).max() > 1e-10 * max(abs(M).max(), 1.0):
        raise ModelError(f"{where} must be symmetric", span=term.describe(key), hint="use (C + C.T) / 2")
    M.eliminate_zeros()
    return M
