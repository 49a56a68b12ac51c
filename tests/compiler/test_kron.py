"""group / replicate Kronecker structures against dense NumPy."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import adelia
from adelia.compiler.kron import GROUP_MODELS
from adelia.compiler.model import compile_model
from adelia.dsl.parser import parse_formula
from adelia.runtime.laplace import LaplaceProblem


def _data(T=5, n=6, seed=0):
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(1, T + 1), n)
    r = np.tile(np.arange(1, n + 1), T)
    return pd.DataFrame({"y": rng.normal(size=T * n), "t": t, "r": r})


def _dense_Q(model, comp, theta):
    s = comp.structure
    th = jnp.asarray(theta)[jnp.asarray(comp.theta_index)]
    return sum(float(c(th)) * K.toarray() for c, K in zip(s.coefs, s.matrices))


@pytest.mark.parametrize("gmodel", ["ar1", "exchangeable", "iid"])
def test_group_precision_is_kronecker_product(gmodel):
    d = _data()
    f = f'y ~ 1 + f(r, model = "iid", group = t, control.group = list(model = "{gmodel}"))'
    model = compile_model(parse_formula(f), d, "gaussian")
    comp = model.components[0]
    theta = np.array([0.5, 1.2, 0.7])[: model.d]
    Q = _dense_Q(model, comp, theta)
    G, n = 5, 6
    tau = np.exp(theta[1])
    if gmodel == "ar1":
        rho = np.tanh(theta[2] / 2)
        R = rho ** np.abs(np.subtract.outer(np.arange(G), np.arange(G)))
    elif gmodel == "exchangeable":
        rho = float(GROUP_MODELS["exchangeable"].hypers(G)[0].to_natural(theta[2]))
        R = (1 - rho) * np.eye(G) + rho * np.ones((G, G))
    else:
        R = np.eye(G)
    np.testing.assert_allclose(Q, np.kron(np.linalg.inv(R), tau * np.eye(n)), rtol=1e-10, atol=1e-10)
    # the closed-form log-determinant used for the prior normaliser
    s = comp.structure
    th = jnp.asarray(theta)[jnp.asarray(comp.theta_index)]
    assert float(s.logdet(th)) + s.logdet_star == pytest.approx(np.linalg.slogdet(Q)[1], rel=1e-10)
    # observation i sits at node group*n + index
    assert np.array_equal(s.node_of_obs, (d.t.values - 1) * n + (d.r.values - 1))


def test_replicate_rw1_constraints_per_replicate():
    d = _data(T=3, n=8)
    model = compile_model(parse_formula('y ~ 1 + f(r, model = "rw1", replicate = t)'), d, "gaussian")
    s = model.components[0].structure
    assert s.n == 24 and s.rank_def == 3 and s.constraints.shape == (3, 24)
    Q = _dense_Q(model, model.components[0], np.array([0.0, 0.0]))
    assert np.linalg.matrix_rank(Q) == 21
    np.testing.assert_allclose(Q @ s.constraints.T, 0, atol=1e-12)


def test_group_fit_recovers_ar1_correlation():
    rng = np.random.default_rng(4)
    T, n = 12, 15
    field = np.zeros((T, n))
    field[0] = rng.normal(size=n)
    for k in range(1, T):
        field[k] = 0.8 * field[k - 1] + 0.6 * rng.normal(size=n)
    t = np.repeat(np.arange(1, T + 1), n)
    r = np.tile(np.arange(1, n + 1), T)
    d = pd.DataFrame({"y": field[t - 1, r - 1] + 0.2 * rng.normal(size=T * n), "t": t, "r": r})
    dt = adelia.fit('y ~ 1 + f(r, model = "iid", group = t, control.group = list(model = "ar1"))', d, n_samples=20)
    s = adelia.summary(dt)
    assert s.loc["GroupRho for r", "0.025quant"] < 0.8 < s.loc["GroupRho for r", "0.975quant"]


def test_group_errors_are_located():
    d = _data()
    with pytest.raises(adelia.ModelError, match="did you mean 'exchangeable'"):
        adelia.fit('y ~ f(r, group = t, control.group = list(model = "exchangable"))', d)
    with pytest.raises(adelia.ModelError, match="need group"):
        adelia.fit('y ~ f(r, control.group = list(model = "ar1"))', d)


@pytest.mark.parametrize("gmodel,extra", [("rw1", ""), ("rw2", ""), ("rw1", ", cyclic = TRUE")])
def test_intrinsic_group_kronecker(gmodel, extra):
    d = _data(T=6, n=5)
    f = f'y ~ 1 + f(r, model = "rw1", group = t, control.group = list(model = "{gmodel}"{extra}))'
    model = compile_model(parse_formula(f), d, "gaussian")
    comp = model.components[0]
    s = comp.structure
    Q = _dense_Q(model, comp, np.array([0.3, 0.8]))
    ev = np.linalg.eigvalsh(Q)
    assert np.sum(ev < 1e-9 * ev.max()) == s.rank_def
    # every constraint removes a null direction, none is redundant; for rw1 they remove all of
    # them (rw2 keeps its linear trend over the groups improper, as a plain rw2 does)
    null = np.linalg.eigh(Q)[1][:, : s.rank_def]
    assert np.linalg.matrix_rank(s.constraints @ null, tol=1e-8) == s.constraints.shape[0]
    assert np.linalg.matrix_rank(s.constraints) == s.constraints.shape[0]
    if gmodel == "rw1":
        assert s.constraints.shape[0] == s.rank_def
    # θ-dependent log|Q|* as declared
    th = np.array([0.8])
    Q2 = _dense_Q(model, comp, np.array([0.3, 0.8 + 0.5]))
    ev2 = np.linalg.eigvalsh(Q2)
    nz = lambda e: np.sum(np.log(e[e > 1e-9 * e.max()]))
    assert float(s.logdet(jnp.asarray([1.3])) - s.logdet(jnp.asarray(th))) == pytest.approx(nz(ev2) - nz(ev), rel=1e-8)


def test_intrinsic_group_fit_runs():
    d = _data(T=6, n=5, seed=3)
    dt = adelia.fit('y ~ 1 + f(r, model = "iid", group = t, control.group = list(model = "rw1"))', d, n_samples=5)
    field = dt["inla"]["summary_random_r"].sel(stat="mean").values.reshape(6, 5)
    np.testing.assert_allclose(field.sum(axis=0), 0, atol=1e-6)
