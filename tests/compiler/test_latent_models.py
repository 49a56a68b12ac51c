"""Conformance suite over every registered latent model, plus model-specific checks.

Every model in ``LATENT`` must have at least one row in ``CASES``; each row is built through the
registry exactly as the compiler does and checked for: Q(θ) symmetric and positive
semi-definite, null space of the declared dimension, a sparsity pattern that does not depend on
θ, constraint rows that act on the null space, a log-determinant that matches the determinant
of Q restricted to the constraint subspace (θ-dependent part always; the constant where the model
declares the exact one), finite gradients, and ``scale.model`` giving generalised variance 1.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp

import adelia  # noqa: F401  (enables float64)
from adelia.compiler.latent import LATENT, TermInput
from adelia.compiler.latent.base import generalized_variance
from adelia.compiler.latent.bym2 import mixing_eigenvalues
from adelia.compiler.latent.rw import rinla_scale, rw_structure_matrix
from adelia.compiler.latent.spde import SPDE
from adelia.compiler.mesh import Mesh, fem_matrices, projector
from adelia.compiler.priors import PC_MIXING_RANGE, make_prior, pc_mixing_distance
from adelia.errors import DataError, ModelError

RNG = np.random.default_rng(20240601)


# ---------------------------------------------------------------------------------------------
# fixtures: small graphs and meshes
# ---------------------------------------------------------------------------------------------

def ring_graph(n: int, chords=()) -> sp.csr_matrix:
    edges = [(i, (i + 1) % n) for i in range(n)] + list(chords)
    r, c = zip(*edges)
    A = sp.coo_matrix((np.ones(len(edges)), (r, c)), shape=(n, n))
    return sp.csr_matrix(((A + A.T) > 0).astype(float))


def two_components_and_island() -> sp.csr_matrix:
    """Nodes 0-4 a ring with a chord, 5-7 a path, 8 an island."""
    W = sp.lil_matrix((9, 9))
    for i, j in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (1, 3), (5, 6), (6, 7)]:
        W[i, j] = W[j, i] = 1.0
    return W.tocsr()


def unit_square_mesh(k: int = 6) -> Mesh:
    g = np.linspace(0.0, 1.0, k)
    pts = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    pts = pts + RNG.uniform(-0.02, 0.02, pts.shape) * (np.abs(pts - 0.5) < 0.49)   # keep the boundary
    return Mesh.from_delaunay(pts)


MESH = unit_square_mesh()
SPDE_OBJ = SPDE(MESH, prior_range=(0.3, 0.5), prior_sigma=(1.0, 0.01))
IRREGULAR = np.sort(RNG.choice(np.arange(3, 98), size=15, replace=False)).astype(float)


def _rgeneric_ar1(n: int = 8) -> dict:
    """An ar1 written as a user model (the marginal-precision form of adelia's own ar1)."""
    from adelia.compiler.latent.ar1 import ar1_matrices

    return {"n": n, "theta": [1.0, 0.5], "matrices": ar1_matrices(n),
            "coefs": lambda th: jnp.exp(th[0]) * jnp.stack([jnp.cosh(th[1] / 2) ** 2, jnp.sinh(th[1] / 2) ** 2,
                                                             jnp.sinh(th[1]) / 2]),
            "log_prior": lambda th: -0.5 * jnp.sum(th ** 2),
            "log_norm_const": lambda th: (-n / 2 * math.log(2 * math.pi) + 0.5 * n * th[0]
                                          + (n - 1) * jnp.log(jnp.cosh(th[1] / 2)))}


RGENERIC_AR1 = _rgeneric_ar1()


@dataclass
class Case:
    model: str
    label: str
    index: np.ndarray
    args: dict = field(default_factory=dict)
    exact_constant: bool = True          # logdet_star is the true constant (False: R-INLA's convention)
    scaled: bool = False                 # scale.model = TRUE: check generalised variance 1
    tol: float = 1e-8


CASES = [
    Case("iid", "iid", np.arange(1, 9)),
    Case("iid", "iid constr", np.arange(1, 9), {"constr": True}),
    Case("rw1", "rw1 regular", np.arange(1, 13), exact_constant=False),
    Case("rw1", "rw1 irregular", IRREGULAR, exact_constant=False),
    Case("rw1", "rw1 cyclic", np.arange(1, 13), {"cyclic": True}, exact_constant=False),
    Case("rw1", "rw1 scaled", np.arange(1, 13), {"scale.model": True}, exact_constant=False, scaled=True),
    Case("rw2", "rw2 regular", np.arange(1, 13), exact_constant=False),
    Case("rw2", "rw2 irregular", IRREGULAR, exact_constant=False, tol=1e-7),
    Case("rw2", "rw2 cyclic", np.arange(1, 13), {"cyclic": True}, exact_constant=False),
    Case("rw2", "rw2 scaled", np.arange(1, 13), {"scale.model": True}, exact_constant=False, scaled=True),
    Case("rw2", "rw2 cyclic scaled", np.arange(1, 13), {"cyclic": True, "scale.model": True},
         exact_constant=False, scaled=True),
    Case("besag", "besag ring", np.arange(1, 11), {"graph": ring_graph(10, [(0, 5)])}, exact_constant=False),
    Case("besag", "besag components", np.arange(1, 10), {"graph": two_components_and_island(), "scale.model": True},
         exact_constant=False, scaled=True),
    Case("bym2", "bym2 ring", np.arange(1, 11), {"graph": ring_graph(10, [(0, 5), (2, 7)])},
         exact_constant=False, scaled=True),
    Case("bym2", "bym2 components", np.arange(1, 10), {"graph": two_components_and_island()},
         exact_constant=False, scaled=True),
    Case("seasonal", "seasonal", np.arange(1, 17), {"season.length": 4}, exact_constant=False),
    Case("ar1", "ar1", np.arange(1, 11)),
    Case("ar1", "ar1 constr", np.arange(1, 11), {"constr": True}),
    Case("spde", "spde mesh nodes", np.arange(1, MESH.n + 1), {"spde": SPDE_OBJ}, tol=1e-7),
    Case("spde", "spde projector", np.arange(1, 21),
         {"spde": SPDE(MESH, prior_range=(0.3, 0.5), prior_sigma=(1.0, 0.01), loc=RNG.uniform(0.05, 0.95, (20, 2)))},
         tol=1e-7),
    # issue 15 part B: ar(p), iidkd, iid2d, rgeneric (own tests: test_latent_{ar,iidkd,rgeneric}.py)
    Case("ar", "ar order 1", np.arange(1, 11), {"order": 1}),
    Case("ar", "ar order 3", np.arange(1, 21), {"order": 3}),
    Case("ar", "ar order 3 short", np.arange(1, 8), {"order": 3}),
    Case("iidkd", "iidkd order 3", np.arange(1, 13), {"order": 3, "n": 12}),
    Case("iidkd", "iidkd order 2 constr", np.arange(1, 11), {"order": 2, "n": 10, "constr": True}),
    Case("rgeneric", "rgeneric ar1", np.arange(1, 9), {"rmodel": RGENERIC_AR1}),
    Case("iid2d", "iid2d", np.arange(1, 11), {"n": 10}),
    Case("demf", "demf 3 times", np.tile(np.arange(1, MESH.n + 1), 3),
         {"spde": SPDE_OBJ, "time": np.repeat([1, 2, 3], MESH.n)}, tol=1e-7),
    Case("coregional", "coregional k = 2", np.tile(np.arange(1, MESH.n + 1), 4),
         {"spde": SPDE_OBJ, "time": np.repeat([1, 2], 2 * MESH.n), "field": np.tile(np.repeat([1, 2], MESH.n), 2)},
         tol=1e-7),
    # issue 15 part A (their own tests: test_latent_more.py)
    Case("bym", "bym ring", np.arange(1, 11), {"graph": ring_graph(10, [(0, 5)])}, exact_constant=False),
    Case("bym", "bym components scaled", np.arange(1, 10), {"graph": two_components_and_island(), "scale.model": True},
         exact_constant=False),
    Case("besagproper", "besagproper components", np.arange(1, 10), {"graph": two_components_and_island()}),
    Case("generic0", "generic0 rw1 structure", np.arange(1, 9),
         {"Cmatrix": np.diff(np.eye(8), axis=0).T @ np.diff(np.eye(8), axis=0), "constr": True}, exact_constant=False),
    Case("generic1", "generic1", np.arange(1, 11), {"Cmatrix": ring_graph(10, [(0, 5)])}),
    Case("z", "z", np.arange(1, 13), {"Z": RNG.normal(size=(12, 4))}),
    Case("linear", "linear", RNG.normal(size=10), {"prec.linear": 0.5}),
    Case("rw2d", "rw2d 4 x 5", np.arange(1, 21), {"nrow": 4, "ncol": 5}, exact_constant=False),
    Case("matern2d", "matern2d 4 x 5", np.arange(1, 21), {"nrow": 4, "ncol": 5}),
    Case("crw2", "crw2 irregular", IRREGULAR, exact_constant=False, tol=1e-6),
    Case("ou", "ou irregular", IRREGULAR),
]


def build(case: Case):
    lm = LATENT.get(case.model)
    lm = dataclasses.replace(lm, hypers=lm.hyper_specs(case.args))    # this case's hyperparameters
    return lm, lm.build(TermInput("x", case.index, dict(case.args)))


def Q_of(s, theta) -> np.ndarray:
    th = jnp.asarray(theta, dtype=float)
    return sum((np.asarray(c(th)) * K.toarray() for c, K in zip(s.coefs, s.matrices)), np.zeros((s.n, s.n)))


def thetas(d: int, k: int = 3) -> list[np.ndarray]:
    return [RNG.uniform(-1.5, 1.5, d) for _ in range(k)]


def null_space(M: np.ndarray, r: int) -> np.ndarray:
    w, U = np.linalg.eigh(M)
    return U[:, np.argsort(w)[:r]]


def restricted_logdet(M: np.ndarray, C: np.ndarray, r_left: int) -> float:
    """log pseudo-determinant of Q restricted to {C x = 0} (orthonormal basis), dropping r_left zeros."""
    B = sla.null_space(C) if C.shape[0] else np.eye(M.shape[0])
    w = np.sort(np.linalg.eigvalsh(B.T @ M @ B))
    return float(np.sum(np.log(w[r_left:])))


def ids(cases):
    return [c.label for c in cases]


# ---------------------------------------------------------------------------------------------
# the conformance table
# ---------------------------------------------------------------------------------------------

#: models without latent nodes (no Q to check), each tested where named
NO_PRECISION = {"clinear": "test_latent_more.py::test_clinear_*: η += β(θ)·w against the exact Gaussian marginal"}


def test_every_registered_model_has_a_case():
    covered = {c.model for c in CASES} | set(NO_PRECISION)
    missing = sorted(set(LATENT.names()) - covered)
    assert not missing, f"add conformance cases for: {missing}"


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_symmetric_psd_and_null_space(case):
    lm, s = build(case)
    assert all(K.shape == (s.n, s.n) for K in s.matrices)
    for th in thetas(len(lm.hypers)):
        M = Q_of(s, th)
        assert M.shape == (s.n, s.n)
        np.testing.assert_allclose(M, M.T, atol=1e-12 * np.abs(M).max())
        w = np.linalg.eigvalsh(M)
        scale = np.abs(w).max()
        assert w.min() > -1e-9 * scale, f"Q not PSD: smallest eigenvalue {w.min()}"
        null = int(np.sum(w < 1e-9 * scale))
        assert null == s.rank_def, f"null space has dimension {null}, declared rank_def {s.rank_def}"


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_pattern_independent_of_theta(case):
    lm, s = build(case)
    union = sum((abs(K).toarray() for K in s.matrices), np.zeros((s.n, s.n))) > 0
    for th in thetas(len(lm.hypers)):
        pattern = np.abs(Q_of(s, th)) > 0
        assert np.array_equal(pattern, union)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_constraints_act_on_the_null_space(case):
    lm, s = build(case)
    C = s.constraints
    assert C.ndim == 2 and C.shape[1] == s.n
    if s.rank_def == 0 or C.shape[0] == 0:
        return
    for th in thetas(len(lm.hypers), 2):
        N = null_space(Q_of(s, th), s.rank_def)
        # no constraint row is redundant with respect to the improper directions
        assert np.linalg.matrix_rank(C @ N, tol=1e-8) == min(C.shape[0], s.rank_def)


#: models with a closed-form log|Q|* (the others, e.g. matern2d, leave it to the runtime's factorisation)
LOGDET_CASES = [c for c in CASES if build(c)[1].logdet is not None]


@pytest.mark.parametrize("case", LOGDET_CASES, ids=ids(LOGDET_CASES))
def test_logdet(case):
    lm, s = build(case)
    # proper models: the full determinant (the runtime conditions on constraints separately);
    # intrinsic ones: the determinant on the constraint subspace, where the density lives
    C = s.constraints if s.rank_def else np.zeros((0, s.n))
    k_eff = np.linalg.matrix_rank(C) if C.shape[0] else 0
    r_left = s.rank_def - min(k_eff, s.rank_def)
    vals = []
    for th in thetas(len(lm.hypers)):
        ref = restricted_logdet(Q_of(s, th), C, r_left)
        ours = float(s.logdet(jnp.asarray(th))) + s.logdet_star
        vals.append((ref, ours))
        if case.exact_constant:
            assert ours == pytest.approx(ref, rel=case.tol, abs=case.tol)
    # the θ-dependent part is exact for every model
    (r0, o0), *rest = vals
    for r, o in rest:
        assert o - o0 == pytest.approx(r - r0, rel=case.tol, abs=case.tol)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_gradients_finite_and_match_differences(case):
    lm, s = build(case)
    d = len(lm.hypers)
    th = jnp.asarray(RNG.uniform(-1, 1, d))
    v = jnp.asarray(RNG.normal(size=d))
    for c in s.coefs:
        g = jax.grad(lambda t: jnp.sum(c(t)))(th)
        assert np.all(np.isfinite(np.asarray(g)))
    if s.logdet is not None:
        g = jax.grad(s.logdet)(th)
        h = 1e-6
        fd = (s.logdet(th + h * v) - s.logdet(th - h * v)) / (2 * h)
        assert float(g @ v) == pytest.approx(float(fd), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("case", [c for c in CASES if c.scaled], ids=ids([c for c in CASES if c.scaled]))
def test_scale_model_gives_generalised_variance_one(case):
    lm, s = build(case)
    if case.model == "bym2":
        n = s.n // 2
        K = s.matrices[3].toarray()[n:, n:]
    else:
        K = s.matrices[0].toarray()
    W = case.args.get("graph")
    if W is not None:
        from scipy.sparse.csgraph import connected_components
        _, label = connected_components(W, directed=False)
        for c in np.unique(label):
            members = np.flatnonzero(label == c)
            if len(members) == 1:
                assert K[members[0], members[0]] == pytest.approx(1.0)
                continue
            sub = K[np.ix_(members, members)]
            assert generalized_variance(sub, np.ones((len(members), 1))) == pytest.approx(1.0, rel=1e-9)
    else:
        null = None if case.args.get("cyclic") else np.column_stack(
            [np.ones(s.n), np.arange(s.n) - (s.n - 1) / 2][: 1 if case.model == "rw1" else 2])
        assert generalized_variance(K, null) == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("model", LATENT.names())
def test_hyperparameter_metadata(model):
    lm = LATENT.get(model)
    for h in lm.hyper_specs():
        assert "{name}" in h.label and "{name}" in h.internal_label
        assert np.isfinite(float(h.to_natural(jnp.asarray(h.initial))))
        prior = make_prior(h.prior[0], h.prior[1], h.scale)     # the default prior fits its scale
        assert prior.name == h.prior[0]


# ---------------------------------------------------------------------------------------------
# model-specific checks
# ---------------------------------------------------------------------------------------------

def test_rw_irregular_matches_gmrflib_entries_and_null_space():
    s_ = IRREGULAR
    K = rw_structure_matrix(s_, 2).toarray()
    n = len(s_)
    d = np.diff(s_)
    idelta = np.r_[1.0 / d, 0.0, 0.0]
    isdelta = np.r_[1.0 / (d[:-1] + d[1:]), 0.0, 0.0]
    get = lambda a, i: a[i] if i >= 0 else 0.0
    for i in range(n):       # GMRFLib_crw, layout "simple", irregular case (diagonal and two off-diagonals)
        diag = 2 * (get(idelta, i - 1) ** 2 * get(isdelta, i - 2)
                    + get(idelta, i - 1) * get(idelta, i) * (get(idelta, i - 1) + get(idelta, i))
                    + get(idelta, i) ** 2 * get(isdelta, i))
        assert K[i, i] == pytest.approx(diag, rel=1e-12)
        if i + 1 < n:
            assert K[i, i + 1] == pytest.approx(-2 * idelta[i] ** 2 * (get(idelta, i - 1) + idelta[i + 1]), rel=1e-12)
        if i + 2 < n:
            assert K[i, i + 2] == pytest.approx(2 * idelta[i] * idelta[i + 1] * isdelta[i], rel=1e-12)
    np.testing.assert_allclose(K @ np.ones(n), 0, atol=1e-12)
    np.testing.assert_allclose(K @ s_, 0, atol=1e-10)
    K1 = rw_structure_matrix(s_, 1).toarray()
    np.testing.assert_allclose(K1 @ np.ones(n), 0, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_rw_unit_spacing_is_the_classic_random_walk(order):
    n = 9
    D = np.diff(np.eye(n), n=order, axis=0)
    np.testing.assert_allclose(rw_structure_matrix(np.arange(n) + 3.0, order).toarray(), D.T @ D, atol=1e-13)
    # spacing h scales rw1 by 1/h and rw2 by 1/h³ (R-INLA uses the values as positions)
    h = 0.25
    np.testing.assert_allclose(rw_structure_matrix(h * np.arange(n), order).toarray(),
                               D.T @ D / h ** (2 * order - 1), atol=1e-10)


def test_rw_rinla_scale_equals_geometric_mean_for_unit_spacing():
    for order in (1, 2):
        s_ = np.arange(1.0, 16.0)
        K = rw_structure_matrix(s_, order).toarray()
        null = np.column_stack([np.ones(15), s_ - s_.mean()])[:, :order]
        assert rinla_scale(K, s_, order, False) == pytest.approx(generalized_variance(K, null), rel=1e-10)


def test_rw_rejects_unsorted_values():
    with pytest.raises(ModelError, match="strictly increasing"):
        LATENT.get("rw2").build(TermInput("x", np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
                                          {"values": np.array([1.0, 3.0, 2.0, 4.0, 5.0])}))


def test_ar1_covariance_is_geometric():
    lm, s = build(Case("ar1", "", np.arange(1, 8)))
    tau, rho = 2.5, 0.6
    th = [math.log(tau), math.log((1 + rho) / (1 - rho))]
    Sigma = np.linalg.inv(Q_of(s, th))
    i = np.arange(7)
    np.testing.assert_allclose(Sigma, rho ** np.abs(i[:, None] - i[None, :]) / tau, atol=1e-12)
    assert float(lm.hypers[1].to_natural(jnp.asarray(th[1]))) == pytest.approx(rho)


def test_ar1_rejects_cyclic():
    with pytest.raises(ModelError, match="cyclic"):
        LATENT.get("ar1").build(TermInput("x", np.arange(1, 6), {"cyclic": True}))


def test_bym2_precision_is_rinla_qfunc_bym2():
    W = ring_graph(8, [(0, 4)])
    lm, s = build(Case("bym2", "", np.arange(1, 9), {"graph": W}))
    tau, phi = 3.0, 0.3
    M = Q_of(s, [math.log(tau), math.log(phi / (1 - phi))])
    n = 8
    R = s.matrices[3].toarray()[n:, n:]
    np.testing.assert_allclose(M[:n, :n], tau / (1 - phi) * np.eye(n), rtol=1e-12)
    np.testing.assert_allclose(M[:n, n:], -math.sqrt(phi * tau) / (1 - phi) * np.eye(n), rtol=1e-12)
    np.testing.assert_allclose(M[n:, n:], phi / (1 - phi) * np.eye(n) + R, rtol=1e-12, atol=1e-14)
    # x = τ^{-1/2}(√(1−φ) v + √φ u*): Cov(x) = ((1−φ) I + φ R⁻)/τ under Σu* = 0
    Sigma = _constrained_cov(M, s.constraints)
    Rplus = np.linalg.pinv(R)
    np.testing.assert_allclose(Sigma[:n, :n], ((1 - phi) * np.eye(n) + phi * Rplus) / tau, atol=1e-10)
    # only x enters the predictor; the constraint is on u*
    assert np.all(s.node_of_obs == np.arange(8))
    assert s.values.tolist() == list(range(1, 17))
    np.testing.assert_allclose(s.constraints, np.r_[np.zeros(n), np.ones(n)][None, :])


def _constrained_cov(M, C):
    B = sla.null_space(C)
    return B @ np.linalg.inv(B.T @ M @ B) @ B.T


def test_bym2_requires_scaling_and_graph():
    with pytest.raises(ModelError, match="always scaled"):
        LATENT.get("bym2").build(TermInput("x", np.arange(1, 5), {"graph": ring_graph(4), "scale.model": False}))
    with pytest.raises(ModelError, match="needs a graph"):
        LATENT.get("bym2").build(TermInput("x", np.arange(1, 5), {}))


def test_bym2_mixing_distance_matches_rinla_determinant_route():
    """inla.pc.bym.phi's sparse route: d² = nφf − [n log((1−φ)/φ) + log|Q + φ/(1−φ) I|_c − (log|Q|_c − n log φ)]
    with |·|_c the constrained determinants; our eigenvalue formula must agree."""
    W = two_components_and_island()
    lm, s = build(Case("bym2", "", np.arange(1, 10), {"graph": W}))
    n = 9
    R = s.matrices[3].toarray()[n:, n:]
    gamma = s.prior_context["mixing_eigenvalues"]
    np.testing.assert_allclose(np.sort(gamma), np.sort(mixing_eigenvalues(R, s.rank_def)))
    C = s.constraints[:, n:]
    f = np.mean(np.diag(_constrained_cov_singular(R, C))) - 1.0

    def logdet_c(M):      # log|M| + log|C M⁻¹ Cᵀ| (GMRFLib's constrained log-density at 0)
        Minv = np.linalg.inv(M)
        return np.linalg.slogdet(M)[1] + np.linalg.slogdet(C @ Minv @ C.T)[1]

    eps = 1e-9
    log_q1 = logdet_c(R + eps * np.eye(n))
    for phi in (0.05, 0.3, 0.7, 0.95):
        c = phi / (1 - phi)
        bb = n * math.log((1 - phi) / phi) + logdet_c(R + c * np.eye(n)) - (log_q1 - n * math.log(phi))
        d_ref = math.sqrt(n * phi * f - bb)
        assert float(pc_mixing_distance(phi, jnp.asarray(gamma - 1.0))) == pytest.approx(d_ref, rel=1e-5)


def _constrained_cov_singular(R, C):
    B = sla.null_space(C)
    return B @ np.linalg.pinv(B.T @ R @ B) @ B.T


def test_bym2_pc_prior_binds_and_is_normalised():
    from scipy.integrate import quad

    lm, s = build(Case("bym2", "", np.arange(1, 11), {"graph": ring_graph(10, [(0, 5)])}))
    prior = make_prior("pc", (0.5, 0.5), "logit_mixing")
    with pytest.raises(ModelError, match="not been bound"):
        prior.logpdf(jnp.asarray(0.0))
    bound = prior.bind(s)
    dens = lambda t: math.exp(float(bound.logpdf(jnp.asarray(t))))
    total = quad(dens, *PC_MIXING_RANGE, limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-6)
    assert np.isfinite(float(jax.grad(bound.logpdf)(jnp.asarray(-3.0))))
    # a grid of θ at once (the prior's table in the results) equals θ one at a time
    grid = np.linspace(-6.0, 6.0, 13)
    np.testing.assert_allclose(np.asarray(bound.logpdf(jnp.asarray(grid))),
                               [float(bound.logpdf(jnp.asarray(t))) for t in grid], rtol=1e-13)
    with pytest.raises(ModelError, match="applies only"):
        prior.bind(build(Case("iid", "", np.arange(1, 4)))[1])


def test_spde_reference_parameterisation():
    """log τ and log κ as R-INLA's B matrices for pcmatern (d = 2, ν = 1), S4's values."""
    th = jnp.asarray([0.7, -0.2])
    B0 = np.array([-2.30523289432456, 1.0, -1.0])
    B1 = np.array([2.07944154167984, -2.0, 0.0])
    v = np.r_[1.0, np.asarray(th)]
    assert float(SPDE_OBJ.log_tau(th)) == pytest.approx(B0 @ v, abs=1e-12)
    assert float(2 * SPDE_OBJ.log_kappa(th)) == pytest.approx(B1 @ v, abs=1e-12)
    lm = SPDE_OBJ.latent_model()
    assert [h.prior for h in lm.hypers] == [("pc.range", (0.3, 0.5, 2.0)), ("pc.sd", (1.0, 0.01))]
    assert lm.hypers[0].initial == pytest.approx(math.log(0.3) + 1)
    assert lm.hypers[1].initial == pytest.approx(math.log(1.0) - 1)


def test_spde_marginal_variance_near_sigma_squared_inside():
    """Away from the boundary the field's variance is close to σ² (Matérn on a fine mesh)."""
    g = np.linspace(-1.0, 2.0, 31)
    mesh = Mesh.from_delaunay(np.array(np.meshgrid(g, g)).reshape(2, -1).T)
    spde = SPDE(mesh, prior_range=(1, 0.5), prior_sigma=(1, 0.5))
    s = spde.structure(TermInput("s", np.arange(1, mesh.n + 1), {}))
    sigma, rng_ = 1.7, 0.8
    V = np.diag(np.linalg.inv(Q_of(s, [math.log(rng_), math.log(sigma)])))
    centre = np.all(np.abs(mesh.nodes - 0.5) < 0.3, axis=1)
    assert np.median(V[centre]) == pytest.approx(sigma ** 2, rel=0.1)


def test_spde_registered_priors_bind_from_object():
    lm, s = build(next(c for c in CASES if c.label == "spde projector"))
    priors = [make_prior(h.prior[0], h.prior[1], h.scale) for h in lm.hypers]
    bound = [p.bind(s) for p in priors]
    assert bound[0].params == (0.3, 0.5, 2.0) and bound[1].params == (1.0, 0.01)
    assert np.isfinite(float(bound[0].logpdf(jnp.asarray(0.0))))


def test_spde_projector_rows_and_index():
    loc = RNG.uniform(0.05, 0.95, (12, 2))
    spde = SPDE(MESH, prior_range=(0.3, 0.5), prior_sigma=(1.0, 0.01), loc=loc)
    idx = np.array([1, 2, 3, np.nan, 12, 12], dtype=float)
    s = spde.structure(TermInput("s", idx, {}))
    P = s.projector.toarray()
    assert P.shape == (6, MESH.n)
    np.testing.assert_allclose(P.sum(axis=1), [1, 1, 1, 0, 1, 1])
    np.testing.assert_allclose(P[4], P[5])
    assert np.all(s.node_of_obs == -1)
    with pytest.raises(DataError, match="outside"):
        spde.structure(TermInput("s", np.array([1.0, 13.0]), {}))


def test_spde_needs_object():
    with pytest.raises(ModelError, match="needs spde"):
        LATENT.get("spde").build(TermInput("s", np.arange(1, 4), {}))


# ---------------------------------------------------------------------------------------------
# mesh: FEM assembly and projector
# ---------------------------------------------------------------------------------------------

def test_fem_matrices_basic_identities():
    fem = fem_matrices(MESH.nodes, MESH.triangles)
    n = MESH.n
    np.testing.assert_allclose(fem.G @ np.ones(n), 0, atol=1e-12)                  # constants in G's kernel
    assert fem.C.sum() == pytest.approx(1.0, rel=1e-12)                              # area of the unit square
    np.testing.assert_allclose(fem.c0, np.asarray(fem.C.sum(axis=1)).ravel())
    x = MESH.nodes[:, 0]
    assert x @ (fem.G @ x) == pytest.approx(1.0, rel=1e-12)                          # ∫|∇x|² = area
    assert np.allclose((fem.G - fem.G.T).toarray(), 0) and np.allclose((fem.C - fem.C.T).toarray(), 0)


def test_fem_single_triangle_by_hand():
    nodes = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    fem = fem_matrices(nodes, np.array([[0, 1, 2]]))
    np.testing.assert_allclose(fem.G.toarray(), 0.5 * np.array([[2, -1, -1], [-1, 1, 0], [-1, 0, 1]]), atol=1e-15)
    np.testing.assert_allclose(fem.C.toarray(), np.array([[2, 1, 1], [1, 2, 1], [1, 1, 2]]) / 24, atol=1e-15)


def test_fem_sphere_triangles_embedded_in_3d():
    """A flat triangle placed in ℝ³ gives the same matrices as in the plane."""
    nodes2 = np.array([[0.0, 0.0], [2.0, 0.0], [0.5, 1.5]])
    Rm = np.linalg.qr(RNG.normal(size=(3, 3)))[0]
    nodes3 = np.c_[nodes2, np.zeros(3)] @ Rm.T
    a, b = fem_matrices(nodes2, np.array([[0, 1, 2]])), fem_matrices(nodes3, np.array([[0, 1, 2]]))
    np.testing.assert_allclose(a.G.toarray(), b.G.toarray(), atol=1e-13)
    np.testing.assert_allclose(a.C.toarray(), b.C.toarray(), atol=1e-13)


def test_projector_interpolates_linear_functions_exactly():
    pts = RNG.uniform(0.0, 1.0, (200, 2))
    A = projector(MESH.nodes, MESH.triangles, pts)
    f = lambda p: 2.0 - 3.0 * p[:, 0] + 0.5 * p[:, 1]
    np.testing.assert_allclose(A @ f(MESH.nodes), f(pts), atol=1e-12)
    np.testing.assert_allclose(np.asarray(A.sum(axis=1)).ravel(), 1.0, atol=1e-12)
    assert A.getnnz(axis=1).max() <= 3
    # vertices map to themselves
    np.testing.assert_allclose(projector(MESH.nodes, MESH.triangles, MESH.nodes[:7]).toarray(),
                               np.eye(MESH.n)[:7], atol=1e-12)


def test_projector_outside_points():
    pts = np.array([[0.5, 0.5], [1.5, 0.5]])
    with pytest.raises(DataError, match="outside the mesh"):
        projector(MESH.nodes, MESH.triangles, pts)
    A = projector(MESH.nodes, MESH.triangles, pts, outside="zero")
    assert A[1].nnz == 0 and A[0].sum() == pytest.approx(1.0)


def test_mesh_input_validation():
    with pytest.raises(DataError, match="0-based"):
        Mesh(np.zeros((3, 2)), np.array([[1, 2, 3]]))
    with pytest.raises(DataError, match="degenerate"):
        fem_matrices(np.array([[0.0, 0], [1, 0], [2, 0]]), np.array([[0, 1, 2]]))


def test_ar1_end_to_end_labels_and_recovery():
    """ar1 through adelia.fit: R-INLA's row names and a sensible estimate of ρ."""
    rng = np.random.default_rng(7)
    n, rho, tau = 150, 0.8, 4.0
    x = np.empty(n)
    x[0] = rng.normal(0, 1 / math.sqrt(tau))
    for t in range(1, n):
        x[t] = rho * x[t - 1] + rng.normal(0, math.sqrt((1 - rho ** 2) / tau))
    data = {"y": x + rng.normal(0, 0.1, n), "t": np.arange(1, n + 1)}
    dt = adelia.fit("y ~ 1 + f(t, model = 'ar1')", data, "gaussian", n_samples=0)
    table = adelia.summary(dt)
    assert {"Precision for t", "Rho for t"} <= set(table.index)
    assert 0.5 < table.loc["Rho for t", "0.5quant"] < 0.95
    assert "Rho_intern for t" in set(dt["inla"]["internal_summary_hyperpar"]["internal_hyperpar"].values.astype(str))


# ---------------------------------------------------------------------------------------------
# the priors these models use (normalised on the internal scale, tail statements hold)
# ---------------------------------------------------------------------------------------------

def _rho(t):
    return math.tanh(t / 2.0)


PRIOR_CASES = [
    # name, params, scale, (θ where the tail starts, tail mass expected, which side)
    ("pc.cor0", (0.5, 0.1), "correlation", lambda p: 2 * _mass(p, math.log(1.5 / 0.5), 60.0), 0.1),
    ("pc.cor1", (0.7, 0.7), "correlation", lambda p: _mass(p, math.log(1.7 / 0.3), 60.0), 0.7),
    ("pc.range", (0.3, 0.5), "log_range", lambda p: _mass(p, -60.0, math.log(0.3)), 0.5),
    ("pc.range", (0.3, 0.5, 1), "log_range", lambda p: _mass(p, -200.0, math.log(0.3)), 0.5),
    ("pc.sd", (10.0, 0.01), "log_sd", lambda p: _mass(p, math.log(10.0), 60.0), 0.01),
    ("pc.sigma", (2.0, 0.05), "log_sd", lambda p: _mass(p, math.log(2.0), 60.0), 0.05),
]


def _mass(prior, a, b):
    from scipy.integrate import quad
    return quad(lambda t: math.exp(float(prior.logpdf(jnp.asarray(t)))), a, b, limit=400)[0]


@pytest.mark.parametrize("name,params,scale,tail,expected", PRIOR_CASES,
                         ids=[f"{c[0]}{c[1]}" for c in PRIOR_CASES])
def test_pc_priors_normalised_with_their_tail_statement(name, params, scale, tail, expected):
    prior = make_prior(name, params, scale)
    lo = -200.0 if name == "pc.range" else -60.0
    total = _mass(prior, lo, 0.0) + _mass(prior, 0.0, 60.0)
    assert total == pytest.approx(1.0, abs=2e-4)         # pc.cor0's tail beyond |θ| = 60 is ~5e-5
    assert tail(prior) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    for t in (0.0, 1e-9, -0.7, 2.5):
        assert np.isfinite(float(jax.grad(prior.logpdf)(jnp.asarray(t))))


def test_prior_parameter_checks():
    with pytest.raises(ModelError, match="takes 0 or 2 or 3"):
        make_prior("pc.range", (0.3,), "log_range")
    with pytest.raises(ModelError, match="sqrt"):
        make_prior("pc.cor1", (0.5, 0.4), "correlation")
    with pytest.raises(ModelError, match="not defined for a log precision"):
        make_prior("pc.cor0", (0.5, 0.5), "log_precision")


def test_ar1_accepts_correlation_pc_priors():
    from adelia.api import compile_formula
    data = {"y": np.zeros(6), "t": np.arange(1, 7)}
    m = compile_formula('y ~ f(t, model = "ar1", hyper = list(rho = list(prior = "pc.cor1", param = c(0.7, 0.7))))',
                        data, "gaussian")
    assert m.thetas[-1].prior.describe() == "pc.cor1(0.7, 0.7)"
    assert m.thetas[-1].label == "Rho for t"
