"""The problem type the runtime solves: a latent Gaussian model as arrays and pure functions.

The compiler (``adelia.compiler``) lowers a formula and its data into a :class:`Problem`; the
runtime reads nothing else, so it never imports the compiler, the DSL or the results layer.

The model (Rue, Martino & Chopin 2009, RINLA.md §1): hyperparameters θ (internal scale) with
priors π(θ_k); a latent vector x = [components…, fixed effects] with prior precision

    Q_p(θ) = blockdiag_c( Σ_j c_cj(θ) K_cj ) ⊕ diag(fixed_prec),   mean μ = [0…, fixed_mean],

linear constraints C x = e; a linear predictor η = A x + offset (plus β(θ)·B x_src for copies
with an estimated scale and β(θ)·w for constrained linear effects); and observations y_i with likelihood p(y_i | η_i, θ) from the family
of row i (NaN in y: no observation, a prediction row).
"""

from __future__ import annotations

__all__ = ["Hyperparameter", "Likelihood", "LatentBlock", "CopyTerm", "ThetaCovariate", "Problem", "as_problem"]

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Hyperparameter:
    """θ_k on the internal scale."""

    label: str                       # R-INLA's natural-scale row label, e.g. "Precision for plate"
    internal_label: str              # e.g. "Log precision for plate"
    initial: float
    fixed: bool
    log_prior: Callable              # θ_k -> log π(θ_k), Jacobian to the internal scale included
    to_natural: Callable             # θ_k -> natural-scale value
    prior_key: str = ""              # a text naming the prior and its parameters (for hashing)
    #: a joint prior (Wishart of iidkd, a user's rgeneric prior): ``log_prior`` takes θ[joint], the
    #: vector of these indices, instead of θ_k alone
    joint: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Likelihood:
    """One family: ``loglik(y, η, θ_family, extra) -> (m,)`` elementwise log-densities."""

    name: str
    extras: tuple[str, ...]          # per-observation arguments it reads (E, Ntrials, scale)
    loglik: Callable
    quadratic: bool = False          # loglik is quadratic in η (Gaussian, identity link)


@dataclass(frozen=True)
class LatentBlock:
    """One latent component: nodes ``offset … offset + n − 1`` of x, Q = Σ_j coefs[j](θ_c) K_j."""

    name: str
    offset: int
    n: int
    theta_index: tuple[int, ...]     # which θ its coefficient functions take, in order
    matrices: tuple[sp.spmatrix, ...]
    coefs: tuple[Callable, ...]
    rank_def: int                    # dimension of Q's null space (intrinsic models)
    logdet_star: float               # θ-free part of log|Q|* (generalised determinant)
    logdet: Callable | None          # θ-dependent part of log|Q|*, when it has a closed form
    constraints: np.ndarray          # (k, n) rows: constraints × x_block = constraint_rhs
    constraint_rhs: np.ndarray | None
    extra_constraints: int = 0       # how many of the rows are user extraconstr
    blocks: int = 1                  # time blocks (group/replicate), for the BTA layout


@dataclass(frozen=True)
class CopyTerm:
    """A copy with an estimated scale: η += θ[theta_index] · B x[src_offset : src_offset + n]."""

    name: str
    src_offset: int
    B: np.ndarray                    # (m, n_src)
    theta_index: int


@dataclass(frozen=True)
class ThetaCovariate:
    """A covariate whose coefficient is a hyperparameter: η += β(θ_k) · w, β = thetas[k].to_natural
    (R-INLA ``clinear``, where β is a hyperparameter on a constrained range)."""

    name: str
    w: np.ndarray                    # (m,)
    theta_index: int


@dataclass(frozen=True)
class Problem:
    y: np.ndarray                    # (m,), NaN where there is no observation
    A: sp.csr_matrix                 # (m, N)
    offset: np.ndarray               # (m,)
    extra: dict[str, np.ndarray]     # per-observation likelihood arguments
    family_index: np.ndarray         # (m,) which likelihood each row belongs to
    families: tuple[Likelihood, ...]
    lik_theta: tuple[tuple[int, ...], ...]   # θ indices of each likelihood
    components: tuple[LatentBlock, ...]
    thetas: tuple[Hyperparameter, ...]
    fixed_offset: int                # the fixed effects are x[fixed_offset:]
    fixed_prec: np.ndarray           # their prior precisions (0 = flat)
    fixed_mean: np.ndarray
    C: np.ndarray                    # (k, N) constraint rows over the whole of x
    e: np.ndarray                    # (k,)
    copies: tuple[CopyTerm, ...] = ()
    theta_covariates: tuple[ThetaCovariate, ...] = ()
    key: str = ""                    # a text identifying the model (formula, families) for hashing
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def N(self) -> int:
        return self.A.shape[1]

    @property
    def m(self) -> int:
        return self.A.shape[0]

    @property
    def d(self) -> int:
        return len(self.thetas)

    @property
    def observed(self) -> np.ndarray:
        return ~np.isnan(self.y)


def as_problem(model) -> Problem:
    """``model`` itself if it is a :class:`Problem`, else its lowering ``model.problem`` (the
    front end's compiled model provides one)."""
    if isinstance(model, Problem):
        return model
    lowered = getattr(model, "problem", None)
    if not isinstance(lowered, Problem):
        raise TypeError(f"expected an adelia.runtime.problem.Problem, got {type(model).__name__}")
    return lowered
