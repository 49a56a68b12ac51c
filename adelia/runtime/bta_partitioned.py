"""BTA Cholesky, log-determinant, solves and selected inversion with the time blocks split
over P devices (METHOD.md §11; Serinv's distributed BTA design, re-derived here in JAX).

Partition.  The nt time blocks are cut into P contiguous ranges of n = ⌈nt/P⌉ blocks (the
last ranges padded with identity blocks that couple to nothing: they add 0 to log|Q|, solve to
0 and are cut off again).  Every range keeps its first block ("top", t) and last block
("bottom", e) as *boundary* blocks and eliminates its interior blocks 1..n−2 in order.  The
interiors of different ranges do not touch, so in the order [interiors; boundaries; tip] the
matrix factors as

    [L_II   0 ] [L_IIᵀ  L_SIᵀ]          L_SI = Q_SI L_II⁻ᵀ,
    [L_SI  L_R] [ 0     L_Rᵀ ],         L_R L_Rᵀ = Q_SS − L_SI L_SIᵀ   (the reduced system)

with L_II block diagonal over the ranges.  Column i of a range's interior has non-zeros in
rows i+1 (next block), t (fill from eliminating block 1, carried down the range as Serinv's
"buffer" block) and the tip; per interior block (with X = D_i − S_i, W_i the current t-row
block, C_i − R_i the arrow block):

    L_D,i = chol(X),  G_i = L_D,i⁻¹,  L_B,i = B_i G_iᵀ,  L_W,i = W_i G_iᵀ,  L_C,i = (C_i − R_i) G_iᵀ
    S ← L_B L_Bᵀ,  R ← L_C L_Bᵀ,  W ← −L_W L_Bᵀ,
    D_t −= L_W L_Wᵀ,  C_t −= L_C L_Wᵀ,  T −= L_C L_Cᵀ.

After the sweep the boundary blocks (t_p, e_p), their coupling Q̃[e_p, t_p] = Wᵀ, the original
sub-diagonal block Q[t_{p+1}, e_p] between neighbouring ranges and the arrow blocks form a BTA
system of 2P blocks (ordered t_0, e_0, t_1, e_1, …); its tip is T − Σ_p (tip updates).  It is
all-gathered (the tip updates ``psum``-ed) and factorised, solved and selected-inverted
redundantly on every device with :mod:`adelia.runtime.bta`.  log|Q| = Σ_p Σ_i log|L_D,i|² +
log|L_R L_Rᵀ|.  The solve runs the interior forward substitution, the reduced solve, then the
interior back substitution; the selected inverse seeds the block Takahashi recurrence of every
range with the reduced system's Σ blocks and runs it backwards over the interior, rows
{i+1, t, tip}:

    Σ[i+1,i] = −(Σ[i+1,i+1] L_B + Σ[t,i+1]ᵀ L_W + Σ[T,i+1]ᵀ L_C) G
    Σ[t,i]   = −(Σ[t,i+1] L_B + Σ[t,t] L_W + Σ[T,t]ᵀ L_C) G
    Σ[T,i]   = −(Σ[T,i+1] L_B + Σ[T,t] L_W + Σ_T L_C) G
    Σ[i,i]   = GᵀG − (Σ[i+1,i]ᵀ L_B + Σ[t,i]ᵀ L_W + Σ[T,i]ᵀ L_C) G

Unlike Serinv, the first range is treated like the others (its first block is a boundary
too, 2P reduced blocks instead of 2P − 1): every device runs the same program, as
``shard_map`` needs.  Each range needs n ≥ 2 blocks, so nt < 2P uses ⌊nt/2⌋ partitions
(:func:`partitions`); one partition is the single-device kernels.

Everything runs inside ``jax.shard_map`` over a 1-D mesh with axis ``"t"``; the
collectives are ``all_gather`` (boundary blocks, 2 per device) and ``psum`` (interior
log-determinants, tip and arrow contributions).

References: METHOD.md §4, §5, §11; Maillou et al., arXiv:2503.17528 (Serinv, ``d_pobtaf``,
``d_pobtasi``); Takahashi, Fagan, Chen (1973).
"""

from __future__ import annotations

__all__ = ["PartitionedFactor", "partitions", "time_mesh", "pbta_cholesky", "pbta_logdet",
           "pbta_solve", "pbta_solve_upper", "pbta_selected_inverse"]

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from adelia.runtime.bta import (BTA, _logdet_tri, _mT, bta_cholesky, bta_logdet, bta_selected_inverse,
                                bta_solve, bta_solve_upper, factor_block, gram_upper, syrk, tri_inv)

jax.config.update("jax_enable_x64", True)

AXIS = "t"


def partitions(nt: int, P: int) -> tuple[int, int]:
    """(partitions used, blocks per partition n) for nt time blocks on P devices: every
    partition needs a top and a bottom boundary block, so at most ⌊nt/2⌋ partitions."""
    p = max(1, min(int(P), nt // 2))
    return p, -(-nt // p)


def time_mesh(devices) -> Mesh:
    """The 1-D mesh (axis ``"t"``) over these devices."""
    return Mesh(np.asarray(list(devices)), (AXIS,))


@jax.tree_util.register_pytree_node_class
class PartitionedFactor:
    """The factor of :func:`pbta_cholesky`: per-device interior blocks (sharded over the
    mesh, leading axis P·n) and the reduced system's Cholesky factor (replicated)."""

    def __init__(self, LD, LB, LW, LC, ld, red: BTA, mesh: Mesh, nt: int, a: int):
        self.LD, self.LB, self.LW, self.LC, self.ld, self.red = LD, LB, LW, LC, ld, red
        self.mesh, self.nt, self.a = mesh, nt, a

    def tree_flatten(self):
        return (self.LD, self.LB, self.LW, self.LC, self.ld, self.red), (self.mesh, self.nt, self.a)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)

    @property
    def P(self) -> int:
        return self.mesh.devices.size

    @property
    def b(self) -> int:
        return self.LD.shape[-1]

    @property
    def n(self) -> int:
        """N = nt·b + a."""
        return self.nt * self.b + self.a


def _pad(Q: BTA, P: int, n: int) -> BTA:
    """Q padded to P·n time blocks (identity diagonal, zero coupling) with ``lower`` of length
    P·n: lower[j] = Q[j+1, j], so the last block of a range holds its coupling to the next."""
    nt, b, a = Q.nt, Q.b, Q.a
    extra = P * n - nt
    dt = Q.diag.dtype
    diag = jnp.concatenate([Q.diag, jnp.broadcast_to(jnp.eye(b, dtype=dt), (extra, b, b))])
    lower = jnp.concatenate([Q.lower, jnp.zeros((extra + 1, b, b), dt)])
    arrow = jnp.concatenate([Q.arrow, jnp.zeros((extra, a, b), dt)])
    return BTA(diag, lower, arrow, Q.tip)


def _shard_map(fn, mesh, in_specs, out_specs):
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def pbta_cholesky(Q: BTA, mesh: Mesh) -> PartitionedFactor:
    """Partitioned Cholesky of an SPD BTA matrix over the devices of ``mesh`` (module doc).
    Needs nt ≥ 2·P (see :func:`partitions`; the caller picks the mesh)."""
    Q = BTA(*(jnp.asarray(x) for x in Q))
    P_ = mesh.devices.size
    a0 = Q.a
    if a0 == 0:
        # no arrow: a decoupled unit tip instead (log 1 = 0), as zero-size operands of a
        # shard_map fail to lower in this JAX (0.12: "expected ... GlobalToLocalShape")
        Q = BTA(Q.diag, Q.lower, jnp.zeros((Q.nt, 1, Q.b), Q.diag.dtype), jnp.eye(1, dtype=Q.diag.dtype))
    nt, b, a = Q.nt, Q.b, Q.a
    n = -(-nt // P_)
    if n < 2:
        raise ValueError(f"pbta_cholesky: {nt} time blocks cannot fill {P_} partitions of ≥ 2 blocks")
    Qp = _pad(Q, P_, n)
    dt = Q.diag.dtype

    def local(D, B, C, T):
        ninner = n - 2

        def step(c, i):
            S, R, W, Dt, Ct, Tt, ld = c
            LD, LB, LC, Gt = factor_block(D[i] - S, B[i], C[i] - R)
            LW = W @ Gt
            c = (syrk(LB), LC @ _mT(LB), -(LW @ _mT(LB)), Dt + syrk(LW), Ct + LC @ _mT(LW),
                 Tt + LC @ _mT(LC), ld + _logdet_tri(LD))
            return c, (LD, LB, LW, LC)

        zb, za = jnp.zeros((b, b), dt), jnp.zeros((a, b), dt)
        init = (zb, za, _mT(B[0]), zb, za, jnp.zeros((a, a), dt), jnp.zeros((), dt))
        (S, R, W, Dt, Ct, Tt, ld), (LD, LB, LW, LC) = lax.scan(step, init, jnp.arange(1, n - 1))

        def place(x, shape):   # interior i at position i; boundaries hold zeros
            return jnp.concatenate([jnp.zeros((1, *shape), dt), x, jnp.zeros((1, *shape), dt)]) if ninner \
                else jnp.zeros((n, *shape), dt)

        red_d = jnp.stack([D[0] - Dt, D[n - 1] - S])
        red_l = jnp.stack([_mT(W), B[n - 1]])
        red_a = jnp.stack([C[0] - Ct, C[n - 1] - R])
        g = partial(lax.all_gather, axis_name=AXIS, tiled=True)
        red = BTA(g(red_d), g(red_l)[:-1], g(red_a), T - lax.psum(Tt, AXIS))
        Lr = bta_cholesky(red)
        return (place(LD, (b, b)), place(LB, (b, b)), place(LW, (b, b)), place(LC, (a, b)),
                lax.psum(ld, AXIS), Lr)

    t = P(AXIS)
    out = _shard_map(local, mesh, (t, t, t, P()), (t, t, t, t, P(), P()))(
        Qp.diag, Qp.lower, Qp.arrow, Qp.tip)
    return PartitionedFactor(*out, mesh, nt, a0)


def pbta_logdet(F: PartitionedFactor) -> jax.Array:
    """log|Q| = Σ interior log|L_D,i|² + log|reduced system|."""
    return F.ld + bta_logdet(F.red)


def _split_rhs(F: PartitionedFactor, r):
    r = jnp.asarray(r)
    vec = r.ndim == 1
    r2 = r[:, None] if vec else r
    nt, b = F.nt, F.b
    Pn = F.LD.shape[0]
    u = r2[: nt * b].reshape(nt, b, -1)
    u = jnp.concatenate([u, jnp.zeros((Pn - nt, b, u.shape[-1]), u.dtype)])
    rt = r2[nt * b:]
    rt = jnp.concatenate([rt, jnp.zeros((F.red.tip.shape[-1] - F.a, rt.shape[-1]), rt.dtype)])
    return u, rt, vec


def _join(F: PartitionedFactor, x, xt, vec):
    out = jnp.concatenate([x[: F.nt].reshape(F.nt * F.b, -1), xt[: F.a]])
    return out[:, 0] if vec else out


def _solve_impl(F: PartitionedFactor, r, *, forward: bool):
    u, rt, vec = _split_rhs(F, r)
    n = F.LD.shape[0] // F.P
    b = F.b

    def local(LD, LB, LW, LC, u, rt, Lr):
        k = u.shape[-1]
        p = lax.axis_index(AXIS)
        z = u
        if forward:
            def fstep(c, i):
                w, at, aT = c
                zi = lax.linalg.triangular_solve(LD[i], u[i] - w, left_side=True, lower=True)
                return (LB[i] @ zi, at + LW[i] @ zi, aT + LC[i] @ zi), zi

            zero = jnp.zeros((b, k), u.dtype)
            (w, at, aT), zi = lax.scan(fstep, (zero, zero, jnp.zeros_like(rt)), jnp.arange(1, n - 1))
            z = u.at[1:n - 1].set(zi)
            red_rhs = jnp.stack([u[0] - at, u[n - 1] - w])
            rr = jnp.concatenate([lax.all_gather(red_rhs, AXIS, tiled=True).reshape(-1, k),
                                  rt - lax.psum(aT, AXIS)])
            xr = bta_solve(Lr, rr)
        else:
            red_rhs = jnp.stack([u[0], u[n - 1]])
            rr = jnp.concatenate([lax.all_gather(red_rhs, AXIS, tiled=True).reshape(-1, k), rt])
            xr = bta_solve_upper(Lr, rr)
        xs = xr[: Lr.nt * b].reshape(Lr.nt, b, k)
        xT = xr[Lr.nt * b:]
        xt, xe = xs[2 * p], xs[2 * p + 1]

        def bstep(x_next, i):
            v = z[i] - _mT(LB[i]) @ x_next - _mT(LW[i]) @ xt - _mT(LC[i]) @ xT
            xi = lax.linalg.triangular_solve(LD[i], v, left_side=True, lower=True, transpose_a=True)
            return xi, xi

        _, xi = lax.scan(bstep, xe, jnp.arange(1, n - 1), reverse=True)
        x = jnp.concatenate([xt[None], xi, xe[None]])
        return x, xT

    t = P(AXIS)
    x, xT = _shard_map(local, F.mesh, (t, t, t, t, t, P(), P()), (t, P()))(
        F.LD, F.LB, F.LW, F.LC, u, rt, F.red)
    return _join(F, x, xT, vec)


def pbta_solve(F: PartitionedFactor, r) -> jax.Array:
    """x = Q⁻¹ r; ``r`` of shape (N,) or (N, k) in the BTA layout."""
    return _solve_impl(F, r, forward=True)


def pbta_solve_upper(F: PartitionedFactor, z) -> jax.Array:
    """x = L⁻ᵀ z for the permuted factor L of this module (Q = Πᵀ L Lᵀ Π): with z ~ N(0, I)
    a draw from N(0, Q⁻¹), though not the one :func:`adelia.runtime.bta.bta_solve_upper`
    gives for the same z."""
    return _solve_impl(F, z, forward=False)


def pbta_selected_inverse(F: PartitionedFactor) -> BTA:
    """Blocks of Σ = Q⁻¹ on the BTA pattern (same layout as
    :func:`adelia.runtime.bta.bta_selected_inverse`), assembled from the devices' ranges."""
    n = F.LD.shape[0] // F.P
    b = F.b

    def local(LD, LB, LW, LC, Lr):
        p = lax.axis_index(AXIS)
        Sr = bta_selected_inverse(Lr)
        lower_r = jnp.concatenate([Sr.lower, jnp.zeros((1, b, b), Sr.lower.dtype)])
        Stt, Sbb, Sbt, Snext = Sr.diag[2 * p], Sr.diag[2 * p + 1], lower_r[2 * p], lower_r[2 * p + 1]
        STt, STb, ST = Sr.arrow[2 * p], Sr.arrow[2 * p + 1], Sr.tip

        def step(c, i):
            Sd, Sw, Sc = c   # Σ[i+1,i+1], Σ[t,i+1], Σ[T,i+1]
            # with Gt = L_D⁻ᵀ (tri_inv) and the transposed products A = (L_B G)ᵀ, AW = (L_W G)ᵀ,
            # AC = (L_C G)ᵀ, the recurrence of the module doc reads (no b x b product transposes
            # its left operand, which XLA's CPU matmul runs at half rate; bta.selinv_block)
            #   Σ[i+1,i]ᵀ = −(A Σ[i+1,i+1] + AW Σ[t,i+1] + AC Σ[T,i+1])
            #   Σ[t,i] = −(Σ[t,i+1] Aᵀ + Σ[t,t] AWᵀ + Σ[T,t]ᵀ ACᵀ),  Σ[T,i] likewise
            #   Σ[i,i] = Gt Gtᵀ − Σ[i+1,i]ᵀ Aᵀ − (AW Σ[t,i])ᵀ − Σ[T,i]ᵀ ACᵀ
            Gt = tri_inv(LD[i], transpose=True)
            A, AW, AC = Gt @ _mT(LB[i]), Gt @ _mT(LW[i]), Gt @ _mT(LC[i])
            SBt = -(A @ Sd + AW @ Sw + AC @ Sc)
            SW = -(Sw @ _mT(A) + Stt @ _mT(AW) + _mT(STt) @ _mT(AC))
            SC = -(Sc @ _mT(A) + STt @ _mT(AW) + ST @ _mT(AC))
            SD = gram_upper(Gt) - SBt @ _mT(A) - _mT(AW @ SW) - _mT(SC) @ _mT(AC)
            return (SD, SW, SC), (SD, _mT(SBt), SC)

        (_, Sw, _), (SD, SB, SC) = lax.scan(step, (Sbb, _mT(Sbt), STb), jnp.arange(1, n - 1), reverse=True)
        diag = jnp.concatenate([Stt[None], SD, Sbb[None]])
        lower = jnp.concatenate([_mT(Sw)[None], SB, Snext[None]])
        arrow = jnp.concatenate([STt[None], SC, STb[None]])
        return diag, lower, arrow, ST

    t = P(AXIS)
    diag, lower, arrow, ST = _shard_map(local, F.mesh, (t, t, t, t, P()), (t, t, t, P()))(
        F.LD, F.LB, F.LW, F.LC, F.red)
    nt, a = F.nt, F.a
    return BTA(diag[:nt], lower[: nt - 1], arrow[:nt, :a], ST[:a, :a])
