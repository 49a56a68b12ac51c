"""Exact posterior sampling with NUTS (numpyro), for checking INLA where it may not be enough.

Two samplers over the same :class:`~adelia.runtime.problem.Problem`:

* :func:`sample_joint` draws (θ, x) from the exact joint posterior

      log π(θ, x | y) = log π(θ) + log π(x | θ) + Σ_i log p(y_i | η_i, θ) + const,
      log π(x | θ)    = Σ_c log Z_c(θ) − ½ (x − μ)ᵀ Q_p(θ) (x − μ)        on {C x = e},

  with the prior normalisers Z_c(θ) exactly as the Laplace objective uses them (generalised
  determinant ½ log|Q_c|* for intrinsic components, the density on the constraint set for
  constrained proper ones: :meth:`LaplaceProblem.log_prior_normaliser`), so NUTS and INLA target
  the same model. The latent field is sampled in the constrained subspace: x = μ + V S(θ) u,
  u = u₀ + Z z with z free (N − k dimensions) and Z an orthonormal basis of the null space of the
  constraints in u-coordinates.

  V and S(θ) make the geometry NUTS-friendly without changing the target. For a component with
  Q = c(θ) K (iid, rw1, rw2, besag, …) V holds K's eigenvectors and each eigen-coordinate is
  *non-centred*, s_i(θ) = (c(θ) λ_i)^(−½), where the prior informs it more than the data at the
  θ-mode (prior precision c(θ*) λ_i above the data precision v_iᵀ Aᵀ W A v_i), and centred
  (s_i = 1) otherwise (Papaspiliopoulos, Roberts & Sköld 2007, Stat. Sci. 22: non-centring
  removes the funnel where the data are weak). Null-space coordinates (λ_i ≈ 0) and coordinates
  the constraints touch stay centred, so the constraint set in u is θ-free and the map z -> x
  has the volume factor Π s_i(θ) over the non-centred coordinates (its log is added).

* :func:`sample_theta` draws θ alone from the Laplace objective log π̃(θ | y) with its exact
  AD gradient (the implicit-function VJP of the inner mode), as the θ-integration of
  ``int_strategy = "nuts"`` (R-INLA's sampling-based alternative to the grid/CCD designs).

Both use numpyro's NUTS (Hoffman & Gelman 2014) with its windowed step-size and mass-matrix
adaptation; chains run one after another (one compiled kernel).
"""

from __future__ import annotations

__all__ = ["NutsDraws", "LatentParameterisation", "parameterise", "sample_joint", "sample_theta", "draws_summary",
           "theta_design", "theta_draws_summary"]

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from adelia.runtime.laplace import LaplaceProblem
from adelia.runtime.problem import as_problem

#: eigenvalues below this fraction of a component's largest are its null space
NULL_TOL = 1e-9
#: a constraint row touches an eigen-coordinate when |C v_i| exceeds this (rows normalised)
TOUCH_TOL = 1e-8


@dataclass(frozen=True)
class NutsDraws:
    """Draws grouped by chain, and the sampler's diagnostics."""

    theta: np.ndarray                 # (chains, draws, d) full internal θ
    x: np.ndarray | None              # (chains, draws, N) latent field (joint sampler only)
    diverging: np.ndarray             # (chains, draws) bool
    num_steps: np.ndarray             # (chains, draws) leapfrog steps per draw
    seconds: float                    # wall time of warm-up and sampling (compilation included)
    settings: dict
    eta: np.ndarray | None = None     # (chains, draws, m) linear predictor (joint sampler only)
    loglik: np.ndarray | None = None  # (chains, draws, m) log p(y_i | η_i, θ) (0 where y is missing)


@dataclass(frozen=True)
class LatentParameterisation:
    """x = μ + V (s(θ) ⊙ (u₀ + Z z)); s_i(θ) = (coef(θ) λ_i)^(−½) where ``noncentred``, else 1."""

    V: np.ndarray                     # (N, N) orthogonal, block-diagonal by component
    lam: np.ndarray                   # (N,) eigenvalue of each coordinate (1 for the rest)
    noncentred: np.ndarray            # (N,) bool
    owner: np.ndarray                 # (N,) index of the piece whose coefficient scales it (−1: none)
    u0: np.ndarray                    # (N,)
    Z: np.ndarray                     # (N, N − k) orthonormal columns


def parameterise(lp: LaplaceProblem, theta_ref: np.ndarray, x_ref: np.ndarray) -> LatentParameterisation:
    """The (non-)centring of each latent coordinate, chosen at the θ-mode (see the module doc)."""
    model = lp.model
    N = model.N
    V = np.eye(N)
    lam = np.ones(N)
    owner = np.full(N, -1)
    scalable = np.zeros(N, bool)
    for ci, comp in enumerate(model.components):
        if len(comp.matrices) != 1:
            continue
        K = np.asarray(comp.matrices[0].toarray(), float)
        w, vecs = np.linalg.eigh(0.5 * (K + K.T))
        sl = slice(comp.offset, comp.offset + comp.n)
        V[sl, sl] = vecs
        lam[sl] = w
        owner[sl] = ci
        scalable[sl] = w > NULL_TOL * max(w.max(), 1e-300)
    # constraints in u-coordinates (S = 1 on the touched coordinates, so C' = C V is θ-free)
    C = np.asarray(model.C, float)
    CV = C @ V if C.shape[0] else np.zeros((0, N))
    if C.shape[0]:
        norms = np.linalg.norm(CV, axis=1, keepdims=True)
        touched = np.any(np.abs(CV / norms) > TOUCH_TOL, axis=0)
    else:
        touched = np.zeros(N, bool)
    # data precision of each coordinate at the mode: v_iᵀ Aᵀ W A v_i
    th = jnp.asarray(theta_ref)
    xr = jnp.asarray(x_ref)
    w_obs = np.asarray(lp._derivs(lp.eta(xr, th), th)[1])
    AV = np.asarray(lp.A_of(th)) @ V
    data_prec = np.einsum("ij,i,ij->j", AV, w_obs, AV)
    prior_prec = np.ones(N)
    for ci, comp in enumerate(model.components):
        if len(comp.matrices) == 1:
            sl = slice(comp.offset, comp.offset + comp.n)
            prior_prec[sl] = float(comp.coefs[0](th[jnp.asarray(comp.theta_index, dtype=int)])) * lam[sl]
    noncentred = scalable & ~touched & (prior_prec > data_prec)
    # u = u₀ + Z z: identity on the untouched coordinates, a null-space basis on the touched ones
    mu = np.asarray(lp.mu)
    e = np.asarray(model.e, float) - (C @ mu if C.shape[0] else 0.0)
    free_idx = np.flatnonzero(~touched)
    tidx = np.flatnonzero(touched)
    u0 = np.zeros(N)
    blocks = [np.eye(N)[:, free_idx]]
    if len(tidx):
        Ct = CV[:, tidx]
        u0[tidx] = np.linalg.lstsq(Ct, e, rcond=None)[0]
        null = scipy.linalg.null_space(Ct)
        emb = np.zeros((N, null.shape[1]))
        emb[tidx] = null
        blocks.append(emb)
    Z = np.concatenate(blocks, axis=1)
    return LatentParameterisation(V, np.where(scalable, lam, 1.0), noncentred, owner, u0, Z)


def _scales(lp: LaplaceProblem, par: LatentParameterisation, theta: jax.Array) -> jax.Array:
    """s(θ): (coef_c(θ) λ_i)^(−½) on the non-centred coordinates, 1 elsewhere."""
    s = jnp.ones(lp.model.N)
    for ci, comp in enumerate(lp.model.components):
        sl = slice(comp.offset, comp.offset + comp.n)
        nc = par.noncentred[sl]
        if not nc.any():
            continue
        coef = comp.coefs[0](theta[jnp.asarray(comp.theta_index, dtype=int)])
        block = jnp.where(jnp.asarray(nc), 1.0 / jnp.sqrt(coef * jnp.asarray(par.lam[sl])), 1.0)
        s = s.at[sl].set(block)
    return s


def joint_log_density(lp: LaplaceProblem, par: LatentParameterisation, initial: np.ndarray, free: np.ndarray):
    """(q -> log π(θ, z | y) up to a constant, q -> (θ full, x)) for q = [θ_free, z]."""
    V, u0, Z = jnp.asarray(par.V), jnp.asarray(par.u0), jnp.asarray(par.Z)
    nf = len(free)
    initial_j, free_j = jnp.asarray(initial), jnp.asarray(free, dtype=int)
    noncentred = jnp.asarray(par.noncentred)

    def unpack(q):
        theta = initial_j.at[free_j].set(q[:nf]) if nf else initial_j
        s = _scales(lp, par, theta)
        x = lp.mu + V @ (s * (u0 + Z @ q[nf:]))
        return theta, x, s

    def log_density(q):
        theta, x, s = unpack(q)
        log_volume = jnp.sum(jnp.where(noncentred, jnp.log(s), 0.0))
        return lp.log_prior_theta(theta) + lp.log_prior_normaliser(theta) + lp.g(x, theta) + log_volume

    def to_theta_x(q):
        theta, x, _ = unpack(q)
        return theta, x

    return log_density, to_theta_x


def _run(potential, init: np.ndarray, *, chains: int, warmup: int, draws: int, seed: int, target_accept: float,
         dense_mass: bool, max_tree_depth: int = 10):
    """numpyro NUTS on a flat parameter vector; returns (samples (C, S, D), diverging, num_steps, seconds)."""
    from numpyro.infer import MCMC, NUTS

    kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept, dense_mass=dense_mass,
                  max_tree_depth=max_tree_depth)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains, chain_method="sequential",
                progress_bar=False)
    t = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), init_params=jnp.asarray(init if chains > 1 else init[0]),
             extra_fields=("diverging", "num_steps"))
    seconds = time.perf_counter() - t
    samples = np.asarray(mcmc.get_samples(group_by_chain=True)).reshape(chains, draws, -1)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    return (samples, np.asarray(extra["diverging"]).reshape(chains, draws),
            np.asarray(extra["num_steps"]).reshape(chains, draws), seconds)


def _starts(rng, centre: np.ndarray, scale: np.ndarray, chains: int) -> np.ndarray:
    """Over-dispersed chain starts: the mode plus N(0, scale²) jitter (R-hat needs distinct starts)."""
    return centre[None, :] + scale[None, :] * rng.normal(size=(chains, len(centre)))


def sample_joint(model, theta_mode: np.ndarray, x_mode: np.ndarray, theta_sd: np.ndarray | None = None, *,
                 chains: int = 4, warmup: int = 1000, draws: int = 1000, seed: int = 0,
                 target_accept: float = 0.9, dense_mass: bool | None = None) -> NutsDraws:
    """Exact draws of (θ, x) (see the module doc); chains start near the θ-mode and x̂(θ*)
    (``theta_sd``: the θ jitter, e.g. the Laplace posterior sds)."""
    model = as_problem(model)
    lp = LaplaceProblem(model)
    initial = np.array([t.initial for t in model.thetas], float)
    free = np.array([i for i, t in enumerate(model.thetas) if not t.fixed], int)
    theta_mode = np.asarray(theta_mode, float)
    par = parameterise(lp, theta_mode, np.asarray(x_mode, float))
    log_density, to_theta_x = joint_log_density(lp, par, initial, free)
    s = np.asarray(_scales(lp, par, jnp.asarray(theta_mode)))
    u = (par.V.T @ (np.asarray(x_mode) - np.asarray(lp.mu))) / s
    z = par.Z.T @ (u - par.u0)
    centre = np.concatenate([theta_mode[free], z])
    rng = np.random.default_rng(seed)
    jitter = np.concatenate([0.3 * (np.ones(len(free)) if theta_sd is None else np.asarray(theta_sd)),
                             np.full(len(z), 0.1)])
    init = _starts(rng, centre, jitter, chains)
    dim = len(centre)
    dense = dim <= 50 if dense_mass is None else dense_mass
    samples, div, steps, seconds = _run(lambda q: -log_density(q), init, chains=chains, warmup=warmup, draws=draws,
                                        seed=seed, target_accept=target_accept, dense_mass=dense)
    def derived(q):
        theta, x = to_theta_x(q)
        eta = lp.eta(x, theta)
        return theta, x, eta, lp.loglik_terms(eta, theta)

    theta, x, eta, loglik = (np.asarray(a).reshape(chains, draws, -1) for a in
                             jax.jit(jax.vmap(derived))(jnp.asarray(samples.reshape(chains * draws, dim))))
    settings = {"chains": chains, "warmup": warmup, "draws": draws, "seed": seed, "target_accept": target_accept,
                "dense_mass": dense, "dimension": dim, "noncentred": int(par.noncentred.sum())}
    return NutsDraws(theta, x, div, steps, seconds, settings, eta, loglik)


def sample_theta(neg_log_posterior, theta_mode_free: np.ndarray, hessian: np.ndarray, *, chains: int = 4,
                 warmup: int = 500, draws: int = 1000, seed: int = 0, target_accept: float = 0.9) -> NutsDraws:
    """Draws of the free θ from π̃(θ | y) ∝ exp(−f(θ)), ``neg_log_posterior``: a JAX-traceable f
    (the Laplace objective; NUTS differentiates it by AD). Chains start at the mode plus
    N(0, H⁻¹) jitter (H: the Hessian of f there). Returns free θ in ``theta``."""
    mode = np.asarray(theta_mode_free, float)
    sd = np.sqrt(np.clip(np.diag(np.linalg.inv(hessian)), 1e-12, None)) if len(mode) else np.zeros(0)
    init = _starts(np.random.default_rng(seed), mode, sd, chains)
    samples, div, steps, seconds = _run(neg_log_posterior, init, chains=chains, warmup=warmup, draws=draws, seed=seed,
                                        target_accept=target_accept, dense_mass=True)
    settings = {"chains": chains, "warmup": warmup, "draws": draws, "seed": seed, "target_accept": target_accept}
    return NutsDraws(samples, None, div, steps, seconds, settings)


def _kde_mode(values: np.ndarray, n_grid: int = 256) -> np.ndarray:
    """Mode of each column's Gaussian kernel density (Silverman's bandwidth) on a grid over its range."""
    v = np.asarray(values, float)
    S, p = v.shape
    out = np.empty(p)
    sd = v.std(axis=0)
    iqr = np.subtract(*np.quantile(v, [0.75, 0.25], axis=0))
    bw = 0.9 * np.minimum(sd, np.where(iqr > 0, iqr / 1.34, sd)) * S ** (-0.2)
    bw = np.where(bw > 0, bw, 1.0)
    lo, hi = v.min(axis=0), v.max(axis=0)
    chunk = max(1, int(1e7 // (S * n_grid)))
    for start in range(0, p, chunk):
        sl = slice(start, min(p, start + chunk))
        grid = np.linspace(lo[sl], hi[sl], n_grid)                       # (G, c)
        zz = (grid[None, :, :] - v[:, None, sl]) / bw[sl]                # (S, G, c)
        dens = np.exp(-0.5 * zz ** 2).sum(axis=0)
        out[sl] = grid[np.argmax(dens, axis=0), np.arange(grid.shape[1])]
    return out


def draws_summary(values: np.ndarray, quantiles) -> dict[str, np.ndarray]:
    """mean, sd, quantiles and mode (kernel density) of each column of (S, p) draws."""
    v = np.asarray(values, float)
    out = {"mean": v.mean(axis=0), "sd": v.std(axis=0, ddof=1)}
    for q in quantiles:
        out[f"{q}quant"] = np.quantile(v, q, axis=0)
    out["mode"] = _kde_mode(v)
    return out


#: at most this many θ draws become integration points of ``int_strategy = "nuts"`` (evenly
#: thinned per chain): each point costs a Gaussian approximation of the latent field
NUTS_MAX_POINTS = 1000


def theta_design(cp, x_mode, theta_mode_free: np.ndarray, hessian: np.ndarray, *, chains: int, warmup: int,
                 draws: int, seed: int) -> tuple[np.ndarray, NutsDraws]:
    """θ draws for ``int_strategy = "nuts"``: NUTS on f(θ) = −log π̃(θ | y) of the compiled problem
    ``cp`` (its Laplace objective, Newton started at x̂(θ*) = ``x_mode``, gradient by AD through
    the implicit-function VJP). Returns (integration points: the draws thinned to at most
    :data:`NUTS_MAX_POINTS`, free θ rows; all draws)."""
    initial, free = jnp.asarray(cp.initial), jnp.asarray(cp.free)
    prob, x0 = cp.prob, jnp.asarray(x_mode)

    def f(theta_free):
        theta = initial.at[free].set(theta_free)
        value = prob.log_posterior_and_mode(theta, x0)[0]
        # outside the region where the Laplace objective is defined: reject the proposal
        return jnp.where(jnp.isfinite(value), -value, jnp.inf)

    res = sample_theta(f, theta_mode_free, hessian, chains=chains, warmup=warmup, draws=draws, seed=seed)
    step = max(1, -(-chains * draws // NUTS_MAX_POINTS))
    points = res.theta[:, ::step].reshape(-1, res.theta.shape[-1])
    return points, res


def theta_draws_summary(values: np.ndarray, to_natural, quantiles) -> dict:
    """The θ marginal from its draws, in :func:`~adelia.runtime.marginals.density_summary`'s
    layout: ``internal`` and ``natural`` rows (empirical moments and quantiles, kernel-density
    mode) and ``marginal`` = (θ grid, log kernel density) for plots."""
    v = np.asarray(values, float)
    nat = np.asarray(to_natural(v), float)
    out = {}
    for label, w in (("internal", v), ("natural", nat)):
        out[label] = {k: float(a[0]) for k, a in draws_summary(w[:, None], quantiles).items()}
    bw = 0.9 * v.std() * len(v) ** (-0.2) if v.std() > 0 else 1.0
    grid = np.linspace(v.min() - 3 * bw, v.max() + 3 * bw, 401)
    dens = np.exp(-0.5 * ((grid[:, None] - v[None, :]) / bw) ** 2).sum(axis=1)
    out["marginal"] = (grid, np.log(np.maximum(dens / dens.max(), 1e-300)))
    return out
