"""Each new likelihood family end to end: adelia.fit on seeded simulated data (intercept + one
covariate) covers the true fixed effects and family hyperparameters with its 95 % intervals, and
agrees with NUTS (numpyro) on the same model — the same log-likelihood, R-INLA's default priors
(intercept flat, slope N(0, precision 0.001), the family's default hyperprior on its internal
scale): posterior means within 0.1 posterior sd and sds within 10 %, for the fixed effects and
for the hyperparameters on their internal scale (log size, log(ν − 2), logit p, ...: on the
natural scale a size or ν has a tail towards ∞ whose NUTS sd is dominated by a few draws).
The chain is long (20,000 draws, a few seconds each) because the zero-inflated negative
binomial's log size has an exponential tail towards the Poisson limit: with 5,000 draws its NUTS
sd varied by ±10 % between seeds.

The negative binomial uses m = 400: with m = 200 (seed 11) the 95 % interval of the size was
(3.17, 14.25) for a true 3 — the default pc.mgamma(7) prior pulls towards the Poisson (size ∞).

Marked slow: one INLA fit and one 21,000-iteration NUTS chain per family, about 60 s for the
file when nothing is compiled yet.
"""

import functools

import numpy as np
import pandas as pd
import pytest

import adelia

pytestmark = pytest.mark.slow

M = 200
B0, B1 = 0.5, 0.8


def _sim(rng, family):
    """(data, formula, fit keywords, true natural-scale hyperparameters by label)."""
    m = 2 * M if family == "nbinomial" else M
    x = rng.normal(size=m)
    eta = B0 + B1 * x
    mu = np.exp(eta)
    p = 1 / (1 + np.exp(-eta))
    data = {"x": x}
    kw, truth, formula = {}, {}, "y ~ 1 + x"
    if family == "nbinomial":
        data["y"] = rng.negative_binomial(3.0, 3.0 / (3.0 + mu))
        truth["size for the nbinomial observations (1/overdispersion)"] = 3.0
    elif family == "gamma":
        data["y"] = rng.gamma(4.0, mu / 4.0)
        truth["Precision-parameter for the Gamma observations"] = 4.0
    elif family == "beta":
        data["y"] = rng.beta(p * 20, (1 - p) * 20)
        truth["precision parameter for the beta observations"] = 20.0
    elif family == "betabinomial":
        n = rng.integers(5, 20, m)
        c = (1 - 0.2) / 0.2
        data["y"], data["n"] = rng.binomial(n, rng.beta(p * c, (1 - p) * c)), n
        kw["Ntrials"] = "n"
        truth["overdispersion for the betabinomial observations"] = 0.2
    elif family == "t":
        data["y"] = eta + rng.standard_t(5, m) * np.sqrt(3 / 5) / 2.0
        truth["precision for the student-t observations"] = 4.0
        truth["degrees of freedom for student-t"] = 5.0
    elif family == "lognormal":
        data["y"] = np.exp(eta + rng.normal(size=m) / 2.0)
        truth["Precision for the lognormal observations"] = 4.0
    elif family in ("exponentialsurv", "weibullsurv"):
        alpha = 1.0 if family == "exponentialsurv" else 1.5
        t = (rng.exponential(size=m) / mu) ** (1 / alpha)          # S(t) = exp(−λ t^α)
        c = rng.exponential(3.0, m)
        data["t"], data["ev"] = np.minimum(t, c), (t <= c).astype(float)
        formula = "inla.surv(t, ev) ~ 1 + x"
        if family == "weibullsurv":
            truth["alpha parameter for weibullsurv"] = alpha
    elif family.startswith("zeroinflated"):
        k = int(family[-1])
        nb = "nbinomial" in family
        draw = (lambda: rng.negative_binomial(3.0, 3.0 / (3.0 + mu))) if nb else (lambda: rng.poisson(mu))
        y = draw()
        if k == 0:
            while np.any(y == 0):
                y = np.where(y == 0, draw(), y)
        data["y"] = np.where(rng.random(m) < 0.3, 0, y)
        if nb:
            truth[f"size for nbinomial_{k} zero-inflated observations"] = 3.0
        truth[f"zero-probability parameter for zero-inflated {'nbinomial' if nb else 'poisson'}_{k}"] = 0.3
    return pd.DataFrame(data), formula, kw, truth


def _nuts(model, seed):
    """numpyro NUTS on the compiled model's own log-likelihood and priors (no latent field)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    prob = model.problem
    A = jnp.asarray(prob.A.toarray())
    y = jnp.asarray(prob.y)
    extra = {k: jnp.asarray(v) for k, v in prob.extra.items()}
    fam = prob.families[0]
    prec = jnp.asarray(prob.fixed_prec)
    thetas = prob.thetas

    def potential(params):
        beta, theta = params["beta"], params["theta"]
        ll = jnp.sum(fam.loglik(y, A @ beta + jnp.asarray(prob.offset), theta, extra))
        lp = -0.5 * jnp.sum(prec * beta ** 2) + sum(t.log_prior(theta[i]) for i, t in enumerate(thetas))
        return -(ll + lp)

    init = {"beta": jnp.zeros(A.shape[1]), "theta": jnp.asarray([t.initial for t in thetas], dtype=float)}
    mcmc = MCMC(NUTS(potential_fn=potential), num_warmup=1000, num_samples=20000, num_chains=1, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), init_params=init)
    s = mcmc.get_samples()
    draws = {name: np.asarray(s["beta"][:, j]) for j, name in enumerate(model.fixed.names)}
    for i, t in enumerate(thetas):
        draws[t.internal_label] = np.asarray(s["theta"][:, i])
    return draws


FAMILIES = ["nbinomial", "gamma", "beta", "betabinomial", "t", "lognormal", "exponentialsurv", "weibullsurv",
            "zeroinflatedpoisson0", "zeroinflatedpoisson1", "zeroinflatednbinomial0", "zeroinflatednbinomial1"]


@functools.lru_cache(maxsize=None)
def _fitted(family):
    seed = FAMILIES.index(family) + 11
    data, formula, kw, truth = _sim(np.random.default_rng(seed), family)
    fit = adelia.fit(formula, data, family=family, n_samples=50, seed=seed, **kw)
    return seed, data, formula, kw, truth, fit


@pytest.mark.parametrize("family", FAMILIES)
def test_recovery(family):
    *_, truth, fit = _fitted(family)
    s = adelia.summary(fit)
    for name, value in {"(Intercept)": B0, "x": B1, **truth}.items():
        lo, hi = s.loc[name, "0.025quant"], s.loc[name, "0.975quant"]
        assert lo < value < hi, f"{family}: {name} = {value} outside ({lo:.3f}, {hi:.3f})"


@pytest.mark.parametrize("family", FAMILIES)
def test_nuts_agreement(family, record_property):
    seed, data, formula, kw, truth, fit = _fitted(family)
    s = adelia.summary(fit)
    model = adelia.compile_formula(formula, data, family, **kw)
    draws = _nuts(model, seed)
    table = {name: (s.loc[name, "mean"], s.loc[name, "sd"]) for name in ("(Intercept)", "x")}
    if "internal_summary_hyperpar" in fit["inla"]:
        internal = fit["inla"]["internal_summary_hyperpar"]
        for name in internal["internal_hyperpar"].values:
            row = internal.sel(internal_hyperpar=name)
            table[str(name)] = (float(row.sel(stat="mean")), float(row.sel(stat="sd")))
    assert set(table) == set(draws)
    for name, d in draws.items():
        mean, sd = table[name]
        diff = (mean - d.mean()) / d.std()
        ratio = sd / d.std()
        record_property(f"{name}: mean diff/sd, sd ratio", f"{diff:+.3f}, {ratio:.3f}")
        print(f"{family:24s} {name[:40]:40s} inla {mean:.3f} ({sd:.3f}) nuts {d.mean():.3f} ({d.std():.3f}) "
              f"diff/sd {diff:+.3f} sd ratio {ratio:.3f}")
        assert abs(diff) < 0.1 and abs(ratio - 1) < 0.1, (family, name, diff, ratio)
