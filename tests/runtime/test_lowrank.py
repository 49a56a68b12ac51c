"""The low-rank corrected factor (adelia.runtime.lowrank) against dense M = Q_c + CᵀC."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adelia.runtime.laplace import DenseFactor
from adelia.runtime.laplace_sparse import correction_nodes, correction_scale
from adelia.runtime.lowrank import LowRankCorrected


class _DenseBase(DenseFactor):
    """A dense factor handle of S with the pattern view the sparse paths have."""

    def __init__(self, S, rows, cols):
        super().__init__(S)
        self.rows, self.cols = rows, cols

    def sigma_pattern(self):
        return self.inverse()[self.rows, self.cols]


def _singular_problem(seed: int, n: int, k: int):
    """Q_c = BᵀB (+ a random SPD part off k null directions) with a k-dimensional null space
    that C (k × N, dense rows) sees: the intercept-beside-sum-to-zero situation."""
    rng = np.random.default_rng(seed)
    null = rng.normal(size=(n, k))
    Qn, _ = np.linalg.qr(null)
    R = rng.normal(size=(n, n))
    Q = R @ R.T / n + np.eye(n)
    proj = np.eye(n) - Qn @ Qn.T
    Qc = proj @ Q @ proj                                  # PSD, null space = span(null)
    # rows that see every null direction well: C restricted to null(Q_c) stays near the identity,
    # so M = Q_c + CᵀC is well conditioned and the dense reference inverse is itself accurate
    C = Qn.T + 0.3 * rng.normal(size=(k, n)) / np.sqrt(n)
    return Qc, C


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(6, 30), k=st.integers(1, 3))
def test_matches_dense_m(seed, n, k):
    Qc, C = _singular_problem(seed, n, k)
    M = Qc + C.T @ C
    J = correction_nodes(C)
    gamma = correction_scale(np.diag(Qc), C)
    S = Qc.copy()
    S[J, J] += gamma
    rows, cols = np.nonzero(np.ones((n, n)))
    F = LowRankCorrected(_DenseBase(jnp.asarray(S), rows, cols), jnp.asarray(C), jnp.asarray(J), jnp.asarray(gamma),
                         jnp.asarray(rows), jnp.asarray(cols))
    Minv = np.linalg.inv(M)
    b = np.random.default_rng(seed + 1).normal(size=(n, 2))
    np.testing.assert_allclose(np.asarray(F.solve(jnp.asarray(b))), Minv @ b, rtol=1e-7, atol=1e-9)
    assert float(F.logdet()) == pytest.approx(np.linalg.slogdet(M)[1], rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(np.asarray(F.inverse()), Minv, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.asarray(F.sigma_pattern()), Minv[rows, cols], rtol=1e-7, atol=1e-9)
    # the draw is linear in z: its covariance is T Tᵀ with T the image of the identity; it must
    # be the constrained covariance Σ_c = Z (Zᵀ Q_c Z)⁻¹ Zᵀ
    T = np.asarray(F.sample_standard(jnp.eye(n + F.extra_normals)))
    Z = np.linalg.svd(C)[2][k:].T
    sigma_c = Z @ np.linalg.inv(Z.T @ Qc @ Z) @ Z.T
    np.testing.assert_allclose(T @ T.T, sigma_c, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(C @ T, 0.0, atol=1e-9)


def test_gradient_of_logdet_through_the_correction():
    """d log|M| / dθ by AD through S's factor and the Woodbury terms equals tr(M⁻¹ dM)."""
    Qc, C = _singular_problem(0, 12, 2)
    n = Qc.shape[0]
    J = correction_nodes(C)
    rows, cols = np.nonzero(np.ones((n, n)))
    D = np.diag(np.random.default_rng(2).uniform(0.5, 2.0, n))

    def logdet(t):
        Qt = jnp.asarray(Qc) + t * jnp.asarray(D)
        gamma = jnp.mean(jnp.diag(Qt)) * 3.0
        S = Qt.at[jnp.asarray(J), jnp.asarray(J)].add(jax.lax.stop_gradient(gamma))
        F = LowRankCorrected(_DenseBase(S, rows, cols), jnp.asarray(C), jnp.asarray(J), gamma)
        return F.logdet()

    t = 0.3
    M = Qc + t * D + C.T @ C
    assert float(jax.grad(logdet)(t)) == pytest.approx(np.trace(np.linalg.solve(M, D)), rel=1e-8)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(8, 30), k=st.integers(2, 4))
def test_fewer_rows_than_constraints(seed, n, k):
    """A one-dimensional null space beside k constraint rows: the correction on row 0 alone is
    M_R = Q_c + c_0 c_0ᵀ, which equals Q_c on {C x = 0}; kriging with it and the draws give the
    constrained covariance of all k rows."""
    Qc, C1 = _singular_problem(seed, n, 1)
    rng = np.random.default_rng(seed + 2)
    C = np.concatenate([C1, rng.normal(size=(k - 1, n))])
    J = correction_nodes(C)[:1]
    gamma = correction_scale(np.diag(Qc), C)
    S = Qc.copy()
    S[J, J] += gamma
    rows, cols = np.nonzero(np.ones((n, n)))
    F = LowRankCorrected(_DenseBase(jnp.asarray(S), rows, cols), jnp.asarray(C), jnp.asarray(J), jnp.asarray(gamma),
                         jnp.asarray(rows), jnp.asarray(cols), R=np.array([0]))
    M = Qc + np.outer(C[0], C[0])
    Minv = np.linalg.inv(M)
    b = rng.normal(size=(n, 2))
    np.testing.assert_allclose(np.asarray(F.solve(jnp.asarray(b))), Minv @ b, rtol=1e-7, atol=1e-9)
    assert float(F.logdet()) == pytest.approx(np.linalg.slogdet(M)[1], rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(np.asarray(F.sigma_pattern()), Minv[rows, cols], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.asarray(F.solved_constraints), Minv @ C.T, rtol=1e-7, atol=1e-9)
    assert F.extra_normals == 1
    T = np.asarray(F.sample_standard(jnp.eye(n + 1)))
    Z = np.linalg.svd(C)[2][k:].T
    np.testing.assert_allclose(T @ T.T, Z @ np.linalg.inv(Z.T @ Qc @ Z) @ Z.T, rtol=1e-7, atol=1e-9)
