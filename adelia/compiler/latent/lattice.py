"""Regular nrow × ncol lattices shared by ``rw2d`` and ``matern2d``: node numbering and operators.

R-INLA numbers lattice nodes column-major, node = i + j·nrow (0-based row i, column j;
``inla.lattice2node``, GMRFLib ``GMRFLib_node2lattice``), so an operator acting along the rows
of each column is I_ncol ⊗ A_nrow and one acting along the columns is A_ncol ⊗ I_nrow.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import TermInput
from adelia.compiler.latent.indexing import row_numbers
from adelia.errors import ModelError


def lattice_shape(term: TermInput, model: str) -> tuple[int, int]:
    out = []
    for key in ("nrow", "ncol"):
        v = term.args.get(key)
        if v is None:
            raise ModelError(f"f({term.name}, model = \"{model}\") needs nrow and ncol", span=term.describe("model"),
                             hint="add nrow = <rows>, ncol = <columns> of the lattice")
        if float(v) != int(v) or int(v) < 1:
            raise ModelError(f"{key} of f({term.name}) must be a positive integer, got {v!r}", span=term.describe(key))
        out.append(int(v))
    return out[0], out[1]


def lattice_nodes(term: TermInput, nrow: int, ncol: int) -> tuple[np.ndarray, np.ndarray]:
    """Index 1..nrow·ncol (R-INLA's node numbers) or 0-based -> (values, node of each observation)."""
    n = nrow * ncol
    node = row_numbers(term, n, f"nodes of the {nrow} × {ncol} lattice", "nrow")
    base = 0 if np.nanmin(np.asarray(term.index, dtype=float), initial=1) == 0 else 1
    return np.arange(base, n + base), node


def path_adjacency(n: int) -> sp.csr_matrix:
    off = np.ones(max(n - 1, 0))
    return sp.csr_matrix(sp.diags([off, off], [-1, 1], shape=(n, n)))


def difference(n: int, order: int) -> sp.csr_matrix:
    """(n − order) × n matrix of order-th differences."""
    return sp.csr_matrix(np.diff(np.eye(n), n=order, axis=0))
