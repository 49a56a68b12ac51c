"""Issue 15, part A: bym, besagproper, generic0/generic/generic1, z, linear, rw2d, matern2d, crw2, ou.

Each model's Q(θ) against a dense construction written from its definition (not from the
builder), then recovery of known parameters from seeded simulated data through ``adelia.fit``
(the 95 % intervals cover the truth).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import adelia
from adelia.compiler.latent import LATENT, TermInput
from adelia.errors import AdeliaError

RNG = np.random.default_rng(15)


def build(model: str, index, **args):
    return LATENT.get(model).build(TermInput("x", np.asarray(index), args))


def Q_of(s, theta) -> np.ndarray:
    th = jnp.asarray(theta, dtype=float)
    return sum(float(c(th)) * K.toarray() for c, K in zip(s.coefs, s.matrices))


def lattice_graph(nr: int, nc: int) -> np.ndarray:
    """Dense 0/1 adjacency of the nr × nc rook lattice (node = i + j·nr)."""
    W = np.zeros((nr * nc, nr * nc))
    for j in range(nc):
        for i in range(nr):
            k = i + j * nr
            if i + 1 < nr:
                W[k, k + 1] = W[k + 1, k] = 1
            if j + 1 < nc:
                W[k, k + nr] = W[k + nr, k] = 1
    return W


def graph_with_island() -> np.ndarray:
    """A 6-ring with a chord, a 3-path and an island: 10 nodes, two components of size > 1."""
    W = np.zeros((10, 10))
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0), (1, 4), (6, 7), (7, 8)]:
        W[i, j] = W[j, i] = 1
    return W


# ---------------------------------------------------------------------------------------------
# Q(θ) against dense constructions from each definition
# ---------------------------------------------------------------------------------------------

def test_bym_joint_precision_of_sum_and_spatial_part():
    W = graph_with_island()
    n = 10
    s = build("bym", np.arange(1, n + 1), graph=sp.csr_matrix(W))
    t1, t2 = 0.7, -0.4
    tau_v, tau_u = math.exp(t1), math.exp(t2)
    # besag part: Q_u[i, i] = τ n_i, Q_u[i, j] = −τ for neighbours; the island gets τ (iid)
    R = -W.copy()
    for i in range(n):
        R[i, i] = W[i].sum() if W[i].sum() else 1.0
    # joint density of (x, u): x | u ~ N(u, 1/τ_v I), u ~ besag(τ_u)
    top = np.hstack([tau_v * np.eye(n), -tau_v * np.eye(n)])
    bottom = np.hstack([-tau_v * np.eye(n), tau_v * np.eye(n) + tau_u * R])
    np.testing.assert_allclose(Q_of(s, [t1, t2]), np.vstack([top, bottom]), atol=1e-12)
    assert s.n == 2 * n and s.rank_def == 2
    np.testing.assert_array_equal(s.values, np.arange(1, 2 * n + 1))
    np.testing.assert_array_equal(s.node_of_obs, np.arange(n))          # observations see x = v + u
    # constraints: Σu = 0 on each component with two or more nodes, on the second half only
    expected = np.zeros((2, 2 * n))
    expected[0, n + np.arange(6)] = 1
    expected[1, n + np.array([6, 7, 8])] = 1
    np.testing.assert_array_equal(s.constraints, expected)
    # R-INLA's normaliser (inla.c F_BYM): −½log2π (n/2 + (n−r)/2) + n/2 log τ_v + (n−r)/2 log τ_u
    runtime = 0.5 * (s.logdet(jnp.asarray([t1, t2])) + s.logdet_star) - 0.5 * (2 * n - 2) * math.log(2 * math.pi)
    rinla = -0.5 * math.log(2 * math.pi) * (n / 2 + (n - 2) / 2) + n / 2 * t1 + (n - 2) / 2 * t2
    assert float(runtime) == pytest.approx(rinla, abs=1e-12)


def test_bym_labels_priors_and_scale_model():
    lm = LATENT.get("bym")
    labels = [(h.short, h.label.format(name="region"), h.internal_label.format(name="region"), h.prior, h.initial)
              for h in lm.hypers]
    assert labels == [
        ("prec.unstruct", "Precision for region (iid component)", "Log precision for region (idd component)",
         ("loggamma", (1.0, 0.0005)), 4.0),
        ("prec.spatial", "Precision for region (spatial component)", "Log precision for region (spatial component)",
         ("loggamma", (1.0, 0.0005)), 4.0)]
    W = lattice_graph(3, 4)
    s = build("bym", np.arange(1, 13), graph=sp.csr_matrix(W), **{"scale.model": True})
    R = s.matrices[1].toarray()[12:, 12:]
    w, U = np.linalg.eigh(R)
    ginv = (U[:, 1:] / w[1:]) @ U[:, 1:].T
    assert math.exp(np.mean(np.log(np.diag(ginv)))) == pytest.approx(1.0, rel=1e-10)


def test_besagproper_precision_from_its_conditionals():
    W = graph_with_island()
    s = build("besagproper", np.arange(1, 11), graph=sp.csr_matrix(W))
    tau, d = 1.7, 0.3
    Q = Q_of(s, [math.log(tau), math.log(d)])
    for i in range(10):
        # x_i | rest ~ N(Σ_j∼i x_j/(d + n_i), 1/(τ(d + n_i))): Q_ii = τ(n_i + d), Q_ij = −τ
        assert Q[i, i] == pytest.approx(tau * (W[i].sum() + d), rel=1e-12)
        for j in range(10):
            if j != i:
                assert Q[i, j] == pytest.approx(-tau * W[i, j], abs=1e-14)
    assert float(s.logdet(jnp.asarray([math.log(tau), math.log(d)]))) == pytest.approx(np.linalg.slogdet(Q)[1], rel=1e-10)
    assert s.rank_def == 0 and s.constraints.shape[0] == 0       # constr = FALSE by default
    assert [h.label for h in LATENT.get("besagproper").hypers] == ["Precision for {name}", "Diagonal for {name}"]


def test_generic0_generic_and_generic1():
    n = 8
    D = np.diff(np.eye(n), axis=0)
    C = D.T @ D                                                   # a rw1 structure, rank deficiency 1
    s0 = build("generic0", np.arange(1, n + 1), Cmatrix=sp.csr_matrix(C))
    np.testing.assert_allclose(Q_of(s0, [0.4]), math.exp(0.4) * C, atol=1e-12)
    assert s0.rank_def == 1
    s_alias = build("generic", np.arange(1, n + 1), Cmatrix=C.tolist(), rankdef=1, constr=True)
    np.testing.assert_allclose(Q_of(s_alias, [0.4]), math.exp(0.4) * C, atol=1e-12)
    assert s_alias.constraints.shape == (1, n)
    # generic1: Q = τ (I − β/λ_max C) on a symmetric C with negative eigenvalues too
    A = RNG.uniform(-1, 1, (n, n))
    C1 = (A + A.T) / 2
    np.fill_diagonal(C1, 0.0)
    lam_max = np.linalg.eigvalsh(C1).max()
    tau, beta = 2.5, 0.8
    th = [math.log(tau), math.log(beta / (1 - beta))]
    s1 = build("generic1", np.arange(1, n + 1), Cmatrix=C1)
    Q1 = tau * (np.eye(n) - beta / lam_max * C1)
    np.testing.assert_allclose(Q_of(s1, th), Q1, atol=1e-12)
    assert float(s1.logdet(jnp.asarray(th))) == pytest.approx(np.linalg.slogdet(Q1)[1], rel=1e-10)
    h = LATENT.get("generic1").hypers[1]
    assert (h.label, h.internal_label, h.prior, h.initial) == ("Beta for {name}", "Beta_intern for {name}",
                                                                ("normal", (0.0, 0.1)), 2.0)
    with pytest.raises(AdeliaError, match="symmetric"):
        build("generic0", np.arange(1, 4), Cmatrix=np.triu(np.ones((3, 3))))


def test_z_puts_Z_rows_into_the_observation_matrix():
    Z = RNG.normal(size=(7, 3))
    s = build("z", np.array([1, 2, 3, 4, 5, 6, 7, 3.0, np.nan]), Z=Z)
    P = s.projector.toarray()
    np.testing.assert_allclose(P[:7], Z)
    np.testing.assert_allclose(P[7], Z[2])
    np.testing.assert_allclose(P[8], 0)
    np.testing.assert_allclose(Q_of(s, [0.3]), math.exp(0.3) * np.eye(3))
    C = np.array([[2.0, 0.5, 0], [0.5, 1.0, 0], [0, 0, 3.0]])
    s2 = build("z", np.arange(1, 8), Z=Z, Cmatrix=C)
    assert float(s2.logdet(jnp.asarray([0.3]))) + s2.logdet_star == pytest.approx(
        np.linalg.slogdet(math.exp(0.3) * C)[1], rel=1e-12)


def test_linear_is_a_single_node_with_the_covariate_column():
    w = np.array([0.5, -1.0, np.nan, 2.0])
    s = build("linear", w, **{"prec.linear": 0.25})
    np.testing.assert_allclose(s.projector.toarray().ravel(), [0.5, -1.0, 0.0, 2.0])
    np.testing.assert_allclose(Q_of(s, []), [[0.25]])
    assert s.logdet_star == pytest.approx(math.log(0.25))
    assert LATENT.get("linear").hypers == ()
    with pytest.raises(AdeliaError, match="mean.linear"):
        build("linear", w, **{"mean.linear": 1.0})


def test_rw2d_is_the_discrete_thin_plate_energy():
    nr, nc = 5, 4
    n = nr * nc
    s = build("rw2d", np.arange(1, n + 1), nrow=nr, ncol=nc)
    node = lambda i, j: i + j * nr
    rows = []
    for j in range(nc):                       # second differences down each column
        for i in range(1, nr - 1):
            r = np.zeros(n); r[[node(i - 1, j), node(i, j), node(i + 1, j)]] = [1, -2, 1]; rows.append((1.0, r))
    for i in range(nr):                       # ... and along each row
        for j in range(1, nc - 1):
            r = np.zeros(n); r[[node(i, j - 1), node(i, j), node(i, j + 1)]] = [1, -2, 1]; rows.append((1.0, r))
    for i in range(nr - 1):                   # mixed differences over each 2 × 2 cell, weight 2
        for j in range(nc - 1):
            r = np.zeros(n); r[[node(i, j), node(i + 1, j), node(i, j + 1), node(i + 1, j + 1)]] = [1, -1, -1, 1]
            rows.append((2.0, r))
    K = sum(wt * np.outer(r, r) for wt, r in rows)
    np.testing.assert_allclose(Q_of(s, [0.0]), K, atol=1e-12)
    # R-INLA's diagonal on a 6 × 6 lattice (GMRFLib_rw2d, default boundary): corner 4, next to the
    # corner 10, edge 11, diagonal to the corner 18, next to an edge 19, interior 20
    K6 = build("rw2d", np.arange(1, 37), nrow=6, ncol=6).matrices[0].toarray()
    at = lambda i, j: K6[i + 6 * j, i + 6 * j]
    assert (at(0, 0), at(0, 1), at(0, 2), at(1, 1), at(1, 2), at(2, 2), at(3, 3)) == (4, 10, 11, 18, 19, 20, 20)
    assert K6[0, 1] == -4 and K6[6 * 2, 6 * 2 + 1] == -6 and K6[2 + 12, 3 + 12] == -8 and K6[0, 2] == 1
    assert s.rank_def == 3 and s.constraints.shape == (1, n)
    scaled = build("rw2d", np.arange(1, n + 1), nrow=nr, ncol=nc, **{"scale.model": True})
    Ks = scaled.matrices[0].toarray()
    w, U = np.linalg.eigh(Ks)
    ginv = (U[:, 3:] / w[3:]) @ U[:, 3:].T
    assert math.exp(np.mean(np.log(np.diag(ginv)))) == pytest.approx(1.0, rel=1e-9)


def test_cyclic_rw2d_is_the_torus_stencil():
    """cyclic = TRUE: R-INLA's stencil (20, −8, 2, 1) at every node of the torus, written out node by
    node; null space the constant alone; scale.model under Σx = 0 gives generalised variance 1."""
    nr, nc = 5, 6
    n = nr * nc
    s = build("rw2d", np.arange(1, n + 1), nrow=nr, ncol=nc, cyclic=True)
    node = lambda i, j: (i % nr) + (j % nc) * nr
    K = np.zeros((n, n))
    for i in range(nr):
        for j in range(nc):
            a = node(i, j)
            K[a, a] += 20
            for di, dj, v in ((1, 0, -8), (-1, 0, -8), (0, 1, -8), (0, -1, -8), (1, 1, 2), (1, -1, 2), (-1, 1, 2),
                              (-1, -1, 2), (2, 0, 1), (-2, 0, 1), (0, 2, 1), (0, -2, 1)):
                K[a, node(i + di, j + dj)] += v
    np.testing.assert_allclose(Q_of(s, [0.0]), K, atol=1e-12)
    assert s.rank_def == 1 and np.linalg.matrix_rank(K) == n - 1
    Ks = build("rw2d", np.arange(1, n + 1), nrow=nr, ncol=nc, cyclic=True, **{"scale.model": True}).matrices[0].toarray()
    w, U = np.linalg.eigh(Ks)
    ginv = (U[:, 1:] / w[1:]) @ U[:, 1:].T
    assert math.exp(np.mean(np.log(np.diag(ginv)))) == pytest.approx(1.0, rel=1e-9)


def test_matern2d_matches_gmrflib_stencil_and_marginal_variance():
    nr, nc = 6, 5
    n = nr * nc
    s = build("matern2d", np.arange(1, n + 1), nrow=nr, ncol=nc)
    tau, r = 3.0, 4.0
    kappa = math.sqrt(8.0) / r
    a = 4 + kappa ** 2
    sv = kappa ** -2 / (4 * math.pi)
    Q = Q_of(s, [math.log(tau), math.log(r)])
    for k in range(n):                        # GMRFLib_matern2d, nu = 1, zero outside the lattice
        for l in range(n):
            dr, dc = abs(k % nr - l % nr), abs(k // nr - l // nr)
            dmin, dmax = min(dr, dc), max(dr, dc)
            ref = {(0, 0): 4 + a * a, (0, 1): -2 * a, (0, 2): 1.0, (1, 1): 2.0}.get((dmin, dmax), 0.0)
            assert Q[k, l] == pytest.approx(ref * tau * sv, abs=1e-12)
    # on a large lattice, 1/τ is about the marginal variance in the middle and the correlation at
    # distance r about 0.1 (the range's definition)
    big = build("matern2d", np.arange(1, 41 * 41 + 1), nrow=41, ncol=41)
    S = np.linalg.inv(Q_of(big, [0.0, math.log(r)]))
    c = 20 + 20 * 41
    assert S[c, c] == pytest.approx(1.0, rel=0.15)
    assert S[c, c + 4] / S[c, c] == pytest.approx(0.1, abs=0.05)


def test_crw2_is_the_integrated_wiener_process():
    s_ = np.array([0.0, 0.4, 1.0, 1.3, 2.5, 2.6, 4.0])
    n = len(s_)
    st = build("crw2", s_)
    assert st.n == 2 * n and st.rank_def == 2
    Q = Q_of(st, [0.0])
    # conditionally on x(s_1) = x'(s_1) = 0, x(t) is the integrated Wiener process started at s_1:
    # Cov(x(s), x(t)) = a²(3b − a)/6 with a = min, b = max of the times since s_1; Cov(x'(s), x'(t)) = a
    keep = [i for i in range(2 * n) if i not in (0, n)]
    S = np.linalg.inv(Q[np.ix_(keep, keep)])
    t = s_[1:] - s_[0]
    a, b = np.minimum.outer(t, t), np.maximum.outer(t, t)
    np.testing.assert_allclose(S[: n - 1, : n - 1], a ** 2 * (3 * b - a) / 6, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(S[n - 1:, n - 1:], a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Q[:, :n] @ np.ones(n), 0, atol=1e-10)       # a constant is free
    np.testing.assert_array_equal(st.constraints, np.r_[np.ones(n), np.zeros(n)][None, :])


def test_ou_covariance_is_exponential():
    t = np.sort(RNG.uniform(0, 10, 12))
    s = build("ou", t)
    tau, phi = 2.0, 0.7
    Q = Q_of(s, [math.log(tau), math.log(phi)])
    Sigma = np.exp(-phi * np.abs(np.subtract.outer(t, t))) / tau
    np.testing.assert_allclose(np.linalg.inv(Q), Sigma, rtol=1e-9, atol=1e-12)
    assert float(s.logdet(jnp.asarray([math.log(tau), math.log(phi)]))) == pytest.approx(
        np.linalg.slogdet(Q)[1], rel=1e-10)
    regular = build("ou", np.arange(1.0, 11.0))
    assert len(regular.matrices) == 3                     # one spacing: I and one (b, c) pair


# ---------------------------------------------------------------------------------------------
# recovery of known parameters from simulated data, through adelia.fit
# ---------------------------------------------------------------------------------------------

def draw(Q: np.ndarray, rng, null: np.ndarray | None = None) -> np.ndarray:
    """One draw of N(0, Q⁻¹) (Q⁺ with its null space removed when intrinsic)."""
    w, U = np.linalg.eigh(Q)
    keep = w > 1e-9 * w.max()
    return U[:, keep] @ (rng.normal(size=keep.sum()) / np.sqrt(w[keep]))


def interval(dt, label):
    row = adelia.summary(dt).loc[label]
    return row["0.025quant"], row["0.975quant"]


def covers(dt, label, truth):
    lo, hi = interval(dt, label)
    assert lo < truth < hi, f"{label}: 95% interval ({lo:.3g}, {hi:.3g}) misses {truth}"


FIXED_NOISE = lambda sd: {"hyper": {"prec": {"initial": math.log(1 / sd ** 2), "fixed": True}}}


def bym_data(seed: int, iid_sd: float):
    rng = np.random.default_rng(seed)
    W = lattice_graph(7, 7)
    n = 49
    u = draw(np.diag(W.sum(1)) - W, rng)           # spatial precision 1
    v = rng.normal(0, iid_sd, n)
    region = np.repeat(np.arange(1, n + 1), 4)
    y = 1.0 + (u + v)[region - 1] + rng.normal(0, 0.2, len(region))
    return W, pd.DataFrame({"y": y, "region": region}), v


def test_bym_log_posterior_matches_the_exact_gaussian_marginal():
    """Gaussian data: π(θ | y) ∝ π(θ) N(y; 0, σ²I + A(τ₁⁻¹I + τ₂⁻¹R⁺)Aᵀ + c 11ᵀ) exactly (the Laplace
    approximation is exact), so differences of log π̃(θ | y) between θ points must match."""
    from adelia.runtime.laplace import LaplaceProblem

    W, d, _ = bym_data(1, 0.3)
    model = adelia.compile_formula('y ~ 1 + f(region, model = "bym", graph = W)', d,
                                   control_family=FIXED_NOISE(0.2), objects={"W": sp.csr_matrix(W)})
    lp = LaplaceProblem(model.problem)
    R = np.diag(W.sum(1)) - W
    w, U = np.linalg.eigh(R)
    Rplus = (U[:, 1:] / w[1:]) @ U[:, 1:].T
    A = np.eye(49)[d["region"].to_numpy() - 1]
    y = d["y"].to_numpy()

    def exact(t0, t1):
        # the flat intercept as the limit of a N(0, c) one: the c-dependent constant cancels in differences
        S = 0.04 * np.eye(len(y)) + A @ (np.exp(-t0) * np.eye(49) + np.exp(-t1) * Rplus) @ A.T + 1e4
        prior = sum(t - 0.0005 * math.exp(t) + math.log(0.0005) for t in (t0, t1))
        return -0.5 * np.linalg.slogdet(S)[1] - 0.5 * y @ np.linalg.solve(S, y) + prior

    points = [(1.0, 7.5), (7.5, 0.0), (2.0, 1.0), (0.5, -0.5)]
    ours = [float(lp.log_posterior(jnp.asarray([math.log(25.0), *p]))) for p in points]
    ref = [exact(*p) for p in points]
    np.testing.assert_allclose(np.diff(ours), np.diff(ref), atol=1e-3)


def test_recover_bym_precisions():
    W, d, v = bym_data(1, 0.15)
    # initial values: from R-INLA's (4, 4) the θ-mode search can stop at the local mode with the
    # spatial part switched off (τ_spatial → prior), see the report of issue 15
    dt = adelia.fit('y ~ 1 + f(region, model = "bym", graph = W, hyper = list(prec.spatial = list(initial = 0)))',
                    d, W=sp.csr_matrix(W), n_samples=10, control_family=FIXED_NOISE(0.2))
    covers(dt, "Precision for region (spatial component)", 1.0)
    covers(dt, "(Intercept)", 1.0 + v.mean())            # Σu = 0, but the drawn iid part has a mean
    # truth 44, a small iid part. The exact posterior (Gaussian data: π̃(θ | y) is exact; a dense
    # 181 × 201 quadrature of it) is bimodal, with a second mode where the spatial part is switched
    # off and the iid part takes over: log τ_iid quantiles (0.85, 6.84, 8.80), against (0.69, 6.90,
    # 8.91) here. R-INLA's box design cuts that ridge and gave a 2.5 % quantile of 5.1 (log 1.6).
    covers(dt, "Precision for region (iid component)", 44.0)
    assert adelia.summary(dt).loc["Precision for region (iid component)", "0.5quant"] > 100.0
    assert dt["inla"]["summary_random_region"].shape[0] == 2 * 49


def test_recover_besagproper_and_generic1():
    rng = np.random.default_rng(2)
    W = lattice_graph(8, 8)
    n = 64
    tau, dgl = 2.0, 0.5
    x = draw(tau * (np.diag(W.sum(1) + dgl) - W), rng)
    idx = np.repeat(np.arange(1, n + 1), 3)
    d = pd.DataFrame({"y": x[idx - 1] + rng.normal(0, 0.1, len(idx)), "i": idx, "j": idx})
    dt = adelia.fit('y ~ -1 + f(i, model = "besagproper", graph = W)', d, W=sp.csr_matrix(W), n_samples=10)
    covers(dt, "Precision for i", tau)
    covers(dt, "Diagonal for i", dgl)
    lam = np.linalg.eigvalsh(W).max()
    beta = 0.9
    x1 = draw(tau * (np.eye(n) - beta / lam * W), rng)
    d["y"] = x1[idx - 1] + rng.normal(0, 0.1, len(idx))
    dt = adelia.fit('y ~ -1 + f(j, model = "generic1", Cmatrix = W)', d, W=W, n_samples=10)
    covers(dt, "Precision for j", tau)
    covers(dt, "Beta for j", beta)


def test_recover_generic0_z_and_linear():
    rng = np.random.default_rng(3)
    m, k = 150, 10
    Z = rng.normal(size=(m, k))
    u = rng.normal(0, 1 / math.sqrt(0.8), k)
    w = rng.normal(size=m)
    d = pd.DataFrame({"y": 0.5 + 1.5 * w + Z @ u + rng.normal(0, 0.3, m), "row": np.arange(1, m + 1), "w": w,
                      "w2": w})
    dt = adelia.fit('y ~ 1 + f(w, model = "linear") + f(row, model = "z", Z = Z)', d, Z=Z, n_samples=10)
    covers(dt, "Precision for row", 0.8)
    field = dt["inla"]["summary_random_row"].sel(stat="mean").values
    assert np.corrcoef(field, u)[0, 1] > 0.95
    beta = dt["inla"]["summary_random_w"]
    assert abs(float(beta.sel(stat="mean")[0]) - 1.5) < 3 * float(beta.sel(stat="sd")[0])
    # f(w, model = "linear") with its default N(0, 1/0.001) prior is the fixed effect w2
    ref = adelia.fit('y ~ 1 + w2 + f(row, model = "z", Z = Z)', d, Z=Z, n_samples=10)
    assert float(dt["inla"]["summary_random_w"].sel(stat="mean")[0]) == pytest.approx(
        float(adelia.summary(ref).loc["w2", "mean"]), rel=1e-6)
    assert dt["inla"].attrs["mlik_integration"] == pytest.approx(ref["inla"].attrs["mlik_integration"], abs=1e-6)
    # generic0 with a rw1 structure is the rw1 model (same posterior for the precision)
    t = np.arange(1, 41)
    D = np.diff(np.eye(40), axis=0)
    d2 = pd.DataFrame({"y": np.sin(t / 5) + rng.normal(0, 0.2, 40), "t": t, "s": t})
    g = adelia.fit('y ~ 1 + f(t, model = "generic0", Cmatrix = C, rankdef = 1, constr = TRUE)', d2, C=D.T @ D,
                   n_samples=10)
    r = adelia.fit('y ~ 1 + f(s, model = "rw1")', d2, n_samples=10)
    assert adelia.summary(g).loc["Precision for t", "mean"] == pytest.approx(
        adelia.summary(r).loc["Precision for s", "mean"], rel=1e-5)


def test_recover_rw2d_and_matern2d():
    rng = np.random.default_rng(4)
    nr, nc = 8, 8
    n = nr * nc
    s = build("rw2d", np.arange(1, n + 1), nrow=nr, ncol=nc)
    tau = 5.0
    x = draw(tau * s.matrices[0].toarray(), rng)
    node = np.repeat(np.arange(1, n + 1), 2)
    d = pd.DataFrame({"y": x[node - 1] + rng.normal(0, 0.1, len(node)), "node": node})
    dt = adelia.fit('y ~ 1 + f(node, model = "rw2d", nrow = 8, ncol = 8)', d, n_samples=10)
    covers(dt, "Precision for node", tau)
    c = build("rw2d", np.arange(1, n + 1), nrow=nr, ncol=nc, cyclic=True)
    d["y"] = draw(tau * c.matrices[0].toarray(), rng)[node - 1] + rng.normal(0, 0.1, len(node))
    dt = adelia.fit('y ~ 1 + f(node, model = "rw2d", nrow = 8, ncol = 8, cyclic = TRUE)', d, n_samples=10)
    covers(dt, "Precision for node", tau)
    m = build("matern2d", np.arange(1, n + 1), nrow=nr, ncol=nc)
    x = draw(Q_of(m, [0.0, math.log(3.0)]), rng)
    d["y"] = x[node - 1] + rng.normal(0, 0.1, len(node))
    dt = adelia.fit('y ~ -1 + f(node, model = "matern2d", nrow = 8, ncol = 8)', d, n_samples=10)
    covers(dt, "Precision for node", 1.0)
    covers(dt, "Range for node", 3.0)


def test_recover_ou_and_crw2_with_replicate():
    rng = np.random.default_rng(5)
    # irregular times on a 0.5 grid: a handful of distinct spacings keeps Q's pieces few
    t = np.unique(np.round(rng.uniform(0, 40, 40) * 2) / 2)
    m = len(t)
    tau, phi = 1.0, 0.5
    S = np.exp(-phi * np.abs(np.subtract.outer(t, t))) / tau
    x = np.linalg.cholesky(S) @ rng.normal(size=(m, 2))          # two replicates
    d = pd.DataFrame({"t": np.tile(t, 2), "r": np.repeat([1, 2], m), "y": x.T.ravel() + rng.normal(0, 0.2, 2 * m)})
    # the noise precision is known: a nugget and a rough OU path are hardly told apart otherwise
    dt = adelia.fit('y ~ -1 + f(t, model = "ou", replicate = r)', d, n_samples=10, control_family=FIXED_NOISE(0.2))
    covers(dt, "Precision for t", tau)
    covers(dt, "Phi for t", phi)
    assert dt["inla"]["summary_random_t"].shape[0] == 2 * m
    # crw2 at irregular locations: the smooth curve comes back
    s_ = np.sort(rng.uniform(0, 6, 50))
    d2 = pd.DataFrame({"s": s_, "y": np.sin(s_) + rng.normal(0, 0.1, 50)})
    dt = adelia.fit('y ~ 1 + f(s, model = "crw2")', d2, n_samples=10)
    fit = dt["inla"]["summary_random_s"].sel(stat="mean").values[:50]
    assert np.corrcoef(fit, np.sin(s_))[0, 1] > 0.98
    assert dt["inla"]["summary_random_s"].shape[0] == 100


def test_bym_equals_besag_plus_iid():
    """The bym component is the besag + iid pair reparameterised: the same posterior, and a
    marginal likelihood that differs only by R-INLA's bym normalising convention, (2n − r)/4 log 2π."""
    rng = np.random.default_rng(6)
    W = graph_with_island()
    n = 10
    region = np.tile(np.arange(1, n + 1), 3)
    d = pd.DataFrame({"y": rng.poisson(4, 3 * n), "E": np.full(3 * n, 4.0), "a": region, "b": region})
    hyper = 'hyper = list(prec = list(prior = "loggamma", param = c(1, 0.0005)))'
    split = adelia.fit(f'y ~ 1 + f(a, model = "besag", graph = W, {hyper}) + f(b, model = "iid", {hyper})', d,
                       family="poisson", E="E", W=sp.csr_matrix(W), n_samples=10)
    bym = adelia.fit('y ~ 1 + f(a, model = "bym", graph = W)', d, family="poisson", E="E", W=sp.csr_matrix(W),
                     n_samples=10)
    sb, ss = adelia.summary(bym), adelia.summary(split)
    assert sb.loc["Precision for a (spatial component)", "mean"] == pytest.approx(
        ss.loc["Precision for a", "mean"], rel=1e-4)
    assert sb.loc["Precision for a (iid component)", "mean"] == pytest.approx(
        ss.loc["Precision for b", "mean"], rel=1e-4)
    assert sb.loc["(Intercept)", "mean"] == pytest.approx(ss.loc["(Intercept)", "mean"], rel=2e-3)
    r = 2                                            # components with two or more nodes
    shift = (2 * n - r) / 4 * math.log(2 * math.pi)
    assert bym["inla"].attrs["mlik_gaussian"] - split["inla"].attrs["mlik_gaussian"] == pytest.approx(shift, abs=1e-6)


def test_group_and_extraconstr_through_the_compiler():
    """group = g with control.group ar1 gives Q_ar1(ρ) ⊗ Q_besagproper(θ) (R-INLA's group order,
    group-major nodes); extraconstr adds its rows to the component."""
    W = graph_with_island()
    n, G = 10, 3
    d = pd.DataFrame({"y": RNG.normal(size=n * G), "i": np.tile(np.arange(1, n + 1), G), "g": np.repeat([1, 2, 3], n)})
    model = adelia.compile_formula('y ~ 1 + f(i, model = "besagproper", graph = W, group = g, '
                                   'control.group = list(model = "ar1"))', d, objects={"W": sp.csr_matrix(W)})
    comp = model.components[0]
    assert [model.thetas[k].label for k in comp.theta_index] == ["Precision for i", "Diagonal for i", "GroupRho for i"]
    tau, dg, rho = 1.3, 0.4, 0.6
    th = [math.log(tau), math.log(dg), math.log((1 + rho) / (1 - rho))]
    Qg = np.diag([1.0, 1 + rho ** 2, 1.0]) - rho * (np.eye(3, k=1) + np.eye(3, k=-1))
    Qg /= 1 - rho ** 2
    Qm = tau * (np.diag(W.sum(1) + dg) - W)
    np.testing.assert_allclose(Q_of(comp.structure, th), np.kron(Qg, Qm), atol=1e-12)
    A = np.zeros((1, n))
    A[0, :3] = 1.0
    model = adelia.compile_formula('y ~ 1 + f(i, model = "ou", extraconstr = list(A = A, e = c(0.5)))',
                                   d.iloc[:n], objects={"A": A})
    s = model.components[0].structure
    np.testing.assert_array_equal(s.constraints, A)
    np.testing.assert_array_equal(s.constraint_rhs, [0.5])


# ---- clinear: η += β(θ) w, β a hyperparameter on R-INLA's range ----

def _clinear_data(seed=3, m=200):
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=m), rng.normal(size=m)
    return pd.DataFrame({"y": 0.6 * x + 0.3 * z + rng.normal(0, 0.5, m), "x": x, "z": z})


@pytest.mark.parametrize("rng_text,low,high", [("", None, None), (", range = c(0, 1)", 0.0, 1.0),
                                              (", range = c(0.2, Inf)", 0.2, math.inf)])
def test_clinear_log_posterior_matches_the_exact_gaussian_marginal(rng_text, low, high):
    """Gaussian data, y | β, τ ~ N(β(θ₁) x, τ⁻¹ I + 1000 z zᵀ) after integrating the fixed effect
    z (prior precision 0.001): π̃(θ | y) must differ between θ points as this density times the
    priors (β's internal θ₁ ~ N(1, precision 10), log τ ~ loggamma(1, 5·10⁻⁵)) does."""
    from scipy import stats

    from adelia.runtime.inference import Evaluations, compiled

    d = _clinear_data()
    model = adelia.compile_formula(f'y ~ -1 + z + f(x, model = "clinear"{rng_text})', d)
    assert [t.label for t in model.thetas] == ["Precision for the Gaussian observations", "Beta for x"]
    assert model.thetas[1].internal_label == "Beta_intern for x"
    ev = Evaluations(compiled(model.problem))
    pts = np.array([[1.0, 0.3], [1.4, -0.2], [0.6, 1.1], [1.2, 2.0]])
    f = ev.values(pts)

    def beta(t):                                      # R-INLA models.R, clinear's from.theta
        if low is None:
            return t
        if math.isinf(high):
            return low + math.exp(t)
        return low + (high - low) * math.exp(t) / (1 + math.exp(t))

    def exact(lt, t):
        cov = np.eye(len(d)) / math.exp(lt) + 1000.0 * np.outer(d.z, d.z)
        ll = stats.multivariate_normal(np.zeros(len(d)), cov).logpdf(d.y - beta(t) * d.x)
        return ll + stats.norm(1.0, 1 / math.sqrt(10)).logpdf(t) + (lt - 5e-5 * math.exp(lt))

    ref = np.array([exact(*p) for p in pts])
    np.testing.assert_allclose(-(f - f[0]), ref - ref[0], atol=1e-6)


def test_clinear_recovers_its_coefficient_on_each_range():
    d = _clinear_data(m=300)
    for rng_text in ("", ", range = c(0, 1)", ", range = c(0, Inf)"):
        dt = adelia.fit(f'y ~ 1 + z + f(x, model = "clinear"{rng_text})', d, n_samples=20)
        covers(dt, "Beta for x", 0.6)
        covers(dt, "z", 0.3)
        assert "summary_random_x" not in dt["inla"]          # no latent nodes: β is a hyperparameter
        eta = dt["inla"]["summary_linear_predictor"].sel(stat="mean").values
        s = adelia.summary(dt)
        approx = s.loc["(Intercept)", "mean"] + s.loc["z", "mean"] * d.z + s.loc["Beta for x", "mean"] * d.x
        assert np.max(np.abs(eta - approx)) < 0.02


@pytest.mark.parametrize("formula,message", [
    ('y ~ f(x, model = "clinear", range = c(1, 0))', r"range of f\(x, model = \"clinear\"\) must be c\(low, high\)"),
    ('y ~ f(x, model = "clinear", range = c(0, 1, 2))', r"range of f\(x, model = \"clinear\"\) must be c\(low, high\)"),
    ('y ~ f(x, model = "clinear", range = "a")', r"range of f\(x, model = \"clinear\"\) must be c\(low, high\)"),
    ('y ~ f(x, model = "clinear", range = c(-Inf, 1))', r"range = c\(-Inf, 1\) of f\(x\) is not supported"),
    ('y ~ f(x, model = "clinear", group = z)', r"has no latent nodes to take group"),
    ('y ~ f(x, model = "clinear", constr = TRUE)', r"would fix β·w at 0"),
])
def test_clinear_errors_are_located(formula, message):
    d = _clinear_data(m=20)
    with pytest.raises(AdeliaError, match=message) as err:
        adelia.compile_formula(formula, d)
    assert err.value.span is not None
