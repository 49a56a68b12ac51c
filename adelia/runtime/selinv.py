"""Supernodal selected inversion: Σ = Q⁻¹ on the sparsity pattern of the Cholesky factor.

Given a (permuted) sparse Cholesky factor Q = L Lᵀ, the entries of Σ = Q⁻¹ on the pattern of L
(fill included) obey a recurrence that never touches an entry outside that pattern
(Takahashi, Fagan & Chin 1973; Erisman & Tinney 1975). From Σ L = L⁻ᵀ, for a supernode J — a
set of consecutive columns with a common row structure R below the diagonal block —

    Y     = L_RJ L_JJ⁻¹                                  (L_JJ⁻¹ by trtri, then trmm)
    Σ_RJ  = −Σ_RR Y                                      (symm, the bulk of the work)
    Σ_JJ  = L_JJ⁻ᵀ L_JJ⁻¹ − Σ_RJᵀ Y                      (lauum + gemm)

taken over the supernodes from the root of the elimination tree down. Σ_RR is needed only on
R × R, and R ⊂ cols(P) ∪ R_P for the parent supernode P, so Σ_RR is a sub-matrix of the parent's
dense "frontal inverse" F_P = Σ[cols(P) ∪ R_P, cols(P) ∪ R_P]: one dense gather per supernode
through relative indices computed once per pattern (the selected-inversion mirror of the
multifrontal extend-add). The gather copies the lower triangle in blocks over runs of
consecutive parent positions or, when the rows fall into many short runs (orders such as
METIS_NodeND fragment the parent's positions), takes Σ_RR in two indexed copies (Σ_RR enters
through ``symm``, which reads the lower triangle only). This is the block Takahashi recurrence of
METHOD.md §5 on a general elimination tree, organised by supernodes with dense BLAS-3 per
supernode as in SelInv. The flops are ≈ 2–3× those of the factorisation
(2 r²s + 3 r s² + ⅔ s³ per supernode against r²s + r s² + ⅓ s³); measured 1.4–2× its time on
SPDE and space–time precisions (``benchmarks/sparse.py``).

Memory: the output has the size of the factor; the live frontal inverses are those of the
ancestors of the current supernode (supernodes are visited in reverse post-order, so a parent's
Σ_RR is freed after its last child has gathered from it).

Storage layout (the one CHOLMOD's supernodal factor uses): supernode J owns columns
``sup[J]:sup[J+1]`` (s_J of them) and the sorted row list ``rows[pi[J]:pi[J+1]]`` (m_J rows, its own
columns first); its values are the m_J × s_J column-major block ``x[px[J] : px[J] + m_J·s_J]``, of
which the upper triangle of the leading s_J × s_J block is not part of L. :func:`selected_inverse`
returns Σ in the same layout.

Pure NumPy/SciPy; independent of how L was computed (CHOLMOD in ``adelia.runtime.sparse``, or
:func:`supernodes_from_csc` on any lower-triangular CSC factor with a valid elimination pattern).

References:
  K. Takahashi, J. Fagan, M.-S. Chin (1973), Formation of a sparse bus impedance matrix and its
  application to short circuit study, Proc. 8th PICA Conference, 63–69.
  A. M. Erisman, W. F. Tinney (1975), On computing certain elements of the inverse of a sparse
  matrix, Comm. ACM 18(3), 177–179.
  L. Lin, C. Yang, J. C. Meza, J. Lu, L. Ying, W. E (2011), SelInv — an algorithm for selected
  inversion of a sparse symmetric matrix, ACM Trans. Math. Softw. 37(4), 40.
  H. Rue, S. Martino (2007), Approximate Bayesian inference for hierarchical Gaussian Markov
  random field models, J. Stat. Plan. Inference 137, 3177–3192 (its use for INLA's variances).
"""

from __future__ import annotations

__all__ = [
    "Supernodes",
    "supernodes_from_arrays",
    "supernodes_from_csc",
    "pack_csc",
    "selected_inverse",
    "positions",
    "symbolic_pattern",
]

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas, lapack


@dataclass(frozen=True, eq=False)
class Supernodes:
    """Symbolic supernodal structure of a lower Cholesky factor (permuted ordering).

    ``sup``, ``pi``, ``px``, ``rows`` as in the module docstring; derived: ``parent`` (−1 at a
    root), ``rel`` (aligned with ``rows``: for each row below a supernode's diagonal block, its
    position in the parent's row list), ``col2sup`` and ``nchildren``.
    """

    n: int
    sup: np.ndarray
    pi: np.ndarray
    px: np.ndarray
    rows: np.ndarray
    parent: np.ndarray
    rel: np.ndarray
    col2sup: np.ndarray
    nchildren: np.ndarray

    @property
    def nsuper(self) -> int:
        return len(self.sup) - 1

    @property
    def xsize(self) -> int:
        return int(self.px[-1])

    @functools.cached_property
    def nnz(self) -> int:
        """Entries of L (lower trapezoids), explicit zeros of relaxed supernodes included."""
        s = np.diff(self.sup)
        m = np.diff(self.pi)
        return int(np.sum(m * s - s * (s - 1) // 2))

    def lookup(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Positions in a value array of the entries (r, c), r ≥ c, of the pattern (permuted indices).

        Raises ``ValueError`` if an entry is not in the pattern.
        """
        r = np.asarray(r, dtype=np.int64)
        c = np.asarray(c, dtype=np.int64)
        J = self.col2sup[c]
        key = J * self.n + r
        k = np.searchsorted(self._keys, key)
        k = np.minimum(k, len(self.rows) - 1)
        if not np.array_equal(self._keys[k], key):
            bad = np.flatnonzero(self._keys[k] != key)[0]
            raise ValueError(f"entry ({int(r[bad])}, {int(c[bad])}) is not in the factor's pattern")
        m = self.pi[J + 1] - self.pi[J]
        return self.px[J] + (c - self.sup[J]) * m + (k - self.pi[J])

    @property
    def _keys(self) -> np.ndarray:
        keys = self.__dict__.get("_keys_cache")
        if keys is None:
            owner = np.repeat(np.arange(self.nsuper, dtype=np.int64), np.diff(self.pi))
            keys = owner * self.n + self.rows
            object.__setattr__(self, "_keys_cache", keys)
        return keys


def supernodes_from_arrays(n: int, sup, pi, px, rows) -> Supernodes:
    """Build :class:`Supernodes` from CHOLMOD-style arrays (copied to int64).

    Checks the properties the recurrence relies on: rows sorted within each supernode with the
    supernode's own columns first, and each supernode's below-diagonal rows contained in its
    parent's row list.
    """
    sup = np.asarray(sup, dtype=np.int64).copy()
    pi = np.asarray(pi, dtype=np.int64).copy()
    px = np.asarray(px, dtype=np.int64).copy()
    rows = np.asarray(rows, dtype=np.int64).copy()
    ns = len(sup) - 1
    s = np.diff(sup)
    m = np.diff(pi)
    if sup[0] != 0 or sup[-1] != n or np.any(s <= 0) or np.any(m < s):
        raise ValueError("inconsistent supernode boundaries")
    if not np.array_equal(np.diff(px), m * s):
        raise ValueError("supernode value pointers do not match m·s blocks")
    owner = np.repeat(np.arange(ns, dtype=np.int64), m)
    keys = owner * n + rows
    if len(keys) > 1 and np.any(np.diff(keys) <= 0):
        raise ValueError("row indices must be sorted within each supernode")
    # Own columns first: rows[pi[J] + k] == sup[J] + k.
    local = np.arange(len(rows), dtype=np.int64) - np.repeat(pi[:-1], m)
    own = local < np.repeat(s, m)
    if not np.array_equal(rows[own], np.arange(n, dtype=np.int64)):
        raise ValueError("each supernode's row list must start with its own columns")
    col2sup = np.repeat(np.arange(ns, dtype=np.int64), s)
    has_below = m > s
    first_below = rows[np.minimum(pi[:-1] + s, len(rows) - 1)]
    parent = np.where(has_below, col2sup[first_below], -1)
    # Relative positions of each below-diagonal row in the parent's row list.
    rel = np.full(len(rows), -1, dtype=np.int64)
    below = ~own
    par = np.repeat(parent, m)[below]
    pkey = par * n + rows[below]
    k = np.searchsorted(keys, pkey)
    k = np.minimum(k, len(keys) - 1)
    if not np.array_equal(keys[k], pkey):
        raise ValueError("the pattern is not a Cholesky (elimination) pattern: a supernode's rows "
                         "are not contained in its parent's")
    rel[below] = k - pi[par]
    nchildren = np.bincount(parent[parent >= 0], minlength=ns).astype(np.int64)
    out = Supernodes(n=n, sup=sup, pi=pi, px=px, rows=rows, parent=parent, rel=rel,
                     col2sup=col2sup, nchildren=nchildren)
    object.__setattr__(out, "_keys_cache", keys)
    return out


def supernodes_from_csc(L: sp.spmatrix) -> Supernodes:
    """Fundamental supernodes of a lower-triangular CSC factor pattern (explicit zeros count).

    Columns j and j+1 are merged when column j's rows are {j} ∪ column (j+1)'s rows; for an
    elimination pattern (every column's rows nested in its etree parent's) that is the usual
    fundamental-supernode rule on a chain.
    """
    L = sp.csc_matrix(L)
    L.sort_indices()
    n = L.shape[0]
    ip = L.indptr.astype(np.int64)
    idx = L.indices.astype(np.int64)
    cnt = np.diff(ip)
    if np.any(cnt == 0) or not np.array_equal(idx[ip[:-1]], np.arange(n)):
        raise ValueError("L must be lower triangular with its diagonal stored first in every column")
    # merge j+1 into j's supernode?
    j = np.arange(n - 1)
    second = np.where(cnt[:-1] > 1, idx[np.minimum(ip[:n - 1] + 1, len(idx) - 1)], -1)
    merge = (cnt[:-1] == cnt[1:] + 1) & (second == j + 1)
    starts = np.concatenate([[0], np.flatnonzero(~merge) + 1, [n]]).astype(np.int64)
    s = np.diff(starts)
    m = cnt[starts[:-1]]
    pi = np.concatenate([[0], np.cumsum(m)])
    px = np.concatenate([[0], np.cumsum(m * s)])
    first = ip[starts[:-1]]
    rows = idx[np.repeat(first - pi[:-1], m) + np.arange(pi[-1])]
    return supernodes_from_arrays(n, starts, pi, px, rows)


def pack_csc(S: Supernodes, L: sp.spmatrix) -> np.ndarray:
    """Values of a CSC factor with pattern ``S`` in the supernodal layout (upper parts zero)."""
    L = sp.csc_matrix(L)
    L.sort_indices()
    x = np.zeros(S.xsize)
    cols = np.repeat(np.arange(S.n, dtype=np.int64), np.diff(L.indptr))
    x[S.lookup(L.indices.astype(np.int64), cols)] = L.data
    return x


def positions(S: Supernodes, r, c) -> np.ndarray:
    """Positions of entries (r, c) of a symmetric matrix (either triangle) in S's value layout."""
    r = np.asarray(r, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    return S.lookup(np.maximum(r, c), np.minimum(r, c))


def symbolic_pattern(A: sp.spmatrix) -> sp.csc_matrix:
    """Pattern of the Cholesky factor of A (natural order) as a CSC matrix of ones.

    Column-by-column symbolic elimination with the elimination tree (Rose, Tarjan & Lueker
    1976): struct(L_{:,j}) = {j} ∪ (struct(A_{>j,j})) ∪ ⋃_{children c} struct(L_{:,c}) \\ {c}.
    For tests and small problems (Python loop over columns).
    """
    A = sp.csc_matrix(A)
    n = A.shape[0]
    low = sp.tril(A, format="csc")
    low.sort_indices()
    children: list[list[int]] = [[] for _ in range(n)]
    structs: list[np.ndarray] = []
    for j in range(n):
        parts = [np.array([j]), low.indices[low.indptr[j]:low.indptr[j + 1]]]
        for c in children[j]:
            parts.append(structs[c][structs[c] > j])
        sj = np.unique(np.concatenate(parts).astype(np.int64))
        structs.append(sj)
        if len(sj) > 1:
            children[int(sj[1])].append(j)
    indptr = np.concatenate([[0], np.cumsum([len(t) for t in structs])])
    indices = np.concatenate(structs)
    return sp.csc_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n))


def _runs(S: Supernodes) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of consecutive parent positions in each supernode's below-diagonal rows.

    A run never straddles the parent's own-columns / below-rows boundary (the two parts of the
    parent's frontal inverse are stored apart). Returns (starts, pointers): supernode J's runs
    start at the positions ``starts[ptr[J]:ptr[J+1]]`` of its below-diagonal row list.
    """
    cache = S.__dict__.get("_runs_cache")
    if cache is not None:
        return cache
    s = np.diff(S.sup)
    m = np.diff(S.pi)
    r = m - s
    owner = np.repeat(np.arange(S.nsuper, dtype=np.int64), m)
    local = np.arange(len(S.rows), dtype=np.int64) - np.repeat(S.pi[:-1], m)
    below = local >= np.repeat(s, m)
    own_b = owner[below]
    rel_b = S.rel[below]
    pos_b = local[below] - s[own_b]
    s_par = s[S.parent[own_b]]
    new = np.ones(len(rel_b), dtype=bool)
    same = own_b[1:] == own_b[:-1]
    contig = rel_b[1:] == rel_b[:-1] + 1
    cross = (rel_b[:-1] < s_par[:-1]) & (rel_b[1:] >= s_par[1:])
    new[1:] = ~(same & contig & ~cross)
    starts = pos_b[new]
    counts = np.bincount(own_b[new], minlength=S.nsuper)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    assert np.all(counts[r > 0] > 0)
    object.__setattr__(S, "_runs_cache", (starts, ptr))
    return starts, ptr


@dataclass(frozen=True, eq=False)
class LeafGroup:
    """Leaf supernodes (no children) of one shape: s own columns, r rows below.

    Leaves depend on nothing below them — in the selected inversion they only read their
    ancestors' Σ entries, in the forward solve their right-hand sides are final from the start,
    in the backward solve they only read their ancestors' unknowns — so a group is handled by
    a few batched NumPy calls instead of a Python step per supernode. Per leaf (axis 0, k of
    them): ``cols`` (k, s) its columns, ``below`` (k, r) the rows below its diagonal block, and
    the positions in the value layout of D_J (``d_pos``, k × s × s: entry [t, c] is row t,
    column c of the diagonal block, upper triangle included), of E_J (``e_pos``, k × r × s) and of
    Σ_RR (``rr_pos``, k × r × r, both triangles mapped to the stored lower one).
    """

    s: int
    r: int
    cols: np.ndarray
    below: np.ndarray
    d_pos: np.ndarray
    e_pos: np.ndarray
    rr_pos: np.ndarray


@dataclass(frozen=True, eq=False)
class Leaves:
    """The leaf supernodes of a pattern: ``groups`` by shape (s, r), and for the inverses of
    their diagonal blocks, per width s the positions of all those blocks (``by_width``:
    (s, k × s × s positions, the groups' index range)), so each width costs one batched call."""

    groups: tuple[LeafGroup, ...]
    by_width: tuple[tuple[int, np.ndarray, range], ...]

    def diagonal_inverses(self, x: np.ndarray) -> list[np.ndarray]:
        """L_JJ⁻¹ of every leaf, aligned with ``groups``."""
        out = []
        for s, pos, span in self.by_width:
            inv = lower_inverses(x[pos], s)
            at = 0
            for g in self.groups[span.start:span.stop]:
                out.append(inv[at:at + len(g.cols)])
                at += len(g.cols)
        return out


#: a shape shared by fewer leaves than this is left to the per-supernode loop, which costs less
#: for one or two supernodes than a batch's dozen NumPy calls
MIN_BATCH = 4


def leaf_groups(S: Supernodes) -> Leaves:
    """The leaf supernodes of S grouped by shape, the shapes of at least :data:`MIN_BATCH`
    leaves (cached on S)."""
    cache = S.__dict__.get("_leaf_cache")
    if cache is not None:
        return cache
    s_all = np.diff(S.sup)
    m_all = np.diff(S.pi)
    leaves = np.flatnonzero(S.nchildren == 0)
    shape = np.stack([s_all[leaves], m_all[leaves] - s_all[leaves]], axis=1)
    groups = []
    kinds, counts = np.unique(shape, axis=0, return_counts=True)
    for (s, r), count in zip(kinds.tolist(), counts.tolist()):   # sorted: groups of one width are adjacent
        if count < MIN_BATCH:
            continue
        J = leaves[(shape[:, 0] == s) & (shape[:, 1] == r)]
        m = s + r
        base = S.px[J][:, None, None]
        t = np.arange(m)[None, :, None]
        c = np.arange(s)[None, None, :]
        pos = base + c * m + t                                   # (k, m, s): row t, column c of J's block
        rows = S.rows[S.pi[J][:, None] + np.arange(m)[None, :]]  # (k, m)
        below = rows[:, s:]
        rr = positions(S, below[:, :, None], below[:, None, :]) if r else np.zeros((len(J), 0, 0), np.int64)
        groups.append(LeafGroup(s=s, r=r, cols=rows[:, :s], below=below, d_pos=pos[:, :s], e_pos=pos[:, s:],
                                rr_pos=rr.reshape(len(J), r, r)))
    widths = [g.s for g in groups]
    by_width = []
    for s in sorted(set(widths)):
        first, last = widths.index(s), len(widths) - widths[::-1].index(s)
        by_width.append((s, np.concatenate([g.d_pos for g in groups[first:last]]), range(first, last)))
    out = Leaves(tuple(groups), tuple(by_width))
    object.__setattr__(S, "_leaf_cache", out)
    return out


def leaf_mask(S: Supernodes) -> np.ndarray:
    """Whether each supernode is a leaf handled in a batch (:func:`leaf_groups`)."""
    mask = S.__dict__.get("_leaf_mask_cache")
    if mask is None:
        mask = np.zeros(S.nsuper, dtype=bool)
        for g in leaf_groups(S).groups:
            mask[S.col2sup[g.cols[:, 0]]] = True
        object.__setattr__(S, "_leaf_mask_cache", mask)
    return mask


def lower_inverses(D: np.ndarray, s: int) -> np.ndarray:
    """L_JJ⁻¹ for a stack of lower-triangular blocks (their upper triangles are ignored).

    Raises ``ValueError`` on a zero diagonal entry."""
    if s == 1:
        if not np.all(D):
            raise ValueError("the factor has a zero diagonal entry in a leaf supernode")
        return 1.0 / D
    D = D * np.tri(s)
    if not np.all(np.diagonal(D, axis1=1, axis2=2)):
        raise ValueError("the factor has a zero diagonal entry in a leaf supernode")
    return np.linalg.inv(D) * np.tri(s)


#: supernodes with children, at most this wide and with at most this many rows below, are
#: batched by level (:func:`level_groups`); larger ones keep their own BLAS calls
LEVEL_MAX_S = 32
LEVEL_MAX_R = 64


def _round_up(v: np.ndarray, q: int) -> np.ndarray:
    return -(-v // q) * q


@dataclass(frozen=True, eq=False)
class LevelGroup:
    """Supernodes batched like the leaves (:class:`LeafGroup`) but padded to one shape (s, r):
    one height in the forest of batched supernodes (1 + the largest height of its children, 0
    for a leaf), so members depend only on other heights.

    A member whose own widths are smaller is padded: its columns and rows by ``n`` (a scratch
    row of the solves), its diagonal block by the identity (``d_eye``), its other entries by
    zero (``*_mask``), so the padded entries of every product are zero. ``d_keep`` / ``e_keep``:
    flat indices of the real entries of the (k, s, s) / (k, r, s) stacks, written back to
    ``d_pos`` / ``e_pos`` at those indices.
    """

    height: int
    s: int
    r: int
    cols: np.ndarray
    below: np.ndarray
    d_pos: np.ndarray
    d_mask: np.ndarray
    d_eye: np.ndarray
    e_pos: np.ndarray
    e_mask: np.ndarray
    rr_pos: np.ndarray
    rr_mask: np.ndarray
    d_keep: np.ndarray
    e_keep: np.ndarray

    def diagonal_inverses(self, x: np.ndarray) -> np.ndarray:
        return lower_inverses(x[self.d_pos] * self.d_mask + self.d_eye, self.s)

    def blocks_below(self, x: np.ndarray) -> np.ndarray:
        return x[self.e_pos] * self.e_mask


def level_groups(S: Supernodes) -> tuple[LevelGroup, ...]:
    """Supernodes batched level by level (cached on S), lowest level first: at level 0 the
    leaves that no exact-shape leaf group took, then supernodes with children.

    A supernode joins when it is small (:data:`LEVEL_MAX_S`, :data:`LEVEL_MAX_R`), all its
    children are batched, and at least :data:`MIN_BATCH` such supernodes of its height share
    its padded shape (s to a multiple of 4, r of 8); the batched set is then closed under
    descendants, so the per-supernode loop (which hands each parent's frontal inverse to its
    children) never meets a batched parent.
    """
    cache = S.__dict__.get("_level_cache")
    if cache is not None:
        return cache
    ns = S.nsuper
    s_all = np.diff(S.sup)
    r_all = np.diff(S.pi) - s_all
    batched = leaf_mask(S).copy()
    height = np.zeros(ns, dtype=np.int64)
    small = ~batched & (s_all <= LEVEL_MAX_S) & (r_all <= LEVEL_MAX_R)
    has_parent = S.parent >= 0
    groups = []
    h = 0                                   # level 0: the leaves too rare in their exact shape
    while True:
        done_children = np.bincount(S.parent[has_parent & batched], minlength=ns)
        top_child = np.full(ns, -1, dtype=np.int64)
        np.maximum.at(top_child, S.parent[has_parent & batched], height[has_parent & batched])
        ready = np.flatnonzero(small & ~batched & (done_children == S.nchildren) & (top_child == h - 1))
        if not len(ready):
            if h == 0:                      # no rare leaves; the exact-shape leaf groups are level 0
                h += 1
                continue
            break                           # nothing joined level h - 1, so nothing can join level h
        sp, rp = _round_up(s_all[ready], 4), _round_up(r_all[ready], 8)
        kinds, inverse, counts = np.unique(np.stack([sp, rp], axis=1), axis=0, return_inverse=True,
                                           return_counts=True)
        for q, (s, r) in enumerate(kinds.tolist()):
            if counts[q] < MIN_BATCH:
                continue
            J = ready[inverse.ravel() == q]
            batched[J] = True
            height[J] = h
            groups.append(_level_group(S, J, h, s, r))
        small[ready] = batched[ready]         # the rest stay in the loop, and so do their ancestors
        h += 1
    out = tuple(groups)
    object.__setattr__(S, "_level_cache", out)
    object.__setattr__(S, "_batched_cache", batched)
    return out


def _level_group(S: Supernodes, J: np.ndarray, h: int, s: int, r: int) -> LevelGroup:
    n = S.n
    k = len(J)
    sj = (S.sup[J + 1] - S.sup[J])[:, None]
    mj = (S.pi[J + 1] - S.pi[J])[:, None]
    rj = mj - sj
    c = np.arange(s)[None, :]
    a = np.arange(r)[None, :]
    col_ok = c < sj                                                   # (k, s)
    row_ok = a < rj                                                   # (k, r)
    cols = np.where(col_ok, S.sup[J][:, None] + c, n)
    below = np.where(row_ok, S.rows[np.minimum(S.pi[J][:, None] + sj + a, len(S.rows) - 1)], n)
    base = S.px[J][:, None, None]
    m3 = mj[:, :, None]
    d_ok = col_ok[:, :, None] & col_ok[:, None, :]
    d_pos = np.where(d_ok, base + np.arange(s)[None, None, :] * m3 + np.arange(s)[None, :, None], 0)
    e_ok = row_ok[:, :, None] & col_ok[:, None, :]
    e_pos = np.where(e_ok, base + np.arange(s)[None, None, :] * m3 + sj[:, :, None] + np.arange(r)[None, :, None], 0)
    rr_ok = row_ok[:, :, None] & row_ok[:, None, :]
    rr_pos = np.zeros((k, r, r), dtype=np.int64)
    if r:
        rr_pos[rr_ok] = positions(S, np.broadcast_to(below[:, :, None], rr_ok.shape)[rr_ok],
                                  np.broadcast_to(below[:, None, :], rr_ok.shape)[rr_ok])
    eye = np.zeros((k, s, s))
    pad = np.flatnonzero(~col_ok.ravel())
    eye.reshape(k * s, s)[pad, pad % s] = 1.0
    return LevelGroup(height=h, s=s, r=r, cols=cols, below=below, d_pos=d_pos, d_mask=d_ok.astype(float), d_eye=eye,
                      e_pos=e_pos, e_mask=e_ok.astype(float), rr_pos=rr_pos, rr_mask=rr_ok.astype(float),
                      d_keep=np.flatnonzero(d_ok.ravel()), e_keep=np.flatnonzero(e_ok.ravel()))


def batched_mask(S: Supernodes) -> np.ndarray:
    """Whether each supernode is handled in a batch (a leaf group or a level group)."""
    level_groups(S)
    return S.__dict__["_batched_cache"]


def _level_inverse(groups: tuple[LevelGroup, ...], x: np.ndarray, out: np.ndarray) -> None:
    """:func:`_leaf_inverse` for the level groups, highest level first (a member reads Σ_RR of
    its ancestors: supernodes of the loop, or of higher levels)."""
    for g in sorted(groups, key=lambda g: -g.height):
        Linv = g.diagonal_inverses(x)
        Sjj = np.swapaxes(Linv, 1, 2) @ Linv
        if g.r:
            Y = g.blocks_below(x) @ Linv
            Srj = -((out[g.rr_pos] * g.rr_mask) @ Y)
            Sjj -= np.swapaxes(Srj, 1, 2) @ Y
            out[g.e_pos.ravel()[g.e_keep]] = Srj.ravel()[g.e_keep]
        out[g.d_pos.ravel()[g.d_keep]] = Sjj.ravel()[g.d_keep]


def _leaf_inverse(leaves: Leaves, x: np.ndarray, out: np.ndarray) -> None:
    """The recurrence of the module docstring for every leaf, batched by shape; reads Σ_RR from
    ``out`` (the ancestors are done: R × R lies in the pattern, R being a clique of the filled graph)."""
    for g, Linv in zip(leaves.groups, leaves.diagonal_inverses(x)):
        Sjj = np.swapaxes(Linv, 1, 2) @ Linv
        if g.r:
            Y = x[g.e_pos] @ Linv
            Srj = -(out[g.rr_pos] @ Y)
            Sjj -= np.swapaxes(Srj, 1, 2) @ Y
            out[g.e_pos] = Srj
        out[g.d_pos] = Sjj


# Σ_RR is copied block by block when its rows fall into at most this many runs of consecutive
# parent positions; with more (orders such as METIS_NodeND fragment the parent's positions, into
# runs of median width 2 on SPDE ⊗ AR1), a copy per run costs more in Python than the data, and
# :func:`_gather_indexed` takes Σ_RR in two indexed copies instead.
_PAIR_RUNS = 4


def _gather_runs(Srr: np.ndarray, rel: np.ndarray, starts: np.ndarray, topP: np.ndarray, SrrP: np.ndarray,
                 sP: int) -> None:
    """The lower triangle of Σ_RR from the parent's frontal inverse, one block copy per pair of
    runs (``starts``: where each run of consecutive parent positions begins in ``rel``)."""
    idx = rel.tolist()
    bounds = starts.tolist() + [len(idx)]
    k = len(bounds) - 1
    for b in range(k):
        p, q = bounds[b], bounds[b + 1]
        # columns p:q of Σ_RR are one run: in P's output block (rows: all of P's) or in Σ_RR of P
        src, off = (topP, 0) if idx[p] < sP else (SrrP, sP)
        c0 = idx[p] - off
        for a in range(b, k):
            pa, qa = bounds[a], bounds[a + 1]
            ra = idx[pa] - off
            Srr[pa:qa, p:q] = src[ra:ra + qa - pa, c0:c0 + q - p]


def _gather_indexed(Srr: np.ndarray, rel: np.ndarray, topP: np.ndarray, SrrP: np.ndarray, sP: int) -> None:
    """Σ_RR from the parent's frontal inverse through the relative indices ``rel`` (sorted): the
    columns whose parent position is one of P's own columns (the first t) read P's output block
    ``topP`` (m_P × s_P), the others P's Σ_RR (both F-ordered). Fills the lower triangle and, for
    the second part, the upper one too (read but unused by ``symm``)."""
    # On the C-ordered transposes, Σ_RRᵀ[b, a] = src[rel_a, rel_b]: the columns rel_b of src are
    # copied whole (contiguous rows of srcᵀ), then gathered along the row, with no r × r array
    # of flat indices to build and read (1.7x faster on the largest separators of SPDE ⊗ AR1 10k)
    t = int(np.searchsorted(rel, sP))
    out = Srr.T
    if t:
        out[:t] = topP.T[rel[:t]][:, rel]
    if t < len(rel):
        rr = rel[t:] - sP
        out[t:, t:] = SrrP.T[rr][:, rr]


def selected_inverse(S: Supernodes, x: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Σ = (L Lᵀ)⁻¹ on the pattern of L, in the supernodal layout of ``x`` (see module docstring).

    ``x`` holds L's values (read only). Returns an array of the same size (``out`` if given,
    to reuse memory across calls) whose lower trapezoids hold Σ's entries; the upper triangles
    of the diagonal blocks are unspecified. Raises ``ValueError`` if L has a zero diagonal.

    Per supernode J (s columns, r rows below, parent P) — see the module docstring:

    * gather Σ_RR from P's frontal inverse: its lower triangle as dense block copies over runs
      of consecutive parent positions, or, when there are many runs, all of it in two indexed
      copies (:func:`_gather_runs`, :func:`_gather_indexed`);
    * L_JJ⁻¹ (trtri), Y = L_RJ L_JJ⁻¹ (trmm), Σ_RJ = −Σ_RR Y (symm, lower triangle of Σ_RR only),
      Σ_JJ = L_JJ⁻ᵀL_JJ⁻¹ (lauum) − Σ_RJᵀ Y (gemm);
    * J's frontal inverse is (its output block [Σ_JJ; Σ_RJ], which lives in ``out``, and Σ_RR),
      kept until J's last child has gathered from it.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (S.xsize,):
        raise ValueError(f"factor values have shape {x.shape}, expected ({S.xsize},)")
    if out is None:
        out = np.empty_like(x)
    elif out.shape != x.shape or out.dtype != np.float64:
        raise ValueError("out must be a float64 array shaped like x")
    starts, rptr = _runs(S)
    rptr = rptr.tolist()
    sup = S.sup.tolist()
    pi = S.pi.tolist()
    px = S.px.tolist()
    parent = S.parent.tolist()
    rel = S.rel
    levels = level_groups(S)
    batched = batched_mask(S)
    # batched supernodes come after the loop (_level_inverse, _leaf_inverse): only the loop's
    # own children gather from a front
    nchild = (S.nchildren - np.bincount(S.parent[batched & (S.parent >= 0)], minlength=S.nsuper)).tolist()
    skip = batched.tolist()
    front: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
    trtri, lauum = lapack.dtrtri, lapack.dlauum
    trmm, symm, gemm = blas.dtrmm, blas.dsymm, blas.dgemm
    for J in range(S.nsuper - 1, -1, -1):
        if skip[J]:
            continue
        s = sup[J + 1] - sup[J]
        m = pi[J + 1] - pi[J]
        r = m - s
        p0 = px[J]
        B = x[p0:p0 + m * s].reshape(s, m).T          # m × s column-major view of L's block
        top = out[p0:p0 + m * s].reshape(s, m).T      # [Σ_JJ; Σ_RJ], written in place
        Linv, info = trtri(B[:s], lower=1)
        if info != 0:
            raise ValueError(f"the factor has a zero diagonal entry in supernode {J}")
        Sjj = lauum(Linv, lower=1)[0]                  # lower triangle of L_JJ⁻ᵀ L_JJ⁻¹
        if r == 0:
            top[:, :] = Sjj
            Srr = Sjj[:0, :0]
        else:
            P = parent[J]
            topP, SrrP, sP = front[P]
            rel_J = rel[pi[J] + s:pi[J + 1]]
            Srr = np.empty((r, r), order="F")
            if rptr[J + 1] - rptr[J] > _PAIR_RUNS:
                _gather_indexed(Srr, rel_J, topP, SrrP, sP)
            else:
                _gather_runs(Srr, rel_J, starts[rptr[J]:rptr[J + 1]], topP, SrrP, sP)
            nchild[P] -= 1
            if nchild[P] == 0:
                del front[P]
            Y = trmm(1.0, Linv, B[s:], side=1, lower=1)            # L_RJ L_JJ⁻¹
            Srj = symm(-1.0, Srr, Y, side=0, lower=1)               # Σ_RJ = −Σ_RR Y
            Sjj = gemm(-1.0, Srj, Y, beta=1.0, c=Sjj, trans_a=1, overwrite_c=1)
            top[:s] = Sjj
            top[s:] = Srj
        if nchild[J] > 0:
            front[J] = (top, Srr, s)
    _level_inverse(levels, x, out)
    _leaf_inverse(leaf_groups(S), x, out)
    if not np.all(np.isfinite(out[S.px[:-1]])):
        raise ValueError("non-finite selected inverse: the factor is singular or not finite")
    return out
