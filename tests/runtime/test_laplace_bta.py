"""The BTA Laplace path against the dense one: layout, objective, gradient, marginals, draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import adelia
from adelia.compiler.model import compile_model
from adelia.dsl.parser import parse_formula
from adelia.errors import ModelError
from adelia.runtime.bta import bta_to_dense
from adelia.runtime.laplace import LaplaceProblem
from adelia.runtime.laplace_bta import BTALaplaceProblem, _PatternIndex, bta_layout


def _data(seed=0, n=8, nt=5):
    """Counts and Gaussian responses on a ring of n regions over nt times, with two covariates."""
    rng = np.random.default_rng(seed)
    W = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1]).tolil()
    W[0, n - 1] = W[n - 1, 0] = 1
    region = np.tile(np.arange(1, n + 1), nt)
    t = np.repeat(np.arange(1, nt + 1), n)
    x = rng.normal(size=n * nt)
    eta = 0.2 + 0.3 * x + 0.5 * np.sin(region / 2 + t / 3)
    d = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "yg": eta + 0.3 * rng.normal(size=n * nt), "x": x,
                      "region": region, "t": t, "t2": t, "idx": np.arange(1, n * nt + 1)})
    d.loc[3, "y"] = np.nan
    return d, sp.csr_matrix(W)


ST = 'f(region, model = "besag", graph = W, group = t, control.group = list(model = "ar1"))'
FORMULAS = [
    ("poisson", f"y ~ 1 + x + {ST}"),
    ("gaussian", f'yg ~ 1 + x + {ST} + f(t2, model = "rw1")'),
    ("gaussian", 'yg ~ 1 + f(region, model = "iid", group = t, control.group = list(model = "ar1")) '
                 '+ f(idx, model = "iid", replicate = t, constr = TRUE)'),
]


def _model(formula, family, seed=0):
    d, W = _data(seed)
    return compile_model(parse_formula(formula), d, family, objects={"W": W})


def _evaluate(prob):
    """One compiled function of θ: mode, objective, gradient, marginal sds of x and η."""
    def f(th):
        g = prob.gaussian(th)
        return prob.mode(th), prob.log_posterior(th), jax.grad(prob.log_posterior)(th), g.sd, g.eta_sd
    return jax.jit(f)


@pytest.mark.parametrize("family,formula", FORMULAS)
def test_objective_gradient_and_marginals_match_dense(family, formula):
    model = _model(formula, family)
    dense_p, bta_p = LaplaceProblem(model), BTALaplaceProblem(model)
    assert bta_p.layout.nt == 5
    fd, fb = _evaluate(dense_p), _evaluate(bta_p)
    for theta in (np.array([t.initial for t in model.thetas]) - 1.0, np.linspace(0.5, 1.5, model.d)):
        th = jnp.asarray(theta)
        xd, ld, gd, sd, ed = fd(th)
        xb, lb, gb, sb, eb = fb(th)
        np.testing.assert_allclose(np.asarray(xb), np.asarray(xd), rtol=1e-8, atol=1e-9)
        assert float(lb) == pytest.approx(float(ld), rel=1e-10)
        np.testing.assert_allclose(np.asarray(gb), np.asarray(gd), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(np.asarray(sb), np.asarray(sd), rtol=1e-8)
        np.testing.assert_allclose(np.asarray(eb), np.asarray(ed), rtol=1e-8)


def test_gradient_matches_finite_differences():
    model = _model(FORMULAS[0][1], "poisson")
    prob = BTALaplaceProblem(model)
    th = jnp.asarray(np.linspace(0.3, 1.2, model.d))
    f = jax.jit(prob.log_posterior)
    g = np.asarray(jax.jit(jax.grad(prob.log_posterior))(th))
    h = 1e-5
    fd = [(float(f(th.at[k].add(h))) - float(f(th.at[k].add(-h)))) / (2 * h) for k in range(model.d)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


def test_layout_blocks_reproduce_the_pattern_matrix():
    """Scattering random symmetric values into the blocks and back is the identity on the pattern,
    and the blocks hold the permuted matrix."""
    model = _model(FORMULAS[1][1], "gaussian")
    prob = BTALaplaceProblem(model)
    lay, an = prob.layout, prob.analysis
    rng = np.random.default_rng(1)
    M = sp.coo_matrix((rng.normal(size=an.nnz), (an.rows, an.cols)), shape=(model.N, model.N)).toarray()
    M = M + M.T
    vals = M[an.rows, an.cols]
    dense = np.asarray(bta_to_dense(lay.blocks(jnp.asarray(vals))))
    np.testing.assert_allclose(dense, M[np.ix_(lay.perm, lay.perm)], atol=1e-14)
    np.testing.assert_allclose(np.asarray(lay.pattern_values(lay.blocks(jnp.asarray(vals)))), vals, atol=1e-14)
    assert (lay.nt, lay.b, lay.a) == (5, 8, 7)     # region blocks; the rw1 over t, intercept and x as the arrow


def test_draws_have_the_dense_covariance():
    model = _model(FORMULAS[0][1], "poisson")
    dense_p, bta_p = LaplaceProblem(model), BTALaplaceProblem(model)
    th = jnp.asarray(np.linspace(0.5, 1.0, model.d))
    xb = np.asarray(bta_p.sample_latent(th, jax.random.PRNGKey(0), 4000))
    xd = np.asarray(dense_p.sample_latent(th, jax.random.PRNGKey(0), 4000))
    sd = np.asarray(dense_p.gaussian(th).sd)
    np.testing.assert_allclose(xb.std(axis=0), sd, rtol=0.1)
    np.testing.assert_allclose(xb.mean(axis=0), xd.mean(axis=0), atol=0.15 * sd.max())


def test_no_layout_for_models_without_time_blocks():
    model = _model('y ~ 1 + x + f(region, model = "besag", graph = W)', "poisson")
    rows, cols = np.nonzero(np.ones((model.N, model.N)))
    assert bta_layout(model, rows, cols) is None
    with pytest.raises(ModelError, match="block-tridiagonal-arrowhead"):
        BTALaplaceProblem(model)


def test_layout_when_constraints_span_all_times():
    """An intrinsic group model's Σ-over-times constraints couple every time block through CᵀC;
    with the low-rank correction (adelia.runtime.lowrank) CᵀC stays out of the factor, so the
    model keeps its BTA layout, and its objective and gradient are the dense path's."""
    model = _model('yg ~ 1 + f(region, model = "iid", group = t, control.group = list(model = "rw1"))', "gaussian")
    bta_p, dense_p = BTALaplaceProblem(model), LaplaceProblem(model)
    assert bta_p.J is not None and not bta_p.use_ctc
    th = jnp.asarray(np.linspace(0.5, 1.0, model.d))
    assert float(bta_p.log_posterior(th)) == pytest.approx(float(dense_p.log_posterior(th)), rel=1e-10)
    np.testing.assert_allclose(np.asarray(jax.grad(bta_p.log_posterior)(th)),
                               np.asarray(jax.grad(dense_p.log_posterior)(th)), rtol=1e-7, atol=1e-9)


def test_pattern_index_is_csc_order():
    P = sp.csc_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1.0]]))
    ix = _PatternIndex(P)
    np.testing.assert_array_equal(ix.rows, [0, 1, 0, 1, 2, 1, 2])
    np.testing.assert_array_equal(ix.cols, [0, 0, 1, 1, 1, 2, 2])


@pytest.mark.parametrize("strategy", ["gaussian", "simplified.laplace"])
def test_fit_with_bta_solver_matches_dense(strategy):
    d, W = _data(2)
    f = f"y ~ 1 + x + {ST}"
    fa = adelia.fit(f, d, family="poisson", W=W, solver="bta", strategy=strategy, n_samples=20)
    fb = adelia.fit(f, d, family="poisson", W=W, solver="dense", strategy=strategy, n_samples=20)
    assert (fa["inla"].attrs["solver"], fb["inla"].attrs["solver"]) == ("bta", "dense")
    pd.testing.assert_frame_equal(adelia.summary(fa), adelia.summary(fb), rtol=1e-5)


def test_automatic_choice():
    """Large models: BTA when the layout exists and CHOLMOD is missing (or costs more flops);
    the sparse path (or dense without CHOLMOD) when there is no layout."""
    from adelia.runtime.inference import _choose_large, choose_solver

    st = _model(FORMULAS[0][1], "poisson")
    flat = _model('y ~ 1 + x + f(region, model = "besag", graph = W)', "poisson")
    assert choose_solver(st, "auto") == "dense"           # small: the dense path (simplified Laplace)
    assert _choose_large(st, have_cholmod=False) == "bta"
    assert _choose_large(flat, have_cholmod=False) == "dense"
    assert _choose_large(flat, have_cholmod=True) == "sparse"


def test_automatic_choice_is_made_once_per_model(monkeypatch):
    """The large-model choice (pattern + symbolic analysis) is memoised by content."""
    from adelia.runtime import inference

    st = _model(FORMULAS[0][1], "poisson")
    calls = []

    def counting(model, have_cholmod):
        calls.append(model)
        return "bta"

    monkeypatch.setattr(inference, "DENSE_MAX_LATENT", 0)
    monkeypatch.setattr(inference, "_choose_large", counting)
    monkeypatch.setattr(inference, "_CHOICE", type(inference._CHOICE)())
    assert inference.choose_solver(st, "auto") == "bta"
    assert inference.choose_solver(_model(FORMULAS[0][1], "poisson"), "auto") == "bta"
    assert len(calls) == 1
    assert inference.choose_solver(st, "dense") == "dense"  # explicit choices bypass it
