"""Generator maps for DEMF(1,2,1) space–time fields and coregional (LMC) models, in
the form the ADELIA Gaussian core consumes (:mod:`adelia.runtime.bta_gradient`):
``generators(theta_st, gen_data) ->``
:class:`~adelia.runtime.bta_gradient.LinearGenerators`, Q_p = Σ_j M_j ⊗ K_j in
time-major order (METHOD.md §3.1, §6.4), every K_j a θ-weighted sum of the fixed FEM
basis (C0, g1, g2, g3) of :func:`fem_powers`.

**One field** (METHOD.md §9.1–9.2, plane, α_t = 1, α_s = 2, α_e = 1 ⇒ ν_s = 1,
ν_t = ½), θ_field = (log r_s, log r_t, log σ):

    γ_s = ½ log 8ν_s − log r_s,   γ_t = log r_t − ½ log 8ν_t + α_s γ_s,
    γ_st = ½ log c1 − ½ γ_t − ν_s γ_s − log σ,
    c1 = Γ(ν_t)Γ(ν_s) / (Γ(α_t)Γ(α)(4π)^{3/2}),   κ = e^{γ_s},
    q1 = κ²c0 + g1,  q2 = κ⁴c0 + 2κ²g1 + g2,  q3 = κ⁶c0 + 3κ⁴g1 + 3κ²g2 + g3,
    Q = e^{2γ_st} [ m0 ⊗ q3 + e^{γ_t} m1 ⊗ q2 + e^{2γ_t} m2 ⊗ q1 ]

i.e. J = 3 generators c_j q_j, (c_j) = e^{2γ_st}(1, e^{γ_t}, e^{2γ_t}), with temporal
matrices (m0, m1, m2) of :func:`demf_temporal`; on the basis (c0, g1, g2, g3) their
weights are c_j times the binomial rows above (:func:`demf_field`).

**Coregional** (METHOD.md §10, linear model of coregionalisation), k = 2 or 3 fields
x_0..x_{k−1}, each time block holding [x_0,t; x_1,t; …] (b = k·ns, METHOD.md §3.1):

    x_0 = σ_0 u_0,   x_1 = λ_01 x_0 + σ_1 u_1,   x_2 = λ_12 x_0 + λ_02 x_1 + σ_2 u_2

with u_m independent unit-variance DEMF fields.  σ_m u_m is the field of θ_field =
(log r_s,m, log r_t,m, log σ_m) above, with precision P_m.  With E = Λ⁻¹ the unit
lower-triangular map x ↦ e (e_0 = x_0, e_1 = x_1 − λ_01 x_0, e_2 = x_2 − λ_12 x_0 −
λ_02 x_1),

    Q_p = Eᵀ blkdiag(P_m) E = Σ_m (E_m,: ᵀ E_m,:) ⊗ P_m

which reproduces METHOD.md §10's blocks (Q_00 = P_0 + λ_01² P_1 + λ_12² P_2, …).
All fields share the time grid, so Q_p keeps J = 3 generators whatever k:

    K_l = Σ_m c_{m,l} (W_m ⊗ q_{m,l}),   W_m = E_m,:ᵀ E_m,:   (k x k),   l = 1..3,

so sub-block (p, q) of K_l is Σ_m W_m[p, q] c_{m,l} q_{m,l}: weights on the same basis.
θ_st = [θ_field,0; …; θ_field,k−1; λ] (3k + k(k−1)/2 entries), λ = (λ_01) for k = 2
and (λ_01, λ_02, λ_12) for k = 3.  With one Gaussian likelihood precision per response
the model has d = 4k + k(k−1)/2 hyperparameters: 9 (k = 2) and 15 (k = 3), as
GST-C2 / GST-C3 (METHOD.md §14).

**Prior log-determinants without factorisation.** Q_p's log-determinant (Phase C of
METHOD.md §6.3) needs no BT factorisation for these models: the DEMF generators are
powers of one operator in the c0 metric, so log|Q| splits over the spatial eigenvalues
into ns tridiagonal nt x nt log-dets (:func:`demf_logdet`), and the LMC map has unit
determinant, so log|Q_p| = Σ_m log|P_m| (METHOD.md §10's shortcut).  Hand
:func:`demf_prior_logdet` / :func:`coregional_prior_logdet` to the core as
``prior_logdet``; without it the core factorises the coupled blocks of Q_p.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adelia.runtime.bta_gradient import LinearGenerators, SparsePattern, sparse_pattern

jax.config.update("jax_enable_x64", True)

__all__ = [
    "FemPowers",
    "fem_powers",
    "demf_logdet",
    "demf_prior_logdet",
    "coregional_prior_logdet",
    "demf_temporal",
    "demf_field",
    "demf_generators",
    "lmc_map",
    "lmc_weights",
    "n_fields",
    "coregional_generators",
    "coregional_observations",
]

_NU_S, _NU_T, _ALPHA_S, _ALPHA_T, _ALPHA = 1.0, 0.5, 2.0, 1.0, 2.0
_LOG_C1 = math.log(math.gamma(_NU_T) * math.gamma(_NU_S)) - math.log(
    math.gamma(_ALPHA_T) * math.gamma(_ALPHA) * (4 * math.pi) ** 1.5
)


class FemPowers(NamedTuple):
    """θ-independent spatial data of DEMF fields (the ``gen_data`` of the maps here).

    ``basis`` is the generator basis F = (C0, g1, g2, g3) of
    :class:`~adelia.runtime.bta_gradient.LinearGenerators`; ``mu`` holds the
    eigenvalues of c0^{-½} g1 c0^{-½} and ``log_c0`` = Σ log c0: with them log|Q_p|
    needs no factorisation (:func:`demf_logdet`)."""

    basis: jax.Array  # (4, ns, ns): diag(c0) (lumped mass), g1, g2 = g1 c0⁻¹ g1, g3 = g2 c0⁻¹ g1
    pattern: SparsePattern | None  # the basis on its union sparsity pattern (g3's)
    mu: jax.Array  # (ns,) spectrum of c0^{-½} g1 c0^{-½}
    log_c0: jax.Array  # () Σ_s log c0_s


def fem_powers(c0, g1) -> FemPowers:
    """(C0, g1, g2 = g1 c0⁻¹ g1, g3 = g1 c0⁻¹ g2) stacked, the spectrum and Σ log c0
    for a lumped mass diagonal c0 (ns,) and a symmetric stiffness g1 (ns, ns) — the
    ``gen_data`` of the DEMF maps (METHOD.md §9.1).  One symmetric eigenvalue problem
    of size ns, once per mesh."""
    c0 = np.asarray(c0, float)
    g1 = np.asarray(g1, float)
    g2 = g1 @ (g1 / c0[:, None])
    g3 = g1 @ (g2 / c0[:, None])
    s = 1.0 / np.sqrt(c0)
    mu = np.linalg.eigvalsh(s[:, None] * g1 * s[None, :])
    basis = np.stack([np.diag(c0), g1, g2, g3])
    return FemPowers(
        jnp.asarray(basis), sparse_pattern(basis), jnp.asarray(mu), jnp.asarray(np.sum(np.log(c0)))
    )


def demf_temporal(nt: int, h: float = 1.0):
    """Diagonals (3, nt) and sub-diagonals (3, nt−1) of (m0, m1, m2), METHOD.md §9.1:
    m0 = h·diag(½, 1, …, 1, ½), m1 = diag(1, 0, …, 0, 1), m2 = (1/h)·tridiag(−1, 2, −1)
    with corners 1/h."""
    m0 = h * np.ones(nt)
    m0[[0, -1]] = 0.5 * h
    m1 = np.zeros(nt)
    m1[[0, -1]] = 1.0
    m2 = 2.0 / h * np.ones(nt)
    m2[[0, -1]] = 1.0 / h
    m_lower = np.stack([np.zeros(nt - 1), np.zeros(nt - 1), -np.ones(nt - 1) / h])
    return np.stack([m0, m1, m2]), m_lower


def demf_field(theta_field) -> jax.Array:
    """(log r_s, log r_t, log σ) → weights (3, 4) of one DEMF(1,2,1) field on the plane
    (METHOD.md §9.1–9.2; formulas in the module doc): row j is c_j·q_j, (q3, q2, q1),
    written on the basis (C0, g1, g2, g3) of :func:`fem_powers`."""
    k2, gamma_t, gamma_st = _demf_scales(theta_field)
    one = jnp.ones_like(k2)
    zero = jnp.zeros_like(k2)
    q = jnp.stack(
        [
            jnp.stack([k2**3, 3.0 * k2**2, 3.0 * k2, one]),  # q3
            jnp.stack([k2**2, 2.0 * k2, one, zero]),  # q2
            jnp.stack([k2, one, zero, zero]),  # q1
        ]
    )
    return _demf_coefs(gamma_t, gamma_st)[:, None] * q


def _demf_scales(theta_field):
    """(κ², γ_t, γ_st) of θ_field = (log r_s, log r_t, log σ) (METHOD.md §9.2)."""
    log_rs, log_rt, log_sigma = theta_field[0], theta_field[1], theta_field[2]
    gamma_s = 0.5 * math.log(8.0 * _NU_S) - log_rs
    gamma_t = log_rt - 0.5 * math.log(8.0 * _NU_T) + _ALPHA_S * gamma_s
    gamma_st = 0.5 * _LOG_C1 - 0.5 * gamma_t - _NU_S * gamma_s - log_sigma
    return jnp.exp(2.0 * gamma_s), gamma_t, gamma_st


def _demf_coefs(gamma_t, gamma_st):
    """e^{2γ_st}(1, e^{γ_t}, e^{2γ_t}): the weights of (m0 ⊗ q3, m1 ⊗ q2, m2 ⊗ q1)."""
    et = jnp.exp(gamma_t)
    return jnp.exp(2.0 * gamma_st) * jnp.stack([jnp.ones_like(et), et, et * et])


def demf_logdet(theta_field, gen_data: FemPowers, m_diag, m_lower):
    """log|Q| of one DEMF(1,2,1) field without factorising Q.

    With L = c0^{-½} q1 c0^{-½} = κ²I + c0^{-½} g1 c0^{-½} = U diag(λ) Uᵀ, the spatial
    generators are q_p = c0^{½} L^p c0^{½} (METHOD.md §9.1: q2 = q1 c0⁻¹ q1, q3 =
    q1 c0⁻¹ q1 c0⁻¹ q1), so (I ⊗ Uᵀc0^{-½}) Q (I ⊗ c0^{-½}U) is, up to a permutation,
    ⊕_s T(λ_s) with the nt x nt tridiagonal

        T(λ) = e^{2γ_st} (λ³ m0 + e^{γ_t} λ² m1 + e^{2γ_t} λ m2),   λ_s = κ² + μ_s,

    and  log|Q| = nt Σ log c0 + Σ_s log|T(λ_s)|,  each by the LDLᵀ recursion
    d_t = T_tt − T_{t,t−1}²/d_{t−1}.  O(ns·nt) per θ after one eigenvalue problem
    (:func:`fem_powers`); exact for a lumped (diagonal) c0.  The same identity makes
    the separable and non-separable Kronecker log-dets cheap (Rue & Held 2005, §2.3).
    ``m_diag`` (3, nt), ``m_lower`` (3, nt−1) are the temporal matrices of
    :func:`demf_temporal`."""
    k2, gamma_t, gamma_st = _demf_scales(theta_field)
    coefs = _demf_coefs(gamma_t, gamma_st)
    lam = k2 + gen_data.mu
    w = coefs[:, None] * jnp.stack([lam**3, lam**2, lam])  # (3, ns)
    diag = jnp.einsum("js,jt->ts", w, m_diag)  # (nt, ns)
    lower = jnp.einsum("js,jt->ts", w, m_lower)  # (nt−1, ns)

    def step(carry, t):
        d_prev, acc = carry
        d = diag[t] - lower[t - 1] ** 2 / d_prev
        return (d, acc + jnp.log(d)), None

    nt = diag.shape[0]
    # checkpointed step: reverse mode keeps only the (nt − 1, ns) carries, not every
    # intermediate of the step (they sat in the gradient's peak memory, 0.2 b² at GST-S)
    acc = jnp.log(diag[0])
    if nt > 1:
        (_, acc), _ = jax.lax.scan(jax.checkpoint(step), (diag[0], acc), jnp.arange(1, nt))
    return nt * gen_data.log_c0 + jnp.sum(acc)


def demf_prior_logdet(theta_st, data):
    """log|Q_p| of the univariate DEMF model (the ``prior_logdet`` of
    :func:`~adelia.runtime.bta_gradient.gaussian_objective` for
    :func:`demf_generators`; the tip is added by the core)."""
    return demf_logdet(theta_st, data.gen_data, data.m_diag, data.m_lower)


def coregional_prior_logdet(theta_st, data):
    """log|Q_p| of the LMC model: Q_p = Eᵀ blkdiag(P_m) E with E unit lower
    triangular, so log|Q_p| = Σ_m log|P_m| (METHOD.md §10's shortcut) and every P_m is
    a DEMF field (:func:`demf_logdet`)."""
    k = n_fields(theta_st.shape[0])
    fields = theta_st[: 3 * k].reshape(k, 3)
    logdets = [demf_logdet(fields[m], data.gen_data, data.m_diag, data.m_lower) for m in range(k)]
    return sum(logdets)


def demf_generators(theta_st, gen_data: FemPowers) -> LinearGenerators:
    """Univariate DEMF(1,2,1) generator map, θ_st = (log r_s, log r_t, log σ)."""
    weights = demf_field(theta_st)[:, None, None, :]  # (3, 1, 1, 4)
    return LinearGenerators(weights, gen_data.basis, gen_data.pattern)


def n_fields(n_theta_st: int) -> int:
    """k from len(θ_st) = 3k + k(k−1)/2 (3, 7, 12 for k = 1, 2, 3)."""
    for k in (1, 2, 3):
        if n_theta_st == 3 * k + k * (k - 1) // 2:
            return k
    raise ValueError(f"coregional θ_st has {n_theta_st} entries; expected 3, 7 or 12 (k = 1, 2, 3)")


def lmc_map(lambdas, k: int) -> jax.Array:
    """E = Λ⁻¹ (k x k, unit lower triangular): e = E x with e_0 = x_0,
    e_1 = x_1 − λ_01 x_0, e_2 = x_2 − λ_12 x_0 − λ_02 x_1 (METHOD.md §10);
    λ = () for k = 1, (λ_01,) for k = 2, (λ_01, λ_02, λ_12) for k = 3."""
    E = jnp.eye(k, dtype=jnp.float64)
    if k >= 2:
        E = E.at[1, 0].set(-lambdas[0])
    if k == 3:
        E = E.at[2, 1].set(-lambdas[1]).at[2, 0].set(-lambdas[2])
    return E


def lmc_weights(lambdas, k: int) -> jax.Array:
    """W (k, k, k), W[m] = E_m,:ᵀ E_m,:: the weight of P_m in each (i, j) sub-block of
    Q_p = Σ_m W[m] ⊗ P_m (METHOD.md §10's w[i, j, m])."""
    E = lmc_map(lambdas, k)
    return E[:, :, None] * E[:, None, :]


def coregional_generators(theta_st, gen_data: FemPowers) -> LinearGenerators:
    """Coregional DEMF generator map (module doc): θ_st = [k x (log r_s, log r_t,
    log σ); λ] → K_l = Σ_m c_{m,l} (W_m ⊗ q_{m,l}), l = 1..3, as weights (3, k, k, 4)
    on the basis (C0, g1, g2, g3): weights[l, p, q] = Σ_m W_m[p, q] c_{m,l} q_{m,l}.
    k = 1 is :func:`demf_generators`."""
    k = n_fields(theta_st.shape[0])
    fields = jax.vmap(demf_field)(theta_st[: 3 * k].reshape(k, 3))  # (k, 3, 4)
    W = lmc_weights(theta_st[3 * k :], k)
    weights = jnp.einsum("mpq,mlc->lpqc", W, fields)
    return LinearGenerators(weights, gen_data.basis, gen_data.pattern)


def coregional_observations(time, var, node, covariates, y, *, k: int, ns: int, nt: int):
    """Padded per-time-block observation arrays for :func:`make_gaussian_data` from a
    list of m observations, each of one variable at one mesh node and one time:

        η = x_{var}(node, time) + covariatesᵀ β_var,

    ``covariates`` (m, nb); the tip holds the k·nb regression coefficients
    [β_0; …; β_{k−1}] (METHOD.md §3.1).  Returns a dict with A_blocks (nt, m_t, k·ns),
    A_tip (nt, m_t, k·nb), y, mask and group (= var: one likelihood precision per
    response, METHOD.md §10), m_t the largest number of observations at one time.
    """
    time, var, node = (np.asarray(v, int) for v in (time, var, node))
    covariates = np.asarray(covariates, float)
    y = np.asarray(y, float)
    nb = covariates.shape[1]
    counts = np.bincount(time, minlength=nt)
    m_t = max(int(counts.max()), 1)
    order = np.argsort(time, kind="stable")
    slot = np.empty(len(time), int)
    slot[order] = np.arange(len(time)) - np.repeat(np.cumsum(counts) - counts, counts)
    A = np.zeros((nt, m_t, k * ns))
    A_tip = np.zeros((nt, m_t, k * nb))
    yy = np.zeros((nt, m_t))
    mask = np.zeros((nt, m_t))
    group = np.zeros((nt, m_t), int)
    A[time, slot, var * ns + node] = 1.0
    for j in range(nb):
        A_tip[time, slot, var * nb + j] = covariates[:, j]
    yy[time, slot] = y
    mask[time, slot] = 1.0
    group[time, slot] = var
    return dict(A_blocks=A, A_tip=A_tip, y=yy, mask=mask, group=group)
