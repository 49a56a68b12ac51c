"""``ar`` (AR(p)) against the inverse of the Yule–Walker stationary covariance, its defaults and errors,
and recovery of a simulated AR(2) through adelia.fit (iidkd / iid2d: test_latent_iidkd.py)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla

import adelia
from adelia.compiler.latent import LATENT, TermInput
from adelia.compiler.latent.ar import pacf_to_acf, pacf_to_phi
from adelia.errors import ModelError


def Q_of(s, theta):
    th = jnp.asarray(theta, dtype=float)
    return sum(np.asarray(c(th)) * K.toarray() for c, K in zip(s.coefs, s.matrices))


def yule_walker_covariance(phi: np.ndarray, tau: float, n: int) -> np.ndarray:
    """Stationary covariance of an AR(p) with marginal precision τ: γ_0..γ_p from the Yule–Walker
    equations γ_h = Σ_j φ_j γ_|h−j| (h ≥ 1), γ_0 = 1/τ, then the recursion; Toeplitz."""
    p = len(phi)
    A = np.zeros((p + 1, p + 1))
    b = np.zeros(p + 1)
    A[0, 0], b[0] = 1.0, 1.0 / tau
    for h in range(1, p + 1):
        A[h, h] += 1.0
        for j in range(1, p + 1):
            A[h, abs(h - j)] -= phi[j - 1]
    gam = list(np.linalg.solve(A, b))
    for h in range(p + 1, n):
        gam.append(sum(phi[j - 1] * gam[h - j] for j in range(1, p + 1)))
    return sla.toeplitz(gam[:n])


# ---------------------------------------------------------------------------------------------
# ar
# ---------------------------------------------------------------------------------------------

def test_pacf_to_phi_closed_forms():
    psi = jnp.asarray([0.5, -0.3])
    # p = 2: ψ1 = φ1/(1 − φ2), ψ2 = φ2 (R-INLA inla.doc("ar"))
    phi = np.asarray(pacf_to_phi(psi))
    assert phi[1] == pytest.approx(-0.3) and phi[0] / (1 - phi[1]) == pytest.approx(0.5)
    r = np.asarray(pacf_to_acf(psi))
    assert r[1] == pytest.approx(0.5) and r[2] == pytest.approx(phi[0] * r[1] + phi[1])


@pytest.mark.parametrize("n, p", [(30, 3), (12, 2), (9, 3), (40, 1), (26, 5), (16, 5), (34, 8)])
def test_ar_precision_is_the_inverse_stationary_covariance(n, p):
    lm = LATENT.get("ar")
    s = lm.build(TermInput("t", np.arange(1, n + 1), {"order": p}))
    assert len(lm.hyper_specs({"order": p})) == p + 1
    rng = np.random.default_rng(n * 100 + p)
    for _ in range(3):
        th = rng.uniform(-2.0, 2.0, p + 1)
        phi = np.asarray(pacf_to_phi(jnp.asarray(np.tanh(th[1:] / 2))))
        Qref = np.linalg.inv(yule_walker_covariance(phi, math.exp(th[0]), n))
        np.testing.assert_allclose(Q_of(s, th), Qref, atol=1e-9 * np.abs(Qref).max())
        assert float(s.logdet(jnp.asarray(th))) == pytest.approx(np.linalg.slogdet(Qref)[1], rel=1e-10, abs=1e-9)
    assert abs(sum(abs(K) for K in s.matrices)).toarray().max() == 1     # disjoint fixed patterns


def test_ar_labels_and_defaults():
    specs = LATENT.get("ar").hyper_specs({"order": 5})
    assert [h.label.format(name="t") for h in specs] == ["Precision for t"] + [f"PACF{k} for t" for k in range(1, 6)]
    assert [h.prior for h in specs] == [("pc.prec", (3.0, 0.01)), ("pc.cor0", (0.5, 0.5)), ("pc.cor0", (0.5, 0.4)),
                                        ("pc.cor0", (0.5, 0.3)), ("pc.cor0", (0.5, 0.2)), ("pc.cor0", (0.5, 0.1))]
    assert [h.initial for h in specs] == [4.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert float(specs[1].to_natural(jnp.asarray(1.0))) == pytest.approx(2 * math.exp(1) / (1 + math.exp(1)) - 1)


@pytest.mark.parametrize("formula, match", [
    ('y ~ f(t, model = "ar")', "needs order"),
    ('y ~ f(t, model = "ar", order = 11)', "integer from 1 to 10"),
    ('y ~ f(t, model = "ar", order = 1.5)', "integer from 1 to 10"),
    ('y ~ f(t, model = "ar", order = 2, hyper = list(pacf3 = list(initial = 0)))', "no hyperparameter 'pacf3'"),
])
def test_ar_errors(formula, match):
    df = pd.DataFrame({"y": np.zeros(8), "t": np.arange(8)})
    with pytest.raises(ModelError, match=match):
        adelia.fit(formula, df)


def test_ar2_recovers_simulated_truth():
    rng = np.random.default_rng(11)
    n, tau, psi = 180, 1.0, np.array([0.7, -0.4])
    phi = np.asarray(pacf_to_phi(jnp.asarray(psi)))
    x = np.linalg.cholesky(yule_walker_covariance(phi, tau, n)) @ rng.normal(size=n)
    df = pd.DataFrame({"y": x + 0.2 * rng.normal(size=n), "t": np.arange(n)})
    fit = adelia.fit('y ~ -1 + f(t, model = "ar", order = 2)', df,
                     control_family={"hyper": {"prec": {"initial": math.log(25.0), "fixed": True}}}, n_samples=50)
    s = adelia.summary(fit)
    print(s)
    for row, truth in (("Precision for t", tau), ("PACF1 for t", psi[0]), ("PACF2 for t", psi[1])):
        lo, hi = s.loc[row, "0.025quant"], s.loc[row, "0.975quant"]
        assert lo < truth < hi, (row, lo, truth, hi)
