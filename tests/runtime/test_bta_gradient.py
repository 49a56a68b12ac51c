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
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from adelia.runtime import bta_gradient  # noqa: E402
from adelia.runtime.bta import BTA, bta_to_dense  # noqa: E402
from adelia.runtime.coregional import (  # noqa: E402
    coregional_generators,
    coregional_prior_logdet,
    demf_logdet,
    coregional_observations,
    demf_field,
    demf_temporal as demf_temporal_h,
    fem_powers,
    lmc_weights,
)
from adelia.runtime.bta_gradient import (  # noqa: E402
    LinearGenerators,
    assemble_precisions,
    generator_matrices,
    split_theta,
    gaussian_core,
    gaussian_mode,
    gaussian_objective,
    gaussian_objective_dense,
    gaussian_objective_naive,
    make_gaussian_data,
)

# ---------------------------------------------------------------------------
# Models: generator maps θ_st -> LinearGenerators(weights, basis)
# ---------------------------------------------------------------------------


def path_laplacian(n):
    g = 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    g[0, 0] = g[-1, -1] = 1.0
    return g


def separable_generators(theta_st, basis):
    """σ⁻² AR1(ρ) ⊗ (κ²C + G), θ_st = (log κ, ρ-internal, log σ), ρ = tanh(θ/2),
    basis = (C, G).

    AR1 precision = (M0 + ρ²M1 − ρM2)/(1 − ρ²) with M0 = I, M1 = diag(0,1,…,1,0),
    M2 = off-diagonal ones: three generators sharing K."""
    log_kappa, rho_internal, log_sigma = theta_st
    rho = jnp.tanh(rho_internal / 2)
    coefs = jnp.exp(-2 * log_sigma) / (1 - rho**2) * jnp.stack([1.0, rho**2, -rho])
    K = jnp.stack([jnp.exp(2 * log_kappa), 1.0])
    return LinearGenerators(coefs[:, None, None, None] * K, basis)


def separable_temporal(nt):
    inner = np.ones(nt)
    inner[[0, -1]] = 0.0
    m_diag = np.stack([np.ones(nt), inner, np.zeros(nt)])
    m_lower = np.stack([np.zeros(nt - 1), np.zeros(nt - 1), np.ones(nt - 1)])
    return m_diag, m_lower


def demf_generators(theta_st, basis):
    """DEMF(1,2,1)-like: e^{2γ_st}[m0⊗q3 + e^{γ_t} m1⊗q2 + e^{2γ_t} m2⊗q1]
    (METHOD.md §9.1), θ_st = (γ_s, γ_t, γ_st), basis = (C0, G1, G2, G3) — three
    different spatial matrices q3 = k⁶C0 + 3k⁴G1 + 3k²G2 + G3, q2 = k⁴C0 + 2k²G1 + G2,
    q1 = k²C0 + G1."""
    gamma_s, gamma_t, gamma_st = theta_st
    k2 = jnp.exp(2 * gamma_s)
    q = jnp.array(
        [[k2**3, 3 * k2**2, 3 * k2, 1.0], [k2**2, 2 * k2, 1.0, 0.0], [k2, 1.0, 0.0, 0.0]]
    )
    et = jnp.exp(gamma_t)
    coefs = jnp.exp(2 * gamma_st) * jnp.stack([1.0, et, et * et])
    return LinearGenerators((coefs[:, None] * q)[:, None, None, :], basis)


def demf_temporal(nt):
    m0 = np.ones(nt)
    m0[[0, -1]] = 0.5
    m1 = np.zeros(nt)
    m1[[0, -1]] = 1.0
    m2 = 2.0 * np.ones(nt)
    m2[[0, -1]] = 1.0
    m_lower = np.stack([np.zeros(nt - 1), np.zeros(nt - 1), -np.ones(nt - 1)])
    return np.stack([m0, m1, m2]), m_lower


def make_problem(kind, *, b=5, nt=4, a=2, m_t=6, seed=0, groups=1):
    """Small random data set; the last time block has two padded rows.  With
    ``groups`` > 1 rows get random likelihood groups and θ gets G precisions."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((nt, m_t, b)) * (rng.random((nt, m_t, b)) < 0.5)
    A_tip = rng.standard_normal((nt, m_t, a))
    y = rng.standard_normal((nt, m_t))
    mask = np.ones((nt, m_t))
    mask[-1, -2:] = 0.0
    if kind == "separable":
        gens = separable_generators
        m_diag, m_lower = separable_temporal(nt)
        gen_data = jnp.asarray(np.stack([np.diag(rng.uniform(0.5, 1.5, b)), path_laplacian(b)]))
        theta = jnp.array([0.3, -0.2, 0.8, 0.1])
    else:
        gens = demf_generators
        m_diag, m_lower = demf_temporal(nt)
        c0 = rng.uniform(0.5, 1.5, b)
        g1 = path_laplacian(b)
        g2 = g1 @ (g1 / c0[:, None])
        g3 = g1 @ (g2 / c0[:, None])
        gen_data = jnp.asarray(np.stack([np.diag(c0), g1, g2, g3]))
        theta = jnp.array([0.2, -0.3, 0.4, -0.5])
    group = np.arange(nt * m_t).reshape(nt, m_t) % groups
    theta = jnp.concatenate([theta[0] + 0.4 * jnp.arange(groups), theta[1:]])
    data = make_gaussian_data(
        m_diag=m_diag,
        m_lower=m_lower,
        tip_prec=np.full(a, 0.5),
        A_blocks=A,
        A_tip=A_tip,
        y=y,
        mask=mask,
        group=group if groups > 1 else None,
        gen_data=gen_data,
    )
    return gens, data, theta, (A, A_tip, y, mask, group)


def dense_observations(raw):
    """(Ã, y, group) of the observed rows: Ã = [A_blocks (block-diagonal in time), A_tip]."""
    A, A_tip, y, mask, group = raw
    nt, m_t, b = A.shape
    rows, obs = [], mask > 0
    for t in range(nt):
        for k in range(m_t):
            if obs[t, k]:
                row = np.zeros(nt * b + A_tip.shape[-1])
                row[t * b : (t + 1) * b] = A[t, k]
                row[nt * b :] = A_tip[t, k]
                rows.append(row)
    return np.array(rows), np.asarray(y)[obs], np.asarray(group)[obs]


def numpy_marginal_objective(gens, theta, data, raw):
    """Independent oracle: f(θ) = −log N(y; 0, Ã Q_p⁻¹ Ãᵀ + τ⁻¹I) − (m/2) log 2π on
    the observed rows, Ã = [A_blocks (block-diagonal in time), A_tip], τ⁻¹ of each
    row's likelihood group (METHOD.md §2.1)."""
    Qp, _, _ = assemble_precisions(gens, theta, data)
    Qp = np.asarray(bta_to_dense(Qp))
    At, yo, go = dense_observations(raw)
    m = len(yo)
    theta_lik = np.asarray(split_theta(theta, data)[0])
    noise = np.exp(-theta_lik[go])
    cov = At @ np.linalg.solve(Qp, At.T) + np.diag(noise)
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
        return ld(Lp), ld(Lc), 0.5 * z @ z - 0.5 * jnp.exp(theta_lik) * data.yty[0]

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


# ---------------------------------------------------------------------------
# Several likelihood groups and the coregional (LMC) model (METHOD.md §10)
# ---------------------------------------------------------------------------


def grid_stiffness(nx, ny):
    return np.kron(path_laplacian(ny), np.eye(nx)) + np.kron(np.eye(ny), path_laplacian(nx))


def make_coregional(k, *, nx=3, ny=3, nt=3, nb=2, seed=1, arrow=True, offset=0.0, tip_prec=1e-2):
    """k-variate LMC model on an nx x ny grid: each observation is one variable at one
    node and one time (about 1.5 per node and variable, unequal counts per time),
    nb covariates per variable (the first an intercept); d = 4k + k(k−1)/2.  ``offset``
    is added to every y; ``tip_prec`` is the fixed effects' prior precision."""
    rng = np.random.default_rng(seed)
    ns = nx * ny
    c0 = rng.uniform(0.7, 1.3, ns)
    gen_data = fem_powers(c0, grid_stiffness(nx, ny))
    m = int(1.5 * k * ns * nt)
    time = rng.integers(0, nt, m)
    var = rng.integers(0, k, m)
    node = rng.integers(0, ns, m)
    X = np.concatenate([np.ones((m, 1)), rng.standard_normal((m, nb - 1))], axis=1)
    y = rng.standard_normal(m) + var + offset
    obs = coregional_observations(time, var, node, X, y, k=k, ns=ns, nt=nt)
    m_diag, m_lower = demf_temporal_h(nt, 0.7)
    if not arrow:  # a = 0: no fixed effects
        obs["A_tip"] = obs["A_tip"][..., :0]
    a = obs["A_tip"].shape[-1]
    data = make_gaussian_data(
        m_diag=m_diag, m_lower=m_lower, tip_prec=np.full(a, tip_prec), gen_data=gen_data, **obs
    )
    fields = [[0.3 + 0.1 * j, 0.2 - 0.2 * j, -0.1 * j] for j in range(k)]
    lambdas = [0.6, -0.4, 0.3][: k * (k - 1) // 2]
    theta = jnp.array([0.5 - 0.2 * j for j in range(k)] + sum(fields, []) + lambdas)
    raw = tuple(obs[key] for key in ("A_blocks", "A_tip", "y", "mask", "group"))
    return coregional_generators, data, theta, raw


def central_differences(f, theta, data, h=1e-5):
    return np.array(
        [
            (float(f(theta + h * e, data)[0]) - float(f(theta - h * e, data)[0])) / (2 * h)
            for e in np.eye(theta.shape[0])
        ]
    )


def test_several_groups_value_gradient_and_fd():
    """G = 3 precisions on one field: value vs NumPy, gradient vs dense reverse mode
    and central differences."""
    gens, data, theta, raw = make_problem("demf", b=5, nt=4, a=2, m_t=7, groups=3)
    assert theta.shape == (6,) and data.n_obs.shape == (3,)
    want = numpy_marginal_objective(gens, theta, data, raw)
    value, grad = value_and_grad("adelia", gens)(theta, data)
    value_d, grad_d = value_and_grad("dense", gens)(theta, data)
    assert abs(float(value) - want) / abs(want) < 1e-10
    assert rel(grad, grad_d) < 1e-10
    assert rel(grad, central_differences(value_and_grad("adelia", gens), theta, data)) < 1e-6


@settings(max_examples=30, deadline=None)
@given(
    lead=st.lists(st.integers(1, 3), max_size=2),
    n=st.integers(1, 9),
    nnz=st.integers(0, 12),
    seed=st.integers(0, 2**16),
)
def test_take_is_fancy_indexing_on_the_last_axis(lead, n, nnz, seed):
    """bta_gradient._take (a bare XLA gather, no index normalisation) equals x[..., idx]."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(*lead, n))
    idx = rng.integers(0, n, size=nnz).astype(np.int32)
    got = jax.jit(bta_gradient._take)(jnp.asarray(x), jnp.asarray(idx))
    np.testing.assert_array_equal(np.asarray(got), x[..., idx])


def test_sparse_pattern_indices():
    """rows, cols, flat = rows·n + cols (int32) address the union pattern's entries."""
    rng = np.random.default_rng(0)
    mats = rng.normal(size=(2, 6, 6)) * (rng.random((2, 6, 6)) < 0.1)
    pat = bta_gradient.sparse_pattern(mats)
    assert pat.rows.dtype == pat.cols.dtype == pat.flat.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(pat.vals), mats[:, pat.rows, pat.cols])
    np.testing.assert_array_equal(mats.reshape(2, -1)[:, pat.flat], mats[:, pat.rows, pat.cols])
    assert np.all(np.any(mats != 0, axis=0)[pat.rows, pat.cols])


@pytest.mark.parametrize("k", [1, 2])
def test_sparse_and_dense_contractions_agree(k, monkeypatch):
    """The pattern (gather) contractions of the generator basis and of the AᵀA blocks
    give the same value and gradient as the dense ones; data built under ``jit``
    (traced: no pattern) take the dense route."""
    monkeypatch.setattr(bta_gradient, "_SPARSE_FRACTION", 1.0)  # patterns even when dense
    gens, data, theta, (A, A_tip, y, mask, group) = make_coregional(k, nt=3)
    assert data.AtA_pattern is not None and data.gen_data.pattern is not None
    dense_data = data._replace(
        AtA_pattern=None, gen_data=data.gen_data._replace(pattern=None)
    )
    for pl in (None, coregional_prior_logdet):
        vg = jax.jit(jax.value_and_grad(partial(gaussian_objective, gens, prior_logdet=pl)))
        (v, g), (v_d, g_d) = vg(theta, data), vg(theta, dense_data)
        assert abs(float(v) - float(v_d)) < 1e-12 * abs(float(v_d))
        assert rel(g, g_d) < 1e-12
    traced = jax.jit(
        lambda y: make_gaussian_data(
            m_diag=data.m_diag, m_lower=data.m_lower, tip_prec=data.tip_prec,
            A_blocks=A, A_tip=A_tip, y=y, mask=mask, group=group,
            n_groups=k, gen_data=data.gen_data,
        ).AtA_pattern
    )(y)
    assert traced is None


def test_several_groups_core_vjp_each_output():
    gens, data, theta, _ = make_problem("separable", b=4, nt=3, a=2, m_t=6, groups=2)
    theta_lik, theta_st = split_theta(theta, data)

    def dense_core(theta_st, theta_lik):
        th = jnp.concatenate([theta_lik, theta_st])
        Qp, Qc, r = assemble_precisions(gens, th, data)
        Lp = jnp.linalg.cholesky(bta_to_dense(Qp))
        Lc = jnp.linalg.cholesky(bta_to_dense(Qc))
        z = jax.scipy.linalg.solve_triangular(Lc, r, lower=True)
        ld = lambda L: 2 * jnp.sum(jnp.log(jnp.diag(L)))  # noqa: E731
        return ld(Lp), ld(Lc), 0.5 * z @ z - 0.5 * jnp.exp(theta_lik) @ data.yty

    def pullback(core):
        @jax.jit
        def run(ct):
            out, vjp = jax.vjp(core, theta_st, theta_lik)
            return jnp.stack(out), jnp.concatenate(vjp(tuple(ct)))

        return run

    adelia = pullback(lambda s, l: gaussian_core(gens, s, l, data))
    dense = pullback(dense_core)
    for ct in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, -1.7, 2.1)]:
        (out, bar), (out_d, bar_d) = adelia(jnp.asarray(ct)), dense(jnp.asarray(ct))
        assert rel(out, out_d) < 1e-10
        assert rel(bar, bar_d) < 1e-10, ct


def test_lmc_precision_matches_dense_construction():
    """Q_p of the coregional map = Eᵀ blkdiag(P_m) E, with the fields of x stacked
    variable-major and permuted to the time-major, variables-interleaved order."""
    k, ns, nt = 3, 4, 3
    rng = np.random.default_rng(3)
    gen_data = fem_powers(rng.uniform(0.5, 1.5, ns), path_laplacian(ns))
    m_diag, m_lower = demf_temporal_h(nt)
    theta_st = jnp.asarray(rng.uniform(-0.5, 0.5, 12))
    Ks = generator_matrices(coregional_generators(theta_st, gen_data))
    Q = np.einsum("jt,jab->tab", m_diag, Ks), np.einsum("jt,jab->tab", m_lower, Ks)
    Q = np.asarray(bta_to_dense(BTA(*Q, np.zeros((nt, 0, k * ns)), np.zeros((0, 0)))))

    def field_precision(th):  # time-major nt·ns x nt·ns
        cq = np.einsum("jl,lab->jab", demf_field(th), gen_data.basis)  # c_j q_j
        M = [np.diag(md) + np.diag(ml, -1) + np.diag(ml, 1) for md, ml in zip(m_diag, m_lower)]
        return sum(np.kron(M[j], cq[j]) for j in range(3))

    P = [field_precision(theta_st[3 * m : 3 * m + 3]) for m in range(k)]
    lam01, lam02, lam12 = np.asarray(theta_st[9:])
    E = np.array([[1.0, 0, 0], [-lam01, 1, 0], [-lam12, -lam02, 1]])
    n = nt * ns
    Ebig = np.kron(E, np.eye(n))
    Pbig = np.zeros((k * n, k * n))
    for m in range(k):
        Pbig[m * n : (m + 1) * n, m * n : (m + 1) * n] = P[m]
    Q_var_major = Ebig.T @ Pbig @ Ebig
    # variable-major index v·n + t·ns + s  →  time-major, interleaved t·k·ns + v·ns + s
    perm = np.array([v * n + t * ns + s for t in range(nt) for v in range(k) for s in range(ns)])
    assert rel(Q, Q_var_major[np.ix_(perm, perm)]) < 1e-13
    W = np.asarray(lmc_weights(theta_st[9:], 3))
    assert np.allclose(W.sum(0), E.T @ E)


@pytest.mark.parametrize("k,nt", [(2, 4), (3, 3)])
def test_coregional_value_gradient_and_fd(k, nt):
    """GST-C2/C3-shaped models (d = 9, 15) at ns = 9: value vs NumPy (< 1e-10),
    gradient vs dense reverse mode (< 1e-10) and central differences (< 1e-6)."""
    gens, data, theta, raw = make_coregional(k, nt=nt)
    assert theta.shape == ({2: 9, 3: 15}[k],) and data.n_obs.shape == (k,)
    want = numpy_marginal_objective(gens, theta, data, raw)
    vg = value_and_grad("adelia", gens)
    value, grad = vg(theta, data)
    value_d, grad_d = value_and_grad("dense", gens)(theta, data)
    assert abs(float(value) - want) / abs(want) < 1e-10
    assert rel(grad, grad_d) < 1e-10
    assert rel(grad, central_differences(vg, theta, data)) < 1e-6


def test_coregional_observations_layout():
    """Row of observation (t, v, s): a single 1 at column v·ns + s of time block t,
    covariates at tip columns v·nb.., group v; unused rows padded."""
    time, var, node = np.array([2, 0, 2, 1]), np.array([1, 0, 2, 1]), np.array([3, 0, 1, 2])
    X, y = np.arange(8.0).reshape(4, 2), np.array([1.0, 2.0, 3.0, 4.0])
    obs = coregional_observations(time, var, node, X, y, k=3, ns=4, nt=3)
    assert obs["A_blocks"].shape == (3, 2, 12) and obs["A_tip"].shape == (3, 2, 6)
    for j in range(4):
        rows = np.flatnonzero((obs["y"][time[j]] == y[j]) & (obs["mask"][time[j]] > 0))
        assert rows.size == 1
        r = rows[0]
        a_row = np.zeros(12)
        a_row[var[j] * 4 + node[j]] = 1.0
        tip_row = np.zeros(6)
        tip_row[2 * var[j] : 2 * var[j] + 2] = X[j]
        assert np.array_equal(obs["A_blocks"][time[j], r], a_row)
        assert np.array_equal(obs["A_tip"][time[j], r], tip_row)
        assert obs["group"][time[j], r] == var[j]
    assert obs["mask"].sum() == 4 and np.all(obs["A_blocks"][obs["mask"] == 0] == 0)


# ---------------------------------------------------------------------------
# Prior log-determinant without factorisation (prior_logdet, posterior-only core)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("nt", [1, 2, 6])
def test_demf_logdet_matches_dense_slogdet(nt):
    """log|Q| of a DEMF field from the spatial spectrum equals the dense log-det of
    the assembled Kronecker precision (non-uniform lumped mass, grid stiffness)."""
    rng = np.random.default_rng(nt)
    nx, ny = 3, 4
    gen_data = fem_powers(rng.uniform(0.5, 2.0, nx * ny), grid_stiffness(nx, ny))
    m_diag, m_lower = demf_temporal_h(nt, 0.6)
    for theta_field in rng.uniform(-1.0, 1.0, (3, 3)):
        theta_field = jnp.asarray(theta_field)
        cq = np.einsum("jl,lab->jab", demf_field(theta_field), gen_data.basis)
        M = [np.diag(md) + np.diag(ml, -1) + np.diag(ml, 1) for md, ml in zip(m_diag, m_lower)]
        Q = sum(np.kron(M[j], cq[j]) for j in range(3))
        sign, want = np.linalg.slogdet(Q)
        assert sign > 0
        got = float(demf_logdet(theta_field, gen_data, jnp.asarray(m_diag), jnp.asarray(m_lower)))
        assert abs(got - want) < 1e-10 * abs(want)


@functools.cache
def shortcut_value_and_grad(gens, prior_logdet):
    return jax.jit(jax.value_and_grad(partial(gaussian_objective, gens, prior_logdet=prior_logdet)))


@pytest.mark.parametrize(
    "k,nt,arrow", [(1, 4, True), (2, 3, True), (3, 2, True), (1, 1, True), (2, 3, False)]
)
def test_prior_logdet_core_matches_generic_and_dense(k, nt, arrow):
    """With ``prior_logdet`` (Q_c only through the BTA sweeps, H_i and H_iB_iᵀ kept):
    value vs NumPy and the generic core (< 1e-10), gradient vs the generic core and
    dense reverse mode (< 1e-10) and central differences (< 1e-6); nt = 1 and a = 0
    included."""
    gens, data, theta, raw = make_coregional(k, nt=nt, arrow=arrow)
    want = numpy_marginal_objective(gens, theta, data, raw)
    vg = shortcut_value_and_grad(gens, coregional_prior_logdet)
    value, grad = vg(theta, data)
    value_g, grad_g = value_and_grad("adelia", gens)(theta, data)
    _, grad_d = value_and_grad("dense", gens)(theta, data)
    assert abs(float(value) - want) / abs(want) < 1e-10
    assert abs(float(value) - float(value_g)) < 1e-10 * abs(float(value_g))
    assert rel(grad, grad_g) < 1e-10
    assert rel(grad, grad_d) < 1e-10
    assert rel(grad, central_differences(vg, theta, data)) < 1e-6


def numpy_gradient(gens, theta, data, raw):
    """Independent oracle for ∇f (METHOD.md §6.2) from dense NumPy, with the residuals
    e = y − Ã x̂ formed explicitly (no cancellation):

        ∂f/∂θ_lik,g = −[m_g/2 − (τ_g/2)‖e_g‖² − (τ_g/2) tr(Q_c⁻¹ Ã_gᵀÃ_g)]
        ∂f/∂θ_st,k  = −½[tr(Q_p⁻¹ ∂_kQ_p) − tr(Q_c⁻¹ ∂_kQ_p) − x̂ᵀ ∂_kQ_p x̂]

    with ∂Q_p/∂θ by forward mode through the dense assembly."""
    At, yo, go = dense_observations(raw)
    G = data.n_obs.shape[0]
    tau = np.exp(np.asarray(theta[:G]))
    Qp_of = lambda t: bta_to_dense(assemble_precisions(gens, t, data)[0])  # noqa: E731
    Qp = np.asarray(Qp_of(theta))
    dQ = np.moveaxis(np.asarray(jax.jacfwd(Qp_of)(theta)), -1, 0)[G:]
    Qc = Qp + At.T @ (tau[go, None] * At)
    Sc = np.linalg.inv(Qc)
    x = np.linalg.solve(Qc, At.T @ (tau[go] * yo))
    e = yo - At @ x
    lik = [
        -(np.sum(go == g) / 2 - tau[g] / 2 * np.sum(e[go == g] ** 2)
          - tau[g] / 2 * np.sum(Sc * (At[go == g].T @ At[go == g])))
        for g in range(G)
    ]
    Sp = np.linalg.inv(Qp)
    st = [-0.5 * (np.sum(Sp * d) - np.sum(Sc * d) - x @ d @ x) for d in dQ]
    return np.array(lik + st)


@pytest.mark.parametrize("shortcut", [False, True], ids=["generic", "prior_logdet"])
def test_gradient_with_large_data_mean(shortcut):
    """y = N(0, 1) + 10⁴ absorbed by the (nearly flat) intercepts: the likelihood-
    precision gradient expands ‖y − Ax̂‖² around the least-squares fixed effects, so it
    matches the residual-form oracle to 1e-10 (expanding around 0 instead: ~1e-6)."""
    gens, data, theta, raw = make_coregional(2, nt=3)
    want = numpy_gradient(gens, theta, data, raw)  # the oracle itself, on centred data
    assert rel(value_and_grad("dense", gens)(theta, data)[1], want) < 1e-10
    vg = (
        shortcut_value_and_grad(gens, coregional_prior_logdet)
        if shortcut
        else value_and_grad("adelia", gens)
    )
    _, data, theta, raw = make_coregional(2, nt=3, offset=1e4, tip_prec=1e-10)
    assert rel(vg(theta, data)[1], numpy_gradient(gens, theta, data, raw)) < 1e-10


def test_prior_logdet_core_vjp_each_output():
    """Arbitrary cotangents on (log|Q_p|, log|Q_c|, fit): the posterior-only core's
    pullback equals the generic core's."""
    gens, data, theta, _ = make_coregional(2, nt=3)
    theta_lik, theta_st = split_theta(theta, data)

    def pullback(prior_logdet):
        @jax.jit
        def run(ct):
            core = lambda s, l: gaussian_core(gens, s, l, data, prior_logdet)  # noqa: E731
            out, vjp = jax.vjp(core, theta_st, theta_lik)
            return jnp.stack(out), jnp.concatenate(vjp(tuple(ct)))

        return run

    shortcut, generic = pullback(coregional_prior_logdet), pullback(None)
    for ct in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, -1.7, 2.1)]:
        (out, bar), (out_g, bar_g) = shortcut(jnp.asarray(ct)), generic(jnp.asarray(ct))
        assert rel(out, out_g) < 1e-12
        assert rel(bar, bar_g) < 1e-10, ct


def test_prior_logdet_naive_and_hessian():
    """Plain reverse mode through the posterior-only scan (AD-Loop) and
    forward-over-reverse through its adjoint both match the dense objective."""
    gens, data, theta, _ = make_coregional(1, nt=3)
    f = partial(gaussian_objective, gens, prior_logdet=coregional_prior_logdet)
    f_naive = partial(gaussian_objective_naive, gens, prior_logdet=coregional_prior_logdet)
    f_dense = partial(gaussian_objective_dense, gens)
    g = jax.jit(jax.grad(f))(theta, data)
    assert rel(jax.jit(jax.grad(f_naive))(theta, data), g) < 1e-10
    H = jax.jit(jax.hessian(f))(theta, data)
    assert rel(H, jax.jit(jax.hessian(f_dense))(theta, data)) < 1e-9
