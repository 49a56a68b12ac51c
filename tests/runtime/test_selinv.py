"""Supernodal selected inversion against the dense inverse, entry by entry on L's pattern.

The pure-SciPy route (symbolic pattern + dense Cholesky) needs no CHOLMOD; the CHOLMOD route
(relaxed supernodes with explicit zeros, nested-dissection orderings) runs on each CHOLMOD
backend of ``adelia.runtime.sparse`` (cvxopt always; scikit-sparse when it is installed).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from adelia.runtime import selinv as si

TOL = 1e-10


# ---------------------------------------------------------------------------
# Matrices (small, meaningful and random)
# ---------------------------------------------------------------------------


from spd_matrices import (lap1d, grid_K, spde_grid, ar1, spacetime, random_spd, arrowhead,  # noqa: E402,F401
                          field_with_leaves)



def permuted(Q, seed):
    p = np.random.default_rng(seed).permutation(Q.shape[0])
    return sp.csc_matrix(Q[p][:, p])


CASES = {
    "diagonal": lambda: sp.diags(np.linspace(1, 3, 20)).tocsc(),
    "tridiagonal": lambda: (lap1d(40) + 0.1 * sp.identity(40)).tocsc(),
    "dense": lambda: sp.csc_matrix(np.eye(12) * 13 + np.ones((12, 12))),
    "block_diagonal": lambda: sp.block_diag([lap1d(7) + sp.identity(7), spde_grid(4), sp.identity(3)]).tocsc(),
    "spde_grid": lambda: spde_grid(9),
    "spde_grid_permuted": lambda: permuted(spde_grid(8), 1),
    "spacetime": lambda: spacetime(4, 6),
    "random": lambda: random_spd(150, 0.02, 3),
    "arrowhead": lambda: arrowhead(80, 4),
    "field_with_leaves": lambda: field_with_leaves(5),
}


def natural_factor(Q):
    """(pattern of L, L on that pattern) in natural order, from a dense Cholesky."""
    Q = sp.csc_matrix(Q)
    pat = si.symbolic_pattern(Q).tocoo()
    Ld = np.linalg.cholesky(Q.toarray())
    L = sp.csc_matrix((Ld[pat.row, pat.col], (pat.row, pat.col)), shape=Q.shape)
    # the dense factor is exactly zero outside the symbolic pattern
    outside = np.tril(Ld).copy()
    outside[pat.row, pat.col] = 0.0
    assert np.abs(outside).max() == 0.0
    return pat, L


def check_on_pattern(S, sigma, Sd, rows, cols):
    got = sigma[si.positions(S, rows, cols)]
    np.testing.assert_allclose(got, Sd[rows, cols], rtol=0, atol=TOL * max(1.0, np.abs(Sd).max()))


# ---------------------------------------------------------------------------
# Pure SciPy route
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_selected_inverse_matches_dense_inverse(name):
    Q = CASES[name]()
    pat, L = natural_factor(Q)
    S = si.supernodes_from_csc(pat)
    x = si.pack_csc(S, L)
    sigma = si.selected_inverse(S, x)
    Sd = np.linalg.inv(Q.toarray())
    check_on_pattern(S, sigma, Sd, pat.row, pat.col)
    # symmetric lookups (upper triangle) give the same values
    check_on_pattern(S, sigma, Sd, pat.col, pat.row)


@pytest.mark.parametrize("pair_runs", [0, 10**9])
@pytest.mark.parametrize("name", ["spde_grid_permuted", "spacetime_permuted", "random", "arrowhead"])
def test_gather_routes_agree(monkeypatch, name, pair_runs):
    """Σ_RR gathered by block copies over runs, or by indexed copies of the whole block: same Σ."""
    Q = permuted(spacetime(4, 6), 2) if name == "spacetime_permuted" else CASES[name]()
    pat, L = natural_factor(Q)
    S = si.supernodes_from_csc(pat)
    x = si.pack_csc(S, L)
    starts, ptr = si._runs(S)
    assert np.diff(ptr).max() > 1                     # some supernode has several runs to gather
    monkeypatch.setattr(si, "_PAIR_RUNS", pair_runs)
    sigma = si.selected_inverse(S, x)
    check_on_pattern(S, sigma, np.linalg.inv(Q.toarray()), pat.row, pat.col)


def test_leaf_groups_cover_the_leaves_in_several_shapes():
    """The batched leaf step is exercised: leaves of one and of several columns, with and
    without rows below (an isolated block is a leaf and a root)."""
    from adelia.runtime import sparse

    for Q in (CASES["field_with_leaves"](), CASES["block_diagonal"]()):
        an = sparse.analyse(Q, ordering="amd")
        S = an.supernodes
        groups = si.leaf_groups(S).groups
        batched = si.leaf_mask(S)
        assert np.all(S.nchildren[batched] == 0)
        assert sum(len(g.cols) for g in groups) == int(np.sum(batched))
        assert all(len(g.cols) >= si.MIN_BATCH for g in groups)
        cols = np.sort(np.concatenate([g.cols.ravel() for g in groups] + [np.zeros(0, np.int64)]))
        own = np.concatenate([np.arange(S.sup[J], S.sup[J + 1]) for J in np.flatnonzero(batched)]
                             + [np.zeros(0, np.int64)])
        np.testing.assert_array_equal(cols, np.sort(own))
    leaves = si.leaf_groups(sparse.analyse(CASES["field_with_leaves"](), ordering="amd").supernodes)
    shapes = {(g.s, g.r) for g in leaves.groups}
    assert any(s == 1 and r > 0 for s, r in shapes) and any(s > 1 and r > 0 for s, r in shapes)
    # and some leaves are left to the loop (shapes too rare to batch)
    S = sparse.analyse(CASES["field_with_leaves"](), ordering="amd").supernodes
    assert np.any((S.nchildren == 0) & ~si.leaf_mask(S))


@pytest.mark.parametrize("min_batch", [1, 10**9])
def test_every_leaf_batched_or_none(monkeypatch, min_batch):
    monkeypatch.setattr(si, "MIN_BATCH", min_batch)
    Q = CASES["field_with_leaves"]()
    pat, L = natural_factor(Q)
    S = si.supernodes_from_csc(pat)
    assert si.leaf_mask(S).sum() == (np.sum(S.nchildren == 0) if min_batch == 1 else 0)
    sigma = si.selected_inverse(S, si.pack_csc(S, L))
    check_on_pattern(S, sigma, np.linalg.inv(Q.toarray()), pat.row, pat.col)


@pytest.mark.parametrize("min_batch", [1, 2, 4])
@pytest.mark.parametrize("name", ["field_with_leaves", "spacetime", "random", "arrowhead", "spde_grid_permuted"])
@pytest.mark.parametrize("ordering", ["nesdis", "amd"])
def test_level_groups_match_the_dense_inverse(monkeypatch, min_batch, name, ordering):
    """Supernodes batched by level, padded to shared shapes (s to a multiple of 4, r of 8),
    give Σ on L's pattern as the dense inverse does; the batched set is closed under
    descendants and each level's members depend only on other levels."""
    from adelia.runtime import sparse

    monkeypatch.setattr(si, "MIN_BATCH", min_batch)
    Q = CASES[name]() if name != "field_with_leaves" else field_with_leaves(8)
    an = sparse.analyse(Q, ordering=ordering)
    F = sparse.factor(an, Q)
    S, x = F.factor_values()
    S = si.supernodes_from_arrays(S.n, S.sup, S.pi, S.px, S.rows)      # fresh caches under this MIN_BATCH
    levels = si.level_groups(S)
    batched = si.batched_mask(S)
    for J in np.flatnonzero(batched):
        if S.parent[J] >= 0 and not batched[S.parent[J]]:
            continue
        assert all(batched[c] for c in np.flatnonzero(S.parent == J))
    height = {}
    for g in levels:
        for J in S.col2sup[g.cols[:, 0]]:
            height[int(J)] = g.height
    for J, h in height.items():
        children = np.flatnonzero(S.parent == J)
        assert all(height.get(int(c), 0) < h for c in children)
    if min_batch == 1 and name == "field_with_leaves":
        assert any(g.height >= 1 for g in levels)
    sigma = si.selected_inverse(S, x)
    p = an.perm
    Sd = np.linalg.inv(Q.toarray()[np.ix_(p, p)])
    Lp = an._backend.L(an._symbolic, F._f).tocoo()
    check_on_pattern(S, sigma, Sd, Lp.row, Lp.col)


def test_supernode_structure_of_known_patterns():
    # dense: one supernode; diagonal: n roots, no parents; tridiagonal: chain of singletons + top pair
    S = si.supernodes_from_csc(si.symbolic_pattern(CASES["dense"]()))
    assert S.nsuper == 1 and S.parent.tolist() == [-1]
    S = si.supernodes_from_csc(si.symbolic_pattern(CASES["diagonal"]()))
    assert S.nsuper == 20 and np.all(S.parent == -1) and np.all(S.nchildren == 0)
    S = si.supernodes_from_csc(si.symbolic_pattern(CASES["tridiagonal"]()))
    assert S.nsuper == 39 and np.all(S.parent[:-1] == np.arange(1, 39)) and S.parent[-1] == -1
    assert S.nnz == 40 + 39


def test_symbolic_pattern_contains_fill():
    Q = arrowhead(30, 2)
    pat = si.symbolic_pattern(Q)
    Ld = np.linalg.cholesky(Q.toarray())
    assert set(zip(*np.nonzero(np.abs(Ld) > 0))) <= set(zip(*pat.nonzero()))


def test_out_buffer_is_reused():
    Q = spde_grid(6)
    pat, L = natural_factor(Q)
    S = si.supernodes_from_csc(pat)
    x = si.pack_csc(S, L)
    buf = np.zeros(S.xsize)
    res = si.selected_inverse(S, x, out=buf)
    assert res is buf
    check_on_pattern(S, res, np.linalg.inv(Q.toarray()), pat.row, pat.col)


def test_errors():
    Q = spde_grid(4)
    pat, L = natural_factor(Q)
    S = si.supernodes_from_csc(pat)
    x = si.pack_csc(S, L)
    x[S.px[0]] = 0.0  # zero pivot
    with pytest.raises(ValueError, match="zero diagonal"):
        si.selected_inverse(S, x)
    with pytest.raises(ValueError, match="expected"):
        si.selected_inverse(S, x[:-1])
    with pytest.raises(ValueError, match="not in the factor's pattern"):
        si.positions(S, np.array([15]), np.array([0]))
    # a lower-triangular pattern that is not closed under elimination
    bad = sp.csc_matrix(np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1.0]]))
    with pytest.raises(ValueError, match="elimination"):
        si.supernodes_from_csc(bad)
    with pytest.raises(ValueError, match="lower triangular"):
        si.supernodes_from_csc(sp.csc_matrix(np.array([[1.0, 1.0], [0.0, 1.0]])))


# ---------------------------------------------------------------------------
# CHOLMOD's relaxed supernodes (explicit zeros, nested-dissection orders)
# ---------------------------------------------------------------------------


def _cholmod_backends():
    from adelia.runtime import sparse

    out = []
    for name in sparse.BACKENDS:
        optional = name != "cvxopt" and name not in sparse.backends()
        marks = [pytest.mark.skip(reason=f"{name} is not installed")] if optional else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("backend", _cholmod_backends())
@pytest.mark.parametrize("name", ["spde_grid", "spacetime", "random", "arrowhead", "block_diagonal",
                                  "field_with_leaves"])
@pytest.mark.parametrize("ordering", ["nesdis", "amd"])
def test_on_cholmod_supernodes(backend, name, ordering):
    from adelia.runtime import sparse

    Q = CASES[name]()
    an = sparse.analyse(Q, ordering=ordering, backend=backend)
    F = sparse.factor(an, Q)
    S, x = F.factor_values()
    assert an._direct
    sigma = si.selected_inverse(S, x)
    p = an.perm
    Sd = np.linalg.inv(Q.toarray()[np.ix_(p, p)])
    L = an._backend.L(an._symbolic, F._f)  # CHOLMOD's own (simplicial) copy: same pattern
    Lp = L.tocoo()
    assert Lp.nnz == S.nnz
    check_on_pattern(S, sigma, Sd, Lp.row, Lp.col)
    # the fallback route (supernodes found from L's pattern) agrees
    S2 = si.supernodes_from_csc(L)
    sigma2 = si.selected_inverse(S2, si.pack_csc(S2, L))
    np.testing.assert_allclose(sigma2[si.positions(S2, Lp.row, Lp.col)], sigma[si.positions(S, Lp.row, Lp.col)],
                               rtol=1e-12, atol=1e-14)
