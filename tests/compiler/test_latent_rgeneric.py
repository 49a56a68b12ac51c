"""``rgeneric`` user models: the same model written by hand gives the same fit as the built-in one
(iid, ar1), in both forms of Q (matrices + coefs, graph + values), and bad objects give located errors."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import adelia
from adelia.compiler.latent.ar1 import ar1_matrices
from adelia.errors import ModelError


def _loggamma(t, a=1.0, b=5e-5):
    return a * math.log(b) - math.lgamma(a) + a * t - b * jnp.exp(t)


def _normal(t, mean, prec):
    return 0.5 * math.log(prec / (2 * math.pi)) - 0.5 * prec * (t - mean) ** 2


class UserIID:
    """iid written as a user model: Q = e^θ I, R-INLA's default loggamma(1, 5e-5) prior."""

    def __init__(self, n):
        self.n = n
        self.theta = [4.0]
        self.names = ["Log precision"]
        self.matrices = [sp.identity(n, format="csr")]

    def coefs(self, theta):
        return jnp.exp(theta[:1])

    def log_prior(self, theta):
        return _loggamma(theta[0])

    def log_norm_const(self, theta):
        return -self.n / 2 * math.log(2 * math.pi) + self.n / 2 * theta[0]


def user_ar1_graph(n):
    """ar1 (marginal precision τ, ρ = tanh(θ₂/2)) given as R-INLA's graph + Q values, no normaliser."""
    graph = sp.diags([np.ones(n - 1), np.ones(n), np.ones(n - 1)], [-1, 0, 1], format="csr")
    upper = sp.triu(graph).tocoo()
    diag_pos = upper.row == upper.col
    interior = (upper.row > 0) & (upper.row < n - 1)

    def Q(theta):
        tau, rho = jnp.exp(theta[0]), jnp.tanh(theta[1] / 2)
        d = jnp.where(jnp.asarray(interior), 1 + rho ** 2, 1.0) * tau / (1 - rho ** 2)
        return jnp.where(jnp.asarray(diag_pos), d, -rho * tau / (1 - rho ** 2))

    return {"n": n, "theta": [4.0, 2.0], "graph": graph, "Q": Q,
            "log_prior": lambda th: _loggamma(th[0]) + _normal(th[1], 0.0, 0.15)}


@pytest.fixture(scope="module")
def grouped():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(1, 21), 3)
    y = 1.0 + rng.normal(scale=0.7, size=20)[g - 1] + rng.normal(scale=0.5, size=g.size)
    return pd.DataFrame({"y": y, "g": g})


def _compare(a, b, rows_a, rows_b):
    sa, sb = adelia.summary(a), adelia.summary(b)
    np.testing.assert_allclose(sa.loc[rows_a].to_numpy(), sb.loc[rows_b].to_numpy(), rtol=1e-6, atol=1e-6)
    for key in ("mlik_integration", "mlik_gaussian"):
        assert a["inla"].attrs[key] == pytest.approx(b["inla"].attrs[key], abs=1e-6)


def test_rgeneric_reproduces_iid(grouped):
    ref = adelia.fit('y ~ 1 + f(g, model = "iid")', grouped, n_samples=20)
    user = adelia.fit('y ~ 1 + f(g, model = "rgeneric", rmodel = m)', grouped, n_samples=20, m=UserIID(20))
    _compare(ref, user, ["(Intercept)"], ["(Intercept)"])
    # the user's θ is reported as is: its posterior is that of iid's log precision
    s_ref = ref["inla"]["internal_summary_hyperpar"].to_pandas()
    s_user = adelia.summary(user).loc["Log precision for g"]
    mean_ref = s_ref.loc["Log precision for g", "mean"] if "Log precision for g" in s_ref.index else None
    assert mean_ref is not None and s_user["mean"] == pytest.approx(mean_ref, abs=1e-6)
    assert adelia.summary(user).loc["Precision for the Gaussian observations", "mean"] == pytest.approx(
        adelia.summary(ref).loc["Precision for the Gaussian observations", "mean"], rel=1e-6)


def test_rgeneric_reproduces_ar1_from_graph_and_values():
    rng = np.random.default_rng(8)
    n = 16
    x = np.zeros(n)
    x[0] = rng.normal()
    for t in range(1, n):
        x[t] = 0.8 * x[t - 1] + math.sqrt(1 - 0.64) * rng.normal()
    df = pd.DataFrame({"y": x + 0.3 * rng.normal(size=n), "t": np.arange(1, n + 1)})
    ref = adelia.fit('y ~ -1 + f(t, model = "ar1")', df, n_samples=20)
    user = adelia.fit('y ~ -1 + f(t, model = "rgeneric", rmodel = m)', df, n_samples=20, m=user_ar1_graph(n))
    for key in ("mlik_integration", "mlik_gaussian"):
        assert ref["inla"].attrs[key] == pytest.approx(user["inla"].attrs[key], abs=1e-5)
    a = adelia.summary(ref).loc["Precision for the Gaussian observations"]
    b = adelia.summary(user).loc["Precision for the Gaussian observations"]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5)


def test_user_matrices_form_matches_builtin_ar1_matrices():
    # the conformance suite's rgeneric case: ar1's own K_j with the user's coefficients
    from adelia.compiler.latent import LATENT, TermInput

    n = 9
    ar1 = LATENT.get("ar1").build(TermInput("t", np.arange(1, n + 1), {}))
    obj = {"n": n, "theta": [0.3, 0.4], "matrices": ar1_matrices(n),
           "coefs": lambda th: jnp.stack([c(th) for c in ar1.coefs]), "log_prior": lambda th: 0.0 * th[0]}
    user = LATENT.get("rgeneric").build(TermInput("t", np.arange(1, n + 1), {"rmodel": obj}))
    th = jnp.asarray([0.3, -1.2])
    Q = lambda s: sum(np.asarray(c(th)) * K.toarray() for c, K in zip(s.coefs, s.matrices))
    np.testing.assert_allclose(Q(user), Q(ar1), rtol=1e-14)


@pytest.mark.parametrize("change, match", [
    ({"n": 0}, "n must be a positive integer"),
    ({"theta": []}, "theta must hold"),
    ({"log_prior": None}, "log_prior"),
    ({"matrices": [sp.identity(5)]}, r"matrices\[0\] has shape \(5, 5\), expected \(6, 6\)"),
    ({"matrices": [sp.csr_matrix(np.triu(np.ones((6, 6))))]}, "not symmetric"),
    ({"coefs": lambda th: jnp.stack([th[0], th[0]])}, "returned 2 values for 1 matrices"),
    ({"coefs": lambda th: th.reshape(3, 3)}, r"coefs\(theta\) failed at the initial theta"),
    ({"matrices": None}, "give Q as matrices"),
    ({"log_prior": lambda th: jnp.log(-1.0 + 0 * th[0])}, "log_prior.*not finite"),
])
def test_rgeneric_errors_name_the_field(change, match):
    obj = {"n": 6, "theta": [1.0], "matrices": [sp.identity(6, format="csr")], "coefs": lambda th: jnp.exp(th[:1]),
           "log_prior": lambda th: -th[0] ** 2}
    obj.update(change)
    df = pd.DataFrame({"y": np.zeros(6), "i": np.arange(1, 7)})
    with pytest.raises(ModelError, match=match) as err:
        adelia.fit('y ~ f(i, model = "rgeneric", rmodel = obj)', df, obj=obj)
    assert "rgeneric" in str(err.value)


def test_rgeneric_graph_values_length_is_checked():
    obj = user_ar1_graph(6)
    obj["Q"] = lambda th: jnp.ones(3) * th[0]
    df = pd.DataFrame({"y": np.zeros(6), "i": np.arange(1, 7)})
    with pytest.raises(ModelError, match="returned 3 values, but the upper triangle of graph"):
        adelia.fit('y ~ f(i, model = "rgeneric", rmodel = obj)', df, obj=obj)
