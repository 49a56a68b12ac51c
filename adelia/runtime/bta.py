"""Block-tridiagonal-arrowhead (BTA) kernels: Cholesky, solves, log-determinant,
selected inversion, sampling.

A symmetric BTA matrix of ``nt`` time blocks of size ``b`` and an arrow/tip of size
``a`` (METHOD.md §3.2, Serinv's layout) is stored as

    diag  (nt, b, b)      D_i            diagonal blocks
    lower (nt-1, b, b)    B_i = Q[i+1, i] sub-diagonal blocks
    arrow (nt, a, b)      C_i = Q[T, i]   arrow blocks
    tip   (a, a)          T               tip block

and vectors are laid out as ``[u_1; ...; u_nt; u_T]`` (length ``N = nt*b + a``),
optionally with trailing right-hand-side columns, shape ``(N, k)``.  The Cholesky
factor ``L`` (``Q = L Lᵀ``) has the same block pattern and uses the same type, with
lower-triangular ``diag`` and ``tip``.

Every function is pure, jit-able and vmap-able (batch with ``jax.vmap``; the shapes
above are per problem), and meant for float64.  All recursions are ``lax.scan`` over
time blocks, so the traced program does not grow with ``nt``.

Dense-block kernels.  The diagonal blocks are factored by LAPACK ``potrf`` and
inverted explicitly (:func:`tri_inv`, recursive 2 x 2 blocking, 3–4x faster on CPU
than ``trsm`` against the identity); off-diagonal factor blocks are then matrix
products, which on CPU cost the same time as LAPACK ``trsm`` (measured at
b = 200–2000), and the inverse is reused by the selected inversion and the gradient.
Symmetric products use recursive ``syrk`` / ``lauum`` analogues (:func:`syrk`,
:func:`gram_upper`).  No b x b product transposes its left operand: XLA's CPU
matmul runs Aᵀ B at about half the rate of A B or A Bᵀ.

References: METHOD.md §3–5; Gaedke-Merzhäuser et al., arXiv:2507.06938 (DALIA);
Maillou et al., arXiv:2503.17528 (Serinv); Takahashi, Fagan, Chen (1973) for the
selected-inversion recurrence.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

jax.config.update("jax_enable_x64", True)

__all__ = [
    "BTA",
    "tri_inv",
    "gram_upper",
    "syrk",
    "factor_block",
    "sweep",
    "selinv_block",
    "bta_cholesky",
    "bta_logdet",
    "bta_solve_lower",
    "bta_solve_upper",
    "bta_solve",
    "bta_selected_inverse",
    "bta_trace_contract",
    "bta_matvec",
    "bta_sample",
    "bta_to_dense",
    "dense_to_bta",
]

# Recursion thresholds of the blocked dense-block kernels (CPU-tuned, see
# benchmarks/kernels.py): blocks up to this size call LAPACK / one plain product.
_TRI_INV_BASE = 64  # tri_inv: LAPACK trsm against the identity (vs 128: 5–15 % faster, n = 92–1000)
_LAUUM_BASE = 256  # gram_upper: one product U Uᵀ
_SYRK_BASE = 512  # syrk: one product X Xᵀ


class BTA(NamedTuple):
    """Blocks of a symmetric BTA matrix (or of its lower Cholesky factor).

    ``diag`` (nt, b, b), ``lower`` (nt-1, b, b) with ``lower[i] = Q[i+1, i]``,
    ``arrow`` (nt, a, b) with ``arrow[i] = Q[tip, i]``, ``tip`` (a, a).
    A NamedTuple, hence a JAX pytree.
    """

    diag: jax.Array
    lower: jax.Array
    arrow: jax.Array
    tip: jax.Array

    @property
    def nt(self) -> int:
        return self.diag.shape[-3]

    @property
    def b(self) -> int:
        return self.diag.shape[-1]

    @property
    def a(self) -> int:
        return self.tip.shape[-1]

    @property
    def n(self) -> int:
        """Total dimension N = nt*b + a."""
        return self.nt * self.b + self.a


# ---------------------------------------------------------------------------
# Dense-block primitives
# ---------------------------------------------------------------------------


def _as_jax(Q: BTA) -> BTA:
    """The same BTA with every block a JAX array (blocks are indexed by traced ints)."""
    return BTA(*(jnp.asarray(x) for x in Q))


def _mT(x: jax.Array) -> jax.Array:
    return jnp.swapaxes(x, -1, -2)


def _chol(x: jax.Array) -> jax.Array:
    """Lower Cholesky factor; reads only the lower triangle of ``x`` (LAPACK potrf).

    A matrix that is not positive definite yields NaNs (JAX convention)."""
    return lax.linalg.cholesky(_mT(x), symmetrize_input=False)


def _logdet_tri(L: jax.Array) -> jax.Array:
    """log|L Lᵀ| = 2 Σ_j log L_jj for a triangular L (any leading batch dims)."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)))


def tri_inv(L: jax.Array, *, transpose: bool = False) -> jax.Array:
    """Inverse G = L⁻¹ (or its transpose L⁻ᵀ) of a lower-triangular L by recursive
    2 x 2 blocking:

        [L11  0 ]⁻¹   [ G11            0  ]
        [L21 L22]   = [ −G22 L21 G11   G22 ],   G11 = L11⁻¹, G22 = L22⁻¹

    ≈ (2/3) n³ flops, almost all in matrix products (the blocking of LAPACK
    ``trtri``); blocks of size ≤ 64 use ``trsm`` against the identity.  On CPU this
    is 3–4x faster than ``trsm`` against the identity at n = 400–2000, with the same
    accuracy on Cholesky factors.  ``transpose=True`` builds L⁻ᵀ directly (upper
    triangular) with products that never transpose their left operand — XLA's CPU
    matmul runs Aᵀ B at less than half the rate of A B or A Bᵀ.
    """
    n = L.shape[-1]
    if n <= _TRI_INV_BASE:
        eye = jnp.eye(n, dtype=L.dtype)
        return lax.linalg.triangular_solve(
            L, eye, left_side=True, lower=True, transpose_a=transpose
        )
    k = n // 2
    A = tri_inv(L[:k, :k], transpose=transpose)
    D = tri_inv(L[k:, k:], transpose=transpose)
    if transpose:  # [[G11ᵀ, G21ᵀ], [0, G22ᵀ]],  G21ᵀ = −G11ᵀ L21ᵀ G22ᵀ
        off = -((A @ _mT(L[k:, :k])) @ D)
        top = jnp.concatenate([A, off], axis=1)
        bottom = jnp.concatenate([jnp.zeros((n - k, k), L.dtype), D], axis=1)
    else:
        off = -(D @ (L[k:, :k] @ A))
        top = jnp.concatenate([A, jnp.zeros((k, n - k), L.dtype)], axis=1)
        bottom = jnp.concatenate([off, D], axis=1)
    return jnp.concatenate([top, bottom], axis=0)


def gram_upper(U: jax.Array) -> jax.Array:
    """U Uᵀ for an upper-triangular U (LAPACK ``lauum``), by recursive blocking:

        [U11 U12] [U11ᵀ  0  ]   [U11U11ᵀ + U12U12ᵀ   U12U22ᵀ]
        [ 0  U22] [U12ᵀ U22ᵀ] = [U22U12ᵀ             U22U22ᵀ]

    ≈ (2/3) n³ flops instead of 2n³ for a plain product; with U = L⁻ᵀ it gives
    (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹.
    """
    n = U.shape[-1]
    if n <= _LAUUM_BASE:
        return U @ _mT(U)
    k = n // 2
    U12, U22 = U[:k, k:], U[k:, k:]
    tl = gram_upper(U[:k, :k]) + U12 @ _mT(U12)
    off = U12 @ _mT(U22)
    top = jnp.concatenate([tl, off], axis=1)
    return jnp.concatenate([top, jnp.concatenate([_mT(off), gram_upper(U22)], axis=1)], axis=0)


def syrk(X: jax.Array) -> jax.Array:
    """X Xᵀ computing only the lower blocks (BLAS ``syrk``), by recursive blocking:

        [X1] [X1ᵀ X2ᵀ]   [X1X1ᵀ      ·  ]
        [X2]           = [X2X1ᵀ   X2X2ᵀ ]     (upper block mirrored)

    ≈ n²·m flops instead of 2n²·m for a plain product.
    """
    n = X.shape[0]
    if n <= _SYRK_BASE:
        return X @ _mT(X)
    k = n // 2
    off = X[k:] @ _mT(X[:k])
    top = jnp.concatenate([syrk(X[:k]), _mT(off)], axis=1)
    return jnp.concatenate([top, jnp.concatenate([off, syrk(X[k:])], axis=1)], axis=0)


def _trsv(L: jax.Array, v: jax.Array, *, transpose: bool = False) -> jax.Array:
    """Solve L x = v (or Lᵀ x = v) for lower-triangular L; v is (n, k)."""
    return lax.linalg.triangular_solve(L, v, left_side=True, lower=True, transpose_a=transpose)


# ---------------------------------------------------------------------------
# Cholesky (METHOD.md §4)
# ---------------------------------------------------------------------------


def factor_block(X, B=None, C=None):
    """One block step of the BTA Cholesky (METHOD.md §4):

        L_D = chol(X),   Gt = L_D⁻ᵀ,   L_B = B Gt,   L_C = C Gt

    where X = D_i − S_i (Schur-complemented diagonal block) and C = C_i − R_i;
    ``B`` is None for the last block, ``C`` None without an arrow.  The explicit
    inverse (:func:`tri_inv`) plus a product costs the same time on CPU as LAPACK
    trsm (measured at b = 200–2000) and is needed anyway by the selected inversion.
    Returns (L_D, L_B, L_C, Gt), None where not defined.
    """
    LD = _chol(X)
    Gt = tri_inv(LD, transpose=True)
    LB = None if B is None else B @ Gt
    LC = None if C is None else C @ Gt
    return LD, LB, LC, Gt


def _factor_block_trsm(X, B=None, C=None):
    """:func:`factor_block` by triangular solves X L_D⁻ᵀ (no explicit inverse; Gt is None)."""
    LD = _chol(X)

    def right_solve(Y):
        return lax.linalg.triangular_solve(LD, Y, left_side=False, lower=True, transpose_a=True)

    return LD, None if B is None else right_solve(B), None if C is None else right_solve(C), None


def sweep(block, carry, nt: int, *, reverse: bool = False):
    """Run ``block(carry, i, last)`` over the time blocks i = 0..nt−1 (or backwards):
    a ``lax.scan`` over the nt−1 blocks that have a sub-diagonal neighbour and the
    final block peeled (``last=True``), so that no zero B-block work is done and the
    traced program does not grow with nt.  Indices, not sliced arrays, are scanned,
    so no input is copied; outputs go to buffers in ``carry`` (updated in place)."""

    def body(c, i):
        return block(c, i, False), None

    if reverse:
        carry = block(carry, nt - 1, True)
    if nt > 1:
        carry, _ = lax.scan(body, carry, jnp.arange(nt - 1), reverse=reverse)
    if not reverse:
        carry = block(carry, nt - 1, True)
    return carry


def bta_cholesky(Q: BTA) -> BTA:
    """Cholesky factor L of an SPD BTA matrix, Q = L Lᵀ (METHOD.md §4).

        S ← 0, R ← 0, T' ← T
        for i = 1..nt:
            L_D,i = chol(D_i − S),   L_C,i = (C_i − R) L_D,i⁻ᵀ,   T' ← T' − L_C,i L_C,iᵀ
            if i < nt:  L_B,i = B_i L_D,i⁻ᵀ,  S = L_B,i L_B,iᵀ,  R = L_C,i L_B,iᵀ
        L_T = chol(T')

    One :func:`sweep` (the last block peeled).  nt = 1 (empty scan) and a = 0
    (empty arrow) need no special case.  Executed flops ≈ (4–5)·nt·b³ (potrf b³/3,
    :func:`tri_inv` 2b³/3, one product 2b³, :func:`syrk` b³–2b³) against the
    (7/3)·nt·b³ of a potrf/trsm/syrk loop; the extra flops run at matmul rate, and
    the wall time matches a SciPy-BLAS block loop (benchmarks/kernels.py).
    """
    L, _, T = _factor_sweep(Q, keep=True)
    return L._replace(tip=_chol(T))


def bta_factor_logdet(Q: BTA) -> jax.Array:
    """log|Q| by the sweep of :func:`bta_cholesky` without storing the factor (the
    objective's use: only the Schur carries live between blocks, METHOD.md §7)."""
    _, ld, T = _factor_sweep(Q, keep=False)
    return ld + _logdet_tri(_chol(T))


def _factor_sweep(Q: BTA, *, keep: bool):
    """The block loop of :func:`bta_cholesky`: (L without its tip, or None unless
    ``keep``; Σ_i log|L_D,i|² when not ``keep``, else 0; the tip's Schur complement T')."""
    Q = _as_jax(Q)
    b, a = Q.b, Q.a
    dt = Q.diag.dtype
    # small blocks: trsm beats the explicit inverse (1.1–1.6x the SciPy loop at b = 50–100
    # against 0.9–1.4x; benchmarks/kernels.py), whose recursion only pays off above its base
    factor = factor_block if b > _TRI_INV_BASE else _factor_block_trsm

    def block(carry, i, last):
        S, R, T, L, ld = carry
        LD, LB, LC, _ = factor(Q.diag[i] - S, None if last else Q.lower[i], Q.arrow[i] - R)
        T = T - LC @ _mT(LC)
        if keep:
            L = L._replace(diag=L.diag.at[i].set(LD), arrow=L.arrow.at[i].set(LC))
        else:
            ld = ld + _logdet_tri(LD)
        if last:
            return S, R, T, L, ld
        if keep:
            L = L._replace(lower=L.lower.at[i].set(LB))
        return syrk(LB), LC @ _mT(LB), T, L, ld

    L0 = BTA(*(jnp.zeros_like(x) for x in Q)) if keep else None
    init = (jnp.zeros((b, b), dt), jnp.zeros((a, b), dt), Q.tip, L0, jnp.zeros((), dt))
    _, _, T, L, ld = sweep(block, init, Q.nt)
    return L, ld, T


def bta_logdet(L: BTA) -> jax.Array:
    """log|Q| = 2 Σ_i Σ_j log (L_D,i)_jj + 2 Σ_j log (L_T)_jj  (METHOD.md §4)."""
    return _logdet_tri(L.diag) + _logdet_tri(L.tip)


# ---------------------------------------------------------------------------
# Solves (METHOD.md §4)
# ---------------------------------------------------------------------------


def _split(r: jax.Array, nt: int, b: int):
    """Split a BTA-layout vector/matrix (N,) or (N, k) into (nt, b, k) and (a, k)."""
    r = jnp.asarray(r)
    vec = r.ndim == 1
    r2 = r[:, None] if vec else r
    u = r2[: nt * b].reshape(nt, b, r2.shape[1])
    return u, r2[nt * b :], vec


def _join(u: jax.Array, t: jax.Array, vec: bool) -> jax.Array:
    out = jnp.concatenate([u.reshape(-1, u.shape[-1]), t])
    return out[:, 0] if vec else out


def bta_solve_lower(L: BTA, r: jax.Array) -> jax.Array:
    """Forward substitution z = L⁻¹ r (METHOD.md §4).

        z_1 = L_D,1⁻¹ r_1,   z_i = L_D,i⁻¹ (r_i − L_B,i−1 z_{i−1}),
        z_T = L_T⁻¹ (r_T − Σ_i L_C,i z_i)

    ``r`` has shape (N,) or (N, k).
    """
    L = _as_jax(L)
    u, rt, vec = _split(r, L.nt, L.b)

    def block(carry, i, last):
        w, z = carry  # w = L_B,i−1 z_{i−1}
        zi = _trsv(L.diag[i], u[i] - w)
        w = w if last else L.lower[i] @ zi
        return w, z.at[i].set(zi)

    _, z = sweep(block, (jnp.zeros_like(u[0]), jnp.zeros_like(u)), L.nt)
    zt = _trsv(L.tip, rt - jnp.einsum("iab,ibk->ak", L.arrow, z))
    return _join(z, zt, vec)


def bta_solve_upper(L: BTA, z: jax.Array) -> jax.Array:
    """Back substitution x = L⁻ᵀ z (METHOD.md §4).

        x_T = L_T⁻ᵀ z_T,   x_nt = L_D,nt⁻ᵀ (z_nt − L_C,ntᵀ x_T),
        x_i = L_D,i⁻ᵀ (z_i − L_B,iᵀ x_{i+1} − L_C,iᵀ x_T),   i = nt−1..1
    """
    L = _as_jax(L)
    u, zt, vec = _split(z, L.nt, L.b)
    xt = _trsv(L.tip, zt, transpose=True)
    u = u - jnp.einsum("iab,ak->ibk", L.arrow, xt)

    def block(carry, i, last):
        x_next, x = carry
        v = u[i] if last else u[i] - _mT(L.lower[i]) @ x_next
        xi = _trsv(L.diag[i], v, transpose=True)
        return xi, x.at[i].set(xi)

    _, x = sweep(block, (jnp.zeros_like(u[0]), jnp.zeros_like(u)), L.nt, reverse=True)
    return _join(x, xt, vec)


def bta_solve(L: BTA, r: jax.Array) -> jax.Array:
    """x = Q⁻¹ r = L⁻ᵀ (L⁻¹ r) given the BTA Cholesky factor L of Q."""
    return bta_solve_upper(L, bta_solve_lower(L, r))


def bta_matvec(Q: BTA, x: jax.Array) -> jax.Array:
    """y = Q x for a symmetric BTA Q; x has shape (N,) or (N, k).

        y_i = D_i x_i + B_{i−1} x_{i−1} + B_iᵀ x_{i+1} + C_iᵀ x_T,
        y_T = Σ_i C_i x_i + T x_T
    """
    Q = _as_jax(Q)
    u, xt, vec = _split(x, Q.nt, Q.b)
    y = jnp.einsum("iab,ibk->iak", Q.diag, u) + jnp.einsum("icb,ck->ibk", Q.arrow, xt)
    y = y.at[1:].add(jnp.einsum("iab,ibk->iak", Q.lower, u[:-1]))
    y = y.at[:-1].add(jnp.einsum("iba,ibk->iak", Q.lower, u[1:]))
    yt = jnp.einsum("iab,ibk->ak", Q.arrow, u) + Q.tip @ xt
    return _join(y, yt, vec)


def bta_sample(L: BTA, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
    """Draw x ~ N(0, Q⁻¹) as x = L⁻ᵀ ε, ε ~ N(0, I) (Rue & Held 2005, Alg. 2.4).

    Returns an array of shape ``shape + (N,)``.
    """
    k = 1
    for s in shape:
        k *= s
    eps = jax.random.normal(key, (L.n, k), dtype=L.diag.dtype)
    return _mT(bta_solve_upper(L, eps)).reshape(*shape, L.n)


# ---------------------------------------------------------------------------
# Selected inversion (METHOD.md §5)
# ---------------------------------------------------------------------------


def selinv_block(H, WBt, WC, SD_next, SC_next, ST):
    """One step of the block Takahashi recurrence (METHOD.md §5).

    With G = L_D,i⁻¹, H = Gᵀ G = (D_i − S_i)⁻¹, WBt = (L_B,i G)ᵀ (None for the
    last block) and WC = L_C,i G (None when there is no arrow):

        Σ_B,iᵀ = −(WBt Σ_D,i+1 + WCᵀ Σ_C,i+1)
        Σ_C,i  = −(Σ_C,i+1 WBtᵀ + Σ_T WC)
        Σ_D,i  = H − Σ_B,iᵀ WBtᵀ − Σ_C,iᵀ WC

    i.e. METHOD.md's Σ_B,i = −(Σ_D,i+1 L_B,i + Σ_C,i+1ᵀ L_C,i) G_i,
    Σ_C,i = −(Σ_C,i+1 L_B,i + Σ_T L_C,i) G_i, Σ_D,i = (G_iᵀ − Σ_B,iᵀ L_B,i −
    Σ_C,iᵀ L_C,i) G_i, multiplied out and transposed so that no b x b product
    transposes its left operand (XLA's CPU matmul runs Aᵀ B at half the rate).
    Returns (Σ_D,i, Σ_B,iᵀ, Σ_C,i), None where not defined.
    """
    SD, SBt, SC = H, None, None
    if WBt is not None:
        SBt = -(WBt @ SD_next)
        if WC is not None:
            SBt = SBt - _mT(WC) @ SC_next
        SD = SD - SBt @ _mT(WBt)
    if WC is not None:
        SC = -(ST @ WC)
        if WBt is not None:
            SC = SC - SC_next @ _mT(WBt)
        SD = SD - _mT(SC) @ WC
    return SD, SBt, SC


def bta_selected_inverse(L: BTA) -> BTA:
    """Blocks of Σ = Q⁻¹ on the BTA pattern, from the Cholesky factor L.

        Σ_T = L_T⁻ᵀ L_T⁻¹,  then for i = nt..1 (a reverse :func:`sweep`) the
        block Takahashi step of :func:`selinv_block` with G_i = L_D,i⁻¹ formed
        explicitly (METHOD.md §5; PERFORMANCE.md §3: faster than trsm variants),
        here as G_iᵀ by :func:`tri_inv` and H_i = G_iᵀG_i by :func:`gram_upper`.

    Returns a :class:`BTA` holding Σ_D,i, Σ_B,i = Σ[i+1, i], Σ_C,i = Σ[T, i], Σ_T.
    ≈ 2.7x the factorisation's flops, mostly matrix products.
    """
    L = _as_jax(L)
    ST = gram_upper(tri_inv(L.tip, transpose=True))

    def block(carry, i, last):
        SD_next, SC_next, Sig = carry
        Gt = tri_inv(L.diag[i], transpose=True)
        WBt = None if last else Gt @ _mT(L.lower[i])  # (L_B G)ᵀ
        WC = L.arrow[i] @ _mT(Gt)  # L_C G
        SD, SBt, SC = selinv_block(gram_upper(Gt), WBt, WC, SD_next, SC_next, ST)
        Sig = Sig._replace(diag=Sig.diag.at[i].set(SD), arrow=Sig.arrow.at[i].set(SC))
        if not last:
            Sig = Sig._replace(lower=Sig.lower.at[i].set(_mT(SBt)))
        return SD, SC, Sig

    Sig0 = BTA(*(jnp.zeros_like(x) for x in L))._replace(tip=ST)
    init = (jnp.zeros_like(L.diag[0]), jnp.zeros_like(L.arrow[0]), Sig0)
    return sweep(block, init, L.nt, reverse=True)[2]


def bta_trace_contract(Sigma: BTA, dQ: BTA) -> jax.Array:
    """tr(Q⁻¹ dQ) for a symmetric BTA-pattern dQ, from the selected inverse Σ:

        Σ_i ⟨Σ_D,i, dD_i⟩ + 2 Σ_i ⟨Σ_B,i, dB_i⟩ + 2 Σ_i ⟨Σ_C,i, dC_i⟩ + ⟨Σ_T, dT⟩

    (⟨X, Y⟩ = Σ_jk X_jk Y_jk; off-diagonal blocks count twice by symmetry;
    METHOD.md §5).
    """
    return (
        jnp.sum(Sigma.diag * dQ.diag)
        + 2.0 * jnp.sum(Sigma.lower * dQ.lower)
        + 2.0 * jnp.sum(Sigma.arrow * dQ.arrow)
        + jnp.sum(Sigma.tip * dQ.tip)
    )


# ---------------------------------------------------------------------------
# Dense helpers (test oracles, small problems)
# ---------------------------------------------------------------------------


def bta_to_dense(Q: BTA, *, symmetric: bool = True) -> jax.Array:
    """Dense N x N matrix of a BTA.  ``symmetric=False`` keeps only the lower block
    pattern (use it for a Cholesky factor L)."""
    nt, b, a = Q.nt, Q.b, Q.a
    n = nt * b
    idx = jnp.arange(nt)
    blocks = jnp.zeros((nt, nt, b, b), Q.diag.dtype)
    blocks = blocks.at[idx, idx].set(Q.diag).at[idx[1:], idx[:-1]].set(Q.lower)
    if symmetric:
        blocks = blocks.at[idx[:-1], idx[1:]].set(_mT(Q.lower))
    main = blocks.transpose(0, 2, 1, 3).reshape(n, n)
    arrow = Q.arrow.transpose(1, 0, 2).reshape(a, n)
    upper = _mT(arrow) if symmetric else jnp.zeros((n, a), Q.diag.dtype)
    return jnp.concatenate(
        [jnp.concatenate([main, upper], axis=1), jnp.concatenate([arrow, Q.tip], axis=1)]
    )


def dense_to_bta(M: jax.Array, b: int, nt: int, a: int) -> BTA:
    """Extract the BTA blocks (lower pattern) of a dense (nt*b + a)-square matrix."""
    M = jnp.asarray(M)
    n = nt * b
    blocks = M[:n, :n].reshape(nt, b, nt, b).transpose(0, 2, 1, 3)
    idx = jnp.arange(nt)
    diag = blocks[idx, idx]
    lower = blocks[idx[1:], idx[:-1]]
    arrow = M[n:, :n].reshape(a, nt, b).transpose(1, 0, 2)
    return BTA(diag, lower, arrow, M[n:, n:])
