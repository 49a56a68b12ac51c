"""The ADELIA Gaussian Laplace core on BTA matrices, with a hand-derived adjoint.

Model (METHOD.md §1–3, §6): latent x = [u_1; …; u_nt; β], u_t ∈ ℝᵇ, β ∈ ℝᵃ,

    Q_p(θ) = Σ_j M_j ⊗ K_j(θ)  ⊕  diag(tip_prec)     (block tridiagonal, fixed tip)
    y_g ~ N(A_g x, τ_g⁻¹ I),   τ_g = exp(θ_lik,g),   g = 1..G likelihood groups,
    Q_c = Q_p + Σ_g τ_g A_gᵀA_g (BTA),   r = Σ_g τ_g A_gᵀy_g,   Q_c x̂ = r,

with M_j fixed symmetric tridiagonal nt x nt temporal matrices and K_j symmetric
b x b, given by a **generator map** ``generators(theta_st, gen_data) ->``
:class:`LinearGenerators` as θ-weighted sums of fixed basis matrices F_l (FEM
matrices, graph Laplacians; METHOD.md §6.4): (K_j)_pq = Σ_l w_jpql(θ) F_l over the
P x P sub-blocks of size ns = b/P (P = 1, or k coregional fields).
Every row of A touches one time block plus the tip: ``A_blocks`` (nt, m_t, b) and
``A_tip`` (nt, m_t, a), padded rows being zero; every row belongs to one group
(``group`` (nt, m_t); A_g, y_g are the rows of group g, m_g of them; G = 1 is the
single-precision model, and the coregional models of METHOD.md §10 have one group
per response).  θ = [θ_lik,1..G, θ_st...].

The core returns three scalars (METHOD.md §2.2, §6.6)

    log|Q_p|,   log|Q_c|,   fit = ½ rᵀQ_c⁻¹r − Σ_g (τ_g/2) y_gᵀy_g

and the Gaussian Laplace objective (without the hyperprior) is

    f(θ) = −[ Σ_g (m_g/2) θ_lik,g + fit + ½ log|Q_p| − ½ log|Q_c| ].

Adjoint (``jax.custom_vjp``; METHOD.md §6.1–6.4).  By the envelope theorem x̂ needs
no derivative; for cotangents (ḡ_p, ḡ_c, ḡ_f) of the three outputs

    θ̄_st    = ⟨Ω, ∂Q_p/∂θ_st⟩,     Ω = ḡ_p Q_p⁻¹ + ḡ_c Q_c⁻¹ − ½ ḡ_f x̂ x̂ᵀ
    θ̄_lik,g = ḡ_c τ_g tr(Q_c⁻¹ A_gᵀA_g) − ḡ_f (τ_g/2) ‖y_g − A_g x̂‖²

where only the BT-pattern blocks of Ω are formed (selected inversion of Q_p and Q_c,
METHOD.md §5).  The likelihood term is, per group, d fit/dθ_lik,g = τ_g x̂ᵀA_gᵀy_g −
(τ_g/2)(y_gᵀy_g + x̂ᵀA_gᵀA_gx̂) = −(τ_g/2)‖y_g − A_gx̂‖² (METHOD.md §6.2).  Its
x̂ᵀA_gᵀA_gx̂ part and the traces tr(Q_c⁻¹A_gᵀA_g) are both contractions of the
per-group AᵀA blocks, with Ωᶜ = ḡ_c Q_c⁻¹ − ½ ḡ_f x̃x̃ᵀ, accumulated in the same sweep,
so A itself is not read.  The expansion is taken around the least-squares fixed
effects β₀ (x̃ = x̂ − (0, β₀), y − A_tip β₀ precomputed), which keeps the cancellation
METHOD.md §2.2 warns about to the size of the data's variation about that fit
(:func:`_pull_back`).

Because Q_p is linear in the weights, ⟨Ω, ∂Q_p/∂θ⟩ = Σ_jpql W̄_jpql ∂w_jpql/∂θ with

    W̄_jpql = Σ_i (M_j)_ii ⟨(Ω_D,i)_pq, F_l⟩ + 2 Σ_i (M_j)_{i+1,i} ⟨(Ω_B,i)_pq, F_l⟩

(J·P²·L scalars) accumulated block by block inside the backward sweep (each Σ block
is contracted and dropped, METHOD.md §6.3 and §7; the x̂x̂ᵀ part as u_pᵀF_l v_q, so
Ω is never formed), then pulled back through the small map θ ↦ w by one
``jax.vjp``.  This equals the forward-mode contractions ⟨W_j, ∂K_j/∂θ_k⟩ of
METHOD.md §6.4 but costs one reverse pass over the map whatever d is; no ∂Q/∂θ_k
matrix and no K_j is ever built (blocks of Q_p are fused weighted sums of F).

Memory schedule (METHOD.md §7, adapted): the forward sweep keeps Gt_i = L_D,i⁻ᵀ of
both factorisations (nt·b² each — the size of the paper's stored Schur carries), the
small arrow factors L_C,i, L_T⁻ᵀ and the forward-substitution vector z.  The backward
sweep needs no L_B,i and recomputes no block Cholesky: with
H_i = Gt_i Gt_iᵀ = (D_i − S_i)⁻¹, the products are (L_B,i G_i)ᵀ = H_i B_iᵀ and
L_D,i⁻ᵀ L_B,iᵀ x_{i+1} = H_i B_iᵀ x_{i+1}, with B_i regenerated from the generators.

Cost per time block: objective = 2 block factorisations (potrf + explicit inverse +
2 products each, :func:`~adelia.runtime.bta.factor_block`); value-and-gradient adds
2 selected-inversion steps (≈ 6.7 b³ flops, all matrix products) and O(L·b²) for the
contractions — independent of d.  Measured ≈ 2.2x the objective at b = 400 on CPU.

**Posterior-only core** (``prior_logdet``).  When the model can give log|Q_p| without
factorising Q_p — DEMF fields through their spatial spectrum, LMC models through
log|Q_p| = Σ_m log|P_m| (:mod:`adelia.runtime.coregional`, METHOD.md §10) — Phase C
becomes plain reverse mode through that O(ns·nt) function and only Q_c runs through
the sweeps.  The gradient's forward sweep then keeps H_i = (D_i − S_i)⁻¹ and
WBt_i = H_i B_iᵀ (exactly the factor's storage, (2nt − 1)·b²) and forms the Schur
carry as B_i WBt_i, so the backward sweep is the Takahashi step on stored blocks: two
b x b products per block, no Cholesky, no B_i.  Measured (benchmarks/kernels.py, this
2-core CPU): objective 0.6x and gradient 0.5x the two-matrix core's, gradient ≈ 1.9x
the objective at b = 288–432, peak memory 1.04–1.3x the factor's at nt = 8–50 and
1.5x at nt = 5.

References: Boudaoud et al., arXiv:2605.06392 (ADELIA), METHOD.md §2.2, §4–7;
Takahashi et al. (1973) for the selected inverse; Rue, Martino & Chopin (2009).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from adelia.runtime.bta import (
    BTA,
    _chol,
    _logdet_tri,
    _mT,
    bta_cholesky,
    bta_solve,
    bta_to_dense,
    factor_block,
    gram_upper,
    selinv_block,
    sweep,
    syrk,
    tri_inv,
)

jax.config.update("jax_enable_x64", True)

__all__ = [
    "LinearGenerators",
    "SparsePattern",
    "sparse_pattern",
    "generator_matrices",
    "GaussianBTAData",
    "make_gaussian_data",
    "n_groups",
    "split_theta",
    "assemble_precisions",
    "gaussian_core",
    "gaussian_core_naive",
    "gaussian_objective",
    "gaussian_objective_naive",
    "gaussian_objective_dense",
    "gaussian_mode",
]

# a pattern filling more than this fraction of its block is contracted densely
_SPARSE_FRACTION = 0.25

Generators = Callable[[jax.Array, Any], "LinearGenerators"]


class GaussianBTAData(NamedTuple):
    """θ-independent data of the Gaussian BTA model (a pytree; build it with
    :func:`make_gaussian_data`).  The per-group AᵀA, Aᵀy, yᵀy are precomputed once
    per data set and are all the core reads of A and y; G (the leading axis of
    ``n_obs``) is the number of likelihood groups."""

    m_diag: jax.Array  # (J, nt)    (M_j)_ii
    m_lower: jax.Array  # (J, nt-1)  (M_j)_{i+1,i}
    tip_prec: jax.Array  # (a,)       fixed diagonal prior precision of the tip
    n_obs: jax.Array  # (G,)        m_g, number of real observations per group
    AtA_diag: jax.Array  # (G, nt, b, b)  A_g,iᵀ A_g,i
    AtA_arrow: jax.Array  # (G, nt, a, b)  A_g,tip,iᵀ A_g,i
    AtA_tip: jax.Array  # (G, a, a)      Σ_i A_g,tip,iᵀ A_g,tip,i
    Aty: jax.Array  # (G, nt, b)     A_g,iᵀ y_g,i
    Aty_tip: jax.Array  # (G, a)         Σ_i A_g,tip,iᵀ y_g,i
    yty: jax.Array  # (G,)           y_gᵀ y_g
    # the same three for ỹ = y − A_tip β₀ (β₀: least squares on the tip columns), so that
    # the gradient's expanded residual norms cancel only to the size of ỹ (_pull_back)
    beta0: jax.Array  # (a,)
    Aty0: jax.Array  # (G, nt, b)     A_g,iᵀ ỹ_g,i
    Aty0_tip: jax.Array  # (G, a)     Σ_i A_g,tip,iᵀ ỹ_g,i
    yty0: jax.Array  # (G,)           ỹ_gᵀ ỹ_g
    gen_data: Any  # pytree handed to the generator map
    # AtA_diag on the union pattern of its blocks (vals (G, nt, nnz)); None when the data
    # were traced or the blocks are dense (then the traces read the dense blocks)
    AtA_pattern: "SparsePattern | None" = None


def make_gaussian_data(
    *,
    m_diag,
    m_lower,
    tip_prec,
    A_blocks,
    A_tip,
    y,
    mask=None,
    group=None,
    n_groups=None,
    gen_data=None,
) -> GaussianBTAData:
    """Validate shapes, apply the observation mask and precompute, per likelihood
    group g, A_gᵀA_g, A_gᵀy_g and y_gᵀy_g.

    ``mask`` (nt, m_t) marks real observations (1) versus padding (0); padded rows of
    A and y are zeroed so they contribute nothing.  ``group`` (nt, m_t) gives the
    likelihood group 0..G−1 of each row (default: all rows in group 0, G = 1);
    ``n_groups`` defaults to ``max(group) + 1`` (pass it when ``group`` is traced).
    """
    f64 = jnp.float64
    A_blocks = jnp.asarray(A_blocks, f64)
    A_tip = jnp.asarray(A_tip, f64)
    y = jnp.asarray(y, f64)
    m_diag = jnp.atleast_2d(jnp.asarray(m_diag, f64))
    m_lower = jnp.asarray(m_lower, f64).reshape(m_diag.shape[0], -1)
    tip_prec = jnp.asarray(tip_prec, f64).reshape(-1)
    nt, m_t, _ = A_blocks.shape
    a = tip_prec.shape[0]
    group = jnp.zeros((nt, m_t), jnp.int32) if group is None else jnp.asarray(group)
    expected = {
        "A_tip": (A_tip.shape, (nt, m_t, a)),
        "y": (y.shape, (nt, m_t)),
        "group": (group.shape, (nt, m_t)),
        "m_diag": (m_diag.shape[1:], (nt,)),
        "m_lower": (m_lower.shape[1:], (nt - 1,)),
    }
    for name, (got, want) in expected.items():
        if tuple(got) != want:
            raise ValueError(
                f"make_gaussian_data: {name} has shape {tuple(got)}, expected {want} "
                f"(nt={nt} time blocks, m_t={m_t} rows per block, a={a} tip entries)"
            )
    if n_groups is None:
        n_groups = int(jnp.max(group)) + 1
    mask = jnp.ones((nt, m_t), f64) if mask is None else jnp.asarray(mask, f64)
    A_blocks = A_blocks * mask[..., None]
    A_tip = A_tip * mask[..., None]
    y = y * mask
    onehot = (group[..., None] == jnp.arange(n_groups)) * mask[..., None]
    AtA_diag = jnp.einsum("tmg,tmb,tmc->gtbc", onehot, A_blocks, A_blocks)
    AtA_tip = jnp.einsum("tmg,tma,tmc->gac", onehot, A_tip, A_tip)
    Aty_tip = jnp.einsum("tmg,tma,tm->ga", onehot, A_tip, y)
    beta0 = jnp.linalg.pinv(jnp.sum(AtA_tip, axis=0), hermitian=True) @ jnp.sum(Aty_tip, axis=0)
    y0 = y - A_tip @ beta0
    return GaussianBTAData(
        m_diag=m_diag,
        m_lower=m_lower,
        tip_prec=tip_prec,
        n_obs=jnp.sum(onehot, axis=(0, 1)),
        AtA_diag=AtA_diag,
        AtA_arrow=jnp.einsum("tmg,tma,tmb->gtab", onehot, A_tip, A_blocks),
        AtA_tip=AtA_tip,
        Aty=jnp.einsum("tmg,tmb,tm->gtb", onehot, A_blocks, y),
        Aty_tip=Aty_tip,
        yty=jnp.einsum("tmg,tm->g", onehot, y * y),
        beta0=beta0,
        Aty0=jnp.einsum("tmg,tmb,tm->gtb", onehot, A_blocks, y0),
        Aty0_tip=jnp.einsum("tmg,tma,tm->ga", onehot, A_tip, y0),
        yty0=jnp.einsum("tmg,tm->g", onehot, y0 * y0),
        gen_data=gen_data,
        AtA_pattern=sparse_pattern(AtA_diag),
    )


def _dims(data: GaussianBTAData) -> tuple[int, int, int]:
    _, nt, b, _ = data.AtA_diag.shape
    return nt, b, data.AtA_tip.shape[-1]


def n_groups(data: GaussianBTAData) -> int:
    """G, the number of likelihood groups (static: a shape)."""
    return data.n_obs.shape[0]


def split_theta(theta: jax.Array, data: GaussianBTAData) -> tuple[jax.Array, jax.Array]:
    """θ = [θ_lik,1..G, θ_st...] → (θ_lik (G,), θ_st)."""
    G = n_groups(data)
    return theta[:G], theta[G:]


def _weighted_sum(w: jax.Array, mats: jax.Array) -> jax.Array:
    """Σ_k w_k mats_k over a short static leading axis, as one fused elementwise
    loop (``einsum`` lowers this to a dot with a transposing copy: ~5x slower)."""
    out = w[0] * mats[0]
    for k in range(1, mats.shape[0]):
        out = out + w[k] * mats[k]
    return out


def _pair(X: jax.Array, mats: jax.Array) -> jax.Array:
    """(⟨X, mats_k⟩)_k over a short static leading axis (fused reductions)."""
    return jnp.stack([jnp.sum(X * mats[k]) for k in range(mats.shape[0])])


def _likelihood_parts(tau: jax.Array, data: GaussianBTAData, i):
    """Σ_g τ_g A_g,iᵀA_g,i, Σ_g τ_g A_g,tip,iᵀA_g,i and Σ_g τ_g A_g,iᵀy_g,i of time
    block i (τ: (G,)).  Weighted sums, not ``einsum``: a dot would copy the G blocks
    of the dynamic slice first."""
    return (
        _weighted_sum(tau, data.AtA_diag[:, i]),
        _weighted_sum(tau, data.AtA_arrow[:, i]),
        tau @ data.Aty[:, i],
    )


def _group_traces(S: jax.Array, x: jax.Array, g_c, g_f, data: "GaussianBTAData", i) -> jax.Array:
    """(⟨ḡ_c S − ½ ḡ_f x xᵀ, A_g,iᵀA_g,i⟩)_g without forming x xᵀ: a gather on the
    blocks' pattern, or one fused reduction over the dense blocks per group (XLA:CPU
    copies a dynamic slice before reducing it, so one block copy alive, not G)."""
    if data.AtA_pattern is not None:
        rows, cols, vals, flat = data.AtA_pattern
        x_rc = _take(x, rows) * _take(x, cols)
        return vals[:, i] @ (g_c * _take(S.reshape(-1), flat) - (0.5 * g_f) * x_rc)
    AtA = data.AtA_diag
    G = AtA.shape[0]

    def trace(g):
        return jnp.sum((g_c * S - (0.5 * g_f) * (x[:, None] * x[None, :])) * AtA[g, i])

    if G == 1:
        # XLA:CPU schedules the copy of AᵀA's block at the top of the loop body, where
        # it holds a b x b buffer through the whole Takahashi step; tying it to S
        # delays it until S exists, so it reuses a dead product buffer (peak −b²).
        # G > 1 takes its blocks inside the fori_loop, after S, already.
        S, AtA = lax.optimization_barrier((S, AtA))
        return trace(0)[None]

    def one(g, acc):
        return acc.at[g].set(trace(g))

    return lax.fori_loop(0, G, one, jnp.zeros(G, S.dtype))


class SparsePattern(NamedTuple):
    """A stack of n x n matrices on the union of their nonzero patterns: entries
    (rows[k], cols[k]) and ``vals`` (..., nnz) = mats[..., rows, cols].  Build it with
    :func:`sparse_pattern`; read entries with :func:`_take`."""

    rows: jax.Array  # (nnz,) int32
    cols: jax.Array  # (nnz,) int32
    vals: jax.Array  # (..., nnz)
    flat: jax.Array  # (nnz,) int32, rows·n + cols: the entries of a flattened n x n matrix


def _take(x: jax.Array, idx: jax.Array) -> jax.Array:
    """x[..., idx] for in-range int32 indices, as one XLA gather.  ``jnp`` indexing
    would first convert the indices and wrap negative ones on every call; inside the
    sweeps XLA hoists those converted index arrays, which then stay alive through
    the whole backward sweep (3 x nnz ints: 0.4 b² of the gradient's peak at b = 92)."""
    last = x.ndim - 1
    dims = lax.GatherDimensionNumbers(
        offset_dims=tuple(range(last)), collapsed_slice_dims=(last,), start_index_map=(last,)
    )
    return lax.gather(
        x,
        idx[:, None],
        dims,
        slice_sizes=x.shape[:last] + (1,),
        mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS,
    )


def sparse_pattern(mats) -> SparsePattern | None:
    """The :class:`SparsePattern` of concrete matrices ``mats`` (..., n, n) (NumPy, once
    per model), or None for traced input or when the pattern fills more than
    ``_SPARSE_FRACTION`` of n² (then contractions read the dense matrices: gathering
    loses to reading them)."""
    try:
        mats = np.asarray(mats)
    except jax.errors.TracerArrayConversionError:
        return None
    n = mats.shape[-1]
    rows, cols = np.nonzero(np.any(mats != 0, axis=tuple(range(mats.ndim - 2))))
    if rows.size > _SPARSE_FRACTION * n**2:
        return None
    i32 = np.int32
    return SparsePattern(
        jnp.asarray(rows, i32),
        jnp.asarray(cols, i32),
        jnp.asarray(mats[..., rows, cols]),
        jnp.asarray(rows * n + cols, i32),
    )


class LinearGenerators(NamedTuple):
    """The spatial generators K_j(θ) of Q_p as θ-weighted sums of fixed matrices
    (what a generator map returns; METHOD.md §6.4):

        K_j = Σ_l weights[j, :, :, l] ⊗ F_l,   i.e.  (K_j)_{pq} = Σ_l weights[j, p, q, l] F_l

    for the P x P sub-blocks (p, q) of size ns (b = P·ns; P = 1 for one field, P = k
    for k coregional fields).  ``basis`` F (L, ns, ns) holds fixed symmetric matrices —
    data, never differentiated (the FEM matrices c0, g1, g2, g3 of an SPDE field) —
    and ``weights`` (J, P, P, L), symmetric in (p, q), carries all the θ-dependence.
    Blocks of Q_p are then combinations of F (no K_j is ever materialised) and
    ⟨Ω, ∂K_j/∂θ⟩ = Σ_pql ⟨Ω_pq, F_l⟩ ∂weights[j,p,q,l]/∂θ: the backward sweep
    accumulates the J·P²·L scalars ⟨Ω_pq, F_l⟩ instead of J matrices of size b².
    With ``pattern`` (sparse bases such as FEM matrices) those contractions gather the
    nnz entries of the pattern instead of reading L dense matrices."""

    weights: jax.Array  # (J, P, P, L)
    basis: jax.Array  # (L, ns, ns)
    pattern: SparsePattern | None = None  # of the basis, vals (L, nnz)


def _block(gen: LinearGenerators, m: jax.Array) -> jax.Array:
    """Σ_j m_j K_j (b x b): one block of Q_p, temporal weights m_j = (M_j)_{kl} (J,).
    Each distinct sub-block is one fused weighted sum of the basis."""
    w = jnp.tensordot(m, gen.weights, axes=1)  # (P, P, L)
    P = w.shape[0]
    if P == 1:
        return _weighted_sum(w[0, 0], gen.basis)
    sub = {(p, q): _weighted_sum(w[p, q], gen.basis) for p in range(P) for q in range(p, P)}
    rows = [[sub[min(p, q), max(p, q)] for q in range(P)] for p in range(P)]
    return jnp.concatenate([jnp.concatenate(r, axis=1) for r in rows], axis=0)


def _blocks(gen: LinearGenerators, m: jax.Array) -> jax.Array:
    """The stack (n, b, b) of the blocks Σ_j m_jk K_j, k = 1..n, for temporal weights
    m (J, n): :func:`_block` over the columns of m, written as one fused weighted sum
    of the basis into the (n, P, ns, P, ns) layout of the stack (no sub-block copies)."""
    w = jnp.einsum("jn,jpql->lnpq", m, gen.weights)  # (L, n, P, P)
    n, P = w.shape[1:3]
    out = _weighted_sum(w[:, :, :, None, :, None], gen.basis[:, None, None, :, None, :])
    return out.reshape(n, P * gen.basis.shape[-1], -1)


def _contract(gen: LinearGenerators, X: jax.Array) -> jax.Array:
    """(⟨X_pq, F_l⟩)_{p,q,l} (P, P, L) for a b x b matrix X: a gather of the
    pattern's entries, or without a pattern one matrix-vector product against the
    flattened basis (slicing the stacked basis per l would make XLA copy each F_l)."""
    L, ns = gen.basis.shape[0], gen.basis.shape[-1]
    P = gen.weights.shape[1]
    if gen.pattern is not None:
        rows, cols, vals, flat = gen.pattern
        if P == 1:
            return (vals @ _take(X.reshape(-1), flat)).reshape(1, 1, L)
        off = ns * jnp.arange(P)[:, None]
        picked = X[(off + rows)[:, None, :], (off + cols)[None, :, :]]  # (P, P, nnz)
        return jnp.einsum("pqn,ln->pql", picked, vals)
    F = gen.basis.reshape(L, ns * ns)
    if P == 1:
        return (F @ X.reshape(-1)).reshape(1, 1, L)
    Xpq = X.reshape(P, ns, P, ns).transpose(0, 2, 1, 3).reshape(P * P, ns * ns)
    return (Xpq @ F.T).reshape(P, P, L)


def _contract_outer(gen: LinearGenerators, u: jax.Array, v: jax.Array) -> jax.Array:
    """(⟨(u vᵀ)_pq, F_l⟩)_{p,q,l} = (u_pᵀ F_l v_q) without forming u vᵀ."""
    L, ns = gen.basis.shape[0], gen.basis.shape[-1]
    P = gen.weights.shape[1]
    U, V = u.reshape(P, ns), v.reshape(P, ns)
    if gen.pattern is not None:
        rows, cols, vals, _ = gen.pattern
        return jnp.einsum("pn,qn,ln->pql", _take(U, rows), _take(V, cols), vals)
    Fv = (gen.basis.reshape(L * ns, ns) @ V.T).reshape(L, ns, P)
    return jnp.einsum("pa,laq->pql", U, Fv)


def generator_matrices(gen: LinearGenerators) -> jax.Array:
    """The dense generators K_j (J, b, b) (for assembly in tests and small problems)."""
    J, P, _, _ = gen.weights.shape
    ns = gen.basis.shape[-1]
    return jnp.einsum("jpql,lab->jpaqb", gen.weights, gen.basis).reshape(J, P * ns, P * ns)


def assemble_precisions(generators: Generators, theta: jax.Array, data: GaussianBTAData):
    """Q_p, Q_c (as :class:`BTA`) and r = Σ_g τ_g A_gᵀy_g, with
    θ = [θ_lik,1..G, θ_st...].

    For tests, x̂ and small problems; the core never assembles them."""
    theta_lik, theta_st = split_theta(theta, data)
    Ks = generator_matrices(generators(theta_st, data.gen_data))
    tau = jnp.exp(theta_lik)
    nt, b, a = _dims(data)
    diag = jnp.einsum("jt,jab->tab", data.m_diag, Ks)
    lower = jnp.einsum("jt,jab->tab", data.m_lower, Ks)
    Qp = BTA(diag, lower, jnp.zeros((nt, a, b)), jnp.diag(data.tip_prec))
    Qc = BTA(
        diag + jnp.einsum("g,gtab->tab", tau, data.AtA_diag),
        lower,
        jnp.einsum("g,gtab->tab", tau, data.AtA_arrow),
        jnp.diag(data.tip_prec) + jnp.einsum("g,gab->ab", tau, data.AtA_tip),
    )
    r = jnp.concatenate([(tau @ data.Aty.reshape(tau.shape[0], -1)), tau @ data.Aty_tip])
    return Qp, Qc, r


def gaussian_mode(generators: Generators, theta: jax.Array, data: GaussianBTAData) -> jax.Array:
    """Posterior mode x̂ = Q_c⁻¹ r (layout [u_1; …; u_nt; β]).  Not for differentiation."""
    _, Qc, r = assemble_precisions(generators, theta, data)
    return bta_solve(bta_cholesky(Qc), r)


# ---------------------------------------------------------------------------
# Forward sweep: both factorisations and the forward substitution in one scan
# ---------------------------------------------------------------------------


class _Saved(NamedTuple):
    """What the forward sweep keeps for the backward sweep (METHOD.md §7)."""

    Gp: jax.Array  # (nt, b, b)  L_D,i⁻ᵀ of Q_p  (upper triangular)
    Gc: jax.Array  # (nt, b, b)  L_D,i⁻ᵀ of Q_c
    LC: jax.Array  # (nt, a, b)  arrow factor of Q_c
    z: jax.Array  # (nt, b)     forward substitution L_c⁻¹ r, time part
    GT: jax.Array  # (a, a)      L_T⁻ᵀ
    zT: jax.Array  # (a,)        forward substitution, tip part


class _FwdCarry(NamedTuple):
    Sp: jax.Array  # Schur carry of Q_p into the next block
    Sc: jax.Array  # Schur carry of Q_c
    R: jax.Array  # arrow carry of Q_c
    T: jax.Array  # tip Schur complement of Q_c
    w: jax.Array  # L_B,i z_i, forward-substitution carry
    zacc: jax.Array  # Σ L_C,i z_i
    ldp: jax.Array  # log|Q_p| so far
    ldc: jax.Array  # log|Q_c| so far
    zz: jax.Array  # ‖z‖² so far
    saved: _Saved | None


def _forward(generators, theta_st, theta_lik, data: GaussianBTAData, keep: bool):
    """Fused sweep (METHOD.md §4, §6.6 "fwd"): BT Cholesky of Q_p, BTA Cholesky of
    Q_c and z = L_c⁻¹ r, block by block, with Q_p/Q_c blocks generated lazily.

    Returns ((log|Q_p|, log|Q_c|, fit), saved) with ``saved`` None unless ``keep``.
    """
    gen = generators(theta_st, data.gen_data)
    tau = jnp.exp(jnp.reshape(theta_lik, (-1,)))
    nt, b, a = _dims(data)
    dt = gen.basis.dtype

    def block(c: _FwdCarry, i, last: bool) -> _FwdCarry:
        """Block i of both factorisations and of z; ``last``: no B block follows."""
        Dp = _block(gen, data.m_diag[:, i])
        B = None if last else _block(gen, data.m_lower[:, i])
        LDp, LBp, _, Gp = factor_block(Dp - c.Sp, B)
        AtA, AtA_arrow, Aty = _likelihood_parts(tau, data, i)
        LDc, LBc, LC, Gc = factor_block(Dp + AtA - c.Sc, B, AtA_arrow - c.R)
        z = (Aty - c.w) @ Gc  # L_D⁻¹ v = (vᵀ L_D⁻ᵀ)ᵀ
        saved = c.saved
        if keep:
            saved = saved._replace(
                Gp=saved.Gp.at[i].set(Gp),
                Gc=saved.Gc.at[i].set(Gc),
                LC=saved.LC.at[i].set(LC),
                z=saved.z.at[i].set(z),
            )
        if last:
            Sp, Sc, R, w = c.Sp, c.Sc, c.R, c.w
        else:
            Sp, Sc, R, w = syrk(LBp), syrk(LBc), LC @ _mT(LBc), LBc @ z
        return _FwdCarry(
            Sp=Sp,
            Sc=Sc,
            R=R,
            T=c.T - LC @ _mT(LC),
            w=w,
            zacc=c.zacc + LC @ z,
            ldp=c.ldp + _logdet_tri(LDp),
            ldc=c.ldc + _logdet_tri(LDc),
            zz=c.zz + z @ z,
            saved=saved,
        )

    zero = jnp.zeros((), dt)
    saved0 = None
    if keep:
        saved0 = _Saved(
            Gp=jnp.zeros((nt, b, b), dt),
            Gc=jnp.zeros((nt, b, b), dt),
            LC=jnp.zeros((nt, a, b), dt),
            z=jnp.zeros((nt, b), dt),
            GT=jnp.zeros((a, a), dt),
            zT=jnp.zeros((a,), dt),
        )
    init = _FwdCarry(
        Sp=jnp.zeros((b, b), dt),
        Sc=jnp.zeros((b, b), dt),
        R=jnp.zeros((a, b), dt),
        T=jnp.diag(data.tip_prec) + jnp.einsum("g,gab->ab", tau, data.AtA_tip),
        w=jnp.zeros((b,), dt),
        zacc=jnp.zeros((a,), dt),
        ldp=zero,
        ldc=zero,
        zz=zero,
        saved=saved0,
    )
    c = sweep(block, init, nt)

    logdet_T, fit, GT, zT = _close_tip(c.T, c.zacc, c.zz, tau, data)
    logdet_p = c.ldp + jnp.sum(jnp.log(data.tip_prec))
    saved = c.saved._replace(GT=GT, zT=zT) if keep else None
    return (logdet_p, c.ldc + logdet_T, fit), saved


def _close_tip(T, zacc, zz, tau, data: GaussianBTAData):
    """After the block sweep: L_T = chol(T'), z_T = L_T⁻¹(r_T − Σ L_C,i z_i) and
    fit = ½‖z‖² − Σ_g (τ_g/2) y_gᵀy_g.  Returns (log|L_T L_Tᵀ|, fit, L_T⁻ᵀ, z_T)."""
    LT = _chol(T)
    GT = tri_inv(LT, transpose=True)
    zT = (tau @ data.Aty_tip - zacc) @ GT
    fit = 0.5 * (zz + zT @ zT) - 0.5 * tau @ data.yty
    return _logdet_tri(LT), fit, GT, zT


# ---------------------------------------------------------------------------
# Backward sweep: back substitution + two selected inversions + contractions
# ---------------------------------------------------------------------------


class _Acc(NamedTuple):
    """What both backward sweeps carry besides their Σ blocks."""

    x: jax.Array  # x̂_{i+1}
    Wgen: jax.Array  # (J, P, P, L) generator-weight accumulators
    lik: jax.Array  # (G,) ⟨A_gᵀA_g, Ωᶜ⟩ + ḡ_f x̂ᵀA_gᵀy_g so far (see _accumulate)


class _BwdCarry(NamedTuple):
    SDc: jax.Array  # Σ_D,i+1 of Q_c
    SCc: jax.Array  # Σ_C,i+1 of Q_c
    SDp: jax.Array  # Σ_D,i+1 of Q_p
    acc: _Acc


def _backward(generators, theta_st, theta_lik, data: GaussianBTAData, saved: _Saved, cts):
    """Cotangents (θ̄_st, θ̄_lik) for output cotangents cts = (ḡ_p, ḡ_c, ḡ_f);
    θ̄_lik has the shape of ``theta_lik`` (a scalar or (G,)).

    One reverse sweep over time blocks i = nt..1 (METHOD.md §6.3, phases A, B, C
    fused): back substitution x̂_i, selected-inversion steps of Q_c and Q_p
    (:func:`~adelia.runtime.bta.selinv_block`), then the block contractions

        Ω_D,i  = ḡ_p Σᵖ_D,i + ḡ_c Σᶜ_D,i − ½ ḡ_f x̂_i x̂_iᵀ
        Ω_B,iᵀ = ḡ_p Σᵖ_B,iᵀ + ḡ_c Σᶜ_B,iᵀ − ½ ḡ_f x̂_i x̂_{i+1}ᵀ
        W_j   += (M_j)_ii Ω_D,i + 2 (M_j)_{i+1,i} Ω_B,iᵀ
        lik_g += ⟨A_g,iᵀA_g,i, Ωᶜ_D,i⟩ + 2 ⟨A_g,tip,iᵀA_g,i, Ωᶜ_C,i⟩ + ḡ_f x̂_iᵀA_g,iᵀỹ_g,i

    with Ωᶜ = ḡ_c Σᶜ − ½ ḡ_f x̃x̃ᵀ, x̃ = x̂ − (0, β₀), ỹ = y − A_tip β₀
    (:func:`_accumulate`).  Ω_B,iᵀ may replace Ω_B,i because the generators K_j are
    symmetric (Q_p is), so only the symmetric part of W_j is ever paired with them.
    The residuals ‖y_g − A_g x̂‖² are never formed
    (:func:`_pull_back`).
    """
    g_p, g_c, g_f = cts
    gen = generators(theta_st, data.gen_data)
    nt, b, a = _dims(data)
    dt = saved.Gp.dtype
    ST, xT, dT = _tip_solution(saved.GT, saved.zT, data)

    def block(c: _BwdCarry, i, last: bool) -> _BwdCarry:
        """Block i of the back substitution, both selected inversions, contractions."""
        Gp, Gc, LC = saved.Gp[i], saved.Gc[i], saved.LC[i]  # Gp, Gc = L_D,i⁻ᵀ
        Hp, Hc = gram_upper(Gp), gram_upper(Gc)  # H_i = (D_i − S_i)⁻¹
        WC = LC @ _mT(Gc)  # L_C,i G_i
        x = Gc @ (saved.z[i] - xT @ LC)  # L_D⁻ᵀ (z_i − L_C,iᵀ β̂)
        WBp = WBc = None
        if not last:
            B = _block(gen, data.m_lower[:, i])
            WBp, WBc = Hp @ _mT(B), Hc @ _mT(B)  # (L_B,i G_i)ᵀ = (B_i H_i)ᵀ
            x = x - WBc @ c.acc.x  # − L_D⁻ᵀ L_B,iᵀ x̂_{i+1}
        SDc, SBtc, SCc = selinv_block(Hc, WBc, WC, c.SDc, c.SCc, ST)
        SDp, SBtp, _ = selinv_block(Hp, WBp, None, c.SDp, None, None)

        sigmas = ((g_p, SDp), (g_c, SDc)), ((g_p, SBtp), (g_c, SBtc))
        acc = _accumulate(c.acc, gen, data, i, last, x, sigmas, g_c, g_f, SDc, SCc, dT)
        return _BwdCarry(SDc=SDc, SCc=SCc, SDp=SDp, acc=acc)

    init = _BwdCarry(
        SDc=jnp.zeros((b, b), dt),
        SCc=jnp.zeros((a, b), dt),
        SDp=jnp.zeros((b, b), dt),
        acc=_acc_init(gen, data, ST, dT, g_c, g_f),
    )
    c = sweep(block, init, nt, reverse=True)
    return _pull_back(generators, theta_st, theta_lik, data, c.acc, g_f)


def _tip_solution(GT, zT, data: GaussianBTAData):
    """What both backward sweeps start from, given GT = L_T⁻ᵀ and z_T of the forward:
    Σ_T = GT GTᵀ (the tip block of Q_c⁻¹), β̂ = GT z_T and dT = β̂ − β₀, the tip of
    x̃ = x̂ − (0, β₀) (:func:`_pull_back`)."""
    xT = GT @ zT
    return gram_upper(GT), xT, xT - data.beta0


def _omega(gen: LinearGenerators, sigmas, g_f, x, x_next) -> jax.Array:
    """⟨Ω, F⟩ (P, P, L) for one pattern block of Ω = Σ_k ḡ_k Σ_k − ½ ḡ_f x x_nextᵀ
    (``sigmas``: pairs (ḡ_k, Σ-block)), contracted term by term so that Ω itself is
    never formed."""
    out = -0.5 * g_f * _contract_outer(gen, x, x_next)
    for g, S in sigmas:
        out = out + g * _contract(gen, S)
    return out


def _acc_init(gen: LinearGenerators, data: GaussianBTAData, ST, dT, g_c, g_f) -> _Acc:
    """The accumulators before block nt, holding the tip's likelihood terms
    ⟨A_g,tipᵀA_g,tip, ḡ_c Σ_T − ½ ḡ_f dT dTᵀ⟩ + ḡ_f dTᵀA_g,tipᵀỹ_g (dT = β̂ − β₀)."""
    b = data.AtA_diag.shape[-1]
    dt = ST.dtype
    omega_T = g_c * ST - (0.5 * g_f) * jnp.outer(dT, dT)
    return _Acc(
        x=jnp.zeros((b,), dt),
        Wgen=jnp.zeros(gen.weights.shape, dt),
        lik=jnp.einsum("ab,gab->g", omega_T, data.AtA_tip) + g_f * (data.Aty0_tip @ dT),
    )


def _accumulate(acc: _Acc, gen: LinearGenerators, data: GaussianBTAData, i, last: bool, x,
                sigmas, g_c, g_f, SD, SC, dT) -> _Acc:
    """Block i's contractions, given x = x̂_i, ``sigmas`` = (pairs (ḡ_k, Σ_D,i-block),
    pairs (ḡ_k, Σ_B,iᵀ-block)) — the latter unused for the ``last`` block —, SD, SC
    the blocks Σᶜ_D,i, Σᶜ_C,i of Q_c⁻¹ and dT = β̂ − β₀:

        Wgen[j] += (M_j)_ii ⟨Ω_D,i, F⟩ + 2 (M_j)_{i+1,i} ⟨Ω_B,iᵀ, F⟩
        lik_g   += ⟨A_g,iᵀA_g,i, Ωᶜ_D,i⟩ + 2 ⟨A_g,tip,iᵀA_g,i, Ωᶜ_C,i⟩ + ḡ_f x̂_iᵀA_g,iᵀỹ_g,i

    into the (J, P, P, L) accumulator of ⟨Ω, ∂K_j⟩'s coefficients
    (:class:`LinearGenerators`) and the likelihood's (G,) accumulator, with
    Ωᶜ = ḡ_c Σᶜ − ½ ḡ_f x̃x̃ᵀ, x̃ = x̂ − (0, β₀) (see :func:`_pull_back`)."""
    sig_D, sig_B = sigmas
    upd = data.m_diag[:, i, None, None, None] * _omega(gen, sig_D, g_f, x, x)
    if not last:
        cB = _omega(gen, sig_B, g_f, x, acc.x)
        upd = upd + (2.0 * data.m_lower[:, i, None, None, None]) * cB
    omega_C = g_c * SC - (0.5 * g_f) * jnp.outer(dT, x)
    lik = (
        acc.lik
        + _group_traces(SD, x, g_c, g_f, data, i)
        + 2.0 * _pair(omega_C, data.AtA_arrow[:, i])
        + g_f * (data.Aty0[:, i] @ x)
    )
    return _Acc(x=x, Wgen=acc.Wgen + upd, lik=lik)


def _pull_back(generators, theta_st, theta_lik, data: GaussianBTAData, acc: _Acc, g_f):
    """(θ̄_st, θ̄_lik) from the swept accumulators: θ̄_st = Σ_jpql Wgen[j,p,q,l]
    ∂weights[j,p,q,l]/∂θ by one VJP of the small map θ ↦ weights (no b x b array), and

        θ̄_lik,g = ḡ_c τ_g tr(Q_c⁻¹A_gᵀA_g) − ḡ_f (τ_g/2) ‖y_g − A_g x̂‖²
                 = τ_g (⟨A_gᵀA_g, ḡ_c Q_c⁻¹ − ½ ḡ_f x̃x̃ᵀ⟩ + ḡ_f x̃ᵀA_gᵀỹ_g − ½ ḡ_f ỹ_gᵀỹ_g)

    where ỹ = y − A_tip β₀ and x̃ = x̂ − (0, β₀) (so y − A x̂ = ỹ − A x̃ for any β₀),
    with the first two terms swept block by block (``acc.lik``).  The residuals are
    never formed, so A is not read again (it can be much larger than AᵀA).  The
    expanded norm cancels in proportion to ‖ỹ‖² / ‖y − A x̂‖²; taking β₀ as the least
    squares fit on the tip (fixed-effect) columns keeps that small even when y has a
    large mean (METHOD.md §2.2 warns about the unshifted expansion)."""
    _, gen_vjp = jax.vjp(lambda t: generators(t, data.gen_data).weights, theta_st)
    (theta_st_bar,) = gen_vjp(acc.Wgen)
    tau = jnp.exp(jnp.reshape(theta_lik, (-1,)))
    theta_lik_bar = tau * (acc.lik - (0.5 * g_f) * data.yty0)
    return theta_st_bar, jnp.reshape(theta_lik_bar, jnp.shape(theta_lik))


# ---------------------------------------------------------------------------
# Posterior-only core: Q_p's log-determinant supplied by the model (prior_logdet)
# ---------------------------------------------------------------------------


class _SavedC(NamedTuple):
    """What the posterior-only forward sweep keeps: the factor's storage, as
    H_i = (D_i − S_i)⁻¹ and WBt_i = H_i B_iᵀ = (L_B,i L_D,i⁻¹)ᵀ instead of L_D,i, L_B,i."""

    H: jax.Array  # (nt, b, b)
    WBt: jax.Array  # (nt−1, b, b)
    WC: jax.Array  # (nt, a, b)  (C_i − R_i) H_i = L_C,i L_D,i⁻¹
    u: jax.Array  # (nt, b)     L_D,i⁻ᵀ z_i
    GT: jax.Array  # (a, a)      L_T⁻ᵀ
    zT: jax.Array  # (a,)


class _FwdCarryC(NamedTuple):
    S: jax.Array  # Schur carry into the next diagonal block
    R: jax.Array  # arrow carry
    T: jax.Array  # tip Schur complement
    w: jax.Array  # L_B,i z_i
    zacc: jax.Array  # Σ L_C,i z_i
    ld: jax.Array  # log|Q_c| so far
    zz: jax.Array  # ‖z‖² so far
    saved: _SavedC | None


def _forward_c(generators, theta_st, theta_lik, data: GaussianBTAData, keep: bool):
    """BTA Cholesky of Q_c and z = L_c⁻¹ r in one sweep; returns ((log|Q_c|, fit), saved).

    Value only (``keep=False``): L_D = chol(D − S), Gt = L_D⁻ᵀ, L_B = B Gt,
    S' = L_B L_Bᵀ (:func:`~adelia.runtime.bta.factor_block`).  For the gradient
    (``keep=True``) the step forms what the selected inversion needs instead,
    H = Gt Gtᵀ and WBt = H Bᵀ, and gets the Schur carry as S' = B WBt — the same
    number of b x b products plus one ``lauum``, and no recomputation later: the
    backward sweep is two products per block (:func:`_backward_c`).  The H and WBt
    stacks start out holding D_i and B_i, generated for all i in one fused pass
    (:func:`_blocks`), and each step overwrites the slot it has just read: XLA:CPU has
    no uninitialised buffers, so zero-filling the stacks instead cost a full extra
    pass over (2nt − 1)·b² (3 % of the gradient at b = 400, nt = 50).

    Working memory: the step needs three b x b buffers besides the stacks.  u and
    ‖z‖² come from H (u = Gt Gtᵀ v, ‖z‖² = vᵀu), so Gt is dead once H exists, and
    B_i — copied out of its slot for the products, as XLA:CPU does for any dynamic
    slice that feeds a dot — is read behind a barrier on H: XLA would otherwise copy
    it at the top of the step and keep it through potrf and the inverse (GST-S,
    b = 92, nt = 5: gradient peak 1.65 → 1.54 x the factor).  Every later use of H
    takes the barrier's output, so the H stack write and the products with H can
    still run beside the copy on another core (serialising them cost 4 % at b = 400).
    """
    gen = generators(theta_st, data.gen_data)
    tau = jnp.exp(jnp.reshape(theta_lik, (-1,)))
    nt, b, a = _dims(data)
    dt = gen.basis.dtype

    def block(c: _FwdCarryC, i, last: bool) -> _FwdCarryC:
        AtA, AtA_arrow, Aty = _likelihood_parts(tau, data, i)
        C = AtA_arrow - c.R
        saved = c.saved
        if keep:  # D_i, B_i were generated into the slots that H_i, WBt_i overwrite
            LD = _chol(saved.H[i] + AtA - c.S)
            Gt = tri_inv(LD, transpose=True)
            H = gram_upper(Gt)
            if not last:
                H, stack = lax.optimization_barrier((H, saved.WBt))  # B_i read after H
                B = stack[i]
            v = Aty - c.w
            u = H @ v  # L_D⁻ᵀ L_D⁻¹ (r_i − w) = Gt z
            zz = v @ u  # ‖z‖²,  z = L_D⁻¹ (r_i − w)
            WC = C @ H
            saved = saved._replace(
                H=saved.H.at[i].set(H), WC=saved.WC.at[i].set(WC), u=saved.u.at[i].set(u)
            )
            LCz = C @ u
            T = c.T - WC @ _mT(C)
            if last:
                S, R, w = c.S, c.R, c.w
            else:
                WBt = H @ _mT(B)
                saved = saved._replace(WBt=stack.at[i].set(WBt))
                S, R, w = B @ WBt, C @ WBt, B @ u
        else:
            D = _block(gen, data.m_diag[:, i])
            B = None if last else _block(gen, data.m_lower[:, i])
            LD, LB, LC, Gt = factor_block(D + AtA - c.S, B, C)
            z = (Aty - c.w) @ Gt
            zz = z @ z
            LCz = LC @ z
            T = c.T - LC @ _mT(LC)
            if last:
                S, R, w = c.S, c.R, c.w
            else:
                S, R, w = syrk(LB), LC @ _mT(LB), LB @ z
        return _FwdCarryC(
            S=S,
            R=R,
            T=T,
            w=w,
            zacc=c.zacc + LCz,
            ld=c.ld + _logdet_tri(LD),
            zz=c.zz + zz,
            saved=saved,
        )

    saved0 = None
    if keep:
        saved0 = _SavedC(
            H=_blocks(gen, data.m_diag),
            WBt=_blocks(gen, data.m_lower) if nt > 1 else jnp.zeros((1, b, b), dt),
            WC=jnp.zeros((nt, a, b), dt),
            u=jnp.zeros((nt, b), dt),
            GT=jnp.zeros((a, a), dt),
            zT=jnp.zeros((a,), dt),
        )
    init = _FwdCarryC(
        S=jnp.zeros((b, b), dt),
        R=jnp.zeros((a, b), dt),
        T=jnp.diag(data.tip_prec) + jnp.einsum("g,gab->ab", tau, data.AtA_tip),
        w=jnp.zeros((b,), dt),
        zacc=jnp.zeros((a,), dt),
        ld=jnp.zeros((), dt),
        zz=jnp.zeros((), dt),
        saved=saved0,
    )
    c = sweep(block, init, nt)
    logdet_T, fit, GT, zT = _close_tip(c.T, c.zacc, c.zz, tau, data)
    saved = c.saved._replace(GT=GT, zT=zT) if keep else None
    return (c.ld + logdet_T, fit), saved


class _BwdCarryC(NamedTuple):
    SD: jax.Array  # Σ_D,i+1
    SC: jax.Array  # Σ_C,i+1
    acc: _Acc


def _backward_c(generators, theta_st, theta_lik, data: GaussianBTAData, saved: _SavedC, cts):
    """Cotangents (θ̄_st, θ̄_lik) of (log|Q_c|, fit) for cts = (ḡ_c, ḡ_f): the sweep of
    :func:`_backward` without Q_p (Ω = ḡ_c Q_c⁻¹ − ½ ḡ_f x̂ x̂ᵀ).  Per block: back
    substitution x̂_i = u_i − WC_iᵀ β̂ − WBt_i x̂_{i+1} and the Takahashi step of
    :func:`~adelia.runtime.bta.selinv_block` on the stored H_i, WBt_i, WC_i — two b x b
    products, no Cholesky, no B_i; the contractions with the generator basis are
    fused reductions into J·P²·L scalars (:func:`_accumulate`)."""
    g_c, g_f = cts
    gen = generators(theta_st, data.gen_data)  # only its basis is used in the sweep
    nt, b, a = _dims(data)
    dt = saved.H.dtype
    ST, xT, dT = _tip_solution(saved.GT, saved.zT, data)

    def block(c: _BwdCarryC, i, last: bool) -> _BwdCarryC:
        H, WC = saved.H[i], saved.WC[i]
        x = saved.u[i] - xT @ WC
        WBt = None
        if not last:
            WBt = saved.WBt[i]
            x = x - WBt @ c.acc.x
        SD, SBt, SC = selinv_block(H, WBt, WC, c.SD, c.SC, ST)
        sigmas = ((g_c, SD),), ((g_c, SBt),)
        acc = _accumulate(c.acc, gen, data, i, last, x, sigmas, g_c, g_f, SD, SC, dT)
        return _BwdCarryC(SD=SD, SC=SC, acc=acc)

    init = _BwdCarryC(
        SD=jnp.zeros((b, b), dt),
        SC=jnp.zeros((a, b), dt),
        acc=_acc_init(gen, data, ST, dT, g_c, g_f),
    )
    c = sweep(block, init, nt, reverse=True)
    return _pull_back(generators, theta_st, theta_lik, data, c.acc, g_f)


def _with_adjoint(forward, backward):
    """A core ``(generators, θ_st, θ_lik, data) -> outputs`` whose VJP runs
    ``forward(..., keep=True)`` (saving what the sweep back needs) then ``backward``;
    without differentiation ``forward(..., keep=False)`` alone."""

    @partial(jax.custom_vjp, nondiff_argnums=(0,))
    def core(generators, theta_st, theta_lik, data):
        return forward(generators, theta_st, theta_lik, data, keep=False)[0]

    def fwd(generators, theta_st, theta_lik, data):
        out, saved = forward(generators, theta_st, theta_lik, data, keep=True)
        return out, (theta_st, theta_lik, data, saved)

    def bwd(generators, res, cts):
        theta_st, theta_lik, data, saved = res
        st_bar, lik_bar = backward(generators, theta_st, theta_lik, data, saved, cts)
        return st_bar, lik_bar, None  # data: treated as constant

    core.defvjp(fwd, bwd)
    return core


# (log|Q_p|, log|Q_c|, fit); envelope theorem + selected inversion (METHOD.md §6)
_core_full = _with_adjoint(_forward, _backward)
# (log|Q_c|, fit) with Q_p left to prior_logdet
_core_c = _with_adjoint(_forward_c, _backward_c)


# ---------------------------------------------------------------------------
# Public core, objective, and the reference variants
# ---------------------------------------------------------------------------


PriorLogdet = Callable[[jax.Array, "GaussianBTAData"], jax.Array]


def gaussian_core(
    generators: Generators,
    theta_st,
    theta_lik,
    data: GaussianBTAData,
    prior_logdet: PriorLogdet | None = None,
):
    """(log|Q_p|, log|Q_c|, ½rᵀQ_c⁻¹r − Σ_g (τ_g/2)y_gᵀy_g) with the ADELIA adjoint.

    ``theta_lik`` is (G,) (a scalar is accepted when G = 1).  Differentiable in
    ``theta_st`` and ``theta_lik``; ``data`` gets a zero cotangent (A, y and the
    temporal matrices are treated as constants).

    ``prior_logdet(theta_st, data)``, when the model has one, returns log|Q_p| without
    the tip (e.g. :func:`~adelia.runtime.coregional.demf_prior_logdet`): Q_p is then
    neither factorised nor selected-inverted (Phase C of METHOD.md §6.3 becomes plain
    reverse mode through that function) and only Q_c runs through the BTA sweeps.
    """
    if prior_logdet is None:
        return _core_full(generators, theta_st, theta_lik, data)
    logdet_c, fit = _core_c(generators, theta_st, theta_lik, data)
    return _prior_logdet(prior_logdet, theta_st, data), logdet_c, fit


def _prior_logdet(prior_logdet: PriorLogdet, theta_st, data: GaussianBTAData):
    return prior_logdet(theta_st, data) + jnp.sum(jnp.log(data.tip_prec))


def gaussian_core_naive(
    generators: Generators,
    theta_st,
    theta_lik,
    data: GaussianBTAData,
    prior_logdet: PriorLogdet | None = None,
):
    """Same values as :func:`gaussian_core`; gradients by plain reverse mode through
    the scan Cholesky (the paper's "AD-Loop"; for benchmarks and tests only)."""
    if prior_logdet is None:
        return _forward(generators, theta_st, theta_lik, data, keep=False)[0]
    logdet_c, fit = _forward_c(generators, theta_st, theta_lik, data, keep=False)[0]
    return _prior_logdet(prior_logdet, theta_st, data), logdet_c, fit


def _objective(theta_lik, logdet_p, logdet_c, fit, n_obs):
    """f = −[Σ_g (m_g/2)θ_lik,g + fit + ½log|Q_p| − ½log|Q_c|]  (METHOD.md §2.2)."""
    return -(0.5 * n_obs @ theta_lik + fit + 0.5 * logdet_p - 0.5 * logdet_c)


def gaussian_objective(
    generators: Generators,
    theta: jax.Array,
    data: GaussianBTAData,
    prior_logdet: PriorLogdet | None = None,
):
    """Gaussian Laplace objective f(θ), θ = [θ_lik,1..G, θ_st...], without −log π(θ).

    Equals −log p(y | θ) − (m/2) log 2π.  Its gradient uses the ADELIA adjoint;
    ``prior_logdet`` as in :func:`gaussian_core`."""
    theta_lik, theta_st = split_theta(theta, data)
    out = gaussian_core(generators, theta_st, theta_lik, data, prior_logdet)
    return _objective(theta_lik, *out, data.n_obs)


def gaussian_objective_naive(
    generators: Generators,
    theta: jax.Array,
    data: GaussianBTAData,
    prior_logdet: PriorLogdet | None = None,
):
    """:func:`gaussian_objective` differentiated by plain reverse mode (AD-Loop)."""
    theta_lik, theta_st = split_theta(theta, data)
    out = gaussian_core_naive(generators, theta_st, theta_lik, data, prior_logdet)
    return _objective(theta_lik, *out, data.n_obs)


def gaussian_objective_dense(generators: Generators, theta: jax.Array, data: GaussianBTAData):
    """Dense reference (the paper's "AD-Dense"): assemble N x N matrices, dense
    Cholesky, plain reverse mode.  Test oracle and fallback for tiny problems."""
    Qp, Qc, r = assemble_precisions(generators, theta, data)
    Lp = jnp.linalg.cholesky(bta_to_dense(Qp))
    Lc = jnp.linalg.cholesky(bta_to_dense(Qc))
    z = jax.scipy.linalg.solve_triangular(Lc, r, lower=True)
    theta_lik, _ = split_theta(theta, data)
    fit = 0.5 * z @ z - 0.5 * jnp.exp(theta_lik) @ data.yty
    return _objective(theta_lik, _logdet_tri(Lp), _logdet_tri(Lc), fit, data.n_obs)
