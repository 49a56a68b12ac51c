"""The CHOLMOD sparse path against dense references; the JAX wrappers against jax.grad and FD.

Every test that takes the ``backend`` fixture runs once per CHOLMOD backend (selected through
``ADELIA_CHOLMOD``): cvxopt is a core dependency and never skips; scikit-sparse on the system
SuiteSparse skips when it is not installed.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from adelia.errors import AdeliaError, FitError  # noqa: E402
from adelia.runtime import sparse  # noqa: E402

# ---------------------------------------------------------------------------
# Matrices (tests/runtime/spd_matrices.py)
# ---------------------------------------------------------------------------


from spd_matrices import lap1d, grid_K, spde_grid, ar1, spacetime, random_spd, arrowhead  # noqa: E402,F401



CASES = {
    "dense": lambda: sp.csc_matrix(np.eye(12) * 13 + np.ones((12, 12))),
    "block_diagonal": lambda: sp.block_diag([lap1d(7) + sp.identity(7), spde_grid(4), sp.identity(3)]).tocsc(),
    "spde_grid": lambda: spde_grid(9),
    "spacetime": lambda: spacetime(4, 6),
    "random": lambda: random_spd(150, 0.02, 3),
    "arrowhead": lambda: arrowhead(80, 4),
}

TOL = 1e-10


def _backend_params():
    out = []
    for name in sparse.BACKENDS:
        optional = name != "cvxopt" and name not in sparse.backends()
        marks = [pytest.mark.skip(reason=f"{name} is not installed ({sparse.INSTALL_HINT})")] if optional else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.fixture(params=_backend_params())
def backend(request, monkeypatch):
    """The backend under test, selected as a user would: through the environment variable."""
    monkeypatch.setenv(sparse.ENV_VAR, request.param)
    return request.param


def dense_of(Q):
    return np.asarray(Q.toarray())


# ---------------------------------------------------------------------------
# NumPy seam: factor, logdet, solve, sample, selected inverse, trace
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["spde_grid", "spacetime", "random", "arrowhead", "block_diagonal", "dense"])
@pytest.mark.parametrize("ordering", ["nesdis", "metis", "amd", "natural"])
def test_seam_matches_dense(backend, name, ordering):
    Q = CASES[name]()
    Qd = dense_of(Q)
    n = Q.shape[0]
    an = sparse.analyse(Q, ordering=ordering)
    assert an.backend == backend and sparse.backend() == backend
    F = sparse.factor(an, Q)
    assert sparse.logdet(F) == pytest.approx(np.linalg.slogdet(Qd)[1], rel=1e-12)
    rng = np.random.default_rng(0)
    b = rng.standard_normal((n, 3))
    np.testing.assert_allclose(sparse.solve(F, b), np.linalg.solve(Qd, b), rtol=0, atol=TOL)
    np.testing.assert_allclose(sparse.solve(F, b[:, 0]), np.linalg.solve(Qd, b[:, 0]), rtol=0, atol=TOL)
    Sd = np.linalg.inv(Qd)
    # X = Pᵀ L⁻ᵀ I has X Xᵀ = Q⁻¹ exactly: the sampler's covariance
    X = sparse.sample_standard(F, np.eye(n))
    np.testing.assert_allclose(X @ X.T, Sd, rtol=0, atol=TOL)
    # Σ on the pattern of L + Lᵀ, every entry, original ordering
    Sig = sparse.selected_inverse(F)
    C = Sig.tocoo()
    np.testing.assert_allclose(C.data, Sd[C.row, C.col], rtol=0, atol=TOL)
    assert Sig.nnz == 2 * F.nnz_L - n
    assert (abs(Sig) - abs(Sig.T)).nnz == 0
    assert set(zip(*Q.nonzero())) <= set(zip(C.row.tolist(), C.col.tolist()))
    low = sparse.selected_inverse(F, triangle="lower").tocoo()
    assert np.all(low.row >= low.col) and low.nnz == F.nnz_L
    np.testing.assert_allclose(low.data, Sd[low.row, low.col], rtol=0, atol=TOL)
    np.testing.assert_allclose(F.selinv().diagonal(), np.diag(Sd), rtol=0, atol=TOL)


def test_trace_with(backend):
    Q = spacetime(4, 5)
    an = sparse.analyse(Q)
    F = sparse.factor(an, Q)
    Sd = np.linalg.inv(dense_of(Q))
    rng = np.random.default_rng(1)
    D = sp.random(*Q.shape, density=0.3, random_state=rng)
    dQ = sp.csc_matrix((D + D.T).multiply(Q != 0))
    expect = np.trace(Sd @ dQ.toarray())
    Sig = F.selinv()
    assert sparse.trace_with(Sig, dQ) == pytest.approx(expect, rel=1e-12)
    assert sparse.trace_with(sparse.selected_inverse(F), dQ) == pytest.approx(expect, rel=1e-12)
    assert sparse.trace_with(Sig, an.values_of(dQ)) == pytest.approx(expect, rel=1e-12)
    # lower-triangle pattern: values vectors count off-diagonal entries twice
    anl = sparse.analyse(sp.tril(Q), triangle="lower")
    Sl = sparse.factor(anl, sp.tril(Q)).selinv()
    assert sparse.trace_with(Sl, anl.values_of(sp.tril(dQ))) == pytest.approx(expect, rel=1e-12)


def test_refactor_in_place_and_values_order(backend):
    Q = spde_grid(7)
    an = sparse.analyse(Q)
    F = sparse.factor(an, Q)
    S1 = F.selinv().pattern_values().copy()
    v = an.values_of(Q)
    # several live factors of one analysis are independent (each has its own memory)
    G = sparse.factor(an, 2.0 * v)
    H = sparse.factor(an, 4.0 * v)
    assert F.logdet() == pytest.approx(np.linalg.slogdet(dense_of(Q))[1], rel=1e-12)
    assert G.logdet() == pytest.approx(F.logdet() + an.n * np.log(2.0), rel=1e-12)
    np.testing.assert_allclose(H.selinv().pattern_values(), S1 / 4.0, rtol=1e-10)
    np.testing.assert_allclose(G.selinv().pattern_values(), S1 / 2.0, rtol=1e-10)
    F2 = sparse.factor(an, 3.0 * v, reuse=F)
    assert F2.logdet() == pytest.approx(np.linalg.slogdet(3.0 * dense_of(Q))[1], rel=1e-12)
    np.testing.assert_allclose(F2.selinv().pattern_values(), S1 / 3.0, rtol=1e-10)
    with pytest.raises(RuntimeError, match="overwritten"):
        F.logdet()
    # a matrix with explicit zeros / a sub-pattern is accepted; entries outside are not
    sub = sp.diags(Q.diagonal()).tocsc()
    assert sparse.factor(an, sub).logdet() == pytest.approx(np.log(Q.diagonal()).sum(), rel=1e-12)
    outside = Q + sp.csc_matrix(([1.0, 1.0], ([0, 48], [48, 0])), shape=Q.shape)
    with pytest.raises(ValueError, match="outside the analysed pattern"):
        sparse.factor(an, outside)


def test_fallback_route_without_direct_access(backend, monkeypatch):
    Q = arrowhead(60, 3)
    Sd = np.linalg.inv(dense_of(Q))
    an = sparse.analyse(Q)
    an._direct = False  # the numeric factor's arrays could not be verified: simplicial-copy route
    F = sparse.factor(an, Q)
    C = sparse.selected_inverse(F).tocoo()
    np.testing.assert_allclose(C.data, Sd[C.row, C.col], rtol=0, atol=TOL)
    # the struct layout is not trusted at all (unknown scikit-sparse object layout, failed cvxopt probe)
    monkeypatch.setattr(sparse._load(backend), "layout_known", False)
    an = sparse.analyse(Q)
    assert an.supernodes is None
    F = sparse.factor(an, Q)
    assert F.logdet() == pytest.approx(np.linalg.slogdet(dense_of(Q))[1], rel=1e-12)
    C = sparse.selected_inverse(F).tocoo()
    np.testing.assert_allclose(C.data, Sd[C.row, C.col], rtol=0, atol=TOL)
    X = sparse.sample_standard(F, np.eye(an.n))
    np.testing.assert_allclose(X @ X.T, Sd, rtol=0, atol=TOL)
    g = jax.grad(lambda v: sparse.sparse_logdet(v, an))(jnp.asarray(an.values_of(Q)))
    np.testing.assert_allclose(g, Sd[an.rows, an.cols], rtol=1e-10, atol=1e-13)


def test_permutation_check_falls_back(backend, monkeypatch):
    """A struct whose permutation disagrees with the backend's public one is not used."""
    Q = spacetime(3, 4)
    Sd = np.linalg.inv(dense_of(Q))
    an = sparse.analyse(Q)
    true_perm = an.perm.copy()
    an._set_perm(np.roll(true_perm, 1))        # what a misread Perm would look like
    F = sparse.factor(an, Q)
    C = sparse.selected_inverse(F).tocoo()
    assert not an._direct
    np.testing.assert_array_equal(an.perm, true_perm)
    np.testing.assert_allclose(C.data, Sd[C.row, C.col], rtol=0, atol=TOL)


def test_errors(backend):
    Q = spde_grid(5)
    an = sparse.analyse(Q)
    with pytest.raises(FitError, match="not positive definite"):
        sparse.factor(an, Q - 2.0 * sp.identity(25) * Q.diagonal().max())
    with pytest.raises(FitError, match="non-finite"):
        sparse.factor(an, np.full(an.nnz, np.nan))
    with pytest.raises(ValueError, match="structurally symmetric"):
        sparse.analyse(sp.tril(Q) + sp.identity(25))
    with pytest.raises(ValueError, match="above the diagonal"):
        sparse.analyse(Q, triangle="lower")
    with pytest.raises(ValueError, match="diagonal"):
        sparse.analyse(Q - sp.diags(Q.diagonal()))
    with pytest.raises(ValueError, match="unknown ordering"):
        sparse.analyse(Q, ordering="rcm")


# ---------------------------------------------------------------------------
# JAX wrappers
# ---------------------------------------------------------------------------


def dense_from_values(an, v):
    n = an.n
    M = jnp.zeros((n, n)).at[an.rows, an.cols].add(v)
    if an.triangle == "lower":
        M = M + jnp.tril(M, -1).T
    return M


def ref_logdet(an, v):
    return 2.0 * jnp.sum(jnp.log(jnp.diag(jnp.linalg.cholesky(dense_from_values(an, v)))))


def ref_solve(an, v, b):
    L = jnp.linalg.cholesky(dense_from_values(an, v))
    return jax.scipy.linalg.cho_solve((L, True), b)


@pytest.fixture(params=["full", "lower"])
def problem(request, backend):
    Q = spacetime(3, 4)
    if request.param == "lower":
        Q = sp.tril(Q, format="csc")
    an = sparse.analyse(Q, triangle=request.param)
    return an, jnp.asarray(an.values_of(Q))


def central_fd(f, v, d, h=1e-6):
    return (f(v + h * d) - f(v - h * d)) / (2 * h)


def test_sparse_logdet_value_and_grad(problem):
    an, v = problem
    val, g = jax.value_and_grad(lambda v: sparse.sparse_logdet(v, an))(v)
    val_r, g_r = jax.value_and_grad(lambda v: ref_logdet(an, v))(v)
    assert val == pytest.approx(float(val_r), rel=1e-13)
    np.testing.assert_allclose(g, g_r, rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(2)
    for _ in range(3):  # FD along random (not necessarily symmetric) directions
        d = jnp.asarray(rng.standard_normal(v.shape))
        fd = central_fd(lambda v: sparse.sparse_logdet(v, an), v, d)
        assert float(jnp.dot(g, d)) == pytest.approx(float(fd), rel=1e-6, abs=1e-7)
    # jit, vmap
    f = jax.jit(lambda v: sparse.sparse_logdet(v, an))
    assert float(f(v)) == pytest.approx(float(val_r), rel=1e-13)
    vs = jnp.stack([v, 2.0 * v])
    np.testing.assert_allclose(jax.vmap(f)(vs), [val_r, ref_logdet(an, 2.0 * v)], rtol=1e-13)
    gs = jax.vmap(jax.grad(lambda v: sparse.sparse_logdet(v, an)))(vs)
    np.testing.assert_allclose(gs[1], g_r / 2.0, rtol=1e-10, atol=1e-12)


def test_repeated_solve_is_remembered_only_for_the_same_factor_and_columns(problem):
    an, v = problem
    rng = np.random.default_rng(5)
    B = rng.standard_normal((an.n, 3))
    x1 = sparse._host_solve(an, np.asarray(v), B)
    assert an._solve_memo is not None
    x1[0, 0] = np.nan                                   # the caller's copy, not the memo's
    x2 = sparse._host_solve(an, np.asarray(v), B)
    np.testing.assert_allclose(x2, ref_solve(an, v, B), rtol=1e-10, atol=1e-12)
    B2 = B.copy()
    B2[1, 2] += 1.0                                     # other columns: solved afresh
    np.testing.assert_allclose(sparse._host_solve(an, np.asarray(v), B2), ref_solve(an, v, B2), rtol=1e-10, atol=1e-12)
    v2 = 2.0 * v                                        # another factor: the memo is dropped
    np.testing.assert_allclose(sparse._host_solve(an, np.asarray(v2), B2), ref_solve(an, v2, B2), rtol=1e-10,
                               atol=1e-12)


def test_a_failed_factorisation_is_remembered_for_its_values(problem, monkeypatch):
    an, v = problem
    bad = np.asarray(v).copy()
    bad[an.values_of(sp.identity(an.n, format="csc")) != 0] *= -1.0    # negative diagonal: not PD
    calls = []
    real = sparse.factor
    monkeypatch.setattr(sparse, "factor", lambda *a, **k: calls.append(1) or real(*a, **k))
    b = np.ones(an.n)
    for _ in range(3):
        assert np.all(np.isnan(sparse._host_solve(an, bad, b)))
        assert np.isnan(sparse._host_logdet(an, bad))
    assert len(calls) == 1
    np.testing.assert_allclose(sparse._host_solve(an, np.asarray(v), b), ref_solve(an, v, b), rtol=1e-10, atol=1e-12)
    assert len(calls) == 2


@pytest.mark.parametrize("blocked", [True, False])
@pytest.mark.parametrize("rank", [0, 3])
def test_cubic_moments_match_dense(backend, blocked, rank, monkeypatch):
    """[X a, (X∘X∘X) c] for X = Q⁻¹B − W Zᵀ, by the blocked supernodal solves (in the factor's
    ordering) and by the backend's column solves, against dense algebra; under jit too."""
    from adelia.runtime import supernodal_solve

    monkeypatch.setattr(supernodal_solve, "worthwhile", lambda *a, **k: blocked)
    Q = spacetime(5, 6)
    an = sparse.analyse(Q)
    v = jnp.asarray(an.values_of(Q))
    rng = np.random.default_rng(11)
    n, k = an.n, 37
    B = sp.random(n, k, density=0.05, random_state=4, format="csr") + sp.eye(n, k, format="csr")
    W, Z = rng.standard_normal((n, rank)), rng.standard_normal((k, rank))
    a, c = rng.standard_normal(k), rng.standard_normal(k)
    X = np.linalg.solve(Q.toarray(), B.toarray()) - W @ Z.T
    want = np.stack([X @ a, X ** 3 @ c])
    got = sparse.sparse_cubic_moments(v, B, W, Z, a, c, an)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert (an._sn_blocks is not None) == blocked           # the route under test was taken
    jitted = jax.jit(lambda v, W: sparse.sparse_cubic_moments(v, B, W, Z, a, c, an))(v, W)
    np.testing.assert_allclose(jitted, want, rtol=1e-10, atol=1e-12)
    bad = np.asarray(v).copy()
    bad[an.values_of(sp.identity(n, format="csc")) != 0] *= -1.0        # not PD: NaN, as every wrapper
    assert np.all(np.isnan(sparse.sparse_cubic_moments(jnp.asarray(bad), B, W, Z, a, c, an)))


@pytest.mark.parametrize("ncols", [None, 2])
def test_sparse_solve_vjp(problem, ncols):
    an, v = problem
    rng = np.random.default_rng(3)
    shape = (an.n,) if ncols is None else (an.n, ncols)
    b = jnp.asarray(rng.standard_normal(shape))
    w = jnp.asarray(rng.standard_normal(shape))

    def loss(solver, v, b):
        return jnp.sum(w * jnp.sin(solver(v, b)))

    sp_solve = lambda v, b: sparse.sparse_solve(v, b, an)  # noqa: E731
    rf_solve = lambda v, b: ref_solve(an, v, b)  # noqa: E731
    np.testing.assert_allclose(sp_solve(v, b), rf_solve(v, b), rtol=0, atol=1e-12)
    gv, gb = jax.grad(lambda v, b: loss(sp_solve, v, b), argnums=(0, 1))(v, b)
    rv, rb = jax.grad(lambda v, b: loss(rf_solve, v, b), argnums=(0, 1))(v, b)
    np.testing.assert_allclose(gv, rv, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gb, rb, rtol=1e-9, atol=1e-12)
    d = jnp.asarray(rng.standard_normal(v.shape))
    fd = central_fd(lambda v: loss(sp_solve, v, b), v, d)
    assert float(jnp.dot(gv, d)) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)
    assert jnp.allclose(jax.jit(sp_solve)(v, b), rf_solve(v, b), atol=1e-12)


def test_gradient_of_a_theta_parametrised_gaussian_logdensity(backend):
    """θ ↦ ½log|Q(θ)| − ½ yᵀQ(θ)y − ... with Q(θ) = e^θ₀ K² + e^θ₁ K on a grid (2 θ, one pattern)."""
    K = grid_K(6)
    K2 = (K @ K).tocsc()
    pattern = (abs(K2) + abs(K)).tocsc()
    an = sparse.analyse(pattern)
    k2 = jnp.asarray(an.values_of(K2))
    k1 = jnp.asarray(an.values_of(K))
    y = jnp.asarray(np.random.default_rng(4).standard_normal(an.n))

    def objective(theta, logdet, solve):
        v = jnp.exp(theta[0]) * k2 + jnp.exp(theta[1]) * k1
        x = solve(v, y)
        return 0.5 * logdet(v) - 0.5 * jnp.dot(y, x)

    sp_obj = lambda t: objective(t, lambda v: sparse.sparse_logdet(v, an),  # noqa: E731
                                 lambda v, b: sparse.sparse_solve(v, b, an))
    rf_obj = lambda t: objective(t, lambda v: ref_logdet(an, v), lambda v, b: ref_solve(an, v, b))  # noqa: E731
    theta = jnp.array([0.3, -0.2])
    val, g = jax.value_and_grad(sp_obj)(theta)
    val_r, g_r = jax.value_and_grad(rf_obj)(theta)
    assert float(val) == pytest.approx(float(val_r), rel=1e-12)
    np.testing.assert_allclose(g, g_r, rtol=1e-10)
    for k in range(2):
        e = jnp.zeros(2).at[k].set(1.0)
        assert float(g[k]) == pytest.approx(float(central_fd(sp_obj, theta, e, h=1e-5)), rel=1e-7)


def test_jax_wrappers_nan_when_not_positive_definite(problem):
    an, v = problem
    bad = -v
    assert np.isnan(float(sparse.sparse_logdet(bad, an)))
    assert np.all(np.isnan(sparse.sparse_solve(bad, jnp.ones(an.n), an)))
    assert float(sparse.sparse_logdet(v, an)) == pytest.approx(float(ref_logdet(an, v)), rel=1e-13)


def test_jax_wrappers_reject_float32(problem):
    an, v = problem
    with pytest.raises(TypeError, match="float64"):
        sparse.sparse_logdet(v.astype(jnp.float32), an)
    with pytest.raises(ValueError, match="expected"):
        sparse.sparse_logdet(v[:-1], an)


def test_constraints_match_dense(backend):
    from adelia.runtime import dense

    Q = spde_grid(5)
    an = sparse.analyse(Q)
    F = sparse.factor(an, Q)
    rng = np.random.default_rng(5)
    C = np.vstack([np.ones(an.n), rng.standard_normal(an.n)])
    x = rng.standard_normal(an.n)
    L = dense.factor(jnp.asarray(dense_of(Q)))
    np.testing.assert_allclose(sparse.constrain(F, C, x), dense.constrain(L, jnp.asarray(C), jnp.asarray(x)),
                               rtol=0, atol=1e-10)
    assert sparse.constrained_logdet_term(F, C) == pytest.approx(
        float(dense.constrained_logdet_term(L, jnp.asarray(C))), rel=1e-10)
    assert np.allclose(C @ sparse.constrain(F, C, x), 0.0, atol=1e-10)
    assert sparse.constrained_logdet_term(F, np.zeros((0, an.n))) == 0.0


# ---------------------------------------------------------------------------
# Backend selection and agreement between backends
# ---------------------------------------------------------------------------


def test_default_backend_is_cvxopt(monkeypatch):
    monkeypatch.delenv(sparse.ENV_VAR, raising=False)
    assert sparse.available()
    assert sparse.backend() == "cvxopt"
    assert "cvxopt" in sparse.backends()
    assert sparse.analyse(spde_grid(4)).backend == "cvxopt"


@pytest.mark.parametrize("value", ["umfpack", "cvxopt,sksparse"])
def test_unknown_backend_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(sparse.ENV_VAR, value)
    for call in (sparse.available, sparse.backend, lambda: sparse.analyse(spde_grid(4))):
        with pytest.raises(sparse.CholmodBackendError) as err:
            call()
        assert isinstance(err.value, AdeliaError)
        text = str(err.value)
        assert sparse.ENV_VAR in text and repr(value) in text
        assert all(name in text for name in sparse.BACKENDS)
    monkeypatch.delenv(sparse.ENV_VAR)
    with pytest.raises(sparse.CholmodBackendError, match="backend="):
        sparse.analyse(spde_grid(4), backend="pardiso")


def test_missing_backends(monkeypatch):
    """A selected backend that does not import: unavailable, ImportError naming it; unset, the
    default falls back to whichever backend imports."""
    monkeypatch.setitem(sparse._LOADED, "sksparse", ImportError("No module named 'sksparse'"))
    monkeypatch.setenv(sparse.ENV_VAR, "sksparse")
    assert not sparse.available() and sparse.backend() is None
    with pytest.raises(ImportError, match="'sksparse' CHOLMOD backend is not installed"):
        sparse.analyse(spde_grid(4))
    monkeypatch.delenv(sparse.ENV_VAR)
    assert sparse.backend() == "cvxopt" and sparse.backends() == ("cvxopt",)
    monkeypatch.setitem(sparse._LOADED, "cvxopt", ImportError("No module named 'cvxopt'"))
    assert not sparse.available() and sparse.backends() == ()
    with pytest.raises(ImportError, match="pip install cvxopt pymetis"):
        sparse.analyse(spde_grid(4))


def test_backend_argument_overrides_the_environment(monkeypatch):
    monkeypatch.setenv(sparse.ENV_VAR, "sksparse")
    assert sparse.analyse(spde_grid(4), backend="cvxopt").backend == "cvxopt"


def test_cvxopt_options_are_restored_and_not_used(monkeypatch):
    """cvxopt's global options dictionary: a user's settings neither leak into adelia's calls
    (a simplicial LDLᵀ request would break the supernodal reading) nor get lost."""
    from cvxopt import cholmod as cvx_cholmod

    monkeypatch.setattr(cvx_cholmod, "options", {"supernodal": 0, "postorder": False})
    Q = spacetime(3, 4)
    an = sparse.analyse(Q, backend="cvxopt")
    F = sparse.factor(an, Q)
    F.factor_values()
    assert an._direct                                              # CHOLMOD's supernodes, read in place
    C = sparse.selected_inverse(F).tocoo()
    np.testing.assert_allclose(C.data, np.linalg.inv(dense_of(Q))[C.row, C.col], rtol=0, atol=TOL)
    assert cvx_cholmod.options == {"supernodal": 0, "postorder": False}


def _sigma_entries(F):
    C = sparse.selected_inverse(F).tocoo()
    return dict(zip(zip(C.row.tolist(), C.col.tolist()), C.data.tolist()))


@pytest.mark.parametrize("name", ["random", "spacetime"])
@pytest.mark.parametrize("ordering", ["nesdis", "amd"])
def test_backends_agree(name, ordering):
    if "sksparse" not in sparse.backends():
        pytest.skip(f"sksparse is not installed ({sparse.INSTALL_HINT})")
    Q = {"random": lambda: random_spd(200, 0.02, 7), "spacetime": lambda: spacetime(5, 6)}[name]()
    b = np.random.default_rng(8).standard_normal((Q.shape[0], 2))
    out = {}
    for be in sparse.BACKENDS:
        an = sparse.analyse(Q, ordering=ordering, backend=be)
        F = sparse.factor(an, Q)
        out[be] = (F.logdet(), F.solve(b), _sigma_entries(F), F.selinv().pattern_values())
    (ld1, x1, s1, p1), (ld2, x2, s2, p2) = out["cvxopt"], out["sksparse"]
    assert abs(ld1 - ld2) <= 1e-10 * max(1.0, abs(ld1))
    np.testing.assert_allclose(x1, x2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p1, p2, rtol=0, atol=1e-10)       # Σ on Q's pattern
    common = s1.keys() & s2.keys()                                # the orderings may differ: fill differs
    assert set(zip(*Q.nonzero())) <= common
    np.testing.assert_allclose([s1[k] for k in common], [s2[k] for k in common], rtol=0, atol=1e-10)
