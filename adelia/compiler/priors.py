"""Hyperpriors, written as log-densities on the internal θ scale (log-Jacobian included).

R-INLA states priors on the internal scale (log precision, transformed correlation); each prior
here declares the internal scales it is defined for (``scales``), e.g. ``pc.prec`` is a prior on a
precision and so applies to θ = log τ. References: R-INLA ``inla.doc("loggamma")``,
``inla.doc("pc.prec")``; Simpson et al. (2017) for PC priors.

Internal scales (the θ a prior is written for):

=================  ====================================  ==========================================
scale              θ                                      priors
=================  ====================================  ==========================================
log_precision      log τ                                  loggamma, pc.prec
correlation        log((1 + ρ)/(1 − ρ))  (ρ = tanh(θ/2))  pc.cor0, pc.cor1
logit_mixing       logit φ (bym2's mixing parameter)      pc (Riebler et al. 2016)
log_range          log ρ_range (SPDE)                     pc.range
log_sd             log σ (SPDE marginal sd)               pc.sd (alias pc.sigma)
logit_probability  logit p (zero-inflation, betabinomial  logitbeta
                   overdispersion ρ)
log_size           log n (negative binomial size)         pc.mgamma, loggamma
log_dof            log(ν − 2) (Student-t dof)             pc.dof
weibull_alpha      log(α)/0.1 (Weibull shape)             pc.alphaw
log_dispersion     log a (a: variance of a Gamma(1/a,     pc.gamma
                   1/a) mixing variable)
any                —                                      normal / gaussian, flat
=================  ====================================  ==========================================

pc.mgamma applies to log_precision too: a Gamma likelihood's precision φ is 1/a for its
Gamma(1/a, 1/a) multiplicative error, so pc.mgamma is its PC prior with base model φ = ∞.

**Structure-dependent priors.** Some priors need the built component, e.g. bym2's PC prior
for φ is a function of the eigenvalues of its graph, and ``pc.range()`` without parameters takes
them from the SPDE object. Such a prior carries ``bind``: the compiler calls
``prior.bind(structure)`` after the component is built and uses the prior it returns;
evaluating an unbound one raises a :class:`ModelError`.
"""

from __future__ import annotations

__all__ = ["Prior", "PRIORS", "make_prior", "LOG_PRECISION", "CORRELATION", "LOGIT_MIXING", "LOG_RANGE", "LOG_SD",
           "LOGIT_PROBABILITY", "LOG_SIZE", "LOG_DOF", "WEIBULL_ALPHA", "LOG_DISPERSION",
           "PC_MIXING_RANGE", "pc_cor1_lambda", "pc_mixing_distance", "student_t_kld", "weibull_kld"]

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from adelia.errors import ModelError, Span
from adelia.registry import Registry

LOG_PRECISION = "log_precision"
CORRELATION = "correlation"        # θ = log((1 + ρ)/(1 − ρ)), R-INLA's internal scale for ρ
LOGIT_MIXING = "logit_mixing"      # θ = logit φ (bym2)
LOG_RANGE = "log_range"            # θ = log(range) (SPDE)
LOG_SD = "log_sd"                  # θ = log(σ) (SPDE)
LOGIT_PROBABILITY = "logit_probability"   # θ = logit p (zero-inflation, betabinomial ρ)
LOG_SIZE = "log_size"              # θ = log n (negative binomial size)
LOG_DOF = "log_dof"                # θ = log(ν − 2) (Student-t degrees of freedom)
WEIBULL_ALPHA = "weibull_alpha"    # θ = log(α)/0.1 (Weibull shape, R-INLA's scaled log)
LOG_DISPERSION = "log_dispersion"  # θ = log a, a the variance of a Gamma(1/a, 1/a) variable


@dataclass(frozen=True, slots=True)
class Prior:
    """A prior on one internal hyperparameter θ: ``logpdf(θ)`` includes the Jacobian."""

    name: str
    params: tuple[float, ...]
    logpdf: Callable = None  # type: ignore[assignment]
    scales: tuple[str, ...] = ()
    bind: Callable[[Any], "Prior"] | None = None   # structure -> bound prior (see the module docstring)
    joint: bool = False    # logpdf takes the vector of its component's θ (iidkd's Wishart, rgeneric)

    def describe(self) -> str:
        return f"{self.name}({', '.join(f'{p:g}' for p in self.params)})"


@dataclass(frozen=True, slots=True)
class PriorDef:
    build: Callable[..., Prior]
    nparams: int | tuple[int, ...]
    doc: str


PRIORS: Registry[PriorDef] = Registry("prior")


def _def(name: str, *aliases: str, nparams: int, doc: str):
    def deco(fn):
        PRIORS.register(name, *aliases)(PriorDef(fn, nparams, doc))
        return fn

    return deco


@_def("loggamma", nparams=2, doc="τ ~ Gamma(shape a, rate b), as a density of θ = log τ")
def _loggamma(a: float, b: float) -> Prior:
    if a <= 0 or b <= 0:
        raise ValueError("loggamma(a, b) needs a > 0 and b > 0")
    const = a * math.log(b) - math.lgamma(a)
    return Prior("loggamma", (a, b), lambda t: const + a * t - b * jnp.exp(t), (LOG_PRECISION, LOG_SIZE))


@_def("pc.prec", "pc_prec", nparams=2, doc="PC prior on a precision: P(σ > u) = α, σ = τ^(-1/2)")
def _pc_prec(u: float, alpha: float) -> Prior:
    if u <= 0 or not 0 < alpha < 1:
        raise ValueError("pc.prec(u, alpha) needs u > 0 and 0 < alpha < 1")
    lam = -math.log(alpha) / u
    # π(τ) = λ/2 τ^(-3/2) exp(-λ τ^(-1/2)); with θ = log τ the Jacobian adds θ.
    return Prior("pc.prec", (u, alpha), lambda t: math.log(lam / 2) - t / 2 - lam * jnp.exp(-t / 2),
                 (LOG_PRECISION,))


@_def("normal", "gaussian", nparams=2, doc="θ ~ Normal(mean, precision)")
def _normal(mean: float, prec: float) -> Prior:
    if prec <= 0:
        raise ValueError("normal(mean, precision) needs precision > 0")
    const = 0.5 * math.log(prec / (2 * math.pi))
    return Prior("normal", (mean, prec), lambda t: const - 0.5 * prec * (t - mean) ** 2, ("*",))


@_def("flat", nparams=0, doc="improper uniform prior on θ")
def _flat() -> Prior:
    return Prior("flat", (), lambda t: jnp.zeros_like(t), ("*",))


# ---------------------------------------------------------------------------------------------
# helpers for the correlation scale θ = log((1 + ρ)/(1 − ρ)), ρ = tanh(θ/2)
# ---------------------------------------------------------------------------------------------

def _logcosh(x):
    """log cosh x, accurate for small and large |x| (log1p(2 sinh²(x/2)) = log cosh x)."""
    ax = jnp.abs(x)
    small = jnp.minimum(ax, 20.0)
    return jnp.where(ax < 20.0, jnp.log1p(2.0 * jnp.sinh(small / 2.0) ** 2), ax - math.log(2.0))


def _unbound(name: str, needs: str) -> Callable:
    def logpdf(t):
        raise ModelError(f"prior '{name}' depends on {needs} and has not been bound to it",
                         hint="structure-dependent priors are bound by the compiler after the component "
                              "is built (Prior.bind)")
    return logpdf


def _context(structure, key: str, prior: str, where: str):
    ctx = getattr(structure, "prior_context", None) or {}
    if key not in ctx:
        raise ModelError(f"prior '{prior}' applies only to {where}")
    return ctx[key]


@_def("pc.cor0", "pc_cor0", nparams=2,
      doc="PC prior on a correlation with base model ρ = 0: P(|ρ| > u) = α (θ = log((1+ρ)/(1−ρ)))")
def _pc_cor0(u: float, alpha: float) -> Prior:
    if not 0 < u < 1 or not 0 < alpha < 1:
        raise ValueError("pc.cor0(u, alpha) needs 0 < u < 1 and 0 < alpha < 1")
    lam = -math.log(alpha) / math.sqrt(-math.log1p(-u * u))

    # d(ρ) = √(−log(1 − ρ²)); π(ρ) = λ/2 exp(−λ d) |d′(ρ)|; with dρ/dθ = (1 − ρ²)/2,
    # log π(θ) = log(λ/2) − λ d + ½ log(ρ²/d²) − log 2.  (R-INLA's priorfunc_pc_cor0 omits the
    # ½ in λ/2, so its density integrates to 2; ours is normalised.)
    def logpdf(t):
        x = t / 2.0
        tiny = jnp.abs(x) < 1e-4
        xs = jnp.where(tiny, 1.0, x)
        q = jnp.where(tiny, 1.0 - x * x / 6.0, 2.0 * _logcosh(xs) / xs ** 2)      # d² / x²
        ratio = jnp.where(tiny, 1.0 - x * x / 2.0, jnp.tanh(xs) ** 2 / (q * xs ** 2))   # ρ² / d²
        d = jnp.abs(x) * jnp.sqrt(q)               # written so that the cusp at ρ = 0 has a finite gradient
        return math.log(lam / 2.0) - lam * d + 0.5 * jnp.log(ratio) - math.log(2.0)

    return Prior("pc.cor0", (u, alpha), logpdf, (CORRELATION,))


def pc_cor1_lambda(u: float, alpha: float) -> float:
    """λ of pc.cor1: (1 − e^{−λ√(1−u)}) / (1 − e^{−λ√2}) = α (R-INLA priorfunc_pc_cor1)."""
    from scipy.optimize import brentq

    a, b = math.sqrt(1.0 - u), math.sqrt(2.0)
    g = lambda lam: -math.expm1(-lam * a) / -math.expm1(-lam * b) - alpha
    hi = 1.0
    while g(hi) < 0:
        hi *= 2.0
        if hi > 1e8:
            raise ValueError("pc.cor1: no λ solves the tail statement")
    return brentq(g, 1e-12, hi, xtol=1e-14, rtol=1e-14)


@_def("pc.cor1", "pc_cor1", nparams=2,
      doc="PC prior on a correlation with base model ρ = 1: P(ρ > u) = α, needs α > √((1−u)/2)")
def _pc_cor1(u: float, alpha: float) -> Prior:
    if not -1 < u < 1 or not math.sqrt((1 - u) / 2) < alpha < 1:
        raise ValueError("pc.cor1(u, alpha) needs -1 < u < 1 and sqrt((1 - u)/2) < alpha < 1")
    lam = pc_cor1_lambda(u, alpha)
    const = math.log(lam) - math.log(-math.expm1(-lam * math.sqrt(2.0))) - math.log(2.0)

    # d(ρ) = √(1 − ρ) on [0, √2], truncated exponential: π(ρ) = λ e^{−λd} / (1 − e^{−λ√2}) / (2d);
    # log(1 − ρ) = log 2 − softplus(θ), log((1 − ρ²)/2) = −2 log cosh(θ/2) − log 2.
    def logpdf(t):
        log1mrho = math.log(2.0) - jax.nn.softplus(t)
        d = jnp.exp(0.5 * log1mrho)
        return const - lam * d - 0.5 * log1mrho - 2.0 * _logcosh(t / 2.0) - math.log(2.0)

    return Prior("pc.cor1", (u, alpha), logpdf, (CORRELATION,))


# ---------------------------------------------------------------------------------------------
# bym2's mixing parameter φ (Riebler, Sørbye, Simpson & Rue 2016)
# ---------------------------------------------------------------------------------------------

#: logit φ range over which R-INLA tabulates and normalises the prior (inla.pc.bym.phi: a grid
#: from −15 with the first six points dropped, up to 12).
PC_MIXING_RANGE = (-15.0 + 6 * 15.0 / 39.0, 12.0)


def _h(z):
    """z − log1p(z) ≥ 0, accurate near 0."""
    small = jnp.abs(z) < 1e-3
    zs = jnp.where(small, 0.5, z)
    series = z * z * (0.5 - z * (1.0 / 3.0 - z * (0.25 - z / 5.0)))
    return jnp.where(small, series, zs - jnp.log1p(zs))


def pc_mixing_distance(phi, a):
    """d(φ) = √(2 KLD) = √(Σ_j [φ a_j − log(1 + φ a_j)]), a_j = γ_j − 1 (γ: eigenvalues of R⁻)."""
    return jnp.sqrt(jnp.sum(_h(phi * a)))


def _pc_mixing_bound(u: float, alpha: float, gamma) -> Prior:
    a = jnp.asarray(np.asarray(gamma, dtype=float) - 1.0)
    sig = lambda t: 1.0 / (1.0 + math.exp(-t))
    d_u = float(pc_mixing_distance(u, a))
    if not d_u > 0:
        raise ModelError("the pc prior for φ is undefined: the scaled structure has no spatial variation")
    lam = -math.log1p(-alpha) / d_u
    lo, hi = (float(pc_mixing_distance(sig(t), a)) for t in PC_MIXING_RANGE)
    log_norm = math.log(math.exp(-lam * lo) - math.exp(-lam * hi))

    def logpdf(t):
        # sums over the eigenvalues on the last axis: t may be an array of θ (a grid to tabulate)
        phi = jax.nn.sigmoid(t)
        z = phi[..., None] * a
        d = jnp.sqrt(jnp.sum(_h(z), axis=-1))
        dd_dphi = jnp.sum(phi[..., None] * a * a / (1.0 + z), axis=-1) / (2.0 * d)
        log_jac = jnp.log(dd_dphi) + jnp.log(phi) - jax.nn.softplus(t)      # dφ/dθ = φ(1 − φ)
        return math.log(lam) - lam * d + log_jac - log_norm

    return Prior("pc", (u, alpha), logpdf, (LOGIT_MIXING,))


@_def("pc", nparams=2, doc="bym2's PC prior for the mixing parameter: P(φ < u) = α (base model φ = 0, iid)")
def _pc_mixing(u: float, alpha: float) -> Prior:
    if not 0 < u < 1 or not 0 < alpha < 1:
        raise ValueError("pc(u, alpha) needs 0 < u < 1 and 0 < alpha < 1")
    bind = lambda structure: _pc_mixing_bound(
        u, alpha, _context(structure, "mixing_eigenvalues", "pc", "the mixing parameter φ of bym2"))
    return Prior("pc", (u, alpha), _unbound("pc", "the bym2 graph"), (LOGIT_MIXING,), bind)


# ---------------------------------------------------------------------------------------------
# PC prior for the Matérn field (Fuglstad, Simpson, Lindgren & Rue 2019); it factorises
# into a prior on the range and one on the marginal standard deviation.
# ---------------------------------------------------------------------------------------------

def _pc_range_bound(r0: float, p: float, d: float) -> Prior:
    if r0 <= 0 or not 0 < p < 1 or d not in (1.0, 2.0, 3.0):
        raise ValueError("pc.range(range0, p, d) needs range0 > 0, 0 < p < 1 and d in 1, 2, 3")
    lam = -math.log(p) * r0 ** (d / 2.0)
    const = math.log(lam * d / 2.0)
    # π(ρ) = (d/2) λ ρ^{−1−d/2} exp(−λ ρ^{−d/2}); on θ = log ρ (R-INLA priorfunc_pc_range)
    return Prior("pc.range", (r0, p, d), lambda t: const - d / 2.0 * t - lam * jnp.exp(-d / 2.0 * t), (LOG_RANGE,))


@_def("pc.range", "pc_range", nparams=(0, 2, 3),
      doc="PC prior on a Matérn range: P(range < range0) = p; pc.range(range0, p[, d = 2]); "
          "with no parameters, taken from the SPDE object")
def _pc_range(*params: float) -> Prior:
    if params:
        r0, p, *rest = params
        return _pc_range_bound(r0, p, rest[0] if rest else 2.0)
    bind = lambda structure: _pc_range_bound(*_context(structure, "prior_range", "pc.range", "an SPDE range"))
    return Prior("pc.range", (), _unbound("pc.range", "the SPDE object's prior_range"), (LOG_RANGE,), bind)


def _pc_sd_bound(s0: float, p: float) -> Prior:
    if s0 <= 0 or not 0 < p < 1:
        raise ValueError("pc.sd(sigma0, p) needs sigma0 > 0 and 0 < p < 1")
    lam = -math.log(p) / s0
    # σ ~ Exp(λ); on θ = log σ
    return Prior("pc.sd", (s0, p), lambda t: math.log(lam) + t - lam * jnp.exp(t), (LOG_SD,))


@_def("pc.sd", "pc.sigma", "pc_sd", "pc_sigma", nparams=(0, 2),
      doc="PC prior on a standard deviation: P(sigma > sigma0) = p; with no parameters, taken from "
          "the SPDE object")
def _pc_sd(*params: float) -> Prior:
    if params:
        return _pc_sd_bound(*params)
    bind = lambda structure: _pc_sd_bound(*_context(structure, "prior_sigma", "pc.sd", "an SPDE standard deviation"))
    return Prior("pc.sd", (), _unbound("pc.sd", "the SPDE object's prior_sigma"), (LOG_SD,), bind)


# ---------------------------------------------------------------------------------------------
# priors for likelihood hyperparameters (R-INLA inla-priors.c: priorfunc_logitbeta,
# priorfunc_pc_dof, priorfunc_pc_gamma / _mgamma, priorfunc_pc_alphaw)
# ---------------------------------------------------------------------------------------------

@_def("logitbeta", nparams=2, doc="p ~ Beta(a, b), as a density of θ = logit p (inla.doc(\"logitbeta\"))")
def _logitbeta(a: float, b: float) -> Prior:
    if a <= 0 or b <= 0:
        raise ValueError("logitbeta(a, b) needs a > 0 and b > 0")
    const = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    # p^a (1 − p)^b: the Beta density p^(a−1)(1 − p)^(b−1) times dp/dθ = p(1 − p)
    return Prior("logitbeta", (a, b), lambda t: const - a * jax.nn.softplus(-t) - b * jax.nn.softplus(t),
                 (LOGIT_PROBABILITY,))


_KLD_T_SERIES = (0.75, 1.5, 2.125, 2.9, 5.083333333333333, 10.35714285714286, 17.0625, 19.83333333333333)


def student_t_kld(dof, log_dof_m2=None):
    """KLD(t_ν ‖ N(0, 1)) of the unit-variance Student-t from the Gaussian (R-INLA inla_pcp_dof_d
    tabulates it; here in closed form): ½log 2π + ½ − H(t_ν) − log √((ν − 2)/ν), with the
    entropy H(t_ν) = (ν + 1)/2 [ψ((ν + 1)/2) − ψ(ν/2)] + ½ log ν + log B(ν/2, ½). Above ν = 20 the
    series Σ c_k ν^(−k−2) of inla_pcp_dof_kld_approx avoids the cancellation. ``log_dof_m2`` =
    log(ν − 2) when known (accurate as ν → 2)."""
    from adelia.compiler.special import digamma, gammaln

    big = dof > 20.0
    v = jnp.where(big, 25.0, dof)
    log_vm2 = jnp.log(v - 2.0) if log_dof_m2 is None else jnp.where(big, math.log(23.0), log_dof_m2)
    entropy = 0.5 * (v + 1.0) * (digamma(0.5 * (v + 1.0)) - digamma(0.5 * v)) + 0.5 * jnp.log(v) + (gammaln(0.5 * v) + math.lgamma(0.5) - gammaln(0.5 * v + 0.5))
    exact = 0.5 * math.log(2 * math.pi) + 0.5 - entropy - 0.5 * (log_vm2 - jnp.log(v))
    w = jnp.where(big, dof, 25.0)
    series = sum(c * w ** (-(k + 2)) for k, c in enumerate(_KLD_T_SERIES))
    return jnp.where(big, series, exact)


@_def("pc.dof", "pc_dof", nparams=2,
      doc="PC prior on Student-t degrees of freedom ν (base model ν = ∞): P(ν < u) = α, θ = log(ν − 2)")
def _pc_dof(u: float, alpha: float) -> Prior:
    if not u > 2 or not 0 < alpha < 1:
        raise ValueError("pc.dof(u, alpha) needs u > 2 and 0 < alpha < 1")
    lam = -math.log(alpha) / math.sqrt(2.0 * float(student_t_kld(jnp.asarray(float(u)))))
    kld = lambda t: student_t_kld(2.0 + jnp.exp(t), t)

    # π(ν) = λ e^{−λ d(ν)} |d′(ν)| (d → ∞ as ν → 2, d → 0 as ν → ∞); on θ = log(ν − 2) the chain
    # rule gives dd/dθ = KLD′(θ)/d directly (AD, elementwise)
    def logpdf(t):
        t = jnp.asarray(t, dtype=float)
        far = t > 20.0          # ν > 5·10⁸: d = √1.5/ν (1 + O(1/ν)), dd/dθ = −d
        tn = jnp.where(far, 0.0, t)
        k, dk = jax.jvp(kld, (tn,), (jnp.ones_like(tn),))
        d = jnp.sqrt(2.0 * k)
        near_value = math.log(lam) - lam * d + jnp.log(jnp.abs(dk)) - jnp.log(d)
        tf = jnp.where(far, t, 20.0)
        far_value = math.log(lam) - lam * math.sqrt(1.5) * jnp.exp(-tf) + 0.5 * math.log(1.5) - tf
        return jnp.where(far, far_value, near_value)

    return Prior("pc.dof", (u, alpha), logpdf, (LOG_DOF,))


def _pc_gamma_logpdf(lam: float, t):
    """PC prior for a in Gamma(1/a, 1/a) (base a = 0), as a density of θ = log a (R-INLA
    priorfunc_pc_gamma): d(a) = √(2(log z − ψ(z))), z = 1/a, π(a) = λ e^{−λd} |d′(a)| with
    d′(a) = (ψ′(z) − a)/(d a²). Below a = 10⁻⁴ both log z − ψ(z) = a/2 + a²/12 − a⁴/120 and
    log(ψ′(z) − a) (R-INLA's SPECIAL()) use their expansions, written in θ so that nothing
    underflows as θ → −∞."""
    from jax.scipy.special import digamma, polygamma

    t = jnp.asarray(t, dtype=float)
    big, small = t < -math.log(1e4), t > 30.0          # z = 1/a above 10⁴ / below e⁻³⁰
    tb = jnp.where(big, t, -math.log(1e4))
    tl = jnp.where(small, t, 30.0)
    ts = jnp.where(big | small, 0.0, t)
    a_b, z_s, z_l = jnp.exp(tb), jnp.exp(-ts), jnp.exp(-tl)
    # small z: ψ(z) = −1/z − γ + (π²/6) z + O(z²), ψ′(z) = 1/z² + π²/6 + O(z)
    log_d = jnp.where(big, 0.5 * (tb + jnp.log1p(a_b / 6.0 - a_b ** 3 / 60.0)),
                      jnp.where(small, 0.5 * jnp.log(2.0 * (-tl + jnp.exp(tl) + _EULER - math.pi ** 2 / 6 * z_l)),
                                0.5 * jnp.log(2.0 * (jnp.log(z_s) - digamma(z_s)))))
    special = jnp.where(big, 2 * tb - math.log(2.0) + a_b / 3 - a_b ** 2 / 18 - 22 * a_b ** 3 / 405,
                        jnp.where(small, 2 * tl + jnp.log1p(-z_l + math.pi ** 2 / 6 * z_l ** 2),
                                  jnp.log(polygamma(1, z_s) - 1.0 / z_s)))
    return math.log(lam) - lam * jnp.exp(log_d) - 2.0 * t - log_d + special + t


@_def("pc.gamma", "pc_gamma", nparams=1,
      doc="PC prior for a in Gamma(1/a, 1/a), base model a = 0, on θ = log a (inla.doc(\"pc.gamma\"))")
def _pc_gamma(lam: float) -> Prior:
    if lam <= 0:
        raise ValueError("pc.gamma(lambda) needs lambda > 0")
    return Prior("pc.gamma", (lam,), lambda t: _pc_gamma_logpdf(lam, t), (LOG_DISPERSION,))


@_def("pc.mgamma", "pc_mgamma", nparams=1,
      doc="pc.gamma for θ = −log a (a = 1/size): R-INLA's default for the negative binomial size")
def _pc_mgamma(lam: float) -> Prior:
    if lam <= 0:
        raise ValueError("pc.mgamma(lambda) needs lambda > 0")
    return Prior("pc.mgamma", (lam,), lambda t: _pc_gamma_logpdf(lam, -jnp.asarray(t, dtype=float)),
                 (LOG_SIZE, LOG_PRECISION))


_EULER = 0.5772156649015329
_WEIBULL_C = (1 - _EULER) ** 2 + math.pi ** 2 / 6      # KLD″(1): KLD ≈ C (α − 1)²/2 near the base


def weibull_kld(alpha):
    """KLD of Weibull(shape α) from the exponential (α = 1) (inla.doc("pc.alphaw")):
    (Γ((1 + α)/α) α + α log α − αγ + γ − α)/α = Γ(1 + 1/α) + log α − γ + γ/α − 1."""
    from jax.scipy.special import gammaln

    return jnp.exp(gammaln(1.0 + 1.0 / alpha)) + jnp.log(alpha) - _EULER + _EULER / alpha - 1.0


@_def("pc.alphaw", "pc_alphaw", nparams=1,
      doc="PC prior for the Weibull shape α (base α = 1, exponential), on θ = log(α)/0.1")
def _pc_alphaw(lam: float) -> Prior:
    if lam <= 0:
        raise ValueError("pc.alphaw(lambda) needs lambda > 0")

    # π(α) = λ/2 e^{−λ d(α)} |d′(α)|, d = √(2 KLD), half the mass on each side of α = 1; α = e^{0.1θ}.
    # (R-INLA's priorfunc_pc_alphaw writes "+ lambda" for log λ, a constant offset; ours is normalised.)
    def logpdf(t):
        t = jnp.asarray(t, dtype=float)
        a = jnp.exp(0.1 * jnp.clip(t, -45.0, None))     # below α = 0.011 the density is below e^(−10⁵⁰)
        near = jnp.abs(a - 1.0) < 1e-4
        k, dk = jax.jvp(weibull_kld, (jnp.where(near, 1.5, a),), (jnp.ones_like(a),))
        d = jnp.sqrt(2.0 * k)
        log_dd = jnp.where(near, 0.5 * math.log(_WEIBULL_C), jnp.log(jnp.abs(dk)) - jnp.log(d))
        d = jnp.where(near, math.sqrt(_WEIBULL_C) * jnp.abs(a - 1.0), d)
        return math.log(lam / 2.0) - lam * d + log_dd + math.log(0.1) + 0.1 * t

    return Prior("pc.alphaw", (lam,), logpdf, (WEIBULL_ALPHA,))


def make_prior(name: str, params, scale: str, *, source: str | None = None, span: Span | None = None,
               filename: str = "<formula>") -> Prior:
    """Build a registered prior, checking its parameters and that it fits the hyperparameter's scale."""
    pdef = PRIORS.get(name, source=source, span=span, filename=filename)
    params = tuple(float(p) for p in (params or ()))
    allowed = (pdef.nparams,) if isinstance(pdef.nparams, int) else pdef.nparams
    if len(params) not in allowed:
        counts = " or ".join(str(k) for k in allowed)
        raise ModelError(f"prior '{name}' takes {counts} parameter(s), got {len(params)}",
                         source=source, span=span, filename=filename, hint=f"{name}: {pdef.doc}")
    try:
        prior = pdef.build(*params)
    except ValueError as err:
        raise ModelError(f"invalid parameters for prior '{name}': {err}", source=source, span=span,
                         filename=filename) from None
    if "*" not in prior.scales and scale not in prior.scales:
        raise ModelError(f"prior '{name}' is not defined for a {scale.replace('_', ' ')} hyperparameter",
                         source=source, span=span, filename=filename)
    return prior


# ---------------------------------------------------------------------------------------------
# Joint priors over all hyperparameters of one component (``Prior.joint``): the prior sits on
# the component's first θ and reads the whole vector; the others carry ``none`` (as R-INLA's
# iidkd, whose θ2… have prior "none"). A fixed first θ drops the joint prior, as for any fixed θ.
# ---------------------------------------------------------------------------------------------

IIDKD = "iidkd"            # θ of iidkd: log L_ii, then L's strictly lower entries row by row
USER_JOINT = "rgeneric"    # θ of a user (rgeneric) model: its own scale, its own prior


def wishartkd_order(n_params: int) -> int:
    """k from the 1 + k(k+1)/2 parameters (r, R_1, …) of wishartkd."""
    for k in range(1, 21):
        if 1 + k * (k + 1) // 2 == n_params:
            return k
    raise ValueError(f"wishartkd takes 1 + k(k+1)/2 parameters (4, 7, 11, … for k = 2, 3, 4, …), got {n_params}")


def iidkd_cholesky(theta, k: int):
    """L (k × k lower triangular) of W = L Lᵀ: diag e^{θ_1..θ_k}, then θ_{k+1}, … row by row below the
    diagonal (R-INLA ``inla.doc("iidkd")``: L_21 = θ_4, L_31 = θ_5, L_32 = θ_6 for k = 3)."""
    rows, cols = np.tril_indices(k, -1)
    L = jnp.diag(jnp.exp(theta[:k]))
    return L.at[rows, cols].set(theta[k:k + len(rows)])


def wishart_matrix(params: tuple[float, ...], k: int) -> np.ndarray:
    """R from (R_1, …, R_k, then the off-diagonal entries): R-INLA lists R's diagonal, then for
    k = 3 (R_12, R_13, R_23) — the upper triangle row by row."""
    R = np.diag(np.asarray(params[:k], dtype=float))
    rows, cols = np.triu_indices(k, 1)
    R[rows, cols] = R[cols, rows] = params[k:]
    return R


def _wishartkd_from_params(r: float, *rest: float) -> Prior:
    k = wishartkd_order(1 + len(rest))
    R = wishart_matrix(rest, k)
    if np.any(np.linalg.eigvalsh(R) <= 0):
        raise ValueError("the Wishart matrix R must be positive definite")
    if r <= k + 1:
        raise ValueError(f"wishartkd needs r > k + 1 = {k + 1}, got r = {r}")
    sign, logdet_R = np.linalg.slogdet(R)
    # log c = (rk/2) log 2 − (r/2) log|R| + (k(k−1)/4) log π + Σ_j log Γ((r + 1 − j)/2)
    log_c = (r * k / 2.0 * math.log(2.0) - r / 2.0 * logdet_R + k * (k - 1) / 4.0 * math.log(math.pi)
             + sum(math.lgamma((r + 1.0 - j) / 2.0) for j in range(1, k + 1)))
    Rj = jnp.asarray(R)
    # W = L Lᵀ: |∂W/∂L| = 2^k Π_i L_ii^{k − i + 1} (i = 1..k), and ∂L_ii/∂θ_i = L_ii
    jac_power = jnp.asarray([k - i + 2.0 for i in range(1, k + 1)])

    def logpdf(theta):
        L = iidkd_cholesky(theta, k)
        W = L @ L.T
        logdet_W = 2.0 * jnp.sum(theta[:k])
        return ((r - k - 1.0) / 2.0 * logdet_W - 0.5 * jnp.sum(W * Rj) - log_c
                + k * math.log(2.0) + jnp.dot(jac_power, theta[:k]))

    prior = Prior("wishartkd", (r, *rest), logpdf, (IIDKD,), joint=True)

    def bind(structure):          # the parameters must be for this component's k
        order = _context(structure, "iidkd_order", "wishartkd", "an iidkd model")
        if order != k:
            raise ModelError(f"wishartkd has {1 + len(rest)} parameters, for k = {k}, but the iidkd model has "
                             f"order {order}", hint=f"give 1 + k(k+1)/2 = {1 + order * (order + 1) // 2} "
                             "parameters: r, the diagonal of R, then its upper triangle row by row")
        return prior
    return dataclasses.replace(prior, bind=bind)


@_def("wishartkd", nparams=tuple(1 + k * (k + 1) // 2 for k in range(2, 21)),
      doc="iidkd's joint prior: W = L Lᵀ ~ Wishart_k(r, R⁻¹), params (r, R_11..R_kk, R_12, R_13, …); "
          "as a density of all k(k+1)/2 θ of the component")
def _wishartkd(*params: float) -> Prior:
    return _wishartkd_from_params(*params)


@_def("none", nparams=0, doc="no prior of its own: the hyperparameter is covered by its component's joint prior")
def _none() -> Prior:
    return Prior("none", (), lambda t: jnp.zeros_like(t), (IIDKD, USER_JOINT))


@_def("rgeneric", nparams=0, doc="the log_prior(θ) of a user model (model = \"rgeneric\"), over all its θ")
def _rgeneric() -> Prior:
    def bind(structure):
        fn = _context(structure, "log_prior", "rgeneric", "a user (rgeneric) model")
        token = _context(structure, "model_token", "rgeneric", "a user (rgeneric) model")
        return Prior(f"rgeneric[{token}]", (), lambda th: jnp.asarray(fn(th), dtype=th.dtype).reshape(()),
                     (USER_JOINT,), joint=True)
    return Prior("rgeneric", (), _unbound("rgeneric", "the user model"), (USER_JOINT,), bind)


def iid2d_covariance(theta):
    """Σ = W⁻¹ of iid2d from θ = (log τ_a, log τ_b, log((1 + ρ)/(1 − ρ))): variances 1/τ, covariance
    ρ/√(τ_a τ_b) (inla.doc("iid2d") prints ρ√(τ_a τ_b), a typo: ρ is the correlation)."""
    va, vb = jnp.exp(-theta[0]), jnp.exp(-theta[1])
    c = jnp.tanh(theta[2] / 2.0) * jnp.sqrt(va * vb)
    return jnp.stack([jnp.stack([va, c]), jnp.stack([c, vb])])


@_def("wishart2d", nparams=4, doc="iid2d's joint prior: W = Σ⁻¹ ~ Wishart_2(r, R⁻¹), params (r, R_11, R_22, R_12); "
                                  "as a density of (log τ_a, log τ_b, ρ's internal θ)")
def _wishart2d(r: float, r11: float, r22: float, r12: float) -> Prior:
    _wishartkd_from_params(r, r11, r22, r12)        # checks r > k + 1 = 3 and R positive definite
    R = jnp.asarray(wishart_matrix((r11, r22, r12), 2))
    # log c = r log 2 − (r/2) log|R| + ½ log π + log Γ(r/2) + log Γ((r − 1)/2)   (k = 2)
    _, logdet_R = np.linalg.slogdet(np.asarray(R))
    log_c = (r * math.log(2.0) - r / 2.0 * logdet_R + 0.5 * math.log(math.pi)
             + math.lgamma(r / 2.0) + math.lgamma((r - 1.0) / 2.0))
    rows, cols = np.tril_indices(2)

    def vech_W(theta):
        return jnp.linalg.inv(iid2d_covariance(theta))[rows, cols]

    def logpdf(theta):
        W = jnp.linalg.inv(iid2d_covariance(theta))
        # log|W| = log τ_a + log τ_b − log(1 − ρ²)
        logdet_W = theta[0] + theta[1] + 2.0 * _logcosh(theta[2] / 2.0)
        log_jac = jnp.linalg.slogdet(jax.jacfwd(vech_W)(theta))[1]
        return (r - 3.0) / 2.0 * logdet_W - 0.5 * jnp.sum(W * R) - log_c + log_jac

    prior = Prior("wishart2d", (r, r11, r22, r12), logpdf, (IIDKD,), joint=True)

    def bind(structure):
        _context(structure, "iid2d", "wishart2d", "an iid2d model")
        return prior
    return dataclasses.replace(prior, bind=bind)
