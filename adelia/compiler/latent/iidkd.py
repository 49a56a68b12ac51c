"""``iidkd``: k correlated Gaussian random effects (and ``iid2d``, R-INLA's two-effect model in its
own parameterisation, at the end of this docstring) with a Wishart prior on their precision (R-INLA ``inla.doc("iidkd")``).

(u_i, v_i, …) ~ N(0, W⁻¹) independently for i = 1..m, with W = L Lᵀ and L lower triangular,

    L_jj = exp(θ_j) (j = 1..k),   L's entries below the diagonal = θ_{k+1}, … row by row
    (k = 3: L_21 = θ_4, L_31 = θ_5, L_32 = θ_6),

so θ (k(k+1)/2 values) is unconstrained. The latent vector has length n = k·m in R-INLA's layout
(u_1..u_m, v_1..v_m, …): f(i, model = "iidkd", order = k, n = k·m), index values 1..n, effect j of
level i at index (j − 1)·m + i. Q = W ⊗ I_m = Σ_{a≤b} W_ab(θ) (E_ab + E_ba) ⊗ I_m, log|Q| = 2m Σ_j θ_j.

Prior (R-INLA: fixed to be ``wishartkd``, on θ1, θ2… carry "none"): W ~ Wishart_k(r, R⁻¹),

    π(W) = c⁻¹ |W|^{(r−k−1)/2} exp(−½ tr(W R)),   c = 2^{rk/2} |R|^{−r/2} π^{k(k−1)/4} Π_j Γ((r+1−j)/2),

written as a joint density of θ (Jacobian 2^k Π_j L_jj^{k−j+2}; adelia.compiler.priors
``wishartkd``). Default parameters (r = 100, R = I): ``hyper = list(theta1 = list(param = c(r,
R_11, …, R_kk, R_12, R_13, …)))`` changes them. R-INLA's document gives no numeric initial value
(its models.R holds a placeholder replaced inside inla.c); adelia starts at the Cholesky factor
of the prior mean of W for the default parameters, E W = r R⁻¹ = 100 I: θ_j = ½ log 100, θ_{k+j} = 0.
Labels "Theta1 for i", … (R-INLA reports θ and leaves the conversion to the user).
``constr = TRUE`` puts one sum-to-zero constraint on each of the k effects.

``iid2d`` (R-INLA ``inla.doc("iid2d")``, hyperparameters from ``doc/hyper/latent/iid2d.tex``): the same
layout with k = 2 and W⁻¹ = [[1/τ_a, ρ/√(τ_aτ_b)], [ρ/√(τ_aτ_b), 1/τ_b]], θ = (log τ_a, log τ_b,
log((1 + ρ)/(1 − ρ))), all initial 4; prior fixed to ``wishart2d`` (W ~ Wishart_2(r, R⁻¹), default
(r, R_11, R_22, R_12) = (4, 1, 1, 0)) on θ1, "none" on θ2, θ3; labels "Precision for i (component 1)",
"Precision for i (component 2)", "Rho1:2 for i". Q = W ⊗ I_m with W_11 = τ_a/(1 − ρ²),
W_22 = τ_b/(1 − ρ²), W_12 = −ρ√(τ_aτ_b)/(1 − ρ²); log|Q| = m(log τ_a + log τ_b − log(1 − ρ²)).
"""

from __future__ import annotations

__all__ = ["iidkd_hypers", "iidkd_structure", "MAX_ORDER"]

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.latent.indexing import nodes_from_values
from adelia.compiler.likelihoods import HyperSpec
from adelia.compiler.priors import IIDKD, iid2d_covariance, iidkd_cholesky
from adelia.errors import ModelError

MAX_ORDER = 20       # R-INLA: k = 2 to 20
DEFAULT_R = 100.0


def _order(args: dict | None, fixed: int | None) -> int | None:
    if fixed is not None:
        return fixed
    order = (args or {}).get("order")
    try:
        k = int(order)
    except (TypeError, ValueError):
        return None
    return k if k == order and 2 <= k <= MAX_ORDER else None


def iidkd_hypers_for(k: int) -> tuple[HyperSpec, ...]:
    d = k * (k + 1) // 2
    default = (DEFAULT_R, *([1.0] * k), *([0.0] * (d - k)))
    out = []
    for j in range(1, d + 1):
        prior = ("wishartkd", default) if j == 1 else ("none", ())
        initial = 0.5 * math.log(DEFAULT_R) if j <= k else 0.0
        out.append(HyperSpec(f"theta{j}", f"Theta{j} for {{name}}", f"Theta{j} for {{name}}", prior, initial,
                             IIDKD, lambda t: t))
    return tuple(out)


def iidkd_hypers(fixed: int | None = None):
    def hypers(args: dict | None) -> tuple[HyperSpec, ...]:
        k = _order(args, fixed)
        return iidkd_hypers_for(k if k is not None else 2)
    return hypers


def iidkd_structure(k: int, m: int, *, constr: bool, values: np.ndarray, node_of_obs: np.ndarray) -> Structure:
    I = sp.identity(m, format="csr")
    matrices, coefs = [], []
    for a in range(k):
        for b in range(a, k):
            E = sp.csr_matrix(([1.0, 1.0] if a != b else [1.0], ([a, b] if a != b else [a], [b, a] if a != b else [a])),
                              shape=(k, k))
            matrices.append(sp.kron(E, I, format="csr"))
            coefs.append(lambda th, a=a, b=b: _W(th, k)[a, b])
    constraints = np.kron(np.eye(k), np.ones((1, m))) if constr else np.zeros((0, k * m))
    return Structure(k * m, tuple(matrices), tuple(coefs), 0, constraints, values, node_of_obs,
                     logdet=lambda th: 2.0 * m * jnp.sum(th[:k]), logdet_star=0.0,
                     prior_context={"iidkd_order": k})


def _W(th, k):
    L = iidkd_cholesky(th, k)
    return L @ L.T


def make_build(fixed: int | None):
    def build(term: TermInput) -> Structure:
        k = _order(term.args, fixed)
        if k is None:
            raise ModelError(f"f({term.name}, model = \"iidkd\") needs order = k, an integer from 2 to {MAX_ORDER}, "
                             f"got {term.args.get('order')!r}", span=term.describe("order" if "order" in term.args
                                                                                   else "model"),
                             hint="e.g. order = 2 for two correlated effects")
        if term.args.get("n") is None and term.args.get("values") is None:
            raise ModelError(f"f({term.name}, model = \"iidkd\") needs n = k·m, the length of the stacked effects",
                             span=term.describe("model"), hint=f"add n = {k} * <number of levels>")
        values, node_of_obs = nodes_from_values(term)
        n = len(values)
        if n % k:
            raise ModelError(f"n = {n} of f({term.name}) is not a multiple of the order k = {k}",
                             span=term.describe("n"), hint="the latent vector stacks k effects of m levels each: "
                                                           "n = k·m")
        return iidkd_structure(k, n // k, constr=bool(term.args.get("constr", False)), values=values,
                               node_of_obs=node_of_obs)
    return build


LATENT.register("iidkd")(LatentModel("iidkd", iidkd_hypers(), make_build(None), ("order",), doc=__doc__))


IID2D_HYPERS = (
    HyperSpec("prec1", "Precision for {name} (component 1)", "Log precision for {name} (component 1)",
              ("wishart2d", (4.0, 1.0, 1.0, 0.0)), 4.0, IIDKD, jnp.exp),
    HyperSpec("prec2", "Precision for {name} (component 2)", "Log precision for {name} (component 2)",
              ("none", ()), 4.0, IIDKD, jnp.exp),
    HyperSpec("cor", "Rho1:2 for {name}", "Logit correlation for {name}", ("none", ()), 4.0, IIDKD,
              lambda t: jnp.tanh(t / 2.0)),
)


def iid2d_structure(m: int, *, constr: bool, values: np.ndarray, node_of_obs: np.ndarray) -> Structure:
    base = iidkd_structure(2, m, constr=constr, values=values, node_of_obs=node_of_obs)
    W = lambda th: jnp.linalg.inv(iid2d_covariance(th))
    coefs = (lambda th: W(th)[0, 0], lambda th: W(th)[0, 1], lambda th: W(th)[1, 1])   # pairs (0,0), (0,1), (1,1)
    # log|W| = log τ_a + log τ_b − log(1 − ρ²), log(1 − ρ²) = −2 log cosh(θ₃/2)
    logdet = lambda th: m * (th[0] + th[1] + 2.0 * (jnp.logaddexp(th[2] / 2.0, -th[2] / 2.0) - math.log(2.0)))
    return dataclasses.replace(base, coefs=coefs, logdet=logdet, prior_context={"iid2d": True})


def build_iid2d(term: TermInput) -> Structure:
    if term.args.get("n") is None and term.args.get("values") is None:
        raise ModelError(f"f({term.name}, model = \"iid2d\") needs n = 2·m, the length of the stacked effects",
                         span=term.describe("model"), hint="add n = 2 * <number of levels>")
    values, node_of_obs = nodes_from_values(term)
    if len(values) % 2:
        raise ModelError(f"n = {len(values)} of f({term.name}) is not a multiple of 2", span=term.describe("n"),
                         hint="the latent vector stacks two effects of m levels each: n = 2·m")
    return iid2d_structure(len(values) // 2, constr=bool(term.args.get("constr", False)), values=values,
                           node_of_obs=node_of_obs)


LATENT.register("iid2d")(LatentModel(
    "iid2d", IID2D_HYPERS, build_iid2d,
    doc="``iid2d``: two correlated Gaussian effects in R-INLA's parameterisation (log precisions and a "
        "correlation) with the wishart2d prior (R-INLA ``inla.doc(\"iid2d\")``; adelia.compiler.latent.iidkd).\n"))
