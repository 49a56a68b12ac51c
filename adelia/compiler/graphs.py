"""Graph inputs for besag-type models -> a symmetric 0/1 scipy.sparse adjacency (no diagonal).

Accepted: a scipy.sparse matrix or dense array (adjacency), an (E, 2) integer edge list (0- or
1-based, detected), or a path to an R-INLA graph file ("n" then "node k neighbours..." lines,
1-based; R-INLA ``inla.read.graph``).
"""

from __future__ import annotations

__all__ = ["as_adjacency", "per_graph", "read_inla_graph"]

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import scipy.sparse as sp

from adelia.errors import DataError, ModelError

T = TypeVar("T")

#: graphs whose derived structures :func:`per_graph` keeps (the most recently used)
PER_GRAPH_KEPT = 8
_PER_GRAPH: OrderedDict = OrderedDict()


def read_inla_graph(path: str | Path) -> sp.csr_matrix:
    path = Path(path)
    try:
        tokens = path.read_text().split()
    except OSError as err:
        raise DataError(f"cannot read graph file '{path}': {err.strerror}") from None
    try:
        nums = [int(t) for t in tokens]
        n, pos, rows, cols = nums[0], 1, [], []
        for _ in range(n):
            node, k = nums[pos], nums[pos + 1]
            nbrs = nums[pos + 2: pos + 2 + k]
            if len(nbrs) != k:
                raise IndexError
            rows += [node - 1] * k
            cols += [j - 1 for j in nbrs]
            pos += 2 + k
    except (ValueError, IndexError):
        raise DataError(f"'{path}' is not an R-INLA graph file (expected 'n' then lines 'node k nbr1 ... nbrk')",
                        hint="see R-INLA's inla.read.graph for the format") from None
    if min(rows + cols, default=0) < 0 or max(rows + cols, default=0) >= n:
        raise DataError(f"graph file '{path}' names a node outside 1..{n}")
    return _symmetric(sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), str(path))


def _symmetric(A: sp.spmatrix, what: str) -> sp.csr_matrix:
    A = sp.csr_matrix(A, dtype=float)
    A.setdiag(0)
    A.eliminate_zeros()
    A.data[:] = 1.0
    if (A != A.T).nnz:
        raise DataError(f"the graph {what} is not symmetric: neighbours must be listed both ways",
                        hint="pass an undirected adjacency (A == A.T)")
    return A


def as_adjacency(obj, what: str = "") -> sp.csr_matrix:
    """Convert a supported graph object to a symmetric 0/1 CSR adjacency."""
    if isinstance(obj, (str, Path)):
        return read_inla_graph(obj)
    if sp.issparse(obj):
        if obj.shape[0] != obj.shape[1]:
            raise DataError(f"the adjacency matrix {what} must be square, got shape {obj.shape}")
        return _symmetric(obj, what)
    arr = np.asarray(obj)
    if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and arr.shape[0] > 2 and set(np.unique(arr)) <= {0, 1}:
        return _symmetric(sp.csr_matrix(arr), what)
    if arr.ndim == 2 and arr.shape[1] == 2 and np.issubdtype(arr.dtype, np.integer):
        base = 1 if arr.min() >= 1 else 0
        e = arr - base
        n = int(e.max()) + 1
        A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
        return _symmetric(A + A.T, what)
    raise ModelError(f"cannot use {type(obj).__name__} as a graph {what}".rstrip(),
                     hint="give a scipy.sparse adjacency, a dense 0/1 matrix, an (E, 2) edge list or an R-INLA graph file path")


def per_graph(kind: str, W: sp.csr_matrix, compute: Callable[[], T]) -> T:
    """``compute()`` once per ``kind`` and adjacency in this process, a copy of it after that.

    A graph's scaled structure matrix needs the generalised variance of each component, and
    bym2's φ prior the whole spectrum (a dense eigendecomposition): about 30 ms of every fit of
    S2's 544-region model, the same each time the model is fitted again, or another model is
    fitted on that graph. Keyed by W's content, so a graph read again from its file still
    matches; copies, so a caller that changes what it got cannot change what the next one gets.
    """
    W = sp.csr_matrix(W)
    digest = hashlib.blake2b(digest_size=16)
    for a in (np.asarray(W.shape, np.int64), W.indptr, W.indices, W.data):
        digest.update(np.ascontiguousarray(a).tobytes())
    key = (kind, digest.digest())
    if key in _PER_GRAPH:
        _PER_GRAPH.move_to_end(key)
    else:
        _PER_GRAPH[key] = compute()
        while len(_PER_GRAPH) > PER_GRAPH_KEPT:
            _PER_GRAPH.popitem(last=False)
    return copy.deepcopy(_PER_GRAPH[key])
