"""BTA kernels against dense NumPy (METHOD.md §4–5)."""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from adelia.runtime.bta import (  # noqa: E402
    BTA,
    bta_cholesky,
    bta_factor_logdet,
    bta_logdet,
    bta_matvec,
    bta_sample,
    bta_selected_inverse,
    bta_solve,
    bta_solve_lower,
    bta_solve_upper,
    bta_to_dense,
    bta_trace_contract,
    dense_to_bta,
    gram_upper,
    syrk,
    tri_inv,
)

TOL = 1e-10

# ---------------------------------------------------------------------------
# Matrices
# ---------------------------------------------------------------------------


def random_bta_blocks(rng, b, nt, a) -> BTA:
    return BTA(
        rng.uniform(-1, 1, (nt, b, b)),
        rng.uniform(-1, 1, (nt - 1, b, b)),
        rng.uniform(-1, 1, (nt, a, b)),
        rng.uniform(-1, 1, (a, a)),
    )


def random_spd_bta(rng, b, nt, a):
    """Random SPD BTA (dense blocks, made diagonally dominant); returns (BTA, dense)."""
    M = np.asarray(bta_to_dense(random_bta_blocks(rng, b, nt, a)))
    M = 0.5 * (M + M.T)
    M += np.diag(np.abs(M).sum(axis=1) + 1.0)
    return dense_to_bta(M, b, nt, a), M


def ar1_spatial_bta(nx, ny, nt, a, *, rho=0.9, kappa=0.5, tau=10.0, seed=0):
    """AR1(ρ) ⊗ (κ²I + grid Laplacian), plus τ·ZᵀZ for 20 % of space-time nodes
    observed with a covariates (the arrow), plus 10⁻³·I on the tip."""
    rng = np.random.default_rng(seed)

    def lap1(n):
        g = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
        g[0, 0] = g[-1, -1] = 1
        return g

    b = nx * ny
    K = kappa**2 * np.eye(b) + np.kron(lap1(ny), np.eye(nx)) + np.kron(np.eye(ny), lap1(nx))
    R = (np.eye(nt) * (1 + rho**2) - rho * (np.eye(nt, k=1) + np.eye(nt, k=-1))) / (1 - rho**2)
    R[0, 0] = R[-1, -1] = 1 / (1 - rho**2)
    n = nt * b
    Q = np.zeros((n + a, n + a))
    Q[:n, :n] = np.kron(R, K)
    Q[n:, n:] = 1e-3 * np.eye(a)
    obs = rng.random(n) < 0.2
    Z = np.zeros((obs.sum(), n + a))
    Z[np.arange(obs.sum()), np.flatnonzero(obs)] = 1.0
    Z[:, n:] = rng.standard_normal((obs.sum(), a))
    Q += tau * Z.T @ Z
    return dense_to_bta(Q, b, nt, a), Q


SHAPES = [(4, 5, 2), (3, 1, 0), (5, 6, 0), (2, 7, 3), (6, 2, 1), (1, 1, 1), (1, 3, 0), (150, 3, 2)]
# b = 150 > 128 exercises the recursive triangular kernels.


def pattern_mask(b, nt, a):
    ones = BTA(np.ones((nt, b, b)), np.ones((nt - 1, b, b)), np.ones((nt, a, b)), np.ones((a, a)))
    return np.asarray(bta_to_dense(ones)) != 0


def rel(x, ref):
    x, ref = np.asarray(x), np.asarray(ref)
    return np.max(np.abs(x - ref)) / max(np.max(np.abs(ref)), 1e-300)


@pytest.fixture(params=SHAPES, ids=lambda s: "b{}-nt{}-a{}".format(*s))
def random_case(request):
    b, nt, a = request.param
    rng = np.random.default_rng(b * 100 + nt * 10 + a)
    Q, M = random_spd_bta(rng, b, nt, a)
    return Q, M, rng


MEANINGFUL = {
    "ar1-grid": dict(nx=4, ny=3, nt=5, a=3),
    "ar1-strong": dict(nx=3, ny=3, nt=6, a=2, rho=0.99, kappa=0.05),
    "ar1-no-arrow": dict(nx=3, ny=2, nt=4, a=0),
}


@pytest.fixture(params=list(MEANINGFUL), ids=list(MEANINGFUL))
def meaningful_case(request):
    Q, M = ar1_spatial_bta(**MEANINGFUL[request.param])
    return Q, M, np.random.default_rng(1)


@jax.jit
def all_kernels(Q, r, R, dQ):
    """Every kernel in one jitted call (one compilation per shape keeps tests fast)."""
    L = bta_cholesky(Q)
    Sigma = bta_selected_inverse(L)
    return dict(
        L=L,
        logdet=bta_logdet(L),
        logdet_unstored=bta_factor_logdet(Q),
        solve=bta_solve(L, r),
        lower=bta_solve_lower(L, r),
        upper=bta_solve_upper(L, r),
        solve_matrix=bta_solve(L, R),
        matvec=bta_matvec(Q, r),
        Sigma=Sigma,
        trace=bta_trace_contract(Sigma, dQ),
    )


def check_all_kernels(Q, M, rng):
    """Factor, log-det, solves, selected inverse and trace identity vs dense."""
    b, nt, a = Q.b, Q.nt, Q.a
    r = rng.standard_normal(M.shape[0])
    R = rng.standard_normal((M.shape[0], 3))
    dQ = np.asarray(bta_to_dense(random_bta_blocks(rng, b, nt, a)))
    dQ = 0.5 * (dQ + dQ.T)
    out = all_kernels(Q, r, R, dense_to_bta(dQ, b, nt, a))

    Ld = np.asarray(bta_to_dense(out["L"], symmetric=False))
    assert rel(Ld, np.linalg.cholesky(M)) < TOL
    sign, logdet = np.linalg.slogdet(M)
    assert sign > 0
    assert abs(float(out["logdet"]) - logdet) / max(abs(logdet), 1.0) < TOL
    assert abs(float(out["logdet_unstored"]) - logdet) / max(abs(logdet), 1.0) < TOL

    assert rel(out["solve"], np.linalg.solve(M, r)) < TOL
    assert rel(out["lower"], np.linalg.solve(Ld, r)) < TOL
    assert rel(out["upper"], np.linalg.solve(Ld.T, r)) < TOL
    assert rel(out["solve_matrix"], np.linalg.solve(M, R)) < TOL
    assert rel(out["matvec"], M @ r) < TOL

    inv = np.linalg.inv(M)
    mask = pattern_mask(b, nt, a)
    assert rel(np.asarray(bta_to_dense(out["Sigma"]))[mask], inv[mask]) < TOL
    trace = np.trace(inv @ dQ)
    assert abs(float(out["trace"]) - trace) / max(abs(trace), 1.0) < TOL


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_random_spd_against_dense(random_case):
    check_all_kernels(*random_case)


def test_meaningful_against_dense(meaningful_case):
    check_all_kernels(*meaningful_case)


@pytest.mark.parametrize("n", [1, 5, 129, 300, 600])
def test_dense_block_primitives(n):
    """Recursive triangular inverse, lauum and syrk against NumPy (sizes
    straddle the recursion thresholds 128, 256 and 512)."""
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, n))
    L = np.linalg.cholesky(X @ X.T + n * np.eye(n))
    for transpose in (False, True):
        G = np.asarray(jax.jit(tri_inv, static_argnames="transpose")(L, transpose=transpose))
        Gl = G.T if transpose else G
        assert np.allclose(np.triu(Gl, 1), 0.0)
        assert rel(Gl @ L, np.eye(n)) < TOL
    Gt = np.linalg.inv(L).T
    assert rel(jax.jit(gram_upper)(Gt), Gt @ Gt.T) < TOL
    assert rel(jax.jit(syrk)(X), X @ X.T) < TOL


def test_dense_round_trip():
    rng = np.random.default_rng(3)
    Q = random_bta_blocks(rng, 3, 4, 2)
    Q = Q._replace(diag=Q.diag + Q.diag.transpose(0, 2, 1), tip=Q.tip + Q.tip.T)
    back = dense_to_bta(bta_to_dense(Q), 3, 4, 2)
    for got, want in zip(back, Q):
        np.testing.assert_array_equal(np.asarray(got), want)
    M = np.asarray(bta_to_dense(Q))
    np.testing.assert_array_equal(M, M.T)


def test_jit_and_vmap():
    rng = np.random.default_rng(7)
    pairs = [random_spd_bta(rng, 4, 3, 2) for _ in range(3)]
    batch = BTA(*(jnp.stack([q[k] for q, _ in pairs]) for k in range(4)))
    rhs = jnp.asarray(rng.standard_normal((3, 14)))

    def logdet_and_solve(Q, r):
        L = bta_cholesky(Q)
        return bta_logdet(L), bta_solve(L, r), bta_selected_inverse(L).diag

    logdets, sols, sdiag = jax.jit(jax.vmap(logdet_and_solve))(batch, rhs)
    for k, (_, M) in enumerate(pairs):
        assert abs(float(logdets[k]) - np.linalg.slogdet(M)[1]) < TOL * abs(np.linalg.slogdet(M)[1])
        assert rel(sols[k], np.linalg.solve(M, rhs[k])) < TOL
        assert rel(sdiag[k, 1], np.linalg.inv(M)[4:8, 4:8]) < TOL


@pytest.mark.parametrize("shape", [(4, 5, 2), (3, 1, 0)])
def test_reverse_mode_through_cholesky(shape):
    """Plain jax.grad through the scan kernels: d/dt log|Q + t dQ| = tr(Q⁻¹ dQ)."""
    b, nt, a = shape
    rng = np.random.default_rng(5)
    Q, M = random_spd_bta(rng, b, nt, a)
    dQ = np.asarray(bta_to_dense(random_bta_blocks(rng, b, nt, a)))
    dQ = 0.5 * (dQ + dQ.T)
    dQb = dense_to_bta(dQ, b, nt, a)

    def logdet(t):
        return bta_logdet(bta_cholesky(BTA(*(q + t * d for q, d in zip(Q, dQb)))))

    grad = float(jax.jit(jax.grad(logdet))(0.0))
    want = np.trace(np.linalg.solve(M, dQ))
    assert abs(grad - want) < TOL * max(abs(want), 1.0)


def test_sample_covariance():
    """x = L⁻ᵀε ~ N(0, Q⁻¹): Lᵀx recovers standard normals (shape and moments)."""
    rng = np.random.default_rng(11)
    Q, M = random_spd_bta(rng, 2, 3, 1)
    L = jax.jit(bta_cholesky)(Q)
    x = jax.jit(bta_sample, static_argnums=2)(L, jax.random.PRNGKey(0), (4000, 2))
    assert x.shape == (4000, 2, M.shape[0])
    eps = np.asarray(x).reshape(-1, M.shape[0]) @ np.linalg.cholesky(M)
    assert np.abs(eps.mean(0)).max() < 0.05
    assert np.abs(np.cov(eps.T) - np.eye(M.shape[0])).max() < 0.06
    assert bta_sample(L, jax.random.PRNGKey(1)).shape == (M.shape[0],)


def test_not_positive_definite_gives_nan():
    Q, M = random_spd_bta(np.random.default_rng(2), 3, 2, 1)
    Q = Q._replace(diag=Q.diag.at[1].multiply(-1.0))
    assert np.isnan(float(bta_logdet(bta_cholesky(Q))))


@settings(max_examples=8, deadline=None)
@given(
    b=st.integers(1, 3),
    nt=st.integers(1, 3),
    a=st.integers(0, 2),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_random_shapes(b, nt, a, seed):
    rng = np.random.default_rng(seed)
    check_all_kernels(*random_spd_bta(rng, b, nt, a), rng)
