"""General sparse CPU solver: CHOLMOD factorisation + supernodal selected inversion.

For precisions that are not BTA-shaped (areal graphs, spatial-only SPDE, irregular structures;
PERFORMANCE.md "General sparse on CPU"). The same seam as ``adelia.runtime.dense``:

* :func:`analyse` — fill-reducing ordering (nested dissection by default) and supernodal symbolic
  factorisation, **once per sparsity pattern**;
* :func:`factor` — numeric supernodal Cholesky P Q Pᵀ = L Lᵀ for one set of values (optionally
  refactoring in place into an earlier factor's memory);
* :func:`logdet`, :func:`solve`, :func:`sample_standard` — through CHOLMOD;
* :func:`selected_inverse` (alias :func:`inverse`) — Σ = Q⁻¹ on the pattern of L + Lᵀ (fill
  included) in the original ordering, by the supernodal Takahashi recurrence of
  :mod:`adelia.runtime.selinv` on CHOLMOD's own supernodes; :meth:`Factor.selinv` gives the
  lighter :class:`SelectedInverse` (diagonal, entries at given positions, traces);
* :func:`trace_with` — tr(Q⁻¹ dQ) = ⟨Σ, dQ⟩ for a symmetric dQ on the pattern.

JAX side: :func:`sparse_logdet` and :func:`sparse_solve` take Q's non-zero values in a fixed
pattern (a JAX array), run CHOLMOD in a ``jax.pure_callback``, and have ``custom_vjp`` rules
(trace identity with the selected inverse; one extra solve) — never differentiating a
factorisation.

CHOLMOD comes from SuiteSparse through scikit-sparse 0.4.16 (``.ci/install_suitesparse.sh``);
it is optional: :func:`available` says whether it imported, and every entry point raises an
``ImportError`` with the install command when it did not. CHOLMOD's supernodal code is GPL-2+;
adelia only links to it at run time through scikit-sparse and vendors none of it.

scikit-sparse does not expose CHOLMOD's supernodal arrays (``Factor.L()`` converts to a
simplicial copy, as slow as a factorisation). They are read in place through ``ctypes`` using the
documented ``cholmod_factor`` struct layout (SuiteSparse ``cholmod_core.h``); the layout is
verified against what scikit-sparse reports (n, permutation pointer, supernode consistency) and,
should that ever fail, the slower ``Factor.L()`` route is used instead.

Threads: set ``OPENBLAS_NUM_THREADS=1`` (PERFORMANCE.md §8); CHOLMOD uses the system OpenBLAS.
"""

from __future__ import annotations

__all__ = [
    "available",
    "SparseAnalysis",
    "Factor",
    "SelectedInverse",
    "analyse",
    "factor",
    "logdet",
    "solve",
    "selected_inverse",
    "inverse",
    "sample_standard",
    "constrain",
    "constrained_logdet_term",
    "trace_with",
    "sparse_logdet",
    "sparse_solve",
]

import ctypes
import threading
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.errors import FitError
from adelia.runtime import selinv as _si

try:  # optional system dependency (libsuitesparse-dev + scikit-sparse 0.4.16)
    from sksparse import cholmod as _cholmod
except ImportError:  # pragma: no cover - depends on the machine
    _cholmod = None

INSTALL_HINT = ("install CHOLMOD: `bash .ci/install_suitesparse.sh .venv/bin/python` "
                "(Debian: libsuitesparse-dev, scikit-sparse==0.4.16)")
ORDERINGS = ("nesdis", "metis", "amd", "natural", "default", "best", "colamd")


def available() -> bool:
    """Whether scikit-sparse's CHOLMOD could be imported."""
    return _cholmod is not None


def _require() -> None:
    if _cholmod is None:
        raise ImportError("adelia.runtime.sparse needs scikit-sparse (CHOLMOD); " + INSTALL_HINT)


# --------------------------------------------------------------------------------------------
# Reading CHOLMOD's supernodal factor in place
# --------------------------------------------------------------------------------------------


class _CholmodFactorStruct(ctypes.Structure):
    """``cholmod_factor`` (SuiteSparse ``cholmod_core.h``, unchanged from 4.x to 7.x)."""

    _fields_ = [
        ("n", ctypes.c_size_t), ("minor", ctypes.c_size_t),
        ("Perm", ctypes.c_void_p), ("ColCount", ctypes.c_void_p), ("IPerm", ctypes.c_void_p),
        ("nzmax", ctypes.c_size_t),
        ("p", ctypes.c_void_p), ("i", ctypes.c_void_p), ("x", ctypes.c_void_p), ("z", ctypes.c_void_p),
        ("nz", ctypes.c_void_p), ("next", ctypes.c_void_p), ("prev", ctypes.c_void_p),
        ("nsuper", ctypes.c_size_t), ("ssize", ctypes.c_size_t), ("xsize", ctypes.c_size_t),
        ("maxcsize", ctypes.c_size_t), ("maxesize", ctypes.c_size_t),
        ("super_", ctypes.c_void_p), ("pi", ctypes.c_void_p), ("px", ctypes.c_void_p), ("s", ctypes.c_void_p),
        ("ordering", ctypes.c_int), ("is_ll", ctypes.c_int), ("is_super", ctypes.c_int),
        ("is_monotonic", ctypes.c_int), ("itype", ctypes.c_int), ("xtype", ctypes.c_int),
        ("dtype", ctypes.c_int), ("useGPU", ctypes.c_int),
    ]


_CHOLMOD_INT, _CHOLMOD_LONG, _CHOLMOD_REAL, _CHOLMOD_DOUBLE = 0, 2, 1, 0


def _sksparse_version() -> str:
    try:
        import sksparse

        return str(getattr(sksparse, "__version__", ""))
    except ImportError:
        return ""


# The Cython object layout read by _struct is that of scikit-sparse 0.4.x (a Common reference,
# then the cholmod_factor pointer); other versions take the Factor.L() route.
_LAYOUT_KNOWN = _cholmod is not None and _sksparse_version().startswith("0.4.")


def _struct(f) -> _CholmodFactorStruct | None:
    """The ``cholmod_factor`` behind a scikit-sparse ``Factor``, or None if it cannot be verified.

    The Cython object holds (after the Python object header) a reference to its ``Common`` and
    the ``cholmod_factor *``; the candidate pointer is accepted only if the struct it points to
    reports the same n and the same permutation array as ``f.P()``.
    """
    if not _LAYOUT_KNOWN:
        return None
    try:
        perm = f.P()
    except Exception:  # noqa: BLE001 - anything unexpected means: not verifiable
        return None
    pptr = perm.__array_interface__["data"][0]
    nwords = type(f).__basicsize__ // ctypes.sizeof(ctypes.c_void_p)   # read inside the object only
    words = (ctypes.c_void_p * nwords).from_address(id(f))
    for k in range(2, nwords):
        w = words[k]
        if not w:
            continue
        cand = _CholmodFactorStruct.from_address(w)
        if cand.n == perm.shape[0] and cand.Perm == pptr:
            return cand
    return None


def _view(ptr: int, count: int, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if count == 0:
        return np.zeros(0, dtype)
    buf = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(buf, dtype=dtype)


def _supernodal_arrays(f, *, numeric: bool):
    """(sup, pi, px, rows, x-or-None) views of a supernodal LLᵀ factor, or None."""
    st = _struct(f)
    if st is None or not st.is_super or st.dtype != _CHOLMOD_DOUBLE:
        return None
    if st.itype not in (_CHOLMOD_INT, _CHOLMOD_LONG):
        return None
    it = np.int32 if st.itype == _CHOLMOD_INT else np.int64
    ns = int(st.nsuper)
    arrays = (_view(st.super_, ns + 1, it), _view(st.pi, ns + 1, it), _view(st.px, ns + 1, it),
              _view(st.s, int(st.ssize), it))
    if arrays[0][-1] != st.n or arrays[2][-1] != st.xsize:
        return None
    if not numeric:
        return (*arrays, None)
    if st.xtype != _CHOLMOD_REAL or not st.is_ll or not st.x:
        return None
    return (*arrays, _view(st.x, int(st.xsize), np.float64))


# --------------------------------------------------------------------------------------------
# Analysis (once per pattern), factor, selected inverse
# --------------------------------------------------------------------------------------------


class SparseAnalysis:
    """Symbolic analysis of one symmetric sparsity pattern (values are ignored).

    ``pattern``: any square scipy sparse matrix whose structure is Q's; ``triangle="full"``
    (structurally symmetric, both triangles stored) or ``"lower"`` (only i ≥ j stored).
    The pattern's entries, in sorted CSC order, define the order of the ``values`` vectors that
    :func:`factor`, :func:`sparse_logdet` and :func:`sparse_solve` take.

    With ``triangle="full"`` the matrix used is the symmetric part ½(Q + Qᵀ) (CHOLMOD reads a
    triangle; averaging the mirrored values makes the functions, and their gradients, symmetric
    in (i, j) — the convention of ``jnp.linalg.cholesky``).
    """

    def __init__(self, pattern, *, triangle: str = "full", ordering: str = "nesdis"):
        _require()
        if triangle not in ("full", "lower"):
            raise ValueError(f"triangle must be 'full' or 'lower', got {triangle!r}")
        if ordering not in ORDERINGS:
            raise ValueError(f"unknown ordering {ordering!r}; known: {', '.join(ORDERINGS)}")
        P = sp.csc_matrix(pattern, copy=True)
        if P.ndim != 2 or P.shape[0] != P.shape[1]:
            raise ValueError(f"the pattern must be a square matrix, got shape {P.shape}")
        P.sum_duplicates()
        P.sort_indices()
        n = P.shape[0]
        self.n = n
        self.triangle = triangle
        self.ordering = ordering
        self.indptr = P.indptr.astype(np.int64)
        self.indices = P.indices.astype(np.int64)
        self.nnz = len(self.indices)
        cols = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.indptr))
        rows = self.indices
        self.rows, self.cols = rows, cols
        if triangle == "lower" and np.any(rows < cols):
            raise ValueError("triangle='lower' but the pattern has entries above the diagonal")
        has_diag = np.zeros(n, dtype=bool)
        has_diag[rows[rows == cols]] = True
        if not has_diag.all():
            raise ValueError(f"the pattern lacks diagonal entries (first missing: {int(np.flatnonzero(~has_diag)[0])})")
        lower = rows >= cols
        self._lower_sel = np.flatnonzero(lower)            # pattern entries that feed CHOLMOD
        lo_r, lo_c = rows[lower], cols[lower]
        if triangle == "full":
            key = cols * n + rows                           # sorted (CSC order)
            mkey = lo_r * n + lo_c                          # the mirror (j, i) of each lower (i, j)
            k = np.minimum(np.searchsorted(key, mkey), len(key) - 1)
            if not np.array_equal(key[k], mkey):
                raise ValueError("triangle='full' needs a structurally symmetric pattern")
            self._mirror = k
            self.weights = np.ones(self.nnz)
        else:
            self._mirror = None
            self.weights = np.where(rows == cols, 1.0, 2.0)
        lp = np.concatenate([[0], np.cumsum(np.bincount(lo_c, minlength=n))])
        self._low_indptr = lp.astype(np.int32)
        self._low_indices = lo_r.astype(np.int32)
        A = self._lower_matrix(np.where(lo_r == lo_c, float(n), -1e-3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._symbolic = _cholmod.analyze(A, mode="supernodal", ordering_method=ordering)
        self.perm = np.array(self._symbolic.P(), dtype=np.int64)
        self.iperm = np.empty(n, dtype=np.int64)
        self.iperm[self.perm] = np.arange(n)
        arr = _supernodal_arrays(self._symbolic, numeric=False)
        self.supernodes: _si.Supernodes | None = None
        if arr is not None:
            self.supernodes = _si.supernodes_from_arrays(n, *arr[:4])
        self._direct = self.supernodes is not None
        self._cache_values: np.ndarray | None = None
        self._cache_factor: Factor | None = None
        self._lock = threading.Lock()  # JAX may run host callbacks from several threads
        self._pattern_pos: np.ndarray | None = None
        self._csc_maps: dict[str, tuple] = {}

    # -- building CHOLMOD's input -------------------------------------------------------------
    def _lower_matrix(self, low_values: np.ndarray) -> sp.csc_matrix:
        A = sp.csc_matrix((low_values, self._low_indices, self._low_indptr), shape=(self.n, self.n))
        A.has_sorted_indices = True
        return A

    def lower_values(self, values: np.ndarray) -> np.ndarray:
        """The lower-triangle values CHOLMOD reads (mirrors averaged for a full pattern)."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (self.nnz,):
            raise ValueError(f"values have shape {v.shape}, expected ({self.nnz},) for this pattern")
        if self._mirror is None:
            return v
        return 0.5 * (v[self._lower_sel] + v[self._mirror])

    def values_of(self, Q) -> np.ndarray:
        """Q's values in this pattern's order (Q may not have entries outside the pattern)."""
        Q = sp.csc_matrix(Q)
        Q.sum_duplicates()
        Q.sort_indices()
        if Q.shape != (self.n, self.n):
            raise ValueError(f"matrix of shape {Q.shape} does not match the analysed pattern ({self.n}, {self.n})")
        if self.triangle == "lower":
            Q = sp.tril(Q, format="csc")
            Q.sort_indices()
        if np.array_equal(Q.indptr, self.indptr) and np.array_equal(Q.indices, self.indices):
            return np.asarray(Q.data, dtype=np.float64)
        cols = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(Q.indptr))
        key = self.cols * self.n + self.rows
        qkey = cols * self.n + Q.indices
        k = np.minimum(np.searchsorted(key, qkey), len(key) - 1)
        inside = key[k] == qkey
        if not np.all(inside | (Q.data == 0)):
            raise ValueError("the matrix has non-zeros outside the analysed pattern")
        v = np.zeros(self.nnz)
        v[k[inside]] = Q.data[inside]
        return v

    # -- positions in the factor layout -------------------------------------------------------
    def pattern_positions(self) -> np.ndarray:
        """Positions of the pattern's entries in the supernodal layout of L (cached)."""
        if self._pattern_pos is None:
            S = self._require_supernodes()
            self._pattern_pos = _si.positions(S, self.iperm[self.rows], self.iperm[self.cols])
        return self._pattern_pos

    def flops(self) -> float | None:
        """Flops of the supernodal Cholesky factorisation, Σ_s k³/3 + k²(r − k) + k(r − k)² over the
        supernodes (k columns, r rows: potrf, trsm and the update of the ancestors); None when
        CHOLMOD chose a simplicial factor."""
        S = self.supernodes
        if S is None:
            return None
        k, r = np.diff(S.sup).astype(float), np.diff(S.pi).astype(float)
        return float(np.sum(k ** 3 / 3.0 + k ** 2 * (r - k) + k * (r - k) ** 2))

    def _require_supernodes(self) -> _si.Supernodes:
        if self.supernodes is None:
            raise RuntimeError("no numeric factor yet: factor a matrix first")
        return self.supernodes

    def csc_map(self, triangle: str = "full"):
        """(indptr, indices, source positions) of Σ on the pattern of L (+ Lᵀ) in original order.

        Built once per pattern without a global sort: L's columns in the permuted order, Lᵀ by
        scipy's O(nnz) CSR→CSC transposition, the two merged column by column, then the
        columns moved to the original order and the row indices renamed (rows within a column
        are then unsorted, which CSC allows).
        """
        if triangle not in ("full", "lower"):
            raise ValueError(f"triangle must be 'full' or 'lower', got {triangle!r}")
        if triangle not in self._csc_maps:
            self._csc_maps[triangle] = _csc_map(self._require_supernodes(), self.perm, self.iperm, triangle)
        return self._csc_maps[triangle]

    def clear_cache(self) -> None:
        """Drop the cached factor used by the JAX wrappers (and the Σ→CSC maps)."""
        self._cache_values = None
        self._cache_factor = None
        self._csc_maps.clear()

    # -- factor with a one-entry cache (JAX callbacks: forward and backward see the same values)
    def _factor_cached(self, values: np.ndarray) -> Factor:
        v = np.asarray(values, dtype=np.float64)
        if self._cache_factor is not None and np.array_equal(v, self._cache_values):
            return self._cache_factor
        old = self._cache_factor
        self._cache_factor = None
        self._cache_values = None
        F = factor(self, v, reuse=old)
        self._cache_factor = F
        self._cache_values = v.copy()
        return F

    def __repr__(self) -> str:
        return (f"SparseAnalysis(n={self.n}, nnz={self.nnz}, triangle={self.triangle!r}, "
                f"ordering={self.ordering!r}, nsuper={self.supernodes.nsuper if self.supernodes else '?'})")


def _ragged(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(starts[i], starts[i] + counts[i]) over i (vectorised; int32 if it fits)."""
    counts = np.asarray(counts, dtype=np.int64)
    first = np.cumsum(counts) - counts
    total = int(first[-1] + counts[-1]) if len(counts) else 0
    big = max(total, int(np.max(starts + counts, initial=0))) >= 2**31 - 1
    dtype = np.int64 if big else np.int32
    out = np.repeat((np.asarray(starts, dtype=np.int64) - first).astype(dtype), counts)
    out += np.arange(total, dtype=dtype)
    return out


def _csc_map(S: _si.Supernodes, perm: np.ndarray, iperm: np.ndarray, triangle: str):
    """See :meth:`SparseAnalysis.csc_map`. O(nnz) numpy passes, no global sort."""
    n = S.n
    idx_t = np.int32 if max(n, S.xsize) < 2**31 - 1 else np.int64
    m = np.diff(S.pi)
    J = S.col2sup
    k = np.arange(n, dtype=np.int64) - S.sup[J]
    cnt_l = m[J] - k                                             # entries of column j of L
    ptr_l = np.concatenate([[0], np.cumsum(cnt_l)])
    rows_l = S.rows[_ragged(S.pi[J] + k, cnt_l)].astype(idx_t)   # sorted within each column
    pos_l = _ragged(S.px[J] + k * m[J] + k, cnt_l).astype(idx_t)
    # Lᵀ: column j holds the columns c ≤ j with L[j, c] ≠ 0 (sorted; the diagonal last).
    # Its data carry the layout positions (exact in float64 below 2**53).
    Lt = sp.csr_matrix((pos_l.astype(np.float64), rows_l, ptr_l), shape=(n, n)).tocsc()
    cnt_u = np.diff(Lt.indptr) - 1                               # strictly upper part of column j
    cnt = cnt_u + cnt_l
    ptr = np.concatenate([[0], np.cumsum(cnt)])
    rows = np.empty(int(ptr[-1]), dtype=idx_t)
    pos = np.empty(int(ptr[-1]), dtype=idx_t)
    src_u = _ragged(Lt.indptr[:-1], cnt_u)
    dst_u = _ragged(ptr[:-1], cnt_u)
    rows[dst_u] = Lt.indices[src_u]
    pos[dst_u] = Lt.data[src_u]
    del Lt, src_u, dst_u
    dst_l = _ragged(ptr[:-1] + cnt_u, cnt_l)
    rows[dst_l] = rows_l
    pos[dst_l] = pos_l
    del dst_l, rows_l, pos_l
    # Original order: column a is permuted column iperm[a]; permuted row i' is original perm[i'].
    cnt_o = cnt[iperm]
    take = _ragged(ptr[:-1][iperm], cnt_o)
    rows_o = perm.astype(idx_t)[rows[take]]
    pos_o = pos[take]
    del take, rows, pos
    if triangle == "lower":                                       # keep i ≥ j (original indices)
        keep = rows_o >= np.repeat(np.arange(n, dtype=idx_t), cnt_o)
        cnt_o = np.bincount(np.repeat(np.arange(n), cnt_o)[keep], minlength=n)
        rows_o, pos_o = rows_o[keep], pos_o[keep]
    ptr_o = np.concatenate([[0], np.cumsum(cnt_o)])
    return ptr_o.astype(idx_t if ptr_o[-1] < 2**31 - 1 else np.int64), rows_o, pos_o


class Factor:
    """A numeric supernodal factorisation P Q Pᵀ = L Lᵀ of one set of values."""

    def __init__(self, analysis: SparseAnalysis, cholmod_factor):
        self.analysis = analysis
        self._f = cholmod_factor
        self._sigma: np.ndarray | None = None
        self._selinv_buffer: np.ndarray | None = None

    @property
    def _live(self):
        if self._f is None:
            raise RuntimeError("this factor was overwritten by factor(..., reuse=...); use the new one")
        return self._f

    def logdet(self) -> float:
        """log|Q| = 2 Σ log L_jj."""
        return float(self._live.logdet())

    def solve(self, b) -> np.ndarray:
        """Q⁻¹ b for a vector or a matrix of right-hand sides."""
        b = np.asarray(b, dtype=np.float64)
        if b.shape[0] != self.analysis.n:
            raise ValueError(f"right-hand side has {b.shape[0]} rows, expected {self.analysis.n}")
        return self._live.solve_A(b)

    def sample_standard(self, z) -> np.ndarray:
        """Pᵀ L⁻ᵀ z ~ N(0, Q⁻¹) for z ~ N(0, I) (Rue & Held 2005, Alg. 2.4)."""
        z = np.asarray(z, dtype=np.float64)
        y = self._live.solve_Lt(z, use_LDLt_decomposition=False)
        x = np.empty_like(y)
        x[self.analysis.perm] = y
        return x

    def factor_values(self) -> tuple[_si.Supernodes, np.ndarray]:
        """(supernodes, L's values in their layout); a zero-copy view of CHOLMOD's memory if possible."""
        an = self.analysis
        if an._direct:
            arr = _supernodal_arrays(self._live, numeric=True)
            if arr is not None and arr[4].shape[0] == an.supernodes.xsize and len(arr[0]) == an.supernodes.nsuper + 1:
                return an.supernodes, arr[4]
            an._direct = False
            an.supernodes = None
            an._pattern_pos = None
            an._csc_maps.clear()
        L = self._live.L()
        if an.supernodes is None:
            an.supernodes = _si.supernodes_from_csc(L)
        return an.supernodes, _si.pack_csc(an.supernodes, L)

    def selinv(self) -> SelectedInverse:
        """Σ = Q⁻¹ on the pattern of L (cached on this factor)."""
        if self._sigma is None:
            S, x = self.factor_values()
            buf = self._selinv_buffer
            if buf is not None and buf.shape != x.shape:
                buf = None
            self._sigma = _si.selected_inverse(S, x, out=buf)
            self._selinv_buffer = None
        return SelectedInverse(self.analysis, self._sigma)

    @property
    def nnz_L(self) -> int:
        """Entries of L (CHOLMOD's relaxed supernodes: explicit zeros included)."""
        return self.factor_values()[0].nnz


class SelectedInverse:
    """Σ = Q⁻¹ on the pattern of L + Lᵀ, held in the factor's supernodal layout."""

    def __init__(self, analysis: SparseAnalysis, values: np.ndarray):
        self.analysis = analysis
        self.values = values

    def diagonal(self) -> np.ndarray:
        """Marginal variances diag(Q⁻¹), original ordering."""
        an = self.analysis
        p = an.iperm
        return self.values[_si.positions(an.supernodes, p, p)]

    def at(self, rows, cols) -> np.ndarray:
        """Σ_ij at original-order positions (either triangle; must be in the pattern of L + Lᵀ)."""
        an = self.analysis
        return self.values[_si.positions(an.supernodes, an.iperm[np.asarray(rows)], an.iperm[np.asarray(cols)])]

    def pattern_values(self) -> np.ndarray:
        """Σ at the analysed pattern's entries, in its ``values`` order."""
        return self.values[self.analysis.pattern_positions()]

    def tocsc(self, triangle: str = "full") -> sp.csc_matrix:
        """As a scipy CSC matrix in the original ordering: both triangles or the lower one."""
        indptr, indices, src = self.analysis.csc_map(triangle)
        n = self.analysis.n
        M = sp.csc_matrix((self.values[src], indices, indptr), shape=(n, n))
        M.has_sorted_indices = False   # rows within a column follow the factor's order
        return M


def _not_pd(e, *, what: str = "precision matrix") -> FitError:
    col = getattr(e, "column", None)
    where = f" (CHOLMOD stopped at column {col} of the permuted matrix)" if col is not None else ""
    return FitError(f"the {what} is not positive definite{where}",
                    hint="check the hyperparameters (θ) for extreme values, or the model for an "
                         "unconstrained intrinsic component")


# --------------------------------------------------------------------------------------------
# The seam (functions, as in dense.py)
# --------------------------------------------------------------------------------------------


def analyse(pattern, *, triangle: str = "full", ordering: str = "nesdis") -> SparseAnalysis:
    """Fill-reducing ordering + supernodal symbolic factorisation of a pattern, once."""
    return SparseAnalysis(pattern, triangle=triangle, ordering=ordering)


def factor(analysis: SparseAnalysis, Q, *, reuse: Factor | None = None) -> Factor:
    """Numeric factorisation of Q (a scipy matrix on the pattern, or its ``values`` vector).

    ``reuse``: an earlier :class:`Factor` of the same analysis whose memory (factor and selected
    inverse) is overwritten — it and its :class:`SelectedInverse` become invalid; saves
    allocating (and page-faulting) both. Raises :class:`FitError` if Q is not positive definite.
    """
    an = analysis
    values = an.values_of(Q) if sp.issparse(Q) else np.asarray(Q, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise FitError("the precision matrix has non-finite entries", hint="check θ for overflow")
    A = an._lower_matrix(an.lower_values(values))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if reuse is not None:
                if reuse.analysis is not an:
                    raise ValueError("reuse must be a factor of the same analysis")
                f = reuse._live
                buf = reuse._sigma if reuse._sigma is not None else reuse._selinv_buffer
                reuse._f = None
                reuse._sigma = None
                f.cholesky_inplace(A)
            else:
                buf = None
                f = an._symbolic.cholesky(A)
    except _cholmod.CholmodNotPositiveDefiniteError as e:
        raise _not_pd(e) from None
    F = Factor(an, f)
    F._selinv_buffer = buf
    return F


def logdet(F: Factor) -> float:
    """log|Q|."""
    return F.logdet()


def solve(F: Factor, b) -> np.ndarray:
    """Q⁻¹ b."""
    return F.solve(b)


def sample_standard(F: Factor, z) -> np.ndarray:
    """A draw from N(0, Q⁻¹) given standard normals z (vector or columns)."""
    return F.sample_standard(z)


def constrain(F: Factor, C, x) -> np.ndarray:
    """Kriging correction onto {C x = 0}: x − Q⁻¹Cᵀ(C Q⁻¹ Cᵀ)⁻¹ C x (Rue & Held 2005, eq. 2.30).

    ``C``: (k, n) dense or sparse constraint matrix; ``x``: a vector or (n, m) columns.
    """
    C = C.toarray() if sp.issparse(C) else np.asarray(C, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if C.shape[0] == 0:
        return x
    V = np.asarray(F.solve(np.ascontiguousarray(C.T))).reshape(F.analysis.n, -1)
    return x - V @ np.linalg.solve(C @ V, C @ x)


def constrained_logdet_term(F: Factor, C) -> float:
    """log|C Q⁻¹ Cᵀ| (0 without constraints), as in ``dense.constrained_logdet_term``."""
    C = C.toarray() if sp.issparse(C) else np.asarray(C, dtype=np.float64)
    if C.shape[0] == 0:
        return 0.0
    V = np.asarray(F.solve(np.ascontiguousarray(C.T))).reshape(F.analysis.n, -1)
    sign, ld = np.linalg.slogdet(C @ V)
    if sign <= 0:
        raise FitError("the constraint matrix C Q⁻¹ Cᵀ is singular", hint="remove redundant constraints")
    return float(ld)


def selected_inverse(F: Factor, *, triangle: str = "full") -> sp.csc_matrix:
    """Σ = Q⁻¹ on the pattern of L + Lᵀ as a scipy CSC matrix in the original ordering.

    ``triangle="full"`` stores both triangles (Σ is symmetric), ``"lower"`` only i ≥ j.
    Entries of Σ outside this pattern are not computed (they are not zero!).
    """
    return F.selinv().tocsc(triangle)


inverse = selected_inverse


def trace_with(Sigma, dQ) -> float:
    """tr(Q⁻¹ dQ) = Σ_ij Σ_ij dQ_ij for a symmetric dQ whose pattern lies in Σ's.

    ``Sigma``: a :class:`SelectedInverse` (then ``dQ`` may be a scipy matrix or a ``values``
    vector on the analysed pattern) or the full symmetric CSC from :func:`selected_inverse`.
    """
    if isinstance(Sigma, SelectedInverse):
        an = Sigma.analysis
        if not sp.issparse(dQ):
            d = np.asarray(dQ, dtype=np.float64)
            if d.shape != (an.nnz,):
                raise ValueError(f"dQ values have shape {d.shape}, expected ({an.nnz},)")
            return float(np.dot(Sigma.pattern_values() * an.weights, d))
        C = sp.coo_matrix(dQ)
        C.sum_duplicates()
        return float(np.dot(Sigma.at(C.row, C.col), C.data))
    if sp.issparse(Sigma):
        return float(sp.csr_matrix(Sigma).multiply(sp.csr_matrix(dQ)).sum())
    raise TypeError(f"Sigma must be a SelectedInverse or a scipy sparse matrix, got {type(Sigma).__name__}")


# --------------------------------------------------------------------------------------------
# JAX wrappers: values in a fixed pattern -> log|Q|, Q⁻¹ b, with custom VJPs
# --------------------------------------------------------------------------------------------


def _check_values(values, analysis: SparseAnalysis) -> None:
    if values.shape != (analysis.nnz,):
        raise ValueError(f"values have shape {values.shape}, expected ({analysis.nnz},) for this pattern")
    if values.dtype != jnp.float64:
        raise TypeError("sparse_logdet/sparse_solve need float64 values (enable jax_enable_x64); "
                        "float32 is unusable for log-determinants (PERFORMANCE.md §5)")


def _host_logdet(an: SparseAnalysis, values):
    with an._lock:
        try:
            F = an._factor_cached(np.asarray(values))
        except FitError:
            return np.array(np.nan)
        return np.array(F.logdet())


def _host_sigma(an: SparseAnalysis, values):
    with an._lock:
        try:
            F = an._factor_cached(np.asarray(values))
        except FitError:
            return np.full(an.nnz, np.nan)
        return F.selinv().pattern_values() * an.weights


def _host_solve(an: SparseAnalysis, values, b):
    b = np.asarray(b)
    with an._lock:
        try:
            F = an._factor_cached(np.asarray(values))
        except FitError:
            return np.full(b.shape, np.nan)
        return np.asarray(F.solve(b)).reshape(b.shape)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def sparse_logdet(values: jax.Array, analysis: SparseAnalysis) -> jax.Array:
    """log|Q| for Q given by its non-zero ``values`` in ``analysis``'s pattern (NaN if not PD).

    Runs CHOLMOD in a ``jax.pure_callback`` (jit/vmap-able; vmap runs sequentially). Gradient:
    d log|Q| = tr(Q⁻¹ dQ) = Σ_k w_k Σ_{i_k j_k} dv_k (w_k = 2 for an off-diagonal entry of a
    lower-triangle pattern, else 1; with a full pattern each of (i, j), (j, i) carries its own
    Σ_ij), Σ from the supernodal selected inversion on the factor of the forward pass
    (Takahashi et al. 1973; METHOD.md §6).
    """
    _check_values(values, analysis)
    return jax.pure_callback(partial(_host_logdet, analysis), jax.ShapeDtypeStruct((), jnp.float64),
                             values, vmap_method="sequential")


def _logdet_fwd(values, analysis):
    return sparse_logdet(values, analysis), values


def _logdet_bwd(analysis, values, g):
    sigma = jax.pure_callback(partial(_host_sigma, analysis),
                              jax.ShapeDtypeStruct(values.shape, jnp.float64), values,
                              vmap_method="sequential")
    return (g * sigma,)


sparse_logdet.defvjp(_logdet_fwd, _logdet_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def sparse_solve(values: jax.Array, b: jax.Array, analysis: SparseAnalysis) -> jax.Array:
    """Q⁻¹ b (b a vector or an (n, k) matrix) for Q given by its ``values`` (NaN if not PD).

    Adjoint (Giles 2008, "Collected matrix derivative results"): with x = Q⁻¹b and ū = Q⁻¹ x̄,
    b̄ = ū and dQ̄ = −ū xᵀ; restricted to the pattern and symmetrised (Q is symmetric and the
    forward reads ½(Q + Qᵀ)): v̄_k = −w_k · ½(ū_i x_j + ū_j x_i), summed over right-hand sides.
    The backward solve reuses the forward factorisation.
    """
    _check_values(values, analysis)
    if b.shape[0] != analysis.n or b.ndim not in (1, 2):
        raise ValueError(f"b must have shape ({analysis.n},) or ({analysis.n}, k), got {b.shape}")
    b = b.astype(jnp.float64)
    return jax.pure_callback(partial(_host_solve, analysis), jax.ShapeDtypeStruct(b.shape, jnp.float64),
                             values, b, vmap_method="sequential")


def _solve_fwd(values, b, analysis):
    x = sparse_solve(values, b, analysis)
    return x, (values, x)


def _solve_bwd(analysis, res, xbar):
    values, x = res
    u = jax.pure_callback(partial(_host_solve, analysis), jax.ShapeDtypeStruct(xbar.shape, jnp.float64),
                          values, xbar, vmap_method="sequential")
    r = jnp.asarray(analysis.rows)
    c = jnp.asarray(analysis.cols)
    w = jnp.asarray(analysis.weights)
    if x.ndim == 1:
        vbar = -0.5 * w * (u[r] * x[c] + u[c] * x[r])
    else:
        vbar = -0.5 * w * jnp.sum(u[r] * x[c] + u[c] * x[r], axis=1)
    return vbar, u


sparse_solve.defvjp(_solve_fwd, _solve_bwd)
