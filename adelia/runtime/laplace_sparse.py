"""The Laplace problem on the general sparse path: Q_p, Q_c and A as sparse patterns, CHOLMOD
factorisations and the supernodal selected inverse (:mod:`adelia.runtime.sparse`).

Same mathematics and custom VJP as :class:`adelia.runtime.laplace.LaplaceProblem` (whose
methods it reuses); what changes is the representation:

* Q_c + CᵀC lives on one fixed pattern (Q_p's blocks ∪ AᵀA ∪ CᵀC ∪ diagonal), analysed once
  (nested dissection); per θ only its values change: Q_p's pieces scatter c_j(θ)·K_j into it,
  AᵀWA is a segment sum over the pairs of non-zeros of each row of A.
* log|Q_c| and solves are CHOLMOD calls (host callbacks) with exact VJPs (the trace identity
  with the selected inverse; METHOD.md §6), so the gradient costs a selected inversion, not d
  factorisations.
* Marginal variances of x and η come from Σ on the pattern (diag(AΣAᵀ)_i needs only the pairs
  of row i, all inside the pattern), corrected for the constraints with k solves.

Latent marginals are Gaussian here (simplified Laplace needs Σ's columns: dense path).
"""

from __future__ import annotations

__all__ = ["SparseLaplaceProblem", "PatternMatrix", "RowSparse", "QcPattern", "qc_pattern"]

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.errors import ModelError
from adelia.runtime.problem import Problem, as_problem
from adelia.runtime import sparse
from adelia.runtime.arrays import device
from adelia.runtime.host import host_call
from adelia.runtime.laplace import GaussianApprox, LaplaceProblem
from adelia.runtime.lowrank import LowRankCorrected
from adelia.runtime.numpy_eval import numpy_eval

#: CᵀC makes dense blocks over constrained components; above this many entries it is left out
CTC_MAX_NNZ = 4_000_000
#: the largest latent size for which simplified-Laplace coefficients are computed on this path
#: (R-INLA's own rule switches them off at 5000 latent nodes, RINLA.md §6.2)
SLA_COVARIANCE_MAX = 5000


class PatternMatrix:
    """A symmetric matrix given by its values on a fixed (both-triangle) pattern."""

    def __init__(self, values, rows, cols, n):
        self.values, self.rows, self.cols, self.n = values, rows, cols, n

    def __matmul__(self, x):
        return jax.ops.segment_sum(self.values * x[self.cols], self.rows, num_segments=self.n)


class RowSparse:
    """A (m × N) sparse matrix as COO arrays, with ``A @ x`` and ``A.T @ y`` by segment sums."""

    def __init__(self, A: sp.spmatrix):
        self.host_T = sp.csr_matrix(A.T)        # Aᵀ on the host, for sparse_cubic_moments
        A = sp.coo_matrix(A)
        self.shape = A.shape
        self.rows = device(A.row, dtype=np.int64)
        self.cols = device(A.col, dtype=np.int64)
        self.vals = device(A.data)

    def __matmul__(self, x):
        if x.ndim == 1:
            return jax.ops.segment_sum(self.vals * x[self.cols], self.rows, num_segments=self.shape[0])
        return jax.ops.segment_sum(self.vals[:, None] * x[self.cols], self.rows, num_segments=self.shape[0])

    def T_dense(self):
        """Aᵀ as a dense (N × m) array (right-hand sides of Σ Aᵀ)."""
        return jnp.zeros((self.shape[1], self.shape[0])).at[self.cols, self.rows].add(self.vals)

    def rowwise_dot(self, M):
        """Σ_j A_ij M_ij for each row i (M dense, m × N)."""
        return jax.ops.segment_sum(self.vals * M[self.rows, self.cols], self.rows, num_segments=self.shape[0])

    @property
    def T(self):
        return _Transposed(self)


class _Transposed:
    def __init__(self, A: RowSparse):
        self.A = A

    def __matmul__(self, y):
        A = self.A
        return jax.ops.segment_sum(A.vals * y[A.rows], A.cols, num_segments=A.shape[1])


def cubic_moments(F, A: RowSparse, W, Z, a, c):
    """[X a, (X∘X∘X) c] for X = F⁻¹Aᵀ − W Zᵀ, built in the program: the fallback of factor
    handles without a host-side ``cubic_moments`` (the BTA factor)."""
    X = F.solve(A.T_dense()) - W @ Z.T
    return jnp.stack([X @ a, X ** 3 @ c])


def _sample_host(analysis, values, z):
    with analysis._lock:
        F = analysis._factor_cached(np.asarray(values))
        return np.asarray(F.sample_standard(np.asarray(z))).reshape(np.shape(z))


def _sigma_host(analysis, values):
    with analysis._lock:
        F = analysis._factor_cached(np.asarray(values))
        return np.asarray(F.selinv().pattern_values())


class SparseFactor:
    """Factor handle for Q_c given by its pattern values (CHOLMOD through callbacks)."""

    def __init__(self, values, analysis):
        self.values, self.analysis = values, analysis

    def solve(self, b):
        return sparse.sparse_solve(self.values, b, self.analysis)

    def logdet(self):
        return sparse.sparse_logdet(self.values, self.analysis)

    def inverse(self):
        """The whole of Q⁻¹ (N solves: for simplified-Laplace coefficients of moderate N)."""
        return self.solve(jnp.eye(self.analysis.n))

    def sample_standard(self, z):
        return host_call(partial(_sample_host, self.analysis), jax.ShapeDtypeStruct(z.shape, jnp.float64),
                         self.values, z)

    def cubic_moments(self, A: RowSparse, W, Z, a, c):
        """[X a, (X∘X∘X) c] for X = Q⁻¹Aᵀ − W Zᵀ (:func:`adelia.runtime.sparse.sparse_cubic_moments`)."""
        return sparse.sparse_cubic_moments(self.values, A.host_T, W, Z, a, c, self.analysis)

    def sigma_pattern(self):
        return host_call(partial(_sigma_host, self.analysis), jax.ShapeDtypeStruct(self.values.shape, jnp.float64),
                         self.values)


class SparseLaplaceProblem(LaplaceProblem):
    @property
    def supports_sla(self) -> bool:
        """Simplified-Laplace coefficients need Cov(η, x_j) for every j: A Q_c⁻¹, min(m, N)
        solves with the sparse factor and m·N numbers, affordable below this size."""
        return self.model.N <= SLA_COVARIANCE_MAX

    def _setup_matrices(self, model: Problem) -> None:
        if model.copies:
            raise ModelError("copy with an estimated beta is not supported on the sparse path yet",
                             hint="use solver = \"dense\" or fix beta")
        N = model.N
        A = sp.csr_matrix(model.A)
        self.A = RowSparse(A)
        pattern, ctc, J, R = qc_pattern(model, A)
        self.use_ctc = ctc is not None
        self.J = None if J is None else device(J)
        self.R = None if R is None else np.asarray(R)
        self.analysis = an = self._analyse(pattern)
        self.nnz = an.nnz
        self.prow, self.pcol = device(an.rows), device(an.cols)
        key = np.asarray(an.cols) * N + np.asarray(an.rows)

        def positions(M):
            M = sp.coo_matrix(M)
            k = M.col.astype(np.int64) * N + M.row
            return np.searchsorted(key, k), M.data

        def summed(p, v):
            return device(np.bincount(p, weights=v, minlength=self.nnz).astype(float))

        self.fixed_vals = summed(*positions(sp.diags(self.fixed_diag_np)))
        self.sparse_pieces = []
        for c in model.components:
            for K, coef in zip(c.matrices, c.coefs):
                p, v = positions(_embed(K, c.offset, N))
                self.sparse_pieces.append((device(p), device(v), coef, device(c.theta_index, dtype=np.int64)))
        p, v = positions(ctc) if self.use_ctc else (np.zeros(0, dtype=np.int64), np.zeros(0))
        self.ctc_vals = summed(p, v)
        # pairs of non-zeros of each row of A: (position in the pattern, row, a_ij a_ik), row by
        # row and, within a row, j slower than k
        counts = np.diff(A.indptr).astype(np.int64)
        row_of = np.repeat(np.arange(A.shape[0], dtype=np.int64), counts)
        first = np.repeat(np.arange(A.nnz, dtype=np.int64), counts[row_of])
        starts = np.repeat(A.indptr[:-1].astype(np.int64)[row_of], counts[row_of])
        second = starts + (np.arange(len(first), dtype=np.int64) - np.repeat(np.cumsum(counts[row_of]) - counts[row_of],
                                                                             counts[row_of]))
        jj, kk = A.indices[first].astype(np.int64), A.indices[second].astype(np.int64)
        self.pair_row = device(row_of[first])
        self.pair_pos = device(np.searchsorted(key, kk * N + jj))
        self.pair_val = device(A.data[first] * A.data[second])
        diag_pos = np.searchsorted(key, np.arange(N) * N + np.arange(N))
        self.diag_pos = device(diag_pos)
        if J is not None:
            self.J_pos = device(diag_pos[np.asarray(J)])

    @property
    def n_normals(self) -> int:
        """N, plus one per row of the low-rank correction (see :mod:`adelia.runtime.lowrank`)."""
        return self.model.N + (0 if self.J is None else len(self.J))

    def _analyse(self, pattern: sp.csc_matrix):
        """The solver's view of the pattern (rows, cols and nnz in its value order): CHOLMOD's analysis."""
        return sparse.analyse(pattern)

    # ---- the matrices ----
    def Qp(self, theta):
        vals = self.fixed_vals
        for pos, v, coef, idx in self.sparse_pieces:
            vals = vals.at[pos].add(coef(theta[idx]) * v)
        return PatternMatrix(vals, self.prow, self.pcol, self.model.N)

    def factor_qc(self, w, theta, Qp):
        awa = jax.ops.segment_sum(w[self.pair_row] * self.pair_val, self.pair_pos, num_segments=self.nnz)
        values = Qp.values + self.ctc_vals + awa
        if self.J is None:
            return self._make_factor(values)
        # Q_c is singular: factor S = Q_c + γ F_J F_Jᵀ and correct (adelia.runtime.lowrank)
        gamma = correction_scale(values[self.diag_pos], self.model.C)
        base = self._make_factor(values.at[self.J_pos].add(jax.lax.stop_gradient(gamma)))
        return LowRankCorrected(base, self.C, self.J, gamma, self.prow, self.pcol, self.R)

    def _make_factor(self, values):
        return SparseFactor(values, self.analysis)

    # ---- marginals ----
    def gaussian(self, theta, x_mode=None, sla=False, nodes=None):
        """Gaussian marginals from the selected inverse; with ``sla`` also the simplified-Laplace
        coefficients: of every node from Cov(η, x) = A Σ_c (m solves with Aᵀ, or N with the
        identity where m ≥ N; see :attr:`supports_sla`), or of ``nodes`` only (R-INLA's
        adaptive strategy) from their columns of Σ, one solve each."""
        # a likelihood quadratic in η has ∂³log p/∂η³ = 0: both coefficients are exactly zero, so
        # the columns of Σ they would be made from are not solved for
        sla = sla and not self.quadratic
        x = self.mode(theta) if x_mode is None else x_mode
        eta = self.eta(x, theta)
        w = self._derivs(eta, theta)[1]
        F = self.factor_qc(w, theta, self.Qp(theta))
        sig = F.sigma_pattern()
        var = sig[self.diag_pos]
        eta_var = jax.ops.segment_sum(self.pair_val * sig[self.pair_pos], self.pair_row, num_segments=self.model.m)
        if self.C.shape[0]:
            V = F.solve(self.C.T)
            S_inv = jnp.linalg.inv(self.C @ V)
            var = var - jnp.sum((V @ S_inv) * V, axis=1)
            AV = self.A @ V
            eta_var = eta_var - jnp.sum((AV @ S_inv) * AV, axis=1)
        sd = jnp.sqrt(jnp.clip(var, 0.0))
        eta_var = jnp.clip(eta_var, 0.0)
        if not sla:
            zeros = jnp.zeros_like(x)
            return GaussianApprox(x, sd, eta, jnp.sqrt(eta_var), zeros, zeros)
        N, m = self.model.N, self.model.m
        if nodes is None and m < N:
            # every node: Cov(x, η) = Σ_c Aᵀ = Σ Aᵀ − V S⁻¹ (A V)ᵀ, m solves, and only its column
            # sums leave the host call that makes it
            W, Z = (V, AV @ S_inv.T) if self.C.shape[0] else (jnp.zeros((N, 0)), jnp.zeros((m, 0)))
            d3 = self._third(eta, theta)
            u = F.cubic_moments(self.A, W, Z, d3 * eta_var, d3)
            gamma1, gamma3 = self._sla_coefficients(sd, u[0], u[1], np.arange(N))
            return GaussianApprox(x, sd, eta, jnp.sqrt(eta_var), gamma1, gamma3)
        else:
            # Σ_c[:, cols] = Σ E − V S⁻¹ (V[cols])ᵀ: the constrained covariance columns
            cols = np.arange(N) if nodes is None else np.asarray(nodes)
            E = jnp.zeros((N, len(cols))).at[cols, np.arange(len(cols))].set(1.0)
            X = F.solve(E)
            if self.C.shape[0]:
                X = X - V @ (S_inv @ V[cols].T)
            A_sigma = self.A @ X
        gamma1, gamma3 = self._sla(theta, eta, eta_var, sd, A_sigma, cols)
        return GaussianApprox(x, sd, eta, jnp.sqrt(eta_var), gamma1, gamma3)


class QcPattern(NamedTuple):
    """What the sparse paths factorise: Q_c's pattern, and how its singular directions (if any)
    are handled — ``ctc`` (CᵀC added) or ``J`` (one node per constraint row for the low-rank
    correction of :mod:`adelia.runtime.lowrank`, on the constraint rows ``R``), all None when
    Q_c is definite on its own."""

    pattern: sp.csc_matrix
    ctc: sp.csr_matrix | None
    J: np.ndarray | None
    R: np.ndarray | None = None


def qc_pattern(model: Problem, A: sp.spmatrix | None = None) -> QcPattern:
    """The pattern of Q_c (Q_p's blocks ∪ |A|ᵀ|A| ∪ the diagonal; values 1), and what makes it
    invertible: nothing when Q_c is definite; else the low-rank correction on nodes J when
    S = Q_c + γ F_J F_Jᵀ is definite; else CᵀC (added to the pattern; left out above
    :data:`CTC_MAX_NNZ` entries)."""
    model = as_problem(model)
    N = model.N
    A = sp.csr_matrix(model.A if A is None else A)
    blocks = [sp.diags(np.ones(N))]
    for c in model.components:
        for K in c.matrices:
            blocks.append(_embed(K, c.offset, N))
    parts = blocks + [abs(A).T @ abs(A)]
    ctc, J, R = None, None, None
    if model.C.shape[0]:
        M0 = _q_c0(model, A)
        if not _definite(M0):
            J = correction_nodes(model.C)
            gamma = correction_scale(M0.diagonal(), model.C)
            S0 = M0 + sp.csc_matrix((np.full(len(J), gamma), (J, J)), shape=(N, N))
            if _definite(S0):
                R = _fewest_rows(M0, np.asarray(model.C), J, gamma)
                J = J[R]
            else:
                J = None
                ctc = sp.csr_matrix(model.C.T @ model.C)
                if ctc.nnz > CTC_MAX_NNZ:
                    ctc = None
                else:
                    parts.append(ctc)
    # the union of structures: |·| so that entries of different parts never cancel
    pattern = sp.csc_matrix(sum((abs(sp.csc_matrix(p)) for p in parts[1:]), abs(sp.csc_matrix(parts[0]))))
    pattern.data[:] = 1.0
    return QcPattern(pattern, ctc, J, R)


def _fewest_rows(M0: sp.csc_matrix, C: np.ndarray, J: np.ndarray, gamma: float) -> np.ndarray:
    """The first rows R of C (in order, with their nodes J[R]) for which both S = M0 + γ F Fᵀ and
    M_R = M0 + C_RᵀC_R are positive definite; every row when no shorter prefix does.

    S by a sparse factorisation. M_R without forming the dense C_RᵀC_R: with S definite, the null
    space of Q_c (that of M0) is {S⁻¹F a : γ FᵀS⁻¹F a = a} (from S v = γ F Fᵀ v), the eigenvalue-1
    directions of γ FᵀS⁻¹F ⪯ I; M_R is definite exactly when C_R maps that null space
    injectively (null(Q_c) ∩ null(C_R) = {0})."""
    N, k = M0.shape[0], C.shape[0]
    for size in range(1, k):
        R = np.arange(size)
        S = M0 + sp.csc_matrix((np.full(size, gamma), (J[R], J[R])), shape=(N, N))
        factor = _definite_factor(S)
        if factor is None:
            continue
        F = np.zeros((N, size))
        F[J[R], np.arange(size)] = 1.0
        PF = np.asarray(sparse.solve(factor, F)).reshape(N, size)                               # S⁻¹F
        w, vecs = np.linalg.eigh(np.eye(size) - gamma * 0.5 * (PF[J[R]] + PF[J[R]].T))
        null = PF @ vecs[:, w < 1e-8]
        if null.shape[1] == 0:
            return R
        null /= np.linalg.norm(null, axis=0)
        rows = C[R] / np.linalg.norm(C[R], axis=1, keepdims=True)
        if null.shape[1] <= size and np.linalg.svd(rows @ null, compute_uv=False).min() > 1e-6:
            return R
    return np.arange(k)


def correction_nodes(C: np.ndarray) -> np.ndarray:
    """One node per constraint row, where the row weighs most, all distinct."""
    chosen: list[int] = []
    for row in np.abs(np.asarray(C)):
        order = np.argsort(-row, kind="stable")
        chosen.append(int(next(j for j in order if j not in chosen)))
    return np.asarray(chosen, dtype=np.int64)


def correction_scale(diagonal, C):
    """γ: Q_c's mean diagonal times the largest constraint's support, so that S's eigenvalue
    along a null direction of Q_c spread over n nodes (γ/n) is of Q_c's own size. ``diagonal``
    is a NumPy array (the definiteness check) or a JAX one (each factorisation)."""
    support = np.max(np.sum(np.asarray(C) != 0, axis=1))
    return diagonal.mean() * float(support)


def _q_c0(model: Problem, A: sp.csr_matrix) -> sp.csc_matrix:
    """Q_p(θ₀) + A_obsᵀA_obs: Q_c with unit weights, whose null space is every Q_c's (for W > 0)."""
    N = model.N
    theta0 = np.array([t.initial for t in model.thetas], dtype=float)
    M = sp.csc_matrix(sp.diags(np.concatenate([np.zeros(model.fixed_offset), model.fixed_prec])))
    for c in model.components:
        th = theta0[list(c.theta_index)]
        for K, coef in zip(c.matrices, c.coefs):
            M = M + float(numpy_eval(coef, th)) * _embed(K, c.offset, N)
    rows = A[np.flatnonzero(model.observed)]
    return sp.csc_matrix(M + rows.T @ rows)


def _definite(M: sp.csc_matrix) -> bool:
    """Whether M is positive definite, numerically (see :func:`_definite_factor`)."""
    return _definite_factor(M) is not None


def _definite_factor(M: sp.csc_matrix):
    """M's sparse factor if M is positive definite, numerically, else None: Q_c is singular
    exactly when a direction of Q_p's null space (an intrinsic model's constant or trend, a flat
    fixed effect) leaves η unchanged — null(Q_p) ∩ null(A_obs) ≠ {0}, whatever θ and W > 0 (e.g.
    a flat intercept beside a sum-to-zero field). An exactly singular M may still factorise, with
    a pivot of rounding size that a solve then amplifies: so a failed factorisation, or a round
    trip M⁻¹(M r) that misses a random r, means singular."""
    if not sparse.available():
        return None
    try:
        F = sparse.factor(sparse.analyse(M), M)
        r = np.random.default_rng(0).normal(size=M.shape[0])
        back = np.asarray(sparse.solve(F, M @ r))
    except Exception:  # noqa: BLE001 - not positive definite (or not factorisable)
        return None
    ok = np.all(np.isfinite(back)) and np.linalg.norm(back - r) <= 1e-6 * np.linalg.norm(r)
    return F if ok else None


def _embed(K: sp.spmatrix, offset: int, N: int) -> sp.coo_matrix:
    K = sp.coo_matrix(K)
    return sp.coo_matrix((K.data, (K.row + offset, K.col + offset)), shape=(N, N))


jax.tree_util.register_static(SparseLaplaceProblem)
