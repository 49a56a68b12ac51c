"""Space–time models ``demf`` and ``coregional``: Q(θ) against dense constructions written from
METHOD.md §9–10, the observation map, and fits from a formula (BTA path) and from a .adl model file
(dense path)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import adelia
from adelia.adl_run import run_model
from adelia.compiler.latent import LATENT, TermInput
from adelia.compiler.latent.spde import SPDE
from adelia.compiler.mesh import Mesh
from adelia.errors import DataError, ModelError


def grid_mesh(k: int = 4) -> Mesh:
    g = np.linspace(0.0, 1.0, k)
    return Mesh.from_delaunay(np.array(np.meshgrid(g, g)).reshape(2, -1).T)


MESH = grid_mesh()
SP = SPDE(MESH, prior_range=(0.5, 0.5), prior_sigma=(1.0, 0.5))


def Q_of(s, theta):
    th = jnp.asarray(theta, dtype=float)
    return sum(np.asarray(c(th)) * K.toarray() for c, K in zip(s.coefs, s.matrices))


def dense_demf(theta, nt: int, h: float = 1.0) -> np.ndarray:
    """METHOD.md §9.1–9.2 written out with dense NumPy (plane, ν_s = 1, ν_t = ½, α = 2)."""
    log_rs, log_rt, log_sigma = theta
    nu_s, nu_t, alpha_s, alpha_t, alpha = 1.0, 0.5, 2.0, 1.0, 2.0
    c1 = math.gamma(nu_t) * math.gamma(nu_s) / (math.gamma(alpha_t) * math.gamma(alpha) * (4 * math.pi) ** 1.5)
    g_s = 0.5 * math.log(8 * nu_s) - log_rs
    g_t = log_rt - 0.5 * math.log(8 * nu_t) + alpha_s * g_s
    g_st = 0.5 * math.log(c1) - 0.5 * g_t - nu_s * g_s - log_sigma
    c0 = SP.fem.c0
    C, G = np.diag(c0), SP.fem.G.toarray()
    Ci = np.diag(1 / c0)
    k2 = math.exp(2 * g_s)
    q1 = k2 * C + G
    q2 = q1 @ Ci @ q1
    q3 = q1 @ Ci @ q1 @ Ci @ q1
    m0 = h * np.diag(np.r_[0.5, np.ones(nt - 2), 0.5])
    m1 = np.diag(np.r_[1.0, np.zeros(nt - 2), 1.0])
    m2 = (2 * np.eye(nt) - np.eye(nt, k=1) - np.eye(nt, k=-1)) / h
    m2[0, 0] = m2[-1, -1] = 1 / h
    return math.exp(2 * g_st) * (np.kron(m0, q3) + math.exp(g_t) * np.kron(m1, q2) + math.exp(2 * g_t) * np.kron(m2, q1))


def demf_term(nt=4, **extra):
    idx = np.tile(np.arange(1, MESH.n + 1), nt)
    t = np.repeat(np.arange(1, nt + 1), MESH.n)
    return TermInput("st", idx, {"spde": SP, "time": t, **extra})


@pytest.mark.parametrize("theta", [(-0.3, 0.5, 0.2), (0.4, -0.7, -0.5)])
def test_demf_precision_matches_method_formula(theta):
    s = LATENT.get("demf").build(demf_term(4))
    Qref = dense_demf(theta, 4)
    np.testing.assert_allclose(Q_of(s, theta), Qref, rtol=1e-10, atol=1e-10 * np.abs(Qref).max())
    assert float(s.logdet(jnp.asarray(theta))) == pytest.approx(np.linalg.slogdet(Qref)[1], rel=1e-9)
    assert s.blocks == 4 and s.n == 4 * MESH.n


def test_demf_step_and_alias():
    s = LATENT.get("spacetime").build(demf_term(3, **{"time.step": 0.5}))
    th = (0.1, 0.2, 0.3)
    np.testing.assert_allclose(Q_of(s, th), dense_demf(th, 3, 0.5), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("k", [2, 3])
def test_coregional_precision_is_the_lmc_of_demf_fields(k):
    nt, ns = 3, MESH.n
    idx = np.tile(np.arange(1, ns + 1), nt * k)
    t = np.repeat(np.arange(1, nt + 1), ns * k)
    v = np.tile(np.repeat(np.arange(1, k + 1), ns), nt)
    s = LATENT.get("coregional").build(TermInput("st", idx, {"spde": SP, "time": t, "field": v}))
    rng = np.random.default_rng(k)
    fields = rng.uniform(-0.5, 0.5, (k, 3))
    lam = rng.normal(size=k * (k - 1) // 2)
    theta = np.concatenate([fields.ravel(), lam])
    # x = Λ u with u_m ~ N(0, P_m⁻¹): x0 = u0', x1 = λ01 x0 + u1', x2 = λ12 x0 + λ02 x1 + u2'
    Lam_inv = np.eye(k)
    if k >= 2:
        Lam_inv[1, 0] = -lam[0]
    if k == 3:
        Lam_inv[2, 1], Lam_inv[2, 0] = -lam[1], -lam[2]
    n1 = nt * ns
    P = [dense_demf(fields[m], nt) for m in range(k)]
    E = np.kron(Lam_inv, np.eye(n1))                         # field-major layout [x0; x1; x2]
    Qfm = E.T @ sp.block_diag([sp.csr_matrix(p) for p in P]).toarray() @ E
    # field-major -> adelia's time-major layout, each time block [x0,t; x1,t; …]
    perm = np.array([m * n1 + tt * ns + j for tt in range(nt) for m in range(k) for j in range(ns)])
    Qref = Qfm[np.ix_(perm, perm)]
    np.testing.assert_allclose(Q_of(s, theta), Qref, rtol=1e-9, atol=1e-9 * np.abs(Qref).max())
    assert float(s.logdet(jnp.asarray(theta))) == pytest.approx(np.linalg.slogdet(Qref)[1], rel=1e-9)
    # the observation of (node j, time t, field v) reads exactly that latent node
    A = s.projector.toarray()
    for i in (0, 17, len(idx) - 1):
        col = (t[i] - 1) * k * ns + (v[i] - 1) * ns + idx[i] - 1
        assert A[i, col] == 1.0 and A[i].sum() == 1.0


def test_spacetime_defaults_and_errors():
    specs = LATENT.get("demf").hyper_specs({"spde": SP, "time": np.arange(1, 11)})
    assert [h.label.format(name="st") for h in specs] == ["Spatial range for st", "Temporal range for st",
                                                         "Stdev for st"]
    assert [h.prior for h in specs] == [("pc.range", (0.5, 0.5, 2.0)), ("pc.range", (5.0, 0.5, 1.0)),
                                        ("pc.sd", (1.0, 0.5))]
    df = pd.DataFrame({"y": np.zeros(4), "site": [1, 2, 3, 4], "t": [1, 1, 2, 2], "v": [1, 2, 1, 4]})
    for formula, err, match in [
        ('y ~ f(site, model = "demf", time = t)', ModelError, "needs spde"),
        ('y ~ f(site, model = "demf", spde = sp)', ModelError, "needs time"),
        ('y ~ f(site, model = "coregional", spde = sp, time = t)', ModelError, "needs field"),
        ('y ~ f(site, model = "coregional", spde = sp, time = t, field = v)', ModelError, "k = 2 or 3"),
    ]:
        with pytest.raises(err, match=match):
            adelia.fit(formula, df, sp=SP)
    with pytest.raises(DataError, match="at least 2"):
        adelia.fit('y ~ f(site, model = "demf", spde = sp, time = t)', df.assign(t=1), sp=SP)


@pytest.fixture(scope="module")
def simulated():
    """One DEMF field at θ = (log 0.6, log 3, log 1) on 16 nodes × 5 times, observed at every node
    and time with noise sd 0.2."""
    nt, ns = 5, MESH.n
    theta = (math.log(0.6), math.log(3.0), 0.0)
    Q = dense_demf(theta, nt)
    rng = np.random.default_rng(21)
    x = np.linalg.solve(np.linalg.cholesky(Q).T, rng.normal(size=nt * ns))
    t = np.repeat(np.arange(1, nt + 1), ns)
    node = np.tile(np.arange(ns), nt)
    df = pd.DataFrame({"y": 1.0 + x + 0.2 * rng.normal(size=x.size), "t": t, "site": node + 1,
                       "s1": MESH.nodes[node, 0], "s2": MESH.nodes[node, 1]})
    return df, x


def test_demf_fit_from_formula_and_from_adl(simulated, tmp_path):
    df, x = simulated
    # the formula fit takes the BTA path (its time blocks), the model file's the dense one: same numbers
    fit = adelia.fit('y ~ 1 + f(site, model = "demf", spde = sp, time = t)', df, sp=SP, n_samples=50, solver="bta")
    assert fit["inla"].attrs["solver"] == "bta"
    s = adelia.summary(fit)
    assert {"Spatial range for site", "Temporal range for site", "Stdev for site"} <= set(s.index)
    field = fit["posterior"]["site"].mean(("chain", "draw")).values
    assert np.corrcoef(field, x)[0, 1] > 0.9                  # the field is recovered
    lo, hi = s.loc["Stdev for site", "0.025quant"], s.loc["Stdev for site", "0.975quant"]
    assert lo < 1.0 < hi

    # the same model from a model file: mesh from node/triangle tables, spde statement, f(..., time = t)
    pd.DataFrame(MESH.nodes, columns=["x", "y"]).to_csv(tmp_path / "nodes.csv", index=False)
    pd.DataFrame(MESH.triangles + 1, columns=["a", "b", "c"]).to_csv(tmp_path / "triangles.csv", index=False)
    df.to_csv(tmp_path / "st.csv", index=False)
    (tmp_path / "st.adl").write_text(
        'data d = csv("st.csv")\n'
        'mesh m = mesh(nodes = "nodes.csv", triangles = "triangles.csv")\n'
        'spde sp = spde(m, prior.range = c(0.5, 0.5), prior.sigma = c(1, 0.5))\n'
        'family gaussian\n'
        'formula y ~ 1 + f(site, model = "demf", spde = sp, time = t)\n'
        'options(n_samples = 50)\n')
    from_file = run_model(tmp_path / "st.adl", solver="dense")
    assert from_file["inla"].attrs["solver"] == "dense"
    assert from_file["inla"].attrs["mlik_integration"] == pytest.approx(fit["inla"].attrs["mlik_integration"],
                                                                        abs=1e-4)
    np.testing.assert_allclose(adelia.summary(from_file).to_numpy(), s.to_numpy(), rtol=1e-4)


def test_coregional_fit_recovers_the_coupling():
    """Two fields, x_1 = 0.8 x_0 + 0.5 u_1, on 16 nodes × 3 times, each observed everywhere with noise
    sd 0.1: λ_01's 95 % interval covers 0.8 and the posterior mean tracks the simulated fields."""
    nt, ns, k = 3, MESH.n, 2
    idx = np.tile(np.arange(1, ns + 1), nt * k)
    t = np.repeat(np.arange(1, nt + 1), ns * k)
    v = np.tile(np.repeat(np.arange(1, k + 1), ns), nt)
    s = LATENT.get("coregional").build(TermInput("st", idx, {"spde": SP, "time": t, "field": v}))
    theta = np.array([math.log(0.6), math.log(3.0), 0.0, math.log(0.6), math.log(3.0), math.log(0.5), 0.8])
    Q = Q_of(s, theta)
    rng = np.random.default_rng(5)
    x = np.linalg.solve(np.linalg.cholesky(Q).T, rng.normal(size=Q.shape[0]))
    df = pd.DataFrame({"y": s.projector @ x + 0.1 * rng.normal(size=idx.size), "t": t, "site": idx, "v": v})
    fit = adelia.fit('y ~ -1 + f(site, model = "coregional", spde = sp, time = t, field = v)', df, sp=SP,
                     control_family={"hyper": {"prec": {"initial": math.log(100.0), "fixed": True}}},
                     int_strategy="eb", n_samples=20)
    s_ = adelia.summary(fit)
    assert s_.loc["Lambda01 for site", "0.025quant"] < 0.8 < s_.loc["Lambda01 for site", "0.975quant"]
    field = fit["posterior"]["site"].mean(("chain", "draw")).values
    assert np.corrcoef(field, x)[0, 1] > 0.95
