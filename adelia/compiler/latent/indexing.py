"""Index values -> latent nodes, shared by the latent model builders.

R-INLA's rule: the nodes are ``values`` if given, else the sorted unique index values (``n``
extends integer indices 1..n to levels not seen in the data).
"""

from __future__ import annotations

import numpy as np

from adelia.compiler.latent.base import TermInput
from adelia.errors import DataError, ModelError


def nodes_from_values(term: TermInput) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(term.index)
    observed = idx[~_isnan(idx)]
    if "values" in term.args and term.args["values"] is not None:
        values = np.asarray(term.args["values"])
    elif term.args.get("n") is not None:
        n = int(term.args["n"])
        values = np.arange(1, n + 1)
        if observed.size and (observed.min() < 1 or observed.max() > n or np.any(observed != np.round(observed))):
            raise DataError(f"with n = {n}, the index of f({term.name}) must hold integers 1..{n}",
                            span=term.describe("n"))
    else:
        values = np.unique(observed)
    pos = {v: i for i, v in enumerate(values.tolist())}
    node = np.full(idx.shape, -1, dtype=np.int64)
    for i, v in enumerate(idx.tolist()):
        if isinstance(v, float) and np.isnan(v):
            continue
        if v not in pos:
            raise DataError(f"value {v!r} of the index '{term.name}' (row {i}) is not among the component's values",
                            hint="list every level in values = [...]")
        node[i] = pos[v]
    return values, node


def row_numbers(term: TermInput, n: int, what: str, span_key: str | None = None) -> np.ndarray:
    """Index values -> 0-based numbers of n items (1..n as in R, or 0..n−1 when a 0 appears); NaN -> −1."""
    try:
        idx = np.asarray(term.index, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"the index of f({term.name}) must hold numbers of {what}") from None
    ok = ~np.isnan(idx)
    obs = idx[ok]
    if np.any(obs != np.round(obs)):
        raise DataError(f"the index of f({term.name}) must hold integer numbers of {what}")
    base = 0 if obs.size and obs.min() == 0 else 1
    bad = np.flatnonzero(ok & ((idx - base < 0) | (idx - base >= n)))
    if bad.size:
        raise DataError(f"index '{term.name}' has values outside {base}..{n - 1 + base}, the {what} "
                        f"(first offending rows: {bad[:5].tolist()})",
                        span=term.describe(span_key) if span_key else None)
    return np.where(ok, idx - base, -1).astype(np.int64)


def graph_nodes(term: TermInput, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Map an index to the nodes of a graph with n nodes: 1..n (R-INLA) or 0..n-1 (Python)."""
    node = row_numbers(term, n, "the graph's nodes", "graph")
    idx = np.asarray(term.index, dtype=float)
    base = 0 if np.nanmin(idx, initial=1) == 0 else 1
    return np.arange(base, n + base), node


def _isnan(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "fc":
        return np.isnan(a)
    if a.dtype.kind == "O":
        return np.array([isinstance(v, float) and np.isnan(v) for v in a], dtype=bool)
    return np.zeros(a.shape, dtype=bool)


def require(cond: bool, message: str, term: TermInput, key: str | None = None, hint: str | None = None):
    if not cond:
        raise ModelError(message, span=term.describe(key) if key else None, hint=hint)
