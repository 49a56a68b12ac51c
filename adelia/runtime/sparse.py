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
pattern (a JAX array), run CHOLMOD in a host callback (:func:`adelia.runtime.host.host_call`),
and have ``custom_vjp`` rules (trace identity with the selected inverse; one extra solve) —
never differentiating a factorisation.

**Backends.** CHOLMOD comes from one of two places, chosen by the environment variable
``ADELIA_CHOLMOD`` (read when an analysis is made; :func:`backend` names the active one):

* ``cvxopt`` (the default; core dependencies ``cvxopt`` and ``pymetis``): the cvxopt wheel bundles
  CHOLMOD 3.0.6 (SuiteSparse 5.x) and OpenBLAS 0.3.15, so ``pip install adelia`` alone gives this
  path. Interface: ``cvxopt.cholmod.symbolic(A, p, uplo='L')`` / ``numeric(A, F)`` /
  ``solve(F, B, sys)`` / ``diag(F)`` / ``getfactor(F)`` and the ``cvxopt.cholmod.options``
  dictionary (cvxopt user guide, "Sparse Linear Equations", and ``help(cvxopt.cholmod)``).
  That CHOLMOD is built without METIS, so nested dissection is METIS_NodeND through ``pymetis``,
  handed to CHOLMOD as a given permutation (``nmethods = 1``; CHOLMOD still post-orders it).
* ``sksparse``: scikit-sparse 0.4.16 built against the system SuiteSparse (``.ci/install_suitesparse.sh``;
  the ``sparse`` extra), with CHOLMOD's own NESDIS/METIS orderings.

Measured (``benchmarks/sparse.py``, one thread): with the same AMD ordering the cvxopt build
factors 1.4–2× faster than the system one and the selected inversions are equal; with the
default ``"nesdis"`` the cvxopt factor is 1.2–2.4× faster, but METIS_NodeND leaves the rows of a
supernode in more, shorter runs of its parent's positions than CHOLMOD's NESDIS (CAMD on the
separator tree), so the selected inversion is 1.1–1.6× slower; log-det + gradient costs the same.

Unset, the first of ``cvxopt``, ``sksparse`` that imports is used; :func:`available` says whether
either does, and every entry point raises an ``ImportError`` with the install commands when none
does. An unknown value raises :class:`CholmodBackendError`.

Neither wrapper exposes CHOLMOD's supernodal arrays (scikit-sparse's ``Factor.L()`` and cvxopt's
``getfactor`` convert to a simplicial copy, as slow as a factorisation). They are read in place
through ``ctypes`` with the documented ``cholmod_factor`` struct layout (SuiteSparse
``CHOLMOD/Include/cholmod_core.h``), one reader for both backends; the pointer comes from the
scikit-sparse ``Factor`` object (verified against ``Factor.P()``'s array) or from cvxopt's
``PyCapsule``. The reading is verified — for cvxopt when the backend loads, by a probe on a small
matrix against ``solve(sys=7)`` (the permutation) and ``getfactor`` (every entry of L); for both,
the supernode arrays against the analysis at every factor and Perm against the public permutation
once per analysis — and, should a check fail, the slower simplicial-copy route is used instead.

Licences: CHOLMOD's supernodal module is GPL-2+ (the rest of CHOLMOD LGPL-2.1+), cvxopt GPL-3+,
METIS Apache-2.0, pymetis MIT. adelia vendors none of them: it declares them as dependencies and
calls them at run time.

Threads: set ``OPENBLAS_NUM_THREADS=1`` (PERFORMANCE.md §8); it also governs the OpenBLAS bundled
with cvxopt and the system OpenBLAS that the system CHOLMOD uses.
"""

from __future__ import annotations

__all__ = [
    "available",
    "backend",
    "backends",
    "BACKENDS",
    "ENV_VAR",
    "CholmodBackendError",
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
import os
import threading
import warnings
from contextlib import contextmanager
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas as _blas

from adelia.errors import AdeliaError, FitError
from adelia.runtime import selinv as _si
from adelia.runtime import supernodal_solve as _sns
from adelia.runtime.host import host_call

ENV_VAR = "ADELIA_CHOLMOD"
BACKENDS = ("cvxopt", "sksparse")
# cvxopt first: it installs from PyPI alone, and on the benchmark matrices its factor, solve and
# selected inversion are as fast as or faster than the system SuiteSparse's (benchmarks/sparse.py).
_PREFERENCE = ("cvxopt", "sksparse")
INSTALL_HINT = ("install CHOLMOD: `pip install cvxopt pymetis` (adelia's own dependencies: wheels with "
                "CHOLMOD, OpenBLAS and METIS), or scikit-sparse on the system SuiteSparse: "
                "`bash .ci/install_suitesparse.sh .venv/bin/python` (Debian: libsuitesparse-dev, "
                "scikit-sparse==0.4.16)")
ORDERINGS = ("nesdis", "metis", "amd", "natural", "default", "best", "colamd")


class CholmodBackendError(AdeliaError):
    """``ADELIA_CHOLMOD`` (or a ``backend=`` argument) names no known CHOLMOD backend."""


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
# cholmod_factor.ordering codes (cholmod_core.h): the method CHOLMOD actually used
_ORDERING_CODES = {0: "natural", 1: "given", 2: "amd", 3: "metis", 4: "nesdis", 5: "colamd", 6: "natural"}


def _view(ptr: int, count: int, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if count == 0:
        return np.zeros(0, dtype)
    buf = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(buf, dtype=dtype)


def _int_view(st: _CholmodFactorStruct, ptr: int, count: int) -> np.ndarray:
    return _view(ptr, count, np.int32 if st.itype == _CHOLMOD_INT else np.int64)


def _supernodal_arrays(st: _CholmodFactorStruct | None, *, numeric: bool):
    """(sup, pi, px, rows, x-or-None) views of a supernodal LLᵀ factor's struct, or None."""
    if st is None or not st.is_super or st.dtype != _CHOLMOD_DOUBLE:
        return None
    if st.itype not in (_CHOLMOD_INT, _CHOLMOD_LONG):
        return None
    ns = int(st.nsuper)
    arrays = (_int_view(st, st.super_, ns + 1), _int_view(st, st.pi, ns + 1), _int_view(st, st.px, ns + 1),
              _int_view(st, st.s, int(st.ssize)))
    if arrays[0][-1] != st.n or arrays[2][-1] != st.xsize:
        return None
    if not numeric:
        return (*arrays, None)
    if st.xtype != _CHOLMOD_REAL or not st.is_ll or not st.x:
        return None
    return (*arrays, _view(st.x, int(st.xsize), np.float64))


class _NotPositiveDefinite(Exception):
    """CHOLMOD stopped at ``column`` (of the permuted matrix): not positive definite."""

    def __init__(self, column):
        super().__init__(column)
        self.column = column


# --------------------------------------------------------------------------------------------
# Backends: the same few operations on a CHOLMOD factor, from scikit-sparse or from cvxopt
# --------------------------------------------------------------------------------------------


class _SksparseBackend:
    """scikit-sparse 0.4.16 on the system SuiteSparse. Factor handles are ``sksparse`` Factors."""

    name = "sksparse"

    def __init__(self):
        import sksparse
        from sksparse import cholmod

        self._ch = cholmod
        self.version = str(getattr(sksparse, "__version__", ""))
        # The Cython object layout read by struct() is that of scikit-sparse 0.4.x (a Common
        # reference, then the cholmod_factor pointer); other versions take the Factor.L() route.
        self.layout_known = self.version.startswith("0.4.")

    def analyse(self, A: sp.csc_matrix, ordering: str, rows, cols) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = self._ch.analyze(A, mode="supernodal", ordering_method=ordering)
        perm = np.array(f.P(), dtype=np.int64)
        st = self.struct(f, A.shape[0])
        used = _ORDERING_CODES.get(int(st.ordering), ordering) if st is not None else ordering
        return {"symbolic": f, "perm": perm, "ordering_used": used, "struct": st}

    def struct(self, f, n: int) -> _CholmodFactorStruct | None:
        """The ``cholmod_factor`` behind a scikit-sparse ``Factor``, or None if it cannot be verified.

        The Cython object holds (after the Python object header) a reference to its ``Common`` and
        the ``cholmod_factor *``; the candidate pointer is accepted only if the struct it points to
        reports the same n and the same permutation array as ``f.P()``.
        """
        if not self.layout_known:
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
            if cand.n == perm.shape[0] == n and cand.Perm == pptr:
                return cand
        return None

    def new_factor(self, sym, A: sp.csc_matrix):
        try:
            return sym.cholesky(A)                    # a copy of the symbolic factor, then numeric
        except self._ch.CholmodNotPositiveDefiniteError as e:
            raise _NotPositiveDefinite(getattr(e, "column", None)) from None

    def refactor(self, sym, f, A: sp.csc_matrix):
        try:
            f.cholesky_inplace(A)
        except self._ch.CholmodNotPositiveDefiniteError as e:
            raise _NotPositiveDefinite(getattr(e, "column", None)) from None
        return f

    def logdet(self, f) -> float:
        return float(f.logdet())

    def solve(self, f, b: np.ndarray) -> np.ndarray:
        return f.solve_A(b)

    def solve_Lt(self, f, z: np.ndarray) -> np.ndarray:
        return f.solve_Lt(z, use_LDLt_decomposition=False)

    def perm_of(self, f, n: int) -> np.ndarray:
        return np.array(f.P(), dtype=np.int64)

    def L(self, sym, f) -> sp.csc_matrix:
        return f.L()


# Private prototypes (not ctypes.pythonapi's shared function objects, whose argtypes other code may set)
_PyCapsule_GetName = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))
_PyCapsule_GetPointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))


def _capsule_pointer(capsule) -> int:
    """The pointer held by a ``PyCapsule`` (under whatever name it carries)."""
    return int(_PyCapsule_GetPointer(capsule, _PyCapsule_GetName(capsule)) or 0)


class _CvxoptFactor:
    """A numeric cvxopt factor: the ``PyCapsule`` and the lower-triangle values it was built from
    (kept for the simplicial-copy route, which refactors a second capsule)."""

    __slots__ = ("capsule", "low")

    def __init__(self, capsule, low: np.ndarray):
        self.capsule = capsule
        self.low = low


class _CvxoptBackend:
    """CHOLMOD as bundled in the cvxopt wheel; nested dissection from pymetis.

    cvxopt keeps one global ``cholmod_common`` whose parameters are reset from the
    ``cvxopt.cholmod.options`` dictionary at every call, so each call here runs under one lock
    with exactly the options it needs (restored afterwards). cvxopt's ``numeric`` refactors a
    capsule in place; a fresh factor takes the analysis's spare capsule (the symbolic one, or one
    left by a failed factorisation) or a new symbolic factorisation with the analysis's final
    permutation (no ordering, no post-ordering: the same supernodes).
    """

    name = "cvxopt"

    def __init__(self):
        import cvxopt
        from cvxopt import cholmod

        try:
            import pymetis
        except ImportError:  # nested dissection then falls back to AMD (with a warning)
            pymetis = None
        self._cvx = cvxopt
        self._ch = cholmod
        self._metis = pymetis
        self.version = str(getattr(cvxopt, "__version__", ""))
        self._lock = threading.RLock()
        self.layout_known = True
        self.layout_known = self._probe()

    # -- cvxopt objects -------------------------------------------------------------------------
    @contextmanager
    def _options(self, **opts):
        d = self._ch.options
        with self._lock:
            saved = dict(d)
            d.clear()
            d.update(opts)
            try:
                yield
            finally:
                d.clear()
                d.update(saved)

    def _int_matrix(self, a: np.ndarray):
        M = self._cvx.matrix(0, (len(a), 1), "i")
        np.asarray(M)[:, 0] = a
        return M

    def _dense(self, b: np.ndarray):
        b2 = b.reshape(b.shape[0], -1)
        B = self._cvx.matrix(0.0, b2.shape, "d")
        np.asarray(B)[...] = b2             # cvxopt matrices are column-major buffers
        return B

    def _spmatrix(self, A: sp.csc_matrix):
        n = A.shape[0]
        cols = np.repeat(np.arange(n, dtype=np.int64), np.diff(A.indptr))
        M = self._cvx.spmatrix(self._dense(np.asarray(A.data, dtype=np.float64)),
                               self._int_matrix(A.indices), self._int_matrix(cols), (n, n))
        colptr, rowind, _ = M.CCS
        if not (np.array_equal(np.asarray(colptr).ravel(), A.indptr)
                and np.array_equal(np.asarray(rowind).ravel(), A.indices)):
            raise RuntimeError("cvxopt stored the pattern in another order than scipy's sorted CSC")
        return M

    # -- the operations ---------------------------------------------------------------------------
    def _nested_dissection(self, n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """METIS_NodeND (pymetis) on the graph of the pattern; CHOLMOD's Perm convention (row k of
        P Q Pᵀ is row perm[k] of Q)."""
        off = rows != cols
        r, c = rows[off], cols[off]
        if len(r) == 0:
            return np.arange(n, dtype=np.int64)
        G = sp.csr_matrix((np.ones(2 * len(r), dtype=np.int8), (np.concatenate([r, c]), np.concatenate([c, r]))),
                          shape=(n, n))
        G.sum_duplicates()
        adj = self._metis.CSRAdjacency(G.indptr.astype(np.int64), G.indices.astype(np.int64))
        perm, _ = self._metis.nested_dissection(adjacency=adj)
        return np.asarray(perm, dtype=np.int64)

    def analyse(self, A: sp.csc_matrix, ordering: str, rows, cols) -> dict:
        n = A.shape[0]
        given = None
        if ordering in ("nesdis", "metis", "best"):
            if self._metis is None:
                warnings.warn("pymetis is not installed: the cvxopt backend orders with AMD instead of "
                              "nested dissection (pip install pymetis)", RuntimeWarning, stacklevel=4)
            else:
                given = self._nested_dissection(n, rows, cols)
        elif ordering == "natural":
            given = np.arange(n, dtype=np.int64)
        if ordering == "default":
            nmethods = 0                         # CHOLMOD's default strategy (AMD in this build)
        elif given is None or ordering == "best":
            nmethods = 2                         # the given order (if any) against AMD: fewest nnz(L)
        else:
            nmethods = 1                         # exactly the given order (then post-ordered)
        Acvx = self._spmatrix(A)
        p = self._int_matrix(given) if given is not None else None
        with self._options(supernodal=2, nmethods=nmethods, postorder=True):
            F = self._ch.symbolic(Acvx, uplo="L") if p is None else self._ch.symbolic(Acvx, p=p, uplo="L")
        sym = {"A": Acvx, "values": self._dense(np.zeros(A.nnz)), "spare": F, "perm_matrix": None}
        st = self.struct(F, n)
        if st is not None:
            perm = _int_view(st, st.Perm, n).astype(np.int64)
            code = _ORDERING_CODES.get(int(st.ordering), ordering)
            used = ("natural" if ordering == "natural" else "metis-nd") if code == "given" else code
        else:
            # the layout is not trusted: the permutation from a numeric factor (A is diagonally
            # dominant) through the public solve(sys=7)
            self._numeric(sym, F, np.asarray(A.data, dtype=np.float64))
            perm = self.perm_of(_CvxoptFactor(F, None), n)
            used = ordering
        sym["perm"] = perm
        sym["perm_matrix"] = self._int_matrix(perm)
        return {"symbolic": sym, "perm": perm, "ordering_used": used, "struct": st}

    def struct(self, f, n: int) -> _CholmodFactorStruct | None:
        if not self.layout_known:
            return None
        capsule = f.capsule if isinstance(f, _CvxoptFactor) else f
        ptr = _capsule_pointer(capsule)
        if not ptr:
            return None
        st = _CholmodFactorStruct.from_address(ptr)
        return st if st.n == n and st.Perm else None

    def _symbolic_given(self, sym: dict):
        with self._options(supernodal=2, nmethods=1, postorder=False):
            return self._ch.symbolic(sym["A"], p=sym["perm_matrix"], uplo="L")

    def _numeric(self, sym: dict, F, low: np.ndarray) -> None:
        with self._options(supernodal=2):
            np.asarray(sym["values"])[:, 0] = low
            sym["A"].V = sym["values"]
            try:
                self._ch.numeric(sym["A"], F)
            except ArithmeticError as e:
                sym["spare"] = F                  # its memory serves the next fresh factor
                raise _NotPositiveDefinite(e.args[0] if e.args else None) from None

    def new_factor(self, sym: dict, A: sp.csc_matrix) -> _CvxoptFactor:
        with self._lock:
            F = sym["spare"]
            sym["spare"] = None
            if F is None:
                F = self._symbolic_given(sym)
            low = np.array(A.data, dtype=np.float64)
            self._numeric(sym, F, low)
            return _CvxoptFactor(F, low)

    def refactor(self, sym: dict, f: _CvxoptFactor, A: sp.csc_matrix) -> _CvxoptFactor:
        with self._lock:
            low = np.array(A.data, dtype=np.float64)
            self._numeric(sym, f.capsule, low)
            f.low = low
            return f

    def logdet(self, f: _CvxoptFactor) -> float:
        with self._lock:
            d = np.asarray(self._ch.diag(f.capsule)).ravel()
        return float(2.0 * np.sum(np.log(d)))

    def _solve(self, f: _CvxoptFactor, b: np.ndarray, sys: int) -> np.ndarray:
        b = np.asarray(b, dtype=np.float64)
        B = self._dense(b)
        with self._lock:
            self._ch.solve(f.capsule, B, sys=sys)
        return np.array(np.asarray(B)).reshape(b.shape)

    def solve(self, f: _CvxoptFactor, b: np.ndarray) -> np.ndarray:
        return self._solve(f, b, 0)                       # A x = b

    def solve_Lt(self, f: _CvxoptFactor, z: np.ndarray) -> np.ndarray:
        return self._solve(f, z, 5)                       # Lᵀ x = z

    def perm_of(self, f: _CvxoptFactor, n: int) -> np.ndarray:
        """CHOLMOD's Perm through the public API: sys=7 solves Pᵀx = b, i.e. x = P b = b[Perm]."""
        return np.rint(self._solve(f, np.arange(n, dtype=np.float64), 7)).astype(np.int64)

    def L(self, sym: dict, f: _CvxoptFactor) -> sp.csc_matrix:
        """L (permuted ordering) as a simplicial CSC copy. ``getfactor`` turns the capsule it reads
        into a symbolic simplicial factor, so a second capsule is factored for it."""
        with self._lock:
            F2 = self._symbolic_given(sym)
            self._numeric(sym, F2, f.low)
            Ls = self._ch.getfactor(F2)
        colptr, rowind, vals = (np.asarray(a).ravel() for a in Ls.CCS)
        n = len(colptr) - 1
        return sp.csc_matrix((np.array(vals), np.array(rowind), np.array(colptr)), shape=(n, n))

    def _probe(self) -> bool:
        """Whether the struct read through the capsule agrees with the public API on a small matrix:
        the permutation (solve sys=7) and every entry of L (getfactor)."""
        m = 6
        T = sp.diags([-np.ones(m - 1), 2.0 * np.ones(m), -np.ones(m - 1)], [-1, 0, 1])
        Q = (sp.kron(T, sp.identity(m)) + sp.kron(sp.identity(m), T) + 0.3 * sp.identity(m * m)).tocsc()
        A = sp.tril(Q, format="csc")
        A.sort_indices()
        n = Q.shape[0]
        try:
            out = self.analyse(A, "amd", None, None)
            arr = _supernodal_arrays(out["struct"], numeric=False)
            if arr is None:
                return False
            S = _si.supernodes_from_arrays(n, *arr[:4])
            f = self.new_factor(out["symbolic"], A)
            num = _supernodal_arrays(self.struct(f, n), numeric=True)
            if num is None or not np.array_equal(self.perm_of(f, n), out["perm"]):
                return False
            mine = np.zeros((n, n))
            for J in range(S.nsuper):
                s0, s1 = int(S.sup[J]), int(S.sup[J + 1])
                rows = S.rows[S.pi[J]:S.pi[J + 1]]
                mine[np.ix_(rows, np.arange(s0, s1))] = num[4][S.px[J]:S.px[J + 1]].reshape(s1 - s0, -1).T
            ref = self.L(out["symbolic"], f).toarray()
            return bool(np.allclose(np.tril(mine), ref, rtol=1e-13, atol=1e-15))
        except Exception:  # noqa: BLE001 - any failure means: do not trust the layout
            return False


_CLASSES = {"cvxopt": _CvxoptBackend, "sksparse": _SksparseBackend}
_LOADED: dict = {}
_LOAD_LOCK = threading.Lock()


def _load(name: str):
    """The backend object for ``name`` (loaded once per process); ImportError if it cannot load."""
    with _LOAD_LOCK:
        got = _LOADED.get(name)
        if got is None:
            try:
                got = _CLASSES[name]()
            except ImportError as e:
                got = e
            _LOADED[name] = got
    if isinstance(got, ImportError):
        raise ImportError(f"the {name!r} CHOLMOD backend is not installed ({got}); {INSTALL_HINT}")
    return got


def _check_name(name: str, source: str) -> str:
    key = name.strip().lower()
    if key not in BACKENDS:
        raise CholmodBackendError(f"{source} names an unknown CHOLMOD backend {name!r}",
                                  expected=BACKENDS,
                                  hint=f"set {ENV_VAR} to one of {', '.join(BACKENDS)}, or unset it "
                                       f"for the default ({_PREFERENCE[0]}, else whichever imports)")
    return key


def _resolve(name: str | None = None):
    """The backend an analysis made now uses: ``name``, else ``$ADELIA_CHOLMOD``, else the first
    of :data:`_PREFERENCE` that loads."""
    if name is not None:
        return _load(_check_name(name, "backend="))
    env = os.environ.get(ENV_VAR, "")
    if env.strip():
        return _load(_check_name(env, f"the environment variable {ENV_VAR}={env!r}"))
    for nm in _PREFERENCE:
        try:
            return _load(nm)
        except ImportError:
            continue
    raise ImportError("adelia.runtime.sparse needs CHOLMOD; " + INSTALL_HINT)


def backend() -> str | None:
    """Name of the backend a new analysis uses (``"cvxopt"`` or ``"sksparse"``), None when none
    is installed. Raises :class:`CholmodBackendError` if ``ADELIA_CHOLMOD`` is set to an unknown name."""
    try:
        return _resolve().name
    except ImportError:
        return None


def backends() -> tuple[str, ...]:
    """The installed backends, in order of preference."""
    out = []
    for nm in _PREFERENCE:
        try:
            _load(nm)
        except ImportError:
            continue
        out.append(nm)
    return tuple(out)


def available() -> bool:
    """Whether CHOLMOD can be used: the backend selected by ``ADELIA_CHOLMOD`` (or, unset, either
    backend) imports. Raises :class:`CholmodBackendError` if the variable names an unknown backend."""
    return backend() is not None


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

    def __init__(self, pattern, *, triangle: str = "full", ordering: str = "nesdis", backend: str | None = None):
        be = _resolve(backend)
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
        # values of a diagonally dominant (so positive definite) matrix on the pattern
        A = self._lower_matrix(np.where(lo_r == lo_c, float(n), -1e-3))
        out = be.analyse(A, ordering, lo_r, lo_c)
        self._backend = be
        self.backend: str = be.name
        self._symbolic = out["symbolic"]
        self.ordering_used: str = out["ordering_used"]
        self._set_perm(out["perm"])
        arr = _supernodal_arrays(out["struct"], numeric=False)
        self.supernodes: _si.Supernodes | None = None
        if arr is not None:
            self.supernodes = _si.supernodes_from_arrays(n, *arr[:4])
        self._direct = self.supernodes is not None
        self._sn_blocks = None                  # adelia.runtime.supernodal_solve's, made when first needed
        self._perm_checked = False
        self._cache_values: np.ndarray | None = None
        self._solve_memo: tuple[np.ndarray, np.ndarray] | None = None   # (b, Q⁻¹b) on the cached factor
        self._cache_failed: tuple[np.ndarray, str, str | None] | None = None   # values that failed, and why
        self._cache_factor: Factor | None = None
        self._lock = threading.Lock()  # JAX may run host callbacks from several threads
        self._pattern_pos: np.ndarray | None = None
        self._csc_maps: dict[str, tuple] = {}

    def _set_perm(self, perm: np.ndarray) -> None:
        self.perm = np.asarray(perm, dtype=np.int64)
        self.iperm = np.empty(self.n, dtype=np.int64)
        self.iperm[self.perm] = np.arange(self.n)

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
        self._solve_memo = None
        self._cache_failed = None
        self._csc_maps.clear()

    # -- factor with a one-entry cache (JAX callbacks: forward and backward see the same values)
    def _factor_cached(self, values: np.ndarray) -> Factor:
        v = np.asarray(values, dtype=np.float64)
        if self._cache_factor is not None and np.array_equal(v, self._cache_values):
            return self._cache_factor
        failed = self._cache_failed
        if failed is not None and np.array_equal(v, failed[0]):
            # not positive definite a moment ago: each callback of the program that met it (a
            # Newton iteration's solves, its objective's log-determinant...) would refactor to fail
            # again. A fresh error each time: a kept one would keep its traceback's frames (and the
            # CHOLMOD objects in them) alive until interpreter shutdown, after cvxopt's own teardown
            raise FitError(failed[1], hint=failed[2])
        old = self._cache_factor
        self._cache_factor = None
        self._cache_values = None
        self._solve_memo = None
        try:
            F = factor(self, v, reuse=old)
        except FitError as e:
            self._cache_failed = (v.copy(), e.message, e.hint)
            raise
        self._cache_factor = F
        self._cache_values = v.copy()
        return F

    def __repr__(self) -> str:
        return (f"SparseAnalysis(n={self.n}, nnz={self.nnz}, triangle={self.triangle!r}, "
                f"ordering={self.ordering!r}, backend={self.backend!r}, "
                f"nsuper={self.supernodes.nsuper if self.supernodes else '?'})")


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
        self._prepared: _sns.Prepared | None = None    # the blocked solves' per-factor set-up

    @property
    def _live(self):
        if self._f is None:
            raise RuntimeError("this factor was overwritten by factor(..., reuse=...); use the new one")
        return self._f

    def logdet(self) -> float:
        """log|Q| = 2 Σ log L_jj."""
        return self.analysis._backend.logdet(self._live)

    def solve(self, b) -> np.ndarray:
        """Q⁻¹ b for a vector or a matrix of right-hand sides (many columns: BLAS-3 per supernode,
        :mod:`adelia.runtime.supernodal_solve`; else the backend's solve)."""
        b = np.asarray(b, dtype=np.float64)
        an = self.analysis
        if b.shape[0] != an.n:
            raise ValueError(f"right-hand side has {b.shape[0]} rows, expected {an.n}")
        blocks = self._blocks_for(b)
        if blocks is None:
            return an._backend.solve(self._live, b)
        x = np.empty_like(b)
        x[an.perm] = _sns.solve(*blocks, b[an.perm], self._sn_prepared(*blocks))
        return x

    def cubic_moments(self, B: sp.spmatrix, W: np.ndarray, Z: np.ndarray, a: np.ndarray,
                      c: np.ndarray) -> np.ndarray:
        """[X a, (X∘X∘X) c] as a (2, n) array, for X = Q⁻¹B − W Zᵀ (B sparse n × k; W, Z n × r
        and k × r): the sums over the columns of Cov(x, η) that simplified-Laplace coefficients
        need (:func:`sparse_cubic_moments`), without X ever leaving this call. In the factor's
        ordering when the blocked solves apply: B's permuted rows go straight into their
        workspace, and X is updated and reduced there, a few rows at a time so that the cube
        stays in cache."""
        an = self.analysis
        n, k = B.shape
        blocks = self._blocks_for_columns(k)
        if blocks is None:
            X = np.asarray(an._backend.solve(self._live, B.toarray()), dtype=np.float64).reshape(n, k)
            perm = None
        else:
            perm = an.perm
            Y = np.zeros((n + 1, k))
            sp.csr_matrix(B)[perm].toarray(out=Y[:n])
            X = _sns.solve_extended(*blocks, Y, self._sn_prepared(*blocks))
            W = W[perm]
        if W.shape[1]:
            # X −= W Zᵀ in place: on Xᵀ (Fortran order) dgemm overwrites its C argument
            Xt = _blas.dgemm(-1.0, Z, W, beta=1.0, c=X.T, trans_b=True, overwrite_c=True)
            if not np.shares_memory(Xt, X):
                X = Xt.T
        out = np.empty((2, n))
        rows = max(1, 32768 // max(k, 1))
        for r0 in range(0, n, rows):
            Xc = X[r0:r0 + rows]
            out[0, r0:r0 + rows] = Xc @ a
            cube = Xc * Xc
            cube *= Xc
            out[1, r0:r0 + rows] = cube @ c
        if perm is not None:
            out[:, perm] = out.copy()
        return out

    def sample_standard(self, z) -> np.ndarray:
        """Pᵀ L⁻ᵀ z ~ N(0, Q⁻¹) for z ~ N(0, I) (Rue & Held 2005, Alg. 2.4)."""
        z = np.asarray(z, dtype=np.float64)
        blocks = self._blocks_for(z)
        if blocks is None:
            y = self.analysis._backend.solve_Lt(self._live, z)
        else:
            y = _sns.solve_lt(*blocks, z, self._sn_prepared(*blocks))
        x = np.empty_like(y)
        x[self.analysis.perm] = y
        return x

    def _sn_prepared(self, blocks, values):
        """The batches' inverses and sparse blocks of this factor, made by its first blocked solve."""
        if self._prepared is None:
            self._prepared = _sns.prepare(blocks, values)
        return self._prepared

    def _blocks_for(self, b: np.ndarray):
        """(supernodal blocks, L's values) when b's columns are solved faster by them than by the
        backend (which needs L's values in place: the direct layout), else None."""
        return self._blocks_for_columns(b.shape[1]) if b.ndim == 2 else None

    def _blocks_for_columns(self, k: int):
        an = self.analysis
        if not an._direct or not _sns.worthwhile(an.supernodes, k, self._prepared is not None):
            return None
        if an._sn_blocks is None:
            an._sn_blocks = _sns.blocks(an.supernodes)
        values = self.factor_values()[1]       # may find the layout untrusted and leave the direct path
        return (an._sn_blocks, values) if an._direct else None

    def factor_values(self) -> tuple[_si.Supernodes, np.ndarray]:
        """(supernodes, L's values in their layout); a zero-copy view of CHOLMOD's memory if possible."""
        an = self.analysis
        be = an._backend
        if an._direct:
            S = an.supernodes
            arr = _supernodal_arrays(be.struct(self._live, an.n), numeric=True)
            ok = (arr is not None and arr[4].shape[0] == S.xsize and np.array_equal(arr[0], S.sup)
                  and np.array_equal(arr[1], S.pi))
            if ok and not an._perm_checked:     # once per analysis: Perm against the public API
                ok = an._perm_checked = bool(np.array_equal(be.perm_of(self._live, an.n), an.perm))
            if ok:
                return S, arr[4]
            an._direct = False
            an.supernodes = None
            an._pattern_pos = None
            an._csc_maps.clear()
            an._set_perm(be.perm_of(self._live, an.n))
        L = be.L(an._symbolic, self._live)
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


def analyse(pattern, *, triangle: str = "full", ordering: str = "nesdis", backend: str | None = None) -> SparseAnalysis:
    """Fill-reducing ordering + supernodal symbolic factorisation of a pattern, once.

    ``backend``: ``"cvxopt"`` or ``"sksparse"``; None takes ``$ADELIA_CHOLMOD``, else the default.
    ``ordering`` names CHOLMOD's methods; with cvxopt, ``"nesdis"`` and ``"metis"`` are
    METIS_NodeND from pymetis, ``"colamd"`` is AMD (as CHOLMOD does for a symmetric matrix),
    ``"best"`` the one of METIS_NodeND and AMD with fewer entries in L, and ``"default"``
    CHOLMOD's default strategy (AMD in a build without METIS). ``SparseAnalysis.ordering_used``
    records what was used.
    """
    return SparseAnalysis(pattern, triangle=triangle, ordering=ordering, backend=backend)


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
    be = an._backend
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
                f = be.refactor(an._symbolic, f, A)
            else:
                buf = None
                f = be.new_factor(an._symbolic, A)
    except _NotPositiveDefinite as e:
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


#: the last solve with at most this many columns is remembered on its factor
_MEMO_COLUMNS = 32


def _host_solve(an: SparseAnalysis, values, b):
    b = np.asarray(b)
    with an._lock:
        try:
            F = an._factor_cached(np.asarray(values))
        except FitError:
            return np.full(b.shape, np.nan)
        # the same few columns come back on the same factor: a low-rank corrected factor solves
        # with [Cᵀ | F] when the objective is evaluated and again when its gradient is
        memo = an._solve_memo
        if memo is not None and memo[0].shape == b.shape and np.array_equal(memo[0], b):
            return memo[1].copy()
        x = np.asarray(F.solve(b)).reshape(b.shape)
        if b.ndim == 2 and 1 < b.shape[1] <= _MEMO_COLUMNS:
            an._solve_memo = (b.copy(), x.copy())
        return x


def _host_cubic_moments(an: SparseAnalysis, B: sp.csr_matrix, values, W, Z, a, c):
    with an._lock:
        try:
            F = an._factor_cached(np.asarray(values))
        except FitError:
            return np.full((2, an.n), np.nan)
        return F.cubic_moments(B, np.asarray(W), np.asarray(Z), np.asarray(a), np.asarray(c))


def sparse_cubic_moments(values: jax.Array, B: sp.spmatrix, W: jax.Array, Z: jax.Array, a: jax.Array,
                         c: jax.Array, analysis: SparseAnalysis) -> jax.Array:
    """[X a, (X∘X∘X) c], shape (2, n), for X = Q⁻¹B − W Zᵀ: B a fixed sparse (n × k) matrix
    (host memory), W (n × r) and Z (k × r) a low-rank correction (r may be 0), a and c k-vectors.

    With B = Aᵀ and the correction of the constraints (and of a low-rank corrected factor), X
    is Cov(x, η) and these are the column sums that simplified-Laplace coefficients are made of
    (:meth:`adelia.runtime.laplace.LaplaceProblem._sla`). X, n × k, stays in the host call: built
    in the JAX program it costs as many passes over n·k numbers as it has operations. Not
    differentiable (nothing needs it to be)."""
    _check_values(values, analysis)
    B = sp.csr_matrix(B, dtype=np.float64)
    if B.shape[0] != analysis.n:
        raise ValueError(f"B must have {analysis.n} rows, got {B.shape[0]}")
    f64 = lambda v: jnp.asarray(v, jnp.float64)
    return host_call(partial(_host_cubic_moments, analysis, B), jax.ShapeDtypeStruct((2, analysis.n), jnp.float64),
                     values, f64(W), f64(Z), f64(a), f64(c))


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def sparse_logdet(values: jax.Array, analysis: SparseAnalysis) -> jax.Array:
    """log|Q| for Q given by its non-zero ``values`` in ``analysis``'s pattern (NaN if not PD).

    Runs CHOLMOD in a host callback (jit/vmap-able; vmap runs sequentially). Gradient:
    d log|Q| = tr(Q⁻¹ dQ) = Σ_k w_k Σ_{i_k j_k} dv_k (w_k = 2 for an off-diagonal entry of a
    lower-triangle pattern, else 1; with a full pattern each of (i, j), (j, i) carries its own
    Σ_ij), Σ from the supernodal selected inversion on the factor of the forward pass
    (Takahashi et al. 1973; METHOD.md §6).
    """
    _check_values(values, analysis)
    return host_call(partial(_host_logdet, analysis), jax.ShapeDtypeStruct((), jnp.float64), values)


def _logdet_fwd(values, analysis):
    return sparse_logdet(values, analysis), values


def _logdet_bwd(analysis, values, g):
    sigma = host_call(partial(_host_sigma, analysis), jax.ShapeDtypeStruct(values.shape, jnp.float64), values)
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
    return host_call(partial(_host_solve, analysis), jax.ShapeDtypeStruct(b.shape, jnp.float64), values, b)


def _solve_fwd(values, b, analysis):
    x = sparse_solve(values, b, analysis)
    return x, (values, x)


def _solve_bwd(analysis, res, xbar):
    values, x = res
    u = host_call(partial(_host_solve, analysis), jax.ShapeDtypeStruct(xbar.shape, jnp.float64), values, xbar)
    r = jnp.asarray(analysis.rows)
    c = jnp.asarray(analysis.cols)
    w = jnp.asarray(analysis.weights)
    if x.ndim == 1:
        vbar = -0.5 * w * (u[r] * x[c] + u[c] * x[r])
    else:
        vbar = -0.5 * w * jnp.sum(u[r] * x[c] + u[c] * x[r], axis=1)
    return vbar, u


sparse_solve.defvjp(_solve_fwd, _solve_bwd)
