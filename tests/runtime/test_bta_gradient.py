"""ADELIA Gaussian core on BTA matrices: values vs dense NumPy, gradients vs plain
reverse mode through a dense Cholesky, through the scan, and vs finite differences
(METHOD.md §2.2, §6)."""

import jax

jax.config.update("jax_enable_x64", True)

import functools  # noqa: E402
from functools import partial  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from adelia.runtime.bta import BTA, bta_to_dense  # noqa: E402
from adelia.runtime.bta_gradient import (  # noqa: E402
    assemble_precisions,
    gaussian_core,
    gaussian_mode,
    gaussian_objective,
    gaussian_objective_dense,
    gaussian_objective_naive,
    make_gaussian_data,
)

# ---------------------------------------------------------------------------
# Models: generator maps θ_st -> (coefs, Ks)
# ---------------------------------------------------------------------------


def path_laplacian(n):
    g = 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    g[0, 0] = g[-1, -1] = 1.0
    return g


def separable_generators(theta_st, gen_data):
    """σ⁻² AR1(ρ) ⊗ (κ²C + G), θ_st = (log κ, ρ-internal, log σ), ρ = tanh(θ/2).

    AR1 precision = (M0 + ρ²M1 − ρM2)/(1 − ρ²) with M0 = I, M1 = diag(0,1,…,1,0),
    M2 = off-diagonal ones: three generators sharing K."""
    C, G = gen_data
    log_kappa, rho_internal, log_sigma = theta_st
    rho = jnp.tanh(rho_internal / 2)
    K = jnp.exp(2 * log_kappa) * C + G
    coefs = jnp.exp(-2 * log_sigma) / (1 - rho**2) * jnp.stack([1.0, rho**2, -rho])
    return coefs, jnp.stack([K, K, K])


def separable_temporal(nt):
    inner = np.ones(nt)
    inner[[0, -1]] = 0.0
    m_diag = np.stack([np.ones(nt), inner, np.zeros(nt)])
    m_lower = np.stack([np.zeros(nt - 1), np.zeros(nt - 1), np.ones(nt - 1)])
    return m_diag, m_lower


def demf_generators(theta_st, gen_data):
    """DEMF(1,2,1)-like: e^{2γ_st}[m0⊗q3 + e^{γ_t} m1⊗q2 + e^{2γ_t} m2⊗q1]
    (METHOD.md §9.1), θ_st = (γ_s, γ_t, γ_st) — three different spatial matrices."""
    C0, G1, G2, G3 = gen_data
    gamma_s, gamma_t, gamma_st = theta_st
    k2 = jnp.exp(2 * gamma_s)
    q1 = k2 * C0 + G1
    q2 = k2**2 * C0 + 2 * k2 * G1 + G2
    q3 = k2**3 * C0 + 3 * k2**2 * G1 + 3 * k2 * G2 + G3
    et = jnp.exp(gamma_t)
    return jnp.exp(2 * gamma_st) * jnp.stack([1.0, et, et * et]), jnp.stack([q3, q2, q1])


def demf_temporal(nt):
    m0 = np.ones(nt)
    m0[[0, -1]] = 0.5
    m1 = np.zeros(nt)
    m1[[0, -1]] = 1.0
    m2 = 2.0 * np.ones(nt)
    m2[[0, -1]] = 1.0
    m_lower = np.stack([np.zeros(nt - 1), np.zeros(nt - 1), -np.ones(nt - 1)])
    return np.stack([m0, m1, m2]), m_lower


def make_problem(kind, *, b=5, nt=4, a=2, m_t=6, seed=0):
    """Small random data set; the last time block has two padded rows."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((nt, m_t, b)) * (rng.random((nt, m_t, b)) < 0.5)
    A_tip = rng.standard_normal((nt, m_t, a))
    y = rng.standard_normal((nt, m_t))
    mask = np.ones((nt, m_t))
    mask[-1, -2:] = 0.0
    if kind == "separable":
        gens = separable_generators
        m_diag, m_lower = separable_temporal(nt)
        gen_data = (jnp.diag(rng.uniform(0.5, 1.5, b)), jnp.asarray(path_laplacian(b)))
        theta = jnp.array([0.3, -0.2, 0.8, 0.1])
    else:
        gens = demf_generators
        m_diag, m_lower = demf_temporal(nt)
        c0 = rng.uniform(0.5, 1.5, b)
        g1 = path_laplacian(b)
        g2 = g1 @ (g1 / c0[:, None])
        g3 = g1 @ (g2 / c0[:, None])
        gen_data = tuple(jnp.asarray(x) for x in (np.diag(c0), g1, g2, g3))
        theta = jnp.array([0.2, -0.3, 0.4, -0.5])
    data = make_gaussian_data(
        m_diag=m_diag,
        m_lower=m_lower,
        tip_prec=np.full(a, 0.5),
        A_blocks=A,
        A_tip=A_tip,
        y=y,
        mask=mask,
        gen_data=gen_data,
    )
    return gens, data, theta, (A, A_tip, y, mask)


def numpy_marginal_objective(gens, theta, data, raw):
    """Independent oracle: f(θ) = −log N(y; 0, Ã Q_p⁻¹ Ãᵀ + τ⁻¹I) − (m/2) log 2π on
    the observed rows, Ã = [A_blocks (block-diagonal in time), A_tip] (METHOD.md §2.1)."""
    A, A_tip, y, mask = raw
    nt, m_t, b = A.shape
    Qp, _, _ = assemble_precisions(gens, theta, data)
    Qp = np.asarray(bta_to_dense(Qp))
    rows = []
    for t in range(nt):
        for k in range(m_t):
            if mask[t, k]:
                row = np.zeros(Qp.shape[0])
                row[t * b : (t + 1) * b] = A[t, k]
                row[nt * b :] = A_tip[t, k]
                rows.append(row)
    At = np.array(rows)
    yo = y[mask > 0]
    m = len(yo)
    cov = At @ np.linalg.solve(Qp, At.T) + np.exp(-float(theta[0])) * np.eye(m)
    _, logdet = np.linalg.slogdet(cov)
    loglik = -0.5 * (logdet + yo @ np.linalg.solve(cov, yo)) - 0.5 * m * np.log(2 * np.pi)
    return -loglik - 0.5 * m * np.log(2 * np.pi)


def rel(x, ref):
    x, ref = np.asarray(x), np.asarray(ref)
    return np.max(np.abs(x - ref)) / max(np.max(np.abs(ref)), 1e-300)


SHAPES = {
    "b5-nt4-a2": dict(b=5, nt=4, a=2),
    "b3-nt1-a2": dict(b=3, nt=1, a=2),
    "b4-nt3-a0": dict(b=4, nt=3, a=0),
}
CASES = [(kind, shape) for kind in ("separable", "demf") for shape in SHAPES]


@pytest.fixture(params=CASES, ids=[f"{k}-{s}" for k, s in CASES])
def problem(request):
    kind, shape = request.param
    return make_problem(kind, **SHAPES[shape])


@functools.cache
def value_and_grad(variant, gens):
    """Jitted value-and-gradient of one objective variant, compiled once per model
    (and per shape) for the whole module."""
    fn = {
        "adelia": gaussian_objective,
        "naive": gaussian_objective_naive,
        "dense": gaussian_objective_dense,
    }[variant]
    return jax.jit(jax.value_and_grad(partial(fn, gens)))


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_value_and_gradient_against_dense(problem):
    """Value vs the NumPy marginal likelihood (< 1e-10 relative); gradient vs plain
    reverse mode through a dense Cholesky (< 1e-10 relative)."""
    gens, data, theta, raw = problem
    want = numpy_marginal_objective(gens, theta, data, raw)
    value, grad = value_and_grad("adelia", gens)(theta, data)
    value_d, grad_d = value_and_grad("dense", gens)(theta, data)
    assert abs(float(value) - want) / abs(want) < 1e-10
    assert abs(float(value_d) - want) / abs(want) < 1e-10
    assert rel(grad, grad_d) < 1e-10


@pytest.mark.parametrize("kind", ["separable", "demf"])
def test_gradient_matches_naive_scan_reverse_mode(kind):
    gens, data, theta, _ = make_problem(kind)
    value, grad = value_and_grad("adelia", gens)(theta, data)
    value_n, grad_n = value_and_grad("naive", gens)(theta, data)
    assert abs(float(value) - float(value_n)) < 1e-12 * abs(float(value))
    assert rel(grad, grad_n) < 1e-10


def test_large_blocks_against_dense():
    """b = 140 runs the recursive dense-block kernels inside the core."""
    gens, data, theta, raw = make_problem("demf", b=140, nt=2, a=1, m_t=30)
    value, grad = value_and_grad("adelia", gens)(theta, data)
    value_d, grad_d = value_and_grad("dense", gens)(theta, data)
    assert abs(float(value) - float(value_d)) < 1e-10 * abs(float(value_d))
    assert rel(grad, grad_d) < 1e-9


def test_gradient_matches_central_differences(problem):
    gens, data, theta, _ = problem
    vg = value_and_grad("adelia", gens)
    grad = np.asarray(vg(theta, data)[1])
    h = 1e-5
    fd = np.array(
        [
            (float(vg(theta + h * e, data)[0]) - float(vg(theta - h * e, data)[0])) / (2 * h)
            for e in np.eye(theta.shape[0])
        ]
    )
    assert rel(grad, fd) < 1e-6


def test_core_vjp_each_output():
    """Arbitrary cotangents on (log|Q_p|, log|Q_c|, fit) against dense reverse mode,
    so each output's adjoint is checked on its own."""
    gens, data, theta, _ = make_problem("demf", b=4, nt=3, a=2)

    def dense_core(theta_st, theta_lik):
        th = jnp.concatenate([theta_lik[None], theta_st])
        Qp, Qc, r = assemble_precisions(gens, th, data)
        Lp = jnp.linalg.cholesky(bta_to_dense(Qp))
        Lc = jnp.linalg.cholesky(bta_to_dense(Qc))
        z = jax.scipy.linalg.solve_triangular(Lc, r, lower=True)
        ld = lambda L: 2 * jnp.sum(jnp.log(jnp.diag(L)))  # noqa: E731
        return ld(Lp), ld(Lc), 0.5 * z @ z - 0.5 * jnp.exp(theta_lik) * data.yty

    def pullback(core):
        @jax.jit
        def run(theta_st, theta_lik, ct):
            out, vjp = jax.vjp(core, theta_st, theta_lik)
            st_bar, lik_bar = vjp(tuple(ct))
            return jnp.stack(out), jnp.concatenate([st_bar, lik_bar[None]])

        return run

    adelia = pullback(lambda s, l: gaussian_core(gens, s, l, data))
    dense = pullback(dense_core)
    for ct in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, -1.7, 2.1)]:
        ct = jnp.asarray(ct)
        (out, bar), (out_d, bar_d) = adelia(theta[1:], theta[0], ct), dense(theta[1:], theta[0], ct)
        assert rel(out, out_d) < 1e-10
        assert rel(bar, bar_d) < 1e-10, ct


def test_vmap_over_theta():
    gens, data, theta, _ = make_problem("separable", b=4, nt=3, a=1)
    thetas = theta + jnp.array([[0.0, 0.0, 0.0, 0.0], [0.1, -0.2, 0.3, 0.05]])
    f = partial(gaussian_objective, gens)
    batched = jax.jit(jax.vmap(jax.value_and_grad(f), in_axes=(0, None)))(thetas, data)
    single = value_and_grad("adelia", gens)
    for k in range(2):
        v, g = single(thetas[k], data)
        assert abs(float(batched[0][k]) - float(v)) < 1e-12 * abs(float(v))
        assert rel(batched[1][k], g) < 1e-12


def test_exact_hessian_through_the_adjoint():
    """The backward sweep is plain JAX, so forward-over-reverse gives the exact
    Hessian (for the optimiser's Hessian at the mode, METHOD.md §12)."""
    gens, data, theta, _ = make_problem("separable", b=4, nt=3, a=1)
    H = jax.jit(jax.hessian(partial(gaussian_objective, gens)))(theta, data)
    H_dense = jax.jit(jax.hessian(partial(gaussian_objective_dense, gens)))(theta, data)
    assert rel(H, H_dense) < 1e-9


def test_mode_matches_dense_solve():
    gens, data, theta, _ = make_problem("demf")
    _, Qc, r = assemble_precisions(gens, theta, data)
    want = np.linalg.solve(np.asarray(bta_to_dense(Qc)), np.asarray(r))
    assert rel(jax.jit(partial(gaussian_mode, gens))(theta, data), want) < 1e-10


def test_prior_has_no_arrow():
    gens, data, theta, _ = make_problem("separable")
    Qp, Qc, _ = assemble_precisions(gens, theta, data)
    assert isinstance(Qp, BTA) and float(jnp.abs(Qp.arrow).max()) == 0.0
    assert float(jnp.abs(Qc.arrow).max()) > 0.0


def test_make_gaussian_data_rejects_bad_shapes():
    m_diag, m_lower = separable_temporal(3)
    with pytest.raises(ValueError, match=r"y has shape \(3, 5\), expected \(3, 4\)"):
        make_gaussian_data(
            m_diag=m_diag,
            m_lower=m_lower,
            tip_prec=np.ones(2),
            A_blocks=np.zeros((3, 4, 5)),
            A_tip=np.zeros((3, 4, 2)),
            y=np.zeros((3, 5)),
        )
