"""Supernodal many-column solves (adelia.runtime.supernodal_solve) against dense NumPy, through
the sparse seam's Factor.solve / sample_standard, with the block path forced on and off."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from adelia.runtime import sparse
from adelia.runtime import supernodal_solve as sns
from tests.runtime.spd_matrices import arrowhead, field_with_leaves, lap1d, random_spd, spacetime, spde_grid

CASES = {
    "dense": lambda: sp.csc_matrix(np.eye(12) * 13 + np.ones((12, 12))),
    "block_diagonal": lambda: sp.block_diag([lap1d(7) + sp.identity(7), spde_grid(4), sp.identity(3)]).tocsc(),
    "spacetime": lambda: spacetime(4, 6),
    "arrowhead": lambda: arrowhead(80, 4),
    "field_with_leaves": lambda: field_with_leaves(5),
}


@pytest.fixture(params=[True, False], ids=["blocks", "backend"])
def blocks_path(request, monkeypatch):
    monkeypatch.setattr(sns, "worthwhile", lambda S, k, prepared=True: request.param)
    return request.param


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("ordering", ["nesdis", "amd"])
def test_solve_and_draws_match_dense(blocks_path, name, ordering):
    Q = CASES[name]()
    Qd = Q.toarray()
    n = Q.shape[0]
    F = sparse.factor(sparse.analyse(Q, ordering=ordering), Q)
    B = np.random.default_rng(0).standard_normal((n, 7))
    np.testing.assert_allclose(F.solve(B), np.linalg.solve(Qd, B), rtol=0, atol=1e-10)
    X = F.sample_standard(np.eye(n))              # Pᵀ L⁻ᵀ: X Xᵀ = Q⁻¹ exactly
    np.testing.assert_allclose(X @ X.T, np.linalg.inv(Qd), rtol=0, atol=1e-10)
    assert (F.analysis._sn_blocks is not None) == blocks_path


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 120), k=st.integers(1, 9))
def test_random_sparse_systems(seed, n, k):
    Q = random_spd(n, min(1.0, 3.0 / n), seed)
    an = sparse.analyse(Q)
    F = sparse.factor(an, Q)
    S, x = F.factor_values()
    b = sns.blocks(S)
    B = np.random.default_rng(seed).standard_normal((n, k))
    # the permuted system P Q Pᵀ = L Lᵀ, solved in that ordering
    Qp = Q.toarray()[np.ix_(an.perm, an.perm)]
    np.testing.assert_allclose(sns.solve(b, x, B), np.linalg.solve(Qp, B), rtol=0, atol=1e-9)
    L = np.linalg.cholesky(Qp)
    np.testing.assert_allclose(sns.solve_lt(b, x, B), np.linalg.solve(L.T, B), rtol=0, atol=1e-9)


@pytest.mark.parametrize("min_batch", [1, 4])
@pytest.mark.parametrize("name", list(CASES))
def test_batched_levels_solve_like_dense(monkeypatch, min_batch, name):
    from adelia.runtime import selinv as si

    monkeypatch.setattr(si, "MIN_BATCH", min_batch)
    Q = field_with_leaves(8) if name == "field_with_leaves" else CASES[name]()
    an = sparse.analyse(Q, ordering="amd")
    F = sparse.factor(an, Q)
    S, x = F.factor_values()
    S = si.supernodes_from_arrays(S.n, S.sup, S.pi, S.px, S.rows)
    b = sns.blocks(S)
    if min_batch == 1 and name == "field_with_leaves":
        assert any(g.height >= 1 for g in b.levels)
    B = np.random.default_rng(1).standard_normal((S.n, 5))
    Qp = Q.toarray()[np.ix_(an.perm, an.perm)]
    np.testing.assert_allclose(sns.solve(b, x, B), np.linalg.solve(Qp, B), rtol=0, atol=1e-9)
    L = np.linalg.cholesky(Qp)
    np.testing.assert_allclose(sns.solve_lt(b, x, B), np.linalg.solve(L.T, B), rtol=0, atol=1e-9)


def test_the_cost_model_picks_blocks_for_many_columns_only():
    Q = spacetime(8, 10)
    F = sparse.factor(sparse.analyse(Q), Q)
    S = F.factor_values()[0]
    assert not sns.worthwhile(S, 1)
    assert sns.worthwhile(S, Q.shape[0])
    # a factor's first solve here also pays for prepare(): never fewer columns before it wins
    first = [next(k for k in range(1, Q.shape[0]) if sns.worthwhile(S, k, prepared)) for prepared in (True, False)]
    assert first[1] >= first[0]
