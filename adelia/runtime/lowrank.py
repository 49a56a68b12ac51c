"""A factor of M = Q_c + C_RᵀC_R (R: some or all of the constraint rows) that never forms
C_RᵀC_R: a sparse factor of S = Q_c + γ F Fᵀ and a rank-2|R| correction.

Why. When a flat fixed effect and an intrinsic field share a direction the data cannot see (an
intercept beside a sum-to-zero besag, rw or bym2), Q_c = Q_p + AᵀWA is singular, and the Laplace
algebra works with M = Q_c + CᵀC instead (same restriction to {C x = 0}, see
:mod:`adelia.runtime.laplace`). But a sum-to-zero row c makes ccᵀ dense over its component: the
factor of M carries an n × n dense block, every pattern-sized vector grows by n², and on S2 a
factorisation cost 20× the one of Q_c's own pattern.

How. Pick constraint rows R and one node j_r for each, F = [e_{j_r}]: S = Q_c + γ F Fᵀ is
sparse and positive definite when every null vector of Q_c is non-zero at some j_r, and
M_R = Q_c + C_RᵀC_R is positive definite when C_R sees every null vector (both checked once per
model, :func:`adelia.runtime.laplace_sparse.qc_pattern`, which keeps R as small as it can: one
row when Q_c's only null direction is an intercept against a field, however many sum-to-zero
rows C has). M_R equals Q_c on {C x = 0}, which is all the Laplace algebra asks of the matrix it
uses in Q_c's place (the log-determinant identity, kriging, the constrained covariance). Then
M_R = S + U D Uᵀ with U = [C_Rᵀ | F], D = diag(I, −γ I), and with P = S⁻¹U,
K = D⁻¹ + UᵀP (Woodbury; Hager 1989, "Updating the inverse of a matrix", SIAM Review 31):

    M⁻¹ b = S⁻¹b − P K⁻¹ Uᵀ S⁻¹ b,    log|M| = log|S| + log|I + D UᵀP|,
    M⁻¹ = S⁻¹ − P K⁻¹ Pᵀ.

Kriging needs M⁻¹Cᵀ for every row of C: S⁻¹Cᵀ comes with P in one solve of k + |R| columns
(2k when R is every row).

Draws. A draw from N(0, M⁻¹) needs a square root of M, which the correction does not give; but
every draw is constrained by kriging afterwards, and the constrained covariance has one:
with Σ_S = Z(ZᵀSZ)⁻¹Zᵀ (S kriged onto null(C)), H = Σ_S F and T = I − γ FᵀH,

    Σ_c = Z(ZᵀQ_cZ)⁻¹Zᵀ = Z(ZᵀSZ − γ ZᵀFFᵀZ)⁻¹Zᵀ = Σ_S + γ H T⁻¹ Hᵀ

(Woodbury again, on the reduced matrix), a positive low-rank addition: x = x_S + √γ H T^(−½) ξ
with x_S a kriged draw under S and ξ ~ N(0, I_|R|). Cx = 0 already, so the caller's kriging leaves
it unchanged. γ scales with Q_c's diagonal (it cancels in every result; a matched scale keeps S
well conditioned) and carries no gradient, since M does not depend on it.
"""

from __future__ import annotations

__all__ = ["LowRankCorrected"]

import jax
import jax.numpy as jnp


class LowRankCorrected:
    """Factor handle of M = S + U D Uᵀ from a factor handle of S (see the module docstring).

    ``base``: factor of S (``solve``, ``logdet``, ``sample_standard``, and optionally
    ``inverse`` and ``sigma_pattern``); ``C``: (k, N) constraint rows; ``J``: the nodes of F, one
    per row in ``R`` (the constraint rows in the correction; every row by default);
    ``gamma``: the scale γ; ``rows, cols``: the pattern's entries (for :meth:`sigma_pattern`).
    """

    def __init__(self, base, C: jax.Array, J: jax.Array, gamma: jax.Array, rows=None, cols=None, R=None):
        self.base, self.C, self.J = base, C, J
        self.gamma = jax.lax.stop_gradient(gamma)
        self.rows, self.cols = rows, cols
        N, k = C.shape[1], C.shape[0]
        R = jnp.arange(k) if R is None else jnp.asarray(R)
        kr = len(J)
        self.k, self.kr = k, kr
        F = jnp.zeros((N, kr), C.dtype).at[J, jnp.arange(kr)].set(1.0)
        self.F = F
        Y = base.solve(jnp.concatenate([C.T, F], axis=1))                      # S⁻¹[Cᵀ | F], one solve
        self.SC = Y[:, :k]                                                       # S⁻¹Cᵀ
        self.U = jnp.concatenate([C[R].T, F], axis=1)                            # (N, 2|R|)
        self.d = jnp.concatenate([jnp.ones(kr, C.dtype), -self.gamma * jnp.ones(kr, C.dtype)])
        self.P = jnp.concatenate([self.SC[:, R], Y[:, k:]], axis=1)              # S⁻¹U
        self.UtP = self.U.T @ self.P
        self.K = jnp.diag(1.0 / self.d) + self.UtP

    @property
    def solved_constraints(self):
        """M⁻¹Cᵀ from the columns already solved (no solve): S⁻¹Cᵀ − P K⁻¹ UᵀS⁻¹Cᵀ."""
        return self.SC - self.P @ jnp.linalg.solve(self.K, self.U.T @ self.SC)

    #: a draw uses |R| standard normals beyond the N of the base factor's draw
    @property
    def extra_normals(self) -> int:
        return self.kr

    def solve(self, b):
        y = self.base.solve(b)
        return y - self.P @ jnp.linalg.solve(self.K, self.U.T @ y)

    def logdet(self):
        small = jnp.eye(2 * self.kr, dtype=self.K.dtype) + self.d[:, None] * self.UtP
        return self.base.logdet() + jnp.linalg.slogdet(small)[1]

    def cubic_moments(self, A, W, Z, a, c):
        """[X a, (X∘X∘X) c] for X = M⁻¹Aᵀ − W Zᵀ, from the base factor's: M⁻¹Aᵀ = S⁻¹Aᵀ −
        P K⁻¹ Uᵀ S⁻¹Aᵀ = S⁻¹Aᵀ − P (A P K⁻ᵀ)ᵀ, one more low-rank term (A: a ``RowSparse``)."""
        APK = jnp.linalg.solve(self.K, (A @ self.P).T).T
        return self.base.cubic_moments(A, jnp.concatenate([self.P, W], axis=1), jnp.concatenate([APK, Z], axis=1),
                                       a, c)

    def inverse(self):
        return self.base.inverse() - self.P @ jnp.linalg.solve(self.K, self.P.T)

    def sigma_pattern(self):
        """M⁻¹ on the pattern's entries (``rows``, ``cols``)."""
        W = jnp.linalg.solve(self.K, self.P.T)                                   # K⁻¹Pᵀ, (2|R|, N)
        return self.base.sigma_pattern() - jnp.sum(self.P[self.rows] * W.T[self.cols], axis=1)

    def _krige_s(self, y):
        """Kriging onto {C x = 0} under S: y − S⁻¹Cᵀ(CS⁻¹Cᵀ)⁻¹C y (columns of y)."""
        return y - self.SC @ jnp.linalg.solve(self.C @ self.SC, self.C @ y)

    def sample_standard(self, z):
        """A draw whose kriging onto {C x = 0} is N(0, Σ_c): z has N + |R| rows (standard normals)."""
        N = self.C.shape[1]
        x_s = self._krige_s(self.base.sample_standard(z[:N]))
        H = self._krige_s(self.P[:, self.kr:])                                   # Σ_S F
        T = jnp.eye(self.kr, dtype=H.dtype) - self.gamma * H[self.J]            # I − γ FᵀΣ_S F
        lam, V = jnp.linalg.eigh(T)
        root = (V / jnp.sqrt(lam)) @ V.T                                         # T^(−½)
        return x_s + jnp.sqrt(self.gamma) * H @ (root @ z[N:])
