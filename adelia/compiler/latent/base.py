"""What a latent model definition provides, and the registry they live in.

A latent model is declarative metadata (hyperparameters with R-INLA names, default priors,
initial values, constraint and scaling defaults) beside a pure builder that turns the term's
arguments and index values into a :class:`Structure`: the fixed matrices K_j of

    Q(θ) = Σ_j c_j(θ) · K_j

with the coefficient maps c_j, its rank deficiency and its linear constraints. Add a model by
writing one file in this folder that calls ``@LATENT.register(...)``.
"""

from __future__ import annotations

__all__ = ["LATENT", "LatentModel", "Structure", "TermInput", "precision_hyper"]

from dataclasses import dataclass, field
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.likelihoods import HyperSpec
from adelia.registry import Registry


def precision_hyper(initial: float = 4.0, prior=("loggamma", (1.0, 5e-5))) -> HyperSpec:
    """The log-precision hyperparameter every R-INLA latent model starts with."""
    return HyperSpec("prec", "Precision for {name}", "Log precision for {name}", prior, initial)


@dataclass(frozen=True)
class TermInput:
    """What the compiler hands a builder: the term's resolved arguments and index values."""

    name: str
    index: np.ndarray                 # raw values of the index variable, one per observation
    args: dict[str, Any]              # resolved keyword arguments (Python values)
    describe: Callable[[str], Any] = field(default=lambda key: None)   # key -> Span for errors


@dataclass(frozen=True)
class Structure:
    """A built latent component.

    ``Q(θ) = Σ_j coefs[j](θ) · matrices[j]``, size n; ``rank_def`` is the dimension of the null
    space of Q; ``constraints`` (k × n) are the rows of C x = 0 to impose (sum-to-zero...);
    ``logdet_star`` is log|K|* (generalised determinant over the non-null space) when the model
    is a single scaled matrix, used for the exact log-normaliser of the prior.
    ``values`` label the n nodes; ``node_of_obs`` maps each observation to its node.
    """

    n: int
    matrices: tuple[sp.spmatrix, ...]
    coefs: tuple[Callable, ...]
    rank_def: int
    constraints: np.ndarray
    values: np.ndarray
    node_of_obs: np.ndarray
    logdet: Callable | None = None
    logdet_star: float = 0.0
    constraint_rhs: np.ndarray | None = None     # e of C x = e (None: 0); set by extraconstr
    extra_constraints: int = 0                   # how many of the rows came from extraconstr
    projector: sp.spmatrix | None = None         # m × n observation rows replacing the one-hot block (SPDE)
    prior_context: dict = field(default_factory=dict)   # what structure-dependent priors need (Prior.bind)
    #: Q couples only neighbouring ones of ``blocks`` contiguous equal-size node blocks (group/replicate
    #: in time-major order): the BTA layout's time blocks (METHOD.md §3.1); 1 = no such structure
    blocks: int = 1
    #: a component without latent nodes whose effect is η += β(θ) · covariate, β the natural value
    #: of its one hyperparameter (``clinear``); n = 0 then
    covariate: np.ndarray | None = None


@dataclass(frozen=True)
class LatentModel:
    """``hypers`` is a tuple, or a function of the term's resolved arguments returning one, for
    models whose hyperparameters depend on them (``ar``'s ``order``, ``iidkd``'s ``order``);
    read them through :meth:`hyper_specs`."""

    name: str
    hypers: tuple[HyperSpec, ...] | Callable[[dict | None], tuple[HyperSpec, ...]]
    build: Callable[[TermInput], Structure]
    arguments: tuple[str, ...] = ()         # keyword arguments the model accepts beyond the common ones
    doc: str = ""
    #: how a function ``hypers`` depends on the arguments, for the README's model table
    hypers_note: str = "as many as the arguments ask for"

    def hyper_specs(self, args: dict | None = None) -> tuple[HyperSpec, ...]:
        """The hyperparameters for these arguments (``None``: every one the model can have)."""
        return self.hypers(args) if callable(self.hypers) else self.hypers


LATENT: Registry[LatentModel] = Registry("latent model")


def single_precision_structure(K: sp.spmatrix, *, rank_def: int, constraints: np.ndarray,
                               values: np.ndarray, node_of_obs: np.ndarray,
                               scale_model: bool = False, null_basis: np.ndarray | None = None) -> Structure:
    """Q(θ) = exp(θ_prec) · K; log|Q|* = (n − r) θ_prec (+ log|K|*, left out as R-INLA does).

    ``scale_model`` rescales K so that the geometric mean of the marginal variances of the
    constrained (null-space-free) field is 1 (Sørbye & Rue 2014; R-INLA ``scale.model``),
    computed per connected block of K.
    """
    K = sp.csr_matrix(K, dtype=float)
    if scale_model and rank_def > 0:
        K = K * generalized_variance(K.toarray(), null_basis)
    n = K.shape[0]
    logdet_star = 0.0            # R-INLA's convention: log|K|* is not part of the normaliser
    return Structure(n, (K,), (lambda th: jnp.exp(th[0]),), rank_def, constraints, values, node_of_obs,
                     lambda th: (n - rank_def) * th[0], logdet_star)


def generalized_variance(K: np.ndarray, null_basis: np.ndarray | None) -> float:
    """Geometric mean of diag(K⁺) restricted to the space orthogonal to the null space."""
    if null_basis is None:
        w, v = np.linalg.eigh(K)
        keep = w > 1e-9 * w.max()
        ginv = (v[:, keep] / w[keep]) @ v[:, keep].T
    else:
        # (K + V Vᵀ)⁻¹ − V (VᵀV)⁻² Vᵀ is the Moore–Penrose inverse when V spans null(K)
        V = null_basis
        VtV = V.T @ V
        ginv = np.linalg.inv(K + V @ V.T) - V @ np.linalg.inv(VtV @ VtV) @ V.T
    return float(np.exp(np.mean(np.log(np.diag(ginv)))))
