"""The Laplace objective and its gradient against independent dense NumPy computations.

* Gaussian likelihood with proper priors: log π̃(θ|y) equals log π(θ) + log N(y; o, A Q_p⁻¹ Aᵀ + τ⁻¹I)
  (the Laplace approximation is exact there), so every constant is checked.
* Non-Gaussian with a sum-to-zero constraint: the mode and the objective against a NumPy Newton
  iteration in null-space coordinates x = Z u (no kriging, an independent route).
* The AD gradient (implicit-function VJP) against central finite differences, every likelihood.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.linalg import null_space
from scipy.stats import multivariate_normal

from adelia.compiler.model import compile_model
from adelia.dsl.parser import parse_formula
from adelia.runtime.laplace import LaplaceProblem


def make_data(seed=0, m=60):
    rng = np.random.default_rng(seed)
    g = rng.integers(1, 9, size=m)
    t = rng.integers(1, 13, size=m)
    x = rng.normal(size=m)
    eta = 0.3 + 0.5 * x + 0.4 * rng.normal(size=9)[g] + np.sin(t / 2)
    return pd.DataFrame({
        "x": x, "g": g, "t": t,
        "y_gauss": eta + 0.3 * rng.normal(size=m),
        "y_pois": rng.poisson(np.exp(eta)),
        "n": rng.integers(3, 10, size=m),
    }).assign(y_bin=lambda d: rng.binomial(d.n, 1 / (1 + np.exp(-eta))))


def problem(formula, family, **kw):
    df = make_data()
    model = compile_model(parse_formula(formula), df, family, **kw)
    return LaplaceProblem(model), model


PROPER = {"prec_intercept": 0.01}


def test_gaussian_objective_equals_exact_marginal_likelihood():
    prob, model = problem('y_gauss ~ 1 + x + f(g, model = "iid")', "gaussian", control_fixed=PROPER)
    for theta in ([1.0, 0.5], [2.5, -0.3], [0.0, 3.0]):
        theta = np.array(theta)
        tau = math.exp(theta[0])
        Qp = np.asarray(prob.Qp(jnp.asarray(theta)))
        cov = model.A.toarray() @ np.linalg.solve(Qp, model.A.toarray().T) + np.eye(model.m) / tau
        exact = multivariate_normal(model.offset, cov).logpdf(model.y)
        exact += sum(float(t.prior.logpdf(theta[i])) for i, t in enumerate(model.thetas))
        assert float(prob.log_posterior(jnp.asarray(theta))) == pytest.approx(exact, rel=1e-10, abs=1e-9)


def _numpy_laplace(model, prob, theta):
    """log π̃(θ|y) with x = Z u on null(C): Newton in u, dense log-determinants, no kriging."""
    Z = null_space(model.C) if model.C.shape[0] else np.eye(model.N)
    Qp = np.asarray(prob.Qp(jnp.asarray(theta)))
    lik = lambda eta: np.asarray(prob.loglik_terms(jnp.asarray(eta), jnp.asarray(theta)))
    d1f = jax.grad(lambda e: jnp.sum(prob.loglik_terms(e, jnp.asarray(theta))))
    u = np.zeros(Z.shape[1])
    for _ in range(100):
        x = Z @ u
        eta = model.A.toarray() @ x + model.offset
        d1 = np.asarray(d1f(jnp.asarray(eta)))
        w = -np.asarray(jax.jacfwd(d1f)(jnp.asarray(eta))).diagonal()
        H = Z.T @ (Qp + model.A.toarray().T @ (w[:, None] * model.A.toarray())) @ Z
        grad = Z.T @ (model.A.toarray().T @ d1 - Qp @ x)
        step = np.linalg.solve(H, grad)
        u = u + step
        if np.max(np.abs(step)) < 1e-13:
            break
    x = Z @ u
    eta = model.A.toarray() @ x + model.offset
    w = -np.asarray(jax.jacfwd(d1f)(jnp.asarray(eta))).diagonal()
    Hc = Z.T @ (Qp + model.A.toarray().T @ (w[:, None] * model.A.toarray())) @ Z
    k = model.C.shape[0]
    # prior on the constrained subspace: generalised log-det of each component + fixed effects
    logprior_norm = 0.0
    for comp in model.components:
        s = comp.structure
        sl = slice(comp.offset, comp.offset + comp.n)
        if s.rank_def == 0 and s.constraints.shape[0]:       # proper, constrained: density on null(C)
            Zc = null_space(s.constraints)
            logprior_norm += 0.5 * np.linalg.slogdet(Zc.T @ Qp[sl, sl] @ Zc)[1]
            logprior_norm -= 0.5 * Zc.shape[1] * math.log(2 * math.pi)
            continue
        ev = np.linalg.eigvalsh(Qp[sl, sl])[s.rank_def:]
        # the model declares the constant log|K|* it counts (R-INLA drops it for random walks)
        ev_K = np.linalg.eigvalsh(s.matrices[0].toarray())[s.rank_def:]
        logprior_norm += 0.5 * (np.sum(np.log(ev)) - np.sum(np.log(ev_K)) + s.logdet_star)
        logprior_norm -= 0.5 * (s.n - s.rank_def) * math.log(2 * math.pi)
    fp = model.fixed_prec[model.fixed_prec > 0]
    logprior_norm += 0.5 * np.sum(np.log(fp / (2 * math.pi)))
    value = (sum(float(t.prior.logpdf(theta[i])) for i, t in enumerate(model.thetas))
             + lik(eta).sum() - 0.5 * x @ Qp @ x + logprior_norm
             - 0.5 * np.linalg.slogdet(Hc)[1] + 0.5 * (model.N - k) * math.log(2 * math.pi))
    return x, value


@pytest.mark.parametrize("family,response,extra,iid_constr", [
    ("poisson", "y_pois", {}, "FALSE"),
    ("binomial", "y_bin", {"Ntrials": "n"}, "FALSE"),
    ("gaussian", "y_gauss", {}, "FALSE"),
    ("poisson", "y_pois", {}, "TRUE"),
])
def test_mode_and_objective_match_null_space_numpy(family, response, extra, iid_constr):
    prob, model = problem(f'{response} ~ 1 + x + f(g, model = "iid", constr = {iid_constr}) + f(t, model = "rw1")',
                          family, control_fixed=PROPER, **extra)
    rng = np.random.default_rng(1)
    for _ in range(2):
        theta = np.array([t.initial for t in model.thetas]) + rng.normal(scale=0.7, size=model.d) - 2.0
        x_np, value_np = _numpy_laplace(model, prob, theta)
        x = np.asarray(prob.mode(jnp.asarray(theta)))
        np.testing.assert_allclose(x, x_np, rtol=1e-8, atol=1e-9)
        assert abs(model.C @ x).max() < 1e-10
        assert float(prob.log_posterior(jnp.asarray(theta))) == pytest.approx(value_np, rel=1e-10, abs=1e-8)


@pytest.mark.parametrize("family,response,extra", [
    ("gaussian", "y_gauss", {}),
    ("poisson", "y_pois", {}),
    ("binomial", "y_bin", {"Ntrials": "n"}),
])
def test_ad_gradient_matches_central_differences(family, response, extra):
    prob, model = problem(f'{response} ~ 1 + x + f(g, model = "iid") + f(t, model = "rw2")', family, **extra)
    f = jax.jit(lambda th: -prob.log_posterior(th))
    grad = jax.jit(jax.grad(lambda th: -prob.log_posterior(th)))
    rng = np.random.default_rng(2)
    for _ in range(2):
        theta = np.array([t.initial for t in model.thetas]) + rng.normal(scale=0.5, size=model.d) - 1.5
        g = np.asarray(grad(jnp.asarray(theta)))
        h = 1e-5
        fd = np.array([(float(f(jnp.asarray(theta + h * e))) - float(f(jnp.asarray(theta - h * e)))) / (2 * h)
                       for e in np.eye(model.d)])
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * np.max(np.abs(fd)))


def test_gradient_does_not_differentiate_through_newton():
    """The VJP of the mode is the implicit-function one: it matches FD of the mode itself."""
    prob, model = problem('y_pois ~ 1 + x + f(g, model = "iid") + f(t, model = "rw1")', "poisson")
    theta = np.array([1.0, 2.0])
    v = np.random.default_rng(3).normal(size=model.N)
    vjp = jax.grad(lambda th: prob.mode(th) @ jnp.asarray(v))(jnp.asarray(theta))
    h = 1e-6
    fd = [(float(prob.mode(jnp.asarray(theta + h * e)) @ v) - float(prob.mode(jnp.asarray(theta - h * e)) @ v))
          / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(np.asarray(vjp), fd, rtol=1e-6)


@pytest.mark.parametrize("constr", ["FALSE", "TRUE"])
def test_extraconstr_gaussian_equals_exact_conditional_marginal_likelihood(constr):
    """x ~ N(0, Q⁻¹) | A_c x = e is Gaussian (singular); y is then exactly Gaussian."""
    df = make_data()
    k = 8
    Ac = np.zeros((1, k))
    Ac[0, :3] = [1.0, -1.0, 0.5]
    model = compile_model(parse_formula(f'y_gauss ~ 1 + x + f(g, model = "iid", constr = {constr}, '
                                        f'extraconstr = list(A = Ac, e = c(0.7)))'),
                          df, "gaussian", control_fixed=PROPER, objects={"Ac": Ac})
    prob = LaplaceProblem(model)
    theta = np.array([1.2, 0.4])
    x = np.asarray(prob.mode(jnp.asarray(theta)))
    np.testing.assert_allclose(model.C @ x, model.e, atol=1e-10)
    Qp = np.asarray(prob.Qp(jnp.asarray(theta)))
    Sigma = np.linalg.inv(Qp)
    C, e = model.C, model.e
    S = C @ Sigma @ C.T
    m_c = Sigma @ C.T @ np.linalg.solve(S, e)
    Sigma_c = Sigma - Sigma @ C.T @ np.linalg.solve(S, C @ Sigma)
    cov = model.A.toarray() @ Sigma_c @ model.A.toarray().T + np.eye(model.m) / np.exp(theta[0])
    exact = multivariate_normal(model.A.toarray() @ m_c + model.offset, cov).logpdf(model.y)
    exact += sum(float(t.prior.logpdf(theta[i])) for i, t in enumerate(model.thetas))
    assert float(prob.log_posterior(jnp.asarray(theta))) == pytest.approx(exact, rel=1e-9, abs=1e-8)


def test_newton_needs_few_steps_from_a_nearby_mode():
    """The quadratic-convergence prediction stops the inner iteration without a confirming step:
    from the mode at a θ 0.01 away, two Newton steps, and the same mode as from the feasible start."""
    prob, model = problem('y_pois ~ 1 + x + f(g, model = "iid") + f(t, model = "rw2")', "poisson")
    newton = jax.jit(lambda th, x0: prob.newton(th, x0))
    for theta in ([0.0, 0.0], [4.0, 8.0], [-4.0, 14.0]):
        theta = jnp.asarray(theta)
        x_near, _, _ = newton(theta + 0.01, prob.x_feasible)
        x, it, converged = newton(theta, x_near)
        x_far, _, _ = newton(theta, prob.x_feasible)
        assert bool(converged) and int(it) <= 2
        np.testing.assert_allclose(np.asarray(x), np.asarray(x_far), rtol=1e-9, atol=1e-9)


class _NoisySolve(LaplaceProblem):
    """Solves carrying relative rounding noise of 1e-9 that changes with every right-hand side:
    an ill-conditioned Q_c's floor, far above the stopping tolerance."""

    def factor_qc(self, w, theta, Qp):
        base = super().factor_qc(w, theta, Qp)

        class Noisy:
            logdet = base.logdet

            def solve(self, b):
                x = base.solve(b)
                return x * (1.0 + 1e-9 * jnp.sin(1e13 * b))

        return Noisy()


def test_newton_stops_at_the_rounding_floor_not_at_its_cap():
    from adelia.runtime.laplace import NEWTON_MAX_ITER

    df = make_data()
    model = compile_model(parse_formula('y_pois ~ 1 + x + f(g, model = "iid")'), df, "poisson")
    prob = _NoisySolve(model)
    x, it, converged = jax.jit(lambda th: prob.newton(th))(jnp.asarray([1.0]))
    assert bool(converged) and int(it) < 15 < NEWTON_MAX_ITER
    exact = LaplaceProblem(model).mode(jnp.asarray([1.0]))
    np.testing.assert_allclose(np.asarray(x), np.asarray(exact), rtol=1e-7, atol=1e-8)


class _FailingSolve(LaplaceProblem):
    """Solves that return NaN, as the sparse path's do where Q_c is not positive definite."""

    def factor_qc(self, w, theta, Qp):
        base = super().factor_qc(w, theta, Qp)

        class Failing:
            logdet = base.logdet

            def solve(self, b):
                return jnp.full_like(base.solve(b), jnp.nan)

        return Failing()


def test_newton_stops_at_a_non_finite_step_and_says_so():
    df = make_data()
    model = compile_model(parse_formula('y_pois ~ 1 + x + f(g, model = "iid")'), df, "poisson")
    x, it, converged = jax.jit(lambda th: _FailingSolve(model).newton(th))(jnp.asarray([1.0]))
    assert int(it) == 1 and not bool(converged)
    assert not np.all(np.isfinite(np.asarray(x)))


def test_gaussian_mode_is_one_newton_step_from_any_start():
    """Gaussian observations make g quadratic in x: one step from any start (feasible or not)
    lands on the constrained mode the damped iteration converges to."""
    formula = 'y_gauss ~ 1 + x + f(g, model = "iid", constr = TRUE) + f(t, model = "rw1")'
    prob, model = problem(formula, "gaussian")
    iterative = LaplaceProblem(model)
    iterative.quadratic = False
    assert prob.quadratic and not problem(formula.replace("y_gauss", "y_pois"), "poisson")[0].quadratic
    rng = np.random.default_rng(4)
    for theta in ([0.0, 0.0, 0.0], [3.0, -2.0, 5.0]):
        theta = jnp.asarray(theta)
        x_ref, _, _ = jax.jit(lambda th: iterative.newton(th))(theta)
        x0 = jnp.asarray(rng.normal(scale=3.0, size=model.N))
        x, it, converged = jax.jit(lambda th, x0: prob.newton(th, x0))(theta, x0)
        assert int(it) == 1 and bool(converged)
        np.testing.assert_allclose(np.asarray(x), np.asarray(x_ref), rtol=1e-9, atol=1e-10)
        assert abs(model.C @ np.asarray(x)).max() < 1e-10
