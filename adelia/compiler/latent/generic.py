"""``generic0`` (alias ``generic``) and ``generic1``: precisions built from a user's structure
matrix C (R-INLA ``inla.doc("generic0")``, ``inla.doc("generic1")``; ``rinla/R/models.R``
entries ``generic``, ``generic0``, ``generic1``). C is passed as ``Cmatrix = <matrix>``: a
scipy.sparse matrix, a dense array or nested lists, symmetric; nodes are 1..n (or 0..n−1).

* ``generic0``: Q = τ C. θ = log τ, loggamma(1, 5·10⁻⁵), initial 4. ``rankdef`` gives the
  dimension of C's null space (default: computed from C's eigenvalues); ``constr = TRUE`` puts
  Σx = 0 (R-INLA's default is FALSE); ``scale.model = TRUE`` scales C to generalised variance 1.
  R-INLA's normaliser counts (n − r)/2 log τ but not ½ log|C|* (inla.c, case F_GENERIC0), and
  so does this one (``logdet_star`` = 0).
* ``generic1``: Q = τ (I − β/λ_max · C), λ_max the largest eigenvalue of C, β ∈ (0, 1).
  θ = (log τ, logit β); priors loggamma(1, 5·10⁻⁵) (initial 4) and normal(0, precision 0.1) on
  logit β (initial 2). Labels "Precision for <name>", "Beta for <name>" (internal "Log precision
  for", "Beta_intern for"). log|Q| = n log τ + Σ_k log(1 − β λ_k/λ_max) with the eigenvalues λ_k
  of C computed once, as R-INLA does (inla.c, case F_GENERIC1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import (LATENT, LatentModel, Structure, TermInput, generalized_variance,
                                         precision_hyper)
from adelia.compiler.latent.indexing import row_numbers
from adelia.compiler.latent.matrix_arg import matrix_argument
from adelia.compiler.likelihoods import HyperSpec
from adelia.errors import ModelError

GENERIC1_HYPERS = (
    precision_hyper(),
    HyperSpec("beta", "Beta for {name}", "Beta_intern for {name}", ("normal", (0.0, 0.1)), 2.0, "*",
              jax.nn.sigmoid),
)


def _nodes(term: TermInput, n: int):
    """Index 1..n (R) or 0..n−1 -> nodes of C."""
    node = row_numbers(term, n, "the rows of Cmatrix", "Cmatrix")
    base = 0 if np.nanmin(np.asarray(term.index, dtype=float), initial=1) == 0 else 1
    return np.arange(base, n + base), node


def generic0_structure(C: sp.csr_matrix, *, rank_def: int | None, constr: bool, scale_model: bool,
                       values: np.ndarray, node_of_obs: np.ndarray, name: str = "x") -> Structure:
    n = C.shape[0]
    dense = C.toarray()
    w = np.linalg.eigvalsh(dense)
    if w.min() < -1e-8 * max(abs(w).max(), 1.0):
        raise ModelError(f"the Cmatrix of f({name}) is not positive semi-definite (smallest eigenvalue {w.min():.3g})",
                         hint="generic0 needs a symmetric PSD structure matrix")
    numeric_rank_def = int(np.sum(w < 1e-9 * abs(w).max()))
    r = numeric_rank_def if rank_def is None else int(rank_def)
    if scale_model:
        dense = dense * generalized_variance(dense, None)
        C = sp.csr_matrix(dense)
    constraints = np.ones((1, n)) if constr else np.zeros((0, n))
    return Structure(n, (C,), (lambda th: jnp.exp(th[0]),), r, constraints, values, node_of_obs,
                     logdet=lambda th: (n - r) * th[0], logdet_star=0.0)


def build_generic0(model: str):
    def build(term: TermInput) -> Structure:
        C = matrix_argument(term, "Cmatrix", model=model, square=True, symmetric=True)
        values, node_of_obs = _nodes(term, C.shape[0])
        rankdef = term.args.get("rankdef")
        return generic0_structure(C, rank_def=None if rankdef is None else int(rankdef),
                                  constr=bool(term.args.get("constr", False)),
                                  scale_model=bool(term.args.get("scale.model", False)),
                                  values=values, node_of_obs=node_of_obs, name=term.name)
    return build


def generic1_structure(C: sp.csr_matrix, *, constr: bool, values: np.ndarray, node_of_obs: np.ndarray,
                       name: str = "x") -> Structure:
    n = C.shape[0]
    lam = np.linalg.eigvalsh(C.toarray())
    lam_max = float(lam.max())
    if lam_max <= 0:
        raise ModelError(f"the Cmatrix of f({name}, model = \"generic1\") has no positive eigenvalue",
                         hint="generic1 scales C by its largest eigenvalue, which must be > 0")
    ratio = jnp.asarray(lam / lam_max)
    coefs = (lambda th: jnp.exp(th[0]), lambda th: -jnp.exp(th[0]) * jax.nn.sigmoid(th[1]) / lam_max)
    constraints = np.ones((1, n)) if constr else np.zeros((0, n))
    return Structure(n, (sp.identity(n, format="csr"), C), coefs, 0, constraints, values, node_of_obs,
                     logdet=lambda th: n * th[0] + jnp.sum(jnp.log1p(-jax.nn.sigmoid(th[1]) * ratio)),
                     logdet_star=0.0)


def build_generic1(term: TermInput) -> Structure:
    C = matrix_argument(term, "Cmatrix", model="generic1", square=True, symmetric=True)
    values, node_of_obs = _nodes(term, C.shape[0])
    return generic1_structure(C, constr=bool(term.args.get("constr", False)), values=values,
                              node_of_obs=node_of_obs, name=term.name)


LATENT.register("generic0", "generic")(LatentModel("generic0", (precision_hyper(),), build_generic0("generic0"),
                                                   ("Cmatrix", "rankdef"), doc=__doc__))
LATENT.register("generic1")(LatentModel("generic1", GENERIC1_HYPERS, build_generic1, ("Cmatrix",), doc=__doc__))
