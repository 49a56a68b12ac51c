"""The sparse (CHOLMOD) Laplace path against the dense one: same objective, gradient, marginals."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import adelia  # noqa: E402
from adelia.compiler.model import compile_model  # noqa: E402
from adelia.dsl.parser import parse_formula  # noqa: E402
from adelia.runtime.laplace import LaplaceProblem  # noqa: E402
from adelia.runtime.laplace_sparse import SparseLaplaceProblem  # noqa: E402


def _data(seed=0):
    rng = np.random.default_rng(seed)
    n = 30
    W = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1]).tolil()
    W[0, n - 1] = W[n - 1, 0] = 1
    region = np.tile(np.arange(1, n + 1), 2)
    t = np.repeat([1, 2], n)
    x = rng.normal(size=2 * n)
    eta = 0.2 + 0.3 * x + 0.5 * np.sin(region / 4)
    d = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "yg": eta + 0.3 * rng.normal(size=2 * n), "x": x,
                      "region": region, "t": t, "idx": np.arange(1, 2 * n + 1)})
    return d, sp.csr_matrix(W)


FORMULAS = [
    ("poisson", 'y ~ 1 + x + f(region, model = "besag", graph = W) + f(idx, model = "iid")'),
    ("gaussian", 'yg ~ 1 + x + f(region, model = "rw1", cyclic = TRUE) + f(t, model = "iid", constr = TRUE)'),
]


@pytest.mark.parametrize("family,formula", FORMULAS)
def test_objective_and_gradient_match_dense(family, formula):
    d, W = _data()
    model = compile_model(parse_formula(formula), d, family, objects={"W": W})
    dense_p, sparse_p = LaplaceProblem(model), SparseLaplaceProblem(model)
    for theta in (np.array([t.initial for t in model.thetas]) - 2.0, np.linspace(0.5, 1.5, model.d)):
        th = jnp.asarray(theta)
        np.testing.assert_allclose(np.asarray(sparse_p.mode(th)), np.asarray(dense_p.mode(th)), rtol=1e-8, atol=1e-9)
        assert float(sparse_p.log_posterior(th)) == pytest.approx(float(dense_p.log_posterior(th)), rel=1e-10)
        np.testing.assert_allclose(np.asarray(jax.grad(sparse_p.log_posterior)(th)),
                                   np.asarray(jax.grad(dense_p.log_posterior)(th)), rtol=1e-7, atol=1e-9)
        gs, gd = sparse_p.gaussian(th), dense_p.gaussian(th)
        np.testing.assert_allclose(np.asarray(gs.sd), np.asarray(gd.sd), rtol=1e-8)
        np.testing.assert_allclose(np.asarray(gs.eta_sd), np.asarray(gd.eta_sd), rtol=1e-8)
        # simplified-Laplace coefficients from the sparse factor's whole covariance
        gs = sparse_p.gaussian(th, sla=True)
        for field in ("sd", "eta_sd", "gamma1", "gamma3"):
            np.testing.assert_allclose(np.asarray(getattr(gs, field)), np.asarray(getattr(gd, field)),
                                       rtol=1e-7, atol=1e-10, err_msg=field)


@pytest.mark.parametrize("strategy", ["gaussian", "simplified.laplace"])
def test_fit_with_sparse_solver_matches_dense(strategy):
    d, W = _data(1)
    f = 'y ~ 1 + x + f(region, model = "besag", graph = W)'
    a = adelia.summary(adelia.fit(f, d, family="poisson", W=W, solver="sparse", strategy=strategy, n_samples=20))
    b = adelia.summary(adelia.fit(f, d, family="poisson", W=W, solver="dense", strategy=strategy, n_samples=20))
    pd.testing.assert_frame_equal(a, b, rtol=1e-5)


def test_one_correction_row_for_a_one_dimensional_null_space():
    """besag by group: a sum-to-zero row per group, but the data leave a single direction unseen
    (the intercept against the field's overall level): the correction takes one row and one
    node, and the sparse path still equals the dense one (which adds CᵀC of every row)."""
    from adelia.runtime.laplace_sparse import qc_pattern

    d, W = _data()
    formula = 'y ~ 1 + x + f(region, model = "besag", graph = W, group = t, control.group = list(model = "ar1"))'
    model = compile_model(parse_formula(formula), d, "poisson", objects={"W": W})
    q = qc_pattern(model)
    assert model.C.shape[0] == 2 and q.R.tolist() == [0] and len(q.J) == 1
    sparse_p, dense_p = SparseLaplaceProblem(model), LaplaceProblem(model)
    for th in (jnp.asarray([t.initial for t in model.thetas]), jnp.asarray([t.initial for t in model.thetas]) - 1.0):
        assert float(sparse_p.log_posterior(th)) == pytest.approx(float(dense_p.log_posterior(th)), rel=1e-10)
        np.testing.assert_allclose(np.asarray(jax.grad(sparse_p.log_posterior)(th)),
                                   np.asarray(jax.grad(dense_p.log_posterior)(th)), rtol=1e-7, atol=1e-9)
        gs, gd = sparse_p.gaussian(th, sla=True), dense_p.gaussian(th)
        for field in ("mode", "sd", "eta_sd", "gamma1", "gamma3"):
            np.testing.assert_allclose(np.asarray(getattr(gs, field)), np.asarray(getattr(gd, field)),
                                       rtol=1e-7, atol=1e-9, err_msg=field)
    th = jnp.asarray([t.initial for t in model.thetas])
    xs = np.asarray(sparse_p.sample_latent(th, jax.random.PRNGKey(1), 4000))
    np.testing.assert_allclose(xs @ np.asarray(model.C).T, 0.0, atol=1e-8)
    np.testing.assert_allclose(xs.std(axis=0), np.asarray(dense_p.gaussian(th).sd), rtol=0.08)


@pytest.mark.parametrize("formula,handling", [
    # a flat intercept and a sum-to-zero besag share a direction that η cannot see: Q_c is
    # singular, and the low-rank correction on one node per constraint makes it factorisable
    ('y ~ 1 + x + f(region, model = "besag", graph = W)', "lowrank"),
    # without the intercept the besag's constant is seen by the data: Q_c is definite on its own
    ('y ~ -1 + x + f(region, model = "besag", graph = W)', "none"),
    ('y ~ 1 + x + f(idx, model = "iid", constr = TRUE)', "none"),
])
def test_singular_q_c_handled_without_ctc(formula, handling):
    from adelia.runtime.laplace_sparse import qc_pattern

    d, W = _data()
    model = compile_model(parse_formula(formula), d, "poisson", objects={"W": W})
    q = qc_pattern(model)
    assert q.ctc is None
    assert (q.J is not None) == (handling == "lowrank")
    # the objective, its gradient and the marginals equal the dense path's (which adds CᵀC)
    sparse_p, dense_p = SparseLaplaceProblem(model), LaplaceProblem(model)
    for th in (jnp.asarray([t.initial for t in model.thetas]), jnp.asarray([t.initial for t in model.thetas]) - 1.5):
        assert float(sparse_p.log_posterior(th)) == pytest.approx(float(dense_p.log_posterior(th)), rel=1e-10)
        np.testing.assert_allclose(np.asarray(jax.grad(sparse_p.log_posterior)(th)),
                                   np.asarray(jax.grad(dense_p.log_posterior)(th)), rtol=1e-7, atol=1e-9)
        for sla in (False, True):
            gs, gd = sparse_p.gaussian(th, sla=sla), dense_p.gaussian(th)
            for field in ("mode", "sd", "eta_sd") + (("gamma1", "gamma3") if sla else ()):
                np.testing.assert_allclose(np.asarray(getattr(gs, field)), np.asarray(getattr(gd, field)),
                                           rtol=1e-7, atol=1e-9, err_msg=field)
    # draws: constrained, with the dense path's covariance (same key, different factorisations)
    th = jnp.asarray([t.initial for t in model.thetas])
    xs = np.asarray(sparse_p.sample_latent(th, jax.random.PRNGKey(1), 4000))
    np.testing.assert_allclose(xs @ np.asarray(model.C).T, 0.0, atol=1e-8)
    sd = np.asarray(dense_p.gaussian(th).sd)
    np.testing.assert_allclose(xs.std(axis=0), sd, rtol=0.08)
    # the fit's route: normals made outside, one per row of the low-rank correction beyond N
    assert sparse_p.n_normals == model.N + (0 if q.J is None else len(q.J))
    z = np.random.default_rng(3).standard_normal((sparse_p.n_normals, 5))
    key = jax.random.PRNGKey(4)
    np.testing.assert_allclose(np.asarray(sparse_p.sample_latent(th, key, 5)),
                               np.asarray(sparse_p.sample_latent_from(th, jax.random.normal(key, (sparse_p.n_normals, 5)))),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="standard normals"):
        sparse_p.sample_latent_from(th, jnp.asarray(z[:-1]))
