"""Per-graph structures computed once per process (compiler/graphs.per_graph)."""

import numpy as np
import scipy.sparse as sp

from adelia.compiler import graphs
from adelia.compiler.latent import besag


def _ring(n: int) -> sp.csr_matrix:
    i = np.arange(n)
    W = sp.coo_matrix((np.ones(n), (i, (i + 1) % n)), shape=(n, n))
    return sp.csr_matrix(W + W.T)


def test_per_graph_computes_once_per_content_and_hands_out_copies():
    calls = []

    def compute():
        calls.append(1)
        return np.arange(5.0), sp.identity(3, format="csr")

    first = graphs.per_graph("test once", _ring(7), compute)
    first[0][:] = -1.0                      # the caller's copy, not the kept one
    first[1].data[:] = 9.0
    again = graphs.per_graph("test once", _ring(7), compute)     # the same graph, built again
    assert len(calls) == 1
    np.testing.assert_array_equal(again[0], np.arange(5.0))
    np.testing.assert_array_equal(again[1].toarray(), np.eye(3))
    graphs.per_graph("test once", _ring(8), compute)             # another graph
    graphs.per_graph("test once, other kind", _ring(7), compute)  # another kind
    assert len(calls) == 3


def test_per_graph_keeps_only_the_most_recent_graphs():
    calls = []

    def compute():
        calls.append(1)
        return 0

    for n in range(3, 4 + graphs.PER_GRAPH_KEPT):
        graphs.per_graph("test bound", _ring(n), compute)
    assert len(calls) == graphs.PER_GRAPH_KEPT + 1
    graphs.per_graph("test bound", _ring(3 + graphs.PER_GRAPH_KEPT), compute)   # the newest: kept
    assert len(calls) == graphs.PER_GRAPH_KEPT + 1
    graphs.per_graph("test bound", _ring(3), compute)                          # the oldest: dropped
    assert len(calls) == graphs.PER_GRAPH_KEPT + 2


def test_besag_structure_again_equals_the_first_and_is_not_shared():
    W = _ring(12)
    K, rank_def, rows = besag.besag_structure(W, scale_model=True)
    expected = K.toarray()
    K.data[:] = 0.0
    rows[:] = 0.0
    K2, rank_def2, rows2 = besag.besag_structure(W.copy(), scale_model=True)
    np.testing.assert_array_equal(K2.toarray(), expected)
    np.testing.assert_array_equal(rows2, np.ones((1, 12)))
    assert rank_def2 == rank_def == 1
    # scale.model changes the structure: not the same entry
    K3, _, _ = besag.besag_structure(W, scale_model=False)
    np.testing.assert_array_equal(K3.toarray(), (sp.diags(np.full(12, 2.0)) - W).toarray())
