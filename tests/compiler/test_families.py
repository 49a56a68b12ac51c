"""Likelihood families: one conformance table.

Each case gives a family (and link), a way to draw its hyperparameters θ and responses, and the
scipy.stats distribution it must equal. Checked per case: the log-density against scipy.stats;
the first and second η-derivatives (AD, what the Laplace approximation uses) against central
differences of the scipy log-density; the mean/variance map against scipy's moments (or sums
over the support); posterior-predictive draws against those moments. Then data checks (located
DataErrors), links, the survival response and fixed hyperparameters through the compiler.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

import adelia
import adelia.config  # noqa: F401  (float64)
from adelia.compiler.likelihoods import FAMILIES
from adelia.errors import DataError, ModelError, UnknownNameError

LINKS = {"identity": lambda e: e, "log": np.exp, "logit": expit, "probit": stats.norm.cdf,
         "cloglog": lambda e: -np.expm1(-np.exp(e))}


def _zi(base, p, zero_type):
    """scipy-style frozen object for a zero-inflated count: logpmf, mean, var."""
    class ZI:
        def logpmf(self, y):
            y = np.asarray(y)
            if zero_type == 0:
                pos = np.log1p(-p) + base.logpmf(y) - np.log(base.sf(0))
                return np.where(y == 0, np.log(p), pos)
            return np.where(y == 0, np.log(p + (1 - p) * base.pmf(0)), np.log1p(-p) + base.logpmf(y))

        def _moment(self, k):
            ks = np.arange(0, 2000)[:, None]
            return np.sum(ks ** k * np.exp(self.logpmf(ks)), axis=0)

        def mean(self):
            return self._moment(1)

        def var(self):
            return self._moment(2) - self._moment(1) ** 2

        def rvs(self, size, random_state):
            out = base.rvs(size=size, random_state=random_state)
            if zero_type == 0:
                while np.any(out == 0):
                    z = out == 0
                    out[z] = base.rvs(size=size, random_state=random_state)[z]
            return np.where(random_state.random(size) < p, 0, out)
    return ZI()


class Surv:
    """A censored continuous law: log f for events, log S for censored rows."""

    def __init__(self, frozen, event):
        self.frozen, self.event = frozen, event

    def logpdf(self, y):
        return np.where(self.event > 0.5, self.frozen.logpdf(y), self.frozen.logsf(y))

    def mean(self):
        return self.frozen.mean()

    def var(self):
        return self.frozen.var()


# case: (family, link, θ draw, extra draw, scipy law of (μ = link⁻¹ η, θ, extra))
def _theta(*ranges):
    return lambda rng: np.array([rng.uniform(a, b) for a, b in ranges])


CASES = {
    "gaussian": ("gaussian", "identity", _theta((-1, 2)), lambda rng, m: {"scale": rng.uniform(0.5, 2, m)},
                 lambda mu, th, ex: stats.norm(mu, 1 / np.sqrt(np.exp(th[0]) * ex["scale"]))),
    "poisson": ("poisson", "log", _theta(), lambda rng, m: {"E": rng.uniform(0.5, 2, m)},
                lambda mu, th, ex: stats.poisson(ex["E"] * mu)),
    **{f"binomial-{lk}": ("binomial", lk, _theta(), lambda rng, m: {"Ntrials": rng.integers(1, 30, m).astype(float)},
                          lambda mu, th, ex: stats.binom(ex["Ntrials"], mu))
       for lk in ("logit", "probit", "cloglog")},
    "nbinomial": ("nbinomial", "log", _theta((-0.5, 3)), lambda rng, m: {"E": rng.uniform(0.5, 2, m)},
                  lambda mu, th, ex: stats.nbinom(np.exp(th[0]), np.exp(th[0]) / (np.exp(th[0]) + ex["E"] * mu))),
    "gamma": ("gamma", "log", _theta((-0.5, 3)), lambda rng, m: {"scale": rng.uniform(0.5, 2, m)},
              lambda mu, th, ex: stats.gamma(np.exp(th[0]) * ex["scale"], scale=mu / (np.exp(th[0]) * ex["scale"]))),
    **{f"beta-{lk}": ("beta", lk, _theta((0, 4)), lambda rng, m: {"scale": rng.uniform(0.5, 2, m)},
                      lambda mu, th, ex: stats.beta(mu * np.exp(th[0]) * ex["scale"],
                                                    (1 - mu) * np.exp(th[0]) * ex["scale"]))
       for lk in ("logit", "probit")},
    "betabinomial": ("betabinomial", "logit", _theta((-3, 0)),
                     lambda rng, m: {"Ntrials": rng.integers(1, 30, m).astype(float)},
                     lambda mu, th, ex: stats.betabinom(ex["Ntrials"], mu * np.exp(-th[0]), (1 - mu) * np.exp(-th[0]))),
    "t": ("t", "identity", _theta((-1, 2), (-1, 3)), lambda rng, m: {"scale": rng.uniform(0.5, 2, m)},
          lambda mu, th, ex: stats.t(2 + np.exp(th[1]), mu, np.sqrt(np.exp(th[1]) / (2 + np.exp(th[1]))
                                                                     / (np.exp(th[0]) * ex["scale"])))),
    "lognormal": ("lognormal", "identity", _theta((-1, 2)), lambda rng, m: {},
                  lambda mu, th, ex: stats.lognorm(np.exp(-th[0] / 2), scale=np.exp(mu))),
    "exponential": ("exponential", "log", _theta(), lambda rng, m: {},
                    lambda mu, th, ex: stats.expon(scale=1 / mu)),
    "weibull": ("weibull", "log", _theta((-10, 10)), lambda rng, m: {},
                lambda mu, th, ex: stats.weibull_min(np.exp(0.1 * th[0]), scale=mu ** (-1 / np.exp(0.1 * th[0])))),
    "exponentialsurv": ("exponentialsurv", "log", _theta(), lambda rng, m: {"event": rng.integers(0, 2, m) * 1.0},
                        lambda mu, th, ex: Surv(stats.expon(scale=1 / mu), ex["event"])),
    "weibullsurv": ("weibullsurv", "log", _theta((-10, 10)), lambda rng, m: {"event": rng.integers(0, 2, m) * 1.0},
                    lambda mu, th, ex: Surv(stats.weibull_min(np.exp(0.1 * th[0]),
                                                              scale=mu ** (-1 / np.exp(0.1 * th[0]))), ex["event"])),
    "lognormalsurv": ("lognormalsurv", "identity", _theta((-1, 2)),
                      lambda rng, m: {"event": rng.integers(0, 2, m) * 1.0},
                      lambda mu, th, ex: Surv(stats.lognorm(np.exp(-th[0] / 2), scale=np.exp(mu)), ex["event"])),
    **{f"zeroinflatedpoisson{k}": (f"zeroinflatedpoisson{k}", "log", _theta((-2, 1)),
                                   lambda rng, m: {"E": rng.uniform(0.5, 2, m)},
                                   (lambda k: lambda mu, th, ex: _zi(stats.poisson(ex["E"] * mu), expit(th[0]), k))(k))
       for k in (0, 1)},
    **{f"zeroinflatednbinomial{k}": (f"zeroinflatednbinomial{k}", "log", _theta((0, 3), (-2, 1)),
                                     lambda rng, m: {"E": rng.uniform(0.5, 2, m)},
                                     (lambda k: lambda mu, th, ex: _zi(
                                         stats.nbinom(np.exp(th[0]), np.exp(th[0]) / (np.exp(th[0]) + ex["E"] * mu)),
                                         expit(th[1]), k))(k))
       for k in (0, 1)},
}

DISCRETE = {"poisson", "binomial", "nbinomial", "betabinomial", "zeroinflatedpoisson0", "zeroinflatedpoisson1",
            "zeroinflatednbinomial0", "zeroinflatednbinomial1"}


def _setup(case, seed=0, m=40):
    name, link, th_draw, ex_draw, law = CASES[case]
    rng = np.random.default_rng(seed)
    fam = FAMILIES.get(name).with_link(link)
    theta = th_draw(rng)
    eta = rng.uniform(-1.5, 1.5, m)
    extra = ex_draw(rng, m)
    mu = LINKS[link](eta)
    ref = law(mu, theta, extra)
    base = ref.frozen if isinstance(ref, Surv) else ref
    y = np.asarray(base.rvs(size=m, random_state=rng), dtype=float)
    if name in ("beta", "exponentialsurv", "weibullsurv", "lognormalsurv", "gamma", "exponential", "weibull",
                "lognormal"):
        y = np.clip(y, 1e-6, None if name != "beta" else 1 - 1e-6)
    return fam, link, theta, eta, extra, y, law


def _ref_logpdf(law, fam, link, eta, theta, extra, y):
    ref = law(LINKS[link](eta), theta, extra)
    return ref.logpmf(y) if fam.name in DISCRETE else ref.logpdf(y)


def test_table_covers_every_family():
    assert {c[0] for c in CASES.values()} == set(FAMILIES.names())


@pytest.mark.parametrize("case", list(CASES))
def test_logdensity_matches_scipy(case):
    for seed in range(3):
        fam, link, theta, eta, extra, y, law = _setup(case, seed)
        ours = np.asarray(fam.loglik(jnp.asarray(y), jnp.asarray(eta), jnp.asarray(theta),
                                     {k: jnp.asarray(v) for k, v in extra.items()}))
        np.testing.assert_allclose(ours, _ref_logpdf(law, fam, link, eta, theta, extra, y), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("case", list(CASES))
def test_eta_derivatives_match_finite_differences(case):
    fam, link, theta, eta, extra, y, law = _setup(case, 7, m=12)
    ex = {k: jnp.asarray(v) for k, v in extra.items()}
    f = lambda e: jnp.sum(fam.loglik(jnp.asarray(y), e, jnp.asarray(theta), ex))
    d1, d2 = jax.jvp(jax.grad(f), (jnp.asarray(eta),), (jnp.ones_like(jnp.asarray(eta)),))
    ref = lambda e: _ref_logpdf(law, fam, link, e, theta, extra, y)
    h = 1e-4
    fd1 = (ref(eta + h) - ref(eta - h)) / (2 * h)
    fd2 = (ref(eta + h) - 2 * ref(eta) + ref(eta - h)) / h ** 2
    np.testing.assert_allclose(d1, fd1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d2, fd2, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("case", list(CASES))
def test_mean_variance_and_draws(case):
    fam, link, theta, eta, extra, y, law = _setup(case, 3, m=6)
    eta = eta * 0.5
    ref = law(LINKS[link](eta), theta, extra)
    ex = {k: jnp.asarray(v) for k, v in extra.items() if k != "event"}
    mean, var = (np.asarray(v) for v in fam.mean_variance(jnp.asarray(eta), jnp.asarray(theta), ex))
    np.testing.assert_allclose(mean, ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(var, ref.var(), rtol=1e-6)
    S = 4000
    keys = jax.random.split(jax.random.PRNGKey(1), S)
    draws = np.asarray(jax.jit(jax.vmap(lambda k: fam.sample(k, jnp.asarray(eta), jnp.asarray(theta), ex)))(keys))
    assert draws.shape == (S, len(eta))
    # the sample mean within 5 standard errors (heavy tails: t and lognormal have finite variance here)
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * np.sqrt(var / S))


def test_unobserved_rows_stay_finite():
    """The runtime hands unobserved rows as y = 0 (masked later): no NaN from any family."""
    for case in CASES:
        fam, link, theta, eta, extra, y, law = _setup(case, 1, m=5)
        ex = {k: jnp.asarray(v) for k, v in extra.items()}
        val, grad = jax.value_and_grad(lambda e: jnp.sum(fam.loglik(jnp.zeros(5), e, jnp.asarray(theta), ex)))(
            jnp.asarray(eta))
        assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(grad))), case


def test_negative_binomials_reach_the_poisson_limit():
    """A long posterior tail of the log size reaches n = e^30 and beyond, where log Γ differences
    lose all precision: the (zero-inflated) negative binomial must tend to the (zero-inflated)
    Poisson there, with finite η-derivatives, instead of turning into NaN."""
    y = jnp.asarray([0.0, 1.0, 4.0, 12.0, 0.0])
    eta = jnp.asarray([0.3, -1.0, 1.2, 2.4, 0.1])
    for nb, poisson, extra_theta in (("nbinomial", "poisson", ()),
                                     ("zeroinflatednbinomial0", "zeroinflatedpoisson0", (-1.3,)),
                                     ("zeroinflatednbinomial1", "zeroinflatedpoisson1", (-1.3,))):
        limit = np.asarray(FAMILIES.get(poisson).loglik(y, eta, jnp.asarray(extra_theta or [0.0]), {}))
        for log_n in (25.0, 40.0, 80.0):
            theta = jnp.asarray((log_n, *extra_theta))
            val = np.asarray(FAMILIES.get(nb).loglik(y, eta, theta, {}))
            np.testing.assert_allclose(val, limit, atol=1e-9, err_msg=f"{nb} at log size {log_n}")
            g = jax.grad(lambda th: jnp.sum(FAMILIES.get(nb).loglik(y, eta, th, {})))(theta)
            h = jax.hessian(lambda e: jnp.sum(FAMILIES.get(nb).loglik(y, e, theta, {})))(eta)
            assert np.all(np.isfinite(np.asarray(g))) and np.all(np.isfinite(np.asarray(h))), (nb, log_n)


# ---- through the compiler: data checks, links, survival response, fixed hyperparameters ----

def _frame(m=20, seed=0, **cols):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=m), **cols})


BAD_DATA = [
    ("gamma", {"y": [1.0, 2.0, -1.0, 3.0]}, {}, "y ~ 1", r"response must be positive", [2]),
    ("beta", {"y": [0.2, 1.0, 0.5, 0.0]}, {}, "y ~ 1", r"strictly between 0 and 1", [1, 3]),
    ("nbinomial", {"y": [1.0, 2.5, 3.0, 0.0]}, {}, "y ~ 1", r"non-negative integers", [1]),
    ("betabinomial", {"y": [1.0, 5.0, 3.0, 0.0], "n": [2, 4, 3, 1]}, {"Ntrials": "n"}, "y ~ 1",
     r"exceeds Ntrials", [1]),
    ("weibullsurv", {"t": [1.0, 2.0, 3.0, 4.0], "ev": [1, 0, 2, 1]}, {}, "inla.surv(t, ev) ~ 1",
     r"event flags must be 1 \(observed\) or 0", [2]),
    ("exponentialsurv", {"t": [1.0, 0.0, 3.0, 4.0], "ev": [1, 0, 1, 1]}, {}, "inla.surv(t, ev) ~ 1",
     r"times must be positive", [1]),
    ("t", {"y": [1.0, 2.0, 3.0, 4.0], "s": [1.0, 0.0, 1.0, 1.0]}, {"scale": "s"}, "y ~ 1",
     r"scale must be positive", [1]),
    ("zeroinflatedpoisson0", {"y": [1.0, 2.0, 3.0, 4.0], "e": [1.0, 1.0, -1.0, 1.0]}, {"E": "e"}, "y ~ 1",
     r"E \(exposure\) must be positive", [2]),
]


@pytest.mark.parametrize("family,cols,kw,formula,message,rows", BAD_DATA, ids=[b[0] for b in BAD_DATA])
def test_data_checks_name_the_rows(family, cols, kw, formula, message, rows):
    data = pd.DataFrame(cols)
    with pytest.raises(DataError, match=message) as err:
        adelia.compile_formula(formula, data, family, **kw)
    assert f"first {rows}" in str(err.value)


def test_response_error_points_at_the_response():
    with pytest.raises(DataError) as err:
        adelia.compile_formula("y ~ 1", pd.DataFrame({"y": [1.0, -2.0]}), "gamma")
    assert err.value.span is not None and "response y" in str(err.value)


def test_unknown_link_lists_the_supported_ones():
    data = pd.DataFrame({"y": [1, 0, 1], "n": [1, 1, 1]})
    with pytest.raises(ModelError, match="has no link 'logt'") as err:
        adelia.compile_formula("y ~ 1", data, "binomial", Ntrials="n", control_family={"link": "logt"})
    assert "logit, probit, cloglog" in str(err.value)
    with pytest.raises(ModelError, match="poisson family has no link 'probit'"):
        adelia.compile_formula("y ~ 1", data, "poisson", control_family={"link": "probit"})


def test_link_changes_the_compiled_likelihood():
    data = pd.DataFrame({"y": [1, 0, 3], "n": [3, 2, 4]})
    logit = adelia.compile_formula("y ~ 1", data, "binomial", Ntrials="n")
    probit = adelia.compile_formula("y ~ 1", data, "binomial", Ntrials="n", control_family={"link": "probit"})
    same = adelia.compile_formula("y ~ 1", data, "binomial", Ntrials="n", control_family={"link": "default"})
    assert probit.family.link_name == "probit" and same.family.link_name == "logit"
    assert probit.problem.families[0].name != logit.problem.families[0].name   # the compilation cache tells them apart
    eta = jnp.asarray([0.3, -0.2, 0.1])
    y, ex = jnp.asarray(data.y, float), {"Ntrials": jnp.asarray(data.n, float)}
    np.testing.assert_allclose(probit.problem.families[0].loglik(y, eta, jnp.zeros(0), ex),
                               stats.binom(data.n, stats.norm.cdf(eta)).logpmf(data.y), rtol=1e-10)


def test_survival_response_and_its_errors():
    data = pd.DataFrame({"t": [1.0, 2.0, 0.5], "ev": [1, 0, 1], "x": [0.1, 0.2, 0.3]})
    model = adelia.compile_formula("inla.surv(t, ev) ~ 1 + x", data, "weibullsurv")
    np.testing.assert_array_equal(model.extra["event"], [1, 0, 1])
    np.testing.assert_array_equal(model.y, data.t)
    assert [t.label for t in model.thetas] == ["alpha parameter for weibullsurv"]
    np.testing.assert_array_equal(adelia.compile_formula("surv(t) ~ 1", data, "exponentialsurv").extra["event"],
                                  [1, 1, 1])       # no event column: every time observed
    with pytest.raises(ModelError, match="does not take a survival response") as err:
        adelia.compile_formula("inla.surv(t, ev) ~ 1", data, "gamma")
    assert "weibullsurv" in str(err.value)


def test_labels_and_defaults_follow_rinla():
    expect = {
        "nbinomial": [("size for the nbinomial observations (1/overdispersion)", "pc.mgamma(7)", math.log(10))],
        "gamma": [("Precision-parameter for the Gamma observations", "loggamma(1, 0.01)", math.log(100))],
        "beta": [("precision parameter for the beta observations", "loggamma(1, 0.1)", math.log(10))],
        "betabinomial": [("overdispersion for the betabinomial observations", "normal(0, 0.4)", 0.0)],
        "t": [("precision for the student-t observations", "loggamma(1, 5e-05)", 0.0),
              ("degrees of freedom for student-t", "pc.dof(15, 0.5)", 5.0)],
        "zeroinflatedpoisson1": [("zero-probability parameter for zero-inflated poisson_1", "normal(-1, 0.2)", -1.0)],
        "zeroinflatednbinomial0": [("size for nbinomial_0 zero-inflated observations", "pc.mgamma(7)", math.log(10)),
                                   ("zero-probability parameter for zero-inflated nbinomial_0", "normal(-1, 0.2)", -1.0)],
        "weibull": [("alpha parameter for weibull", "pc.alphaw(5)", -2.0)],
    }
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0], "n": [3, 3, 3]})
    for fam, rows in expect.items():
        y = "y" if fam != "beta" else "I"
        d = data.assign(I=[0.2, 0.5, 0.7])
        model = adelia.compile_formula(f"{y} ~ 1", d, fam, **({"Ntrials": "n"} if fam == "betabinomial" else {}))
        got = [(t.label, t.prior.describe(), t.initial) for t in model.thetas]
        assert got == [(a, b, pytest.approx(c)) for a, b, c in rows], fam


def test_fixed_hyperparameter_is_not_estimated():
    rng = np.random.default_rng(2)
    x = rng.normal(size=60)
    y = rng.negative_binomial(4, 4 / (4 + np.exp(0.5 + 0.5 * x)))
    model = adelia.compile_formula("y ~ 1 + x", pd.DataFrame({"y": y, "x": x}), "nbinomial",
                                   control_family={"hyper": {"size": {"initial": math.log(4), "fixed": True}}})
    assert model.thetas[0].fixed and model.thetas[0].initial == pytest.approx(math.log(4))
    fit = adelia.fit("y ~ 1 + x", pd.DataFrame({"y": y, "x": x}), family="nbinomial", n_samples=20, seed=1,
                     control_family={"hyper": {"size": {"initial": math.log(4), "fixed": True}}})
    table = adelia.summary(fit)
    assert list(table.index) == ["(Intercept)", "x"]          # no row for the fixed size
    assert table.loc["x", "0.025quant"] < 0.5 < table.loc["x", "0.975quant"]
    model = adelia.compile_formula("y ~ 1 + x", pd.DataFrame({"y": y, "x": x}), "zeroinflatednbinomial1",
                                   control_family={"hyper": {"prob": {"prior": "logitbeta", "param": [1, 3]}}})
    assert model.thetas[1].prior.describe() == "logitbeta(1, 3)"


def test_unknown_family_suggests():
    with pytest.raises(UnknownNameError, match="zeroinflatedpoisson"):
        adelia.compile_formula("y ~ 1", pd.DataFrame({"y": [1, 2]}), "zeroinflatedpoison1")
