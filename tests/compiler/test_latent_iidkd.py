"""``iidkd`` and ``iid2d`` against W ⊗ I, their Wishart priors against scipy.stats.wishart with the
Jacobian of W's entries, errors, and recovery of simulated truths through adelia.fit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

import adelia
from adelia.compiler.latent import LATENT, TermInput
from adelia.compiler.priors import iidkd_cholesky, make_prior
from adelia.errors import ModelError


def Q_of(s, theta):
    th = jnp.asarray(theta, dtype=float)
    return sum(np.asarray(c(th)) * K.toarray() for c, K in zip(s.coefs, s.matrices))


# ---------------------------------------------------------------------------------------------
# iidkd
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k, m", [(2, 5), (3, 4), (4, 3)])
def test_iidkd_precision_is_W_kron_identity(k, m):
    s = LATENT.get("iidkd").build(TermInput("i", np.arange(1, k * m + 1), {"order": k, "n": k * m}))
    rng = np.random.default_rng(k)
    th = rng.normal(size=k * (k + 1) // 2)
    L = np.diag(np.exp(th[:k]))
    L[np.tril_indices(k, -1)] = th[k:]                       # row by row below the diagonal
    Qref = np.kron(L @ L.T, np.eye(m))
    np.testing.assert_allclose(Q_of(s, th), Qref, atol=1e-12 * np.abs(Qref).max())
    assert float(s.logdet(jnp.asarray(th))) == pytest.approx(np.linalg.slogdet(Qref)[1], rel=1e-12)


def test_iidkd_r_inla_layout_of_theta():
    # inla.doc("iidkd"), k = 3: L = [[e^θ1, 0, 0], [θ4, e^θ2, 0], [θ5, θ6, e^θ3]]
    th = jnp.asarray([0.1, 0.2, 0.3, 4.0, 5.0, 6.0])
    L = np.asarray(iidkd_cholesky(th, 3))
    assert L[1, 0] == 4.0 and L[2, 0] == 5.0 and L[2, 1] == 6.0 and L[0, 1] == 0.0
    assert L[2, 2] == pytest.approx(math.exp(0.3))


@pytest.mark.parametrize("k, params", [(2, (100.0, 1.0, 1.0, 0.0)), (3, (7.0, 2.0, 1.0, 0.5, 0.3, -0.2, 0.1))])
def test_wishartkd_is_the_wishart_density_of_W_with_its_jacobian(k, params):
    prior = make_prior("wishartkd", params, "iidkd")
    r = params[0]
    R = np.diag(params[1:k + 1])
    iu = np.triu_indices(k, 1)
    R[iu] = R[iu[1], iu[0]] = params[k + 1:]
    rng = np.random.default_rng(5)
    rows, cols = np.tril_indices(k)

    def vech_W(th):
        L = iidkd_cholesky(th, k)
        return (L @ L.T)[rows, cols]

    for _ in range(3):
        th = jnp.asarray(rng.normal(scale=0.5, size=k * (k + 1) // 2))
        L = np.asarray(iidkd_cholesky(th, k))
        W = L @ L.T
        ref = st.wishart(df=r, scale=np.linalg.inv(R)).logpdf(W)
        log_jac = np.linalg.slogdet(np.asarray(jax.jacfwd(vech_W)(th)))[1]      # |∂ vech W / ∂θ|
        assert float(prior.logpdf(th)) == pytest.approx(ref + log_jac, rel=1e-10, abs=1e-9)


def test_iidkd_defaults_and_errors():
    specs = LATENT.get("iidkd").hyper_specs({"order": 3})
    assert len(specs) == 6 and specs[0].prior == ("wishartkd", (100.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0))
    assert all(h.prior == ("none", ()) for h in specs[1:])
    assert [h.label.format(name="i") for h in specs][:2] == ["Theta1 for i", "Theta2 for i"]
    df = pd.DataFrame({"y": np.zeros(6), "i": np.arange(1, 7)})
    for formula, match in [('y ~ f(i, model = "iidkd", order = 2, n = 7)', "not a multiple"),
                           ('y ~ f(i, model = "iidkd", n = 6)', "needs order"),
                           ('y ~ f(i, model = "iidkd", order = 2)', "needs n"),
                           ('y ~ f(i, model = "iidkd", order = 2, n = 6, '
                            'hyper = list(theta1 = list(param = c(10, 1, 1, 1, 0, 0, 0))))', "order 2")]:
        with pytest.raises(ModelError, match=match):
            adelia.fit(formula, df)


def test_iidkd_recovers_simulated_truth():
    rng = np.random.default_rng(3)
    m, k = 150, 2
    Sigma = np.array([[1.0, 0.3], [0.3, 0.25]])              # sd 1 and 0.5, correlation 0.6
    W = np.linalg.inv(Sigma)
    L = np.linalg.cholesky(W)
    truth = {"Theta1 for i": math.log(L[0, 0]), "Theta2 for i": math.log(L[1, 1]), "Theta3 for i": L[1, 0]}
    uv = rng.multivariate_normal(np.zeros(2), Sigma, size=m)
    idx = np.concatenate([np.arange(1, m + 1), m + np.arange(1, m + 1)])   # u_1..u_m, v_1..v_m
    idx = np.repeat(idx, 2)
    x = np.concatenate([uv[:, 0], uv[:, 1]])[idx - 1]
    df = pd.DataFrame({"y": x + 0.1 * rng.normal(size=idx.size), "i": idx})
    fit = adelia.fit(f'y ~ -1 + f(i, model = "iidkd", order = 2, n = {k * m}, '
                     'hyper = list(theta1 = list(param = c(4, 1, 1, 0))))', df,
                     control_family={"hyper": {"prec": {"initial": math.log(100.0), "fixed": True}}}, n_samples=50)
    s = adelia.summary(fit)
    print(s, truth)
    for row, value in truth.items():
        lo, hi = s.loc[row, "0.025quant"], s.loc[row, "0.975quant"]
        assert lo < value < hi, (row, lo, value, hi)


# ---------------------------------------------------------------------------------------------
# iid2d (R-INLA's parameterisation: two log precisions and a correlation)
# ---------------------------------------------------------------------------------------------

def _sigma_iid2d(th):
    va, vb, rho = math.exp(-th[0]), math.exp(-th[1]), math.tanh(th[2] / 2)
    return np.array([[va, rho * math.sqrt(va * vb)], [rho * math.sqrt(va * vb), vb]])


def test_iid2d_precision_and_prior():
    m = 4
    s = LATENT.get("iid2d").build(TermInput("i", np.arange(1, 2 * m + 1), {"n": 2 * m}))
    th = np.array([0.3, -0.8, 1.1])
    Qref = np.kron(np.linalg.inv(_sigma_iid2d(th)), np.eye(m))
    np.testing.assert_allclose(Q_of(s, th), Qref, rtol=1e-12)
    assert float(s.logdet(jnp.asarray(th))) == pytest.approx(np.linalg.slogdet(Qref)[1], rel=1e-12)
    prior = make_prior("wishart2d", (4.0, 1.0, 1.0, 0.0), "iidkd")
    # density of W by scipy, Jacobian |∂ vech W / ∂θ| by central differences
    vech = lambda t: np.linalg.inv(_sigma_iid2d(t))[np.tril_indices(2)]
    h = 1e-6
    J = np.column_stack([(vech(th + h * e) - vech(th - h * e)) / (2 * h) for e in np.eye(3)])
    ref = st.wishart(df=4.0, scale=np.eye(2)).logpdf(np.linalg.inv(_sigma_iid2d(th))) + np.linalg.slogdet(J)[1]
    assert float(prior.logpdf(jnp.asarray(th))) == pytest.approx(ref, rel=1e-7)
    specs = LATENT.get("iid2d").hyper_specs()
    assert [h.label.format(name="i") for h in specs] == ["Precision for i (component 1)",
                                                        "Precision for i (component 2)", "Rho1:2 for i"]
    assert [h.initial for h in specs] == [4.0, 4.0, 4.0]


def test_iid2d_recovers_simulated_truth():
    rng = np.random.default_rng(13)
    m = 200
    tau_a, tau_b, rho = 1.0, 4.0, 0.6
    Sigma = np.array([[1 / tau_a, rho / math.sqrt(tau_a * tau_b)], [rho / math.sqrt(tau_a * tau_b), 1 / tau_b]])
    uv = rng.multivariate_normal(np.zeros(2), Sigma, size=m)
    idx = np.repeat(np.concatenate([np.arange(1, m + 1), m + np.arange(1, m + 1)]), 2)
    x = np.concatenate([uv[:, 0], uv[:, 1]])[idx - 1]
    df = pd.DataFrame({"y": x + 0.1 * rng.normal(size=idx.size), "i": idx})
    fit = adelia.fit(f'y ~ -1 + f(i, model = "iid2d", n = {2 * m})', df,
                     control_family={"hyper": {"prec": {"initial": math.log(100.0), "fixed": True}}}, n_samples=50)
    s = adelia.summary(fit)
    print(s)
    for row, value in (("Precision for i (component 1)", tau_a), ("Precision for i (component 2)", tau_b),
                       ("Rho1:2 for i", rho)):
        lo, hi = s.loc[row, "0.025quant"], s.loc[row, "0.975quant"]
        assert lo < value < hi, (row, lo, value, hi)
