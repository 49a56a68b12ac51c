"""Likelihood families, one small module per group, registered in :data:`FAMILIES` by name.

=====================  =========================  ===============================  ==================
family                 mean parameter μ (link)    hyperparameters (internal θ)     module
=====================  =========================  ===============================  ==================
gaussian               η (identity)               log precision                    classic
poisson                E·exp(η) (log)             —                                classic
binomial               p (logit, probit, cloglog) —  (Ntrials)                      classic
nbinomial              E·exp(η) (log)             log size                         nbinomial
gamma                  exp(η) (log)               log precision φ                  continuous
beta                   p (logit, probit, cloglog) log precision φ                  continuous
t                      η (identity)               log τ, log(ν − 2)                continuous
lognormal(surv)        η = E log y (identity)     log precision                    continuous/survival
exponential(surv)      λ = exp(η) (log)           —                                survival
weibull(surv)          λ = exp(η) (log)           10·log α                         survival
betabinomial           p (logit, probit, cloglog) logit ρ  (Ntrials)               discrete
zeroinflatedpoisson0/1 E·exp(η) (log)             logit p                          discrete
zeroinflatednbinomial0/1 E·exp(η) (log)           log size, logit p                discrete
=====================  =========================  ===============================  ==================
"""

from adelia.compiler.families.base import FAMILIES, LINKS, Family, HyperSpec, Issue, Link

# each import registers its families
from adelia.compiler.families import classic, nbinomial, continuous, discrete, survival  # noqa: E402,F401

__all__ = ["Family", "FAMILIES", "HyperSpec", "Issue", "Link", "LINKS"]
