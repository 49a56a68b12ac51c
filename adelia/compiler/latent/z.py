"""``z``: the classical mixed-model random effect Z u (R-INLA ``inla.doc("z")``, ``rinla/R/models.R``
entry ``z``).

η = … + Z u with Z an (n_rows × k) matrix and u ~ N(0, (τ C)⁻¹), C a fixed k × k precision
structure (``Cmatrix``, default I). θ = log τ, loggamma(1, 5·10⁻⁵), initial 4. The index holds,
for each observation, the row of Z it uses (1..n_rows, or 0..n_rows−1; usually the row number).

R-INLA implements this as the augmented vector (v, u), v ~ N(Z u, κ⁻¹ I) with a large fixed κ,
so its ``summary.random`` has n_rows + k rows. Here Z goes straight into the observation matrix
(observation i gets row index[i] of Z), which is the κ → ∞ limit of R-INLA's construction, and
the component's nodes are u alone (k rows, values 1..k). ``constr = TRUE`` imposes Σu = 0 (R-INLA
defines it on u as well); ``extraconstr`` acts on u (k columns), not on (v, u).

log|Q| = k log τ + log|C| (exact: ``logdet_star`` = log|C|).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput, precision_hyper
from adelia.compiler.latent.indexing import row_numbers
from adelia.compiler.latent.matrix_arg import matrix_argument
from adelia.errors import ModelError


def z_structure(Z: sp.csr_matrix, rows: np.ndarray, C: sp.csr_matrix | None, *, constr: bool) -> Structure:
    """Projector: observation i -> row ``rows[i]`` of Z (−1: none)."""
    k = Z.shape[1]
    C = sp.identity(k, format="csr") if C is None else C
    sign, logdet_C = np.linalg.slogdet(C.toarray())
    if sign <= 0:
        raise ModelError("the Cmatrix of a z model must be positive definite")
    m = len(rows)
    ok = np.flatnonzero(rows >= 0)
    sel = sp.csr_matrix((np.ones(ok.size), (ok, rows[ok])), shape=(m, Z.shape[0]))
    constraints = np.ones((1, k)) if constr else np.zeros((0, k))
    return Structure(k, (C,), (lambda th: jnp.exp(th[0]),), 0, constraints, np.arange(1, k + 1),
                     np.full(m, -1, dtype=np.int64), logdet=lambda th: k * th[0], logdet_star=float(logdet_C),
                     projector=(sel @ Z).tocsr())


def build(term: TermInput) -> Structure:
    Z = matrix_argument(term, "Z", model="z")
    C = None
    if term.args.get("Cmatrix") is not None:
        C = matrix_argument(term, "Cmatrix", model="z", square=True, symmetric=True)
        if C.shape[0] != Z.shape[1]:
            raise ModelError(f"Cmatrix of f({term.name}) is {C.shape[0]} × {C.shape[0]} but Z has {Z.shape[1]} columns",
                             span=term.describe("Cmatrix"), hint="C must be k × k for an n × k Z")
    rows = row_numbers(term, Z.shape[0], "rows of Z", "Z")
    return z_structure(Z, rows, C, constr=bool(term.args.get("constr", False)))


LATENT.register("z")(LatentModel("z", (precision_hyper(),), build, ("Z", "Cmatrix"), doc=__doc__))
