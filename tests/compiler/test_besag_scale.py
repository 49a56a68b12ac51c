"""besag's sparse structure and scale.model against dense pseudo-inverses."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from adelia.compiler.latent import besag
from adelia.runtime import sparse


def _graph(seed: int, n: int, chords: int, islands: int) -> sp.csr_matrix:
    """A few chains with random chords (so several components), plus isolated nodes."""
    rng = np.random.default_rng(seed)
    W = sp.lil_matrix((n + islands, n + islands))
    cut = set(rng.choice(np.arange(1, n), size=min(2, n - 1), replace=False).tolist())
    for i in range(n - 1):
        if i + 1 not in cut:
            W[i, i + 1] = W[i + 1, i] = 1.0
    for _ in range(chords):
        a, b = rng.integers(0, n, 2)
        if a != b:
            W[a, b] = W[b, a] = 1.0
    return W.tocsr()


def _dense_reference(W: sp.csr_matrix, scale_model: bool) -> np.ndarray:
    """K = D − W, islands 1, each component of size > 1 scaled to geometric-mean diag(K⁺) = 1."""
    K = (sp.diags(np.asarray(W.sum(axis=1)).ravel()) - W).toarray()
    _, label = connected_components(W, directed=False)
    for c in np.unique(label):
        m = np.flatnonzero(label == c)
        if len(m) == 1:
            K[m[0], m[0]] = 1.0
        elif scale_model:
            sub = K[np.ix_(m, m)]
            gv = np.exp(np.mean(np.log(np.diag(np.linalg.pinv(sub, rcond=1e-9, hermitian=True)))))
            K[np.ix_(m, m)] = sub * gv
    return K


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 60), chords=st.integers(0, 30), islands=st.integers(0, 3),
       scale_model=st.booleans(), force_sparse=st.booleans())
def test_structure_equals_the_dense_pseudo_inverse_scaling(seed, n, chords, islands, scale_model, force_sparse):
    if force_sparse and not sparse.available():
        pytest.skip("no CHOLMOD")
    W = _graph(seed, n, chords, islands)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(besag, "_DENSE_GROUNDED_MAX", 0 if force_sparse else 10 ** 9)
        K, rank_def, rows = besag.besag_structure(W, scale_model)
    assert sp.issparse(K)
    np.testing.assert_allclose(K.toarray(), _dense_reference(W, scale_model), rtol=1e-10, atol=1e-12)
    sizes = np.bincount(connected_components(W, directed=False)[1])
    assert rank_def == np.sum(sizes > 1) == rows.shape[0]
    assert np.allclose(rows.sum(axis=1), sizes[sizes > 1])


def test_a_large_graph_is_scaled_without_a_dense_matrix(monkeypatch):
    """A 40 000-node grid graph: scaled through the sparse factor (a dense K⁺ would be 12.8 GB)."""
    if not sparse.available():
        pytest.skip("no CHOLMOD")
    side = 200
    line = sp.diags([np.ones(side - 1), np.ones(side - 1)], [-1, 1])
    W = (sp.kron(sp.identity(side), line) + sp.kron(line, sp.identity(side))).tocsr()
    factored = []
    real_factor = sparse.factor
    monkeypatch.setattr(sparse, "factor", lambda an, Q, **kw: factored.append(an.n) or real_factor(an, Q, **kw))
    K, rank_def, _ = besag.besag_structure(W, True)
    assert rank_def == 1 and K.shape == (side * side, side * side) and sp.issparse(K)
    assert factored == [side * side - 1]           # the grounded Laplacian, through the sparse factor
    # scaling by the geometric mean makes the scaled K's own generalised variance 1: check it on
    # a small grid, where the dense pseudo-inverse is cheap
    small = 12
    line = sp.diags([np.ones(small - 1), np.ones(small - 1)], [-1, 1])
    Ws = (sp.kron(sp.identity(small), line) + sp.kron(line, sp.identity(small))).tocsr()
    monkeypatch.setattr(besag, "_DENSE_GROUNDED_MAX", 0)
    Ks, _, _ = besag.besag_structure(Ws, True)
    assert np.exp(np.mean(np.log(np.diag(np.linalg.pinv(Ks.toarray(), rcond=1e-9, hermitian=True))))) == pytest.approx(1.0, rel=1e-10)
