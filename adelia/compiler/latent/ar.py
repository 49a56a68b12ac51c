"""``ar``: stationary autoregressive process of order p (R-INLA ``inla.doc("ar")``, hyperparameter
defaults from R-INLA ``models.R`` / ``doc/hyper/latent/ar.tex``).

    x_t = φ_1 x_{t−1} + … + φ_p x_{t−p} + ε_t,

with (x_1, …, x_p) drawn from the stationary distribution (no boundary effects) and τ the
*marginal* precision of x_t. The φ are parameterised by the partial autocorrelations ψ_k ∈ (−1, 1)
(Durbin–Levinson: φ^{(k)}_k = ψ_k, φ^{(k)}_j = φ^{(k−1)}_j − ψ_k φ^{(k−1)}_{k−j}); the innovation
variance is σ² = τ⁻¹ Π_k (1 − ψ_k²) and the autocorrelations follow from the same recursion.

θ = (log τ, θ_1, …, θ_p) with ψ_k = 2 e^{θ_k}/(1 + e^{θ_k}) − 1 = tanh(θ_k/2), i.e. the internal
scale log((1 + ψ)/(1 − ψ)) of a correlation. Labels "Precision for t", "PACF1 for t", …, "PACFp for t".
Defaults (R-INLA): log τ ~ pc.prec(3, 0.01), initial 4; ψ_1 ~ pc.cor0(0.5, 0.5), initial 1;
ψ_2, ψ_3, ψ_4 ~ pc.cor0(0.5, 0.4 / 0.3 / 0.2) and ψ_k ~ pc.cor0(0.5, 0.1) for k ≥ 5, initial 0.
``order`` (1 ≤ p ≤ 10, as R-INLA) is required; the number of hyperparameters is 1 + p.

**Precision.** With b = (1, −φ_1, …, −φ_p) and Γ_p the p × p stationary covariance of
(x_1..x_p), Q = Γ_p⁻¹ ⊕ 0 + σ⁻² Σ_{t>p} a_t a_tᵀ, a_t holding b reversed on t−p..t: a banded
matrix of half-bandwidth p. Entries at distance ≥ p from both ends depend on the lag h only,
σ⁻² Σ_l b_l b_{l+h}; the others (by time reversibility Q is persymmetric, Q_ij = Q_{n−1−j,n−1−i})
are the top-left corner of the same construction for length 2p + 1. So Q = Σ_j c_j(θ) K_j with
one fixed 0/1 pattern K_j per interior lag and per corner entry (paired with its mirror), and c_j
read off that small dense construction. For n < 3p + 1 every entry is its own K_j.

log|Q| = n log τ − Σ_{k=1}^{p−1} Σ_{j≤k} log(1 − ψ_j²) − (n − p) Σ_{j≤p} log(1 − ψ_j²)
(|Γ_p| = τ^{−p} Π_{k<p} Π_{j≤k}(1 − ψ_j²); Brockwell & Davis 1991, §5.2).
"""

from __future__ import annotations

__all__ = ["pacf_to_phi", "pacf_to_acf", "ar_structure", "ar_hypers", "MAX_ORDER"]

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.latent.indexing import nodes_from_values
from adelia.compiler.likelihoods import HyperSpec
from adelia.compiler.priors import CORRELATION, LOG_PRECISION
from adelia.errors import ModelError

MAX_ORDER = 10          # R-INLA: "Currently, the order p is limited to 10"

_PACF_ALPHA = (0.5, 0.4, 0.3, 0.2)     # pc.cor0(0.5, α_k) for k = 1..4, then 0.1 (models.R)


def ar_hypers(args: dict | None) -> tuple[HyperSpec, ...]:
    """(prec, pacf1, …, pacfp) for ``order = p`` (all MAX_ORDER of them when the order is unknown)."""
    order = (args or {}).get("order")
    try:
        p = int(order) if order is not None and 1 <= int(order) <= MAX_ORDER else MAX_ORDER
    except (TypeError, ValueError):
        p = MAX_ORDER                       # the builder reports the bad order with its position
    out = [HyperSpec("prec", "Precision for {name}", "Log precision for {name}", ("pc.prec", (3.0, 0.01)), 4.0,
                     LOG_PRECISION, jnp.exp)]
    for k in range(1, p + 1):
        alpha = _PACF_ALPHA[k - 1] if k <= len(_PACF_ALPHA) else 0.1
        out.append(HyperSpec(f"pacf{k}", f"PACF{k} for {{name}}", f"Intern PACF{k} for {{name}}",
                             ("pc.cor0", (0.5, alpha)), 1.0 if k == 1 else 0.0, CORRELATION,
                             lambda t: jnp.tanh(t / 2.0)))
    return tuple(out)


def pacf_to_phi(psi):
    """Durbin–Levinson: partial autocorrelations (ψ_1..ψ_p) -> AR coefficients (φ_1..φ_p)."""
    phi = psi[:1]
    for k in range(1, psi.shape[0]):
        phi = jnp.concatenate([phi - psi[k] * phi[::-1], psi[k:k + 1]])
    return phi


def pacf_to_acf(psi):
    """Autocorrelations (r_0 = 1, r_1, …, r_p) of the stationary AR(p) with PACF ψ."""
    r = [jnp.ones((), psi.dtype)]
    phi = jnp.zeros((0,), psi.dtype)
    v = jnp.ones((), psi.dtype)            # innovation variance of the order-(k−1) fit, r_0 = 1
    for k in range(psi.shape[0]):
        # r_{k+1} = Σ_j φ^{(k)}_j r_{k+1−j} + ψ_{k+1} v_k
        past = jnp.stack(r[1:][::-1]) if k else jnp.zeros((0,), psi.dtype)
        r.append(jnp.dot(phi, past) + psi[k] * v)
        phi = jnp.concatenate([phi - psi[k] * phi[::-1], psi[k:k + 1]])
        v = v * (1.0 - psi[k] ** 2)
    return jnp.stack(r)


def ar_dense_precision(theta, p: int, m: int):
    """The m × m stationary AR(p) precision at θ (m > p), dense, in JAX."""
    tau = jnp.exp(theta[0])
    psi = jnp.tanh(theta[1:p + 1] / 2.0)
    phi = pacf_to_phi(psi)
    r = pacf_to_acf(psi)
    idx = np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    gamma_inv = tau * jnp.linalg.inv(r[idx])
    s2inv = tau / jnp.prod(1.0 - psi ** 2)
    b = jnp.concatenate([jnp.ones(1), -phi])
    # rows a_t, t = p..m−1: a_t[t − l] = b_l
    rows = np.arange(p, m)
    A = jnp.zeros((m - p, m)).at[np.repeat(np.arange(m - p), p + 1),
                                 (rows[:, None] - np.arange(p + 1)[None, :]).ravel()].set(jnp.tile(b, m - p))
    Q = s2inv * A.T @ A
    return Q.at[:p, :p].add(gamma_inv)


def _log_cosh(x):
    ax = jnp.abs(x)
    return ax + jnp.log1p(jnp.exp(-2.0 * ax)) - jnp.log(2.0)


def ar_structure(n: int, p: int, *, constr: bool, values: np.ndarray, node_of_obs: np.ndarray) -> Structure:
    if n <= p:
        raise ModelError(f"an ar model of order {p} needs more than {p} nodes, got {n}")
    classes: dict[tuple, list[tuple[int, int]]] = {}
    small = n if n < 3 * p + 1 else 2 * p + 1
    for i in range(n):
        for j in range(i, min(n, i + p + 1)):
            if n < 3 * p + 1:
                key = ("entry", i, j)
            elif i >= p and j <= n - 1 - p:
                key = ("lag", j - i)
            elif i < p:
                key = ("entry", i, j)
            else:                                   # bottom corner: the mirror of a top entry
                key = ("entry", n - 1 - j, n - 1 - i)
            classes.setdefault(key, []).append((i, j))
    keys = list(classes)
    matrices = []
    for key in keys:
        ij = np.array(classes[key])
        rows = np.concatenate([ij[:, 0], ij[ij[:, 0] != ij[:, 1], 1]])
        cols = np.concatenate([ij[:, 1], ij[ij[:, 0] != ij[:, 1], 0]])
        matrices.append(sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)))

    def make_coef(key):
        if key[0] == "lag":
            h = key[1]

            def coef(th):
                psi = jnp.tanh(th[1:p + 1] / 2.0)
                b = jnp.concatenate([jnp.ones(1), -pacf_to_phi(psi)])
                return jnp.exp(th[0]) / jnp.prod(1.0 - psi ** 2) * jnp.dot(b[:p + 1 - h], b[h:])
        else:
            i, j = key[1], key[2]

            def coef(th):
                return ar_dense_precision(th, p, small)[i, j]
        return coef

    def logdet(th):
        lc = 2.0 * _log_cosh(th[1:p + 1] / 2.0)          # −log(1 − ψ_k²)
        inner = jnp.sum(jnp.cumsum(lc)[:p - 1]) if p > 1 else 0.0
        return n * th[0] + inner + (n - p) * jnp.sum(lc)

    constraints = np.ones((1, n)) if constr else np.zeros((0, n))
    return Structure(n, tuple(matrices), tuple(make_coef(k) for k in keys), 0, constraints, values, node_of_obs,
                     logdet=logdet, logdet_star=0.0)


def build(term: TermInput) -> Structure:
    order = term.args.get("order")
    if order is None:
        raise ModelError(f"f({term.name}, model = \"ar\") needs order = <p>", span=term.describe("model"),
                         hint=f"add order = 2 (1 to {MAX_ORDER})")
    if isinstance(order, bool) or not isinstance(order, (int, float)) or order != int(order) \
            or not 1 <= int(order) <= MAX_ORDER:
        raise ModelError(f"order of the ar model must be an integer from 1 to {MAX_ORDER}, got {order!r}",
                         span=term.describe("order"))
    values, node_of_obs = nodes_from_values(term)
    return ar_structure(len(values), int(order), constr=bool(term.args.get("constr", False)), values=values,
                        node_of_obs=node_of_obs)


LATENT.register("ar")(LatentModel("ar", ar_hypers, build, ("order",), doc=__doc__))
