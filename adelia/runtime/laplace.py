"""The Laplace approximation of log π(θ | y) and its exact gradient.

For fixed θ the latent mode x̂(θ) maximises

    g(x) = Σ_i log p(y_i | η_i, θ) − ½ (x − μ)ᵀ Q_p(θ) (x − μ),   η = A x + o,   subject to C x = 0,

found by Newton's method with step halving (METHOD.md §2.3) and the kriging correction for
the constraints (Rue & Held 2005, §2.3.3). With Q_c = Q_p + Aᵀ W A, W = −∂²log p/∂η²,

    log π̃(θ | y) = log π(θ) + log p(y | η̂) − ½ (x̂−μ)ᵀQ_p(x̂−μ) + Σ_c log Z_c(θ)
                   − ½ log|Q_c| − ½ log|C Q_c⁻¹ Cᵀ| + ½ log|C Cᵀ| + (N − k)/2 · log 2π

where log Z_c = ½ log|Q_c|* − (n_c − r_c)/2 · log 2π is each component's prior normaliser
(generalised determinant over its non-null space; flat directions have density 1, the R-INLA
convention for the flat intercept, checked against the exact S1 marginal likelihood).

All linear algebra uses Q_c + CᵀC, which has the same restriction to {C x = 0} (so the same
constrained mode, log-determinant ½log|ZᵀQ_cZ| and covariance) but stays invertible when an
intercept and an intrinsic model share a direction.

Gradient: the mode x̂(θ) is a ``custom_vjp`` whose backward pass is the implicit-function
theorem at the converged mode (METHOD.md §8.2): dx̂/dθ = K H⁻¹ ∂_θ∇_x g with H = Q_c and K the
kriging projector, so a cotangent v maps to (∂_θ∇_x g)ᵀ u, u = K H⁻¹ v — one solve, whatever d.
Everything else is ordinary reverse-mode AD (log-determinants through the Cholesky factor).
No Newton iteration is differentiated.
"""

from __future__ import annotations

__all__ = ["LaplaceProblem"]

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from adelia.runtime import dense
from adelia.runtime.arrays import device
from adelia.runtime.block_normaliser import sparse_block
from adelia.runtime.problem import Problem, as_problem

#: the inner Newton iteration stops once the next step is predicted below this relative size
NEWTON_TOL = 1e-11
NEWTON_MAX_ITER = 200
#: after a step below this relative size a step that no longer shrinks 4x is rounding noise: the
#: floor κ(Q_c)·ε of the solve, which lies above NEWTON_TOL on ill-conditioned Q_c (quadratic
#: convergence, δ' = c δ², shrinks such a step by far more than 4x for any c below 10⁵)
NEWTON_FLOOR = 1e-6


class GaussianApprox(NamedTuple):
    """The Gaussian approximation N(x̂, Q_c⁻¹ | C x = 0) at one θ."""

    mode: jax.Array        # x̂
    sd: jax.Array          # marginal sds of x (constrained)
    eta_mean: jax.Array
    eta_sd: jax.Array
    gamma1: jax.Array      # simplified-Laplace coefficients of each x_j (0 for a Gaussian likelihood)
    gamma3: jax.Array


# exported programs (see adelia.runtime.inference.Program) return it: jax.export must know its fields
jax.export.register_namedtuple_serialization(GaussianApprox, serialized_name="adelia.runtime.GaussianApprox")


class DenseFactor:
    """Q_c factorised densely: the solver seam (solve, logdet, constraints, sampling)."""

    def __init__(self, Q: jax.Array):
        self.L = dense.factor(Q)

    def solve(self, b):
        return dense.solve(self.L, b)

    def logdet(self):
        return dense.logdet(self.L)

    def inverse(self):
        return dense.inverse(self.L)

    def sample_standard(self, z):
        return dense.sample_standard(self.L, z)


def krige(F, C: jax.Array, x: jax.Array, e: jax.Array | None = None) -> jax.Array:
    """Kriging onto {C x = e} with the factor handle F of Q (see :func:`dense.krige`)."""
    return dense.krige(F.solve, C, x, e, _solved_constraints(F, C))


def constraint_logdet(F, C: jax.Array) -> jax.Array:
    """log|C Q⁻¹ Cᵀ| with the factor handle F."""
    return dense.constraint_logdet(F.solve, C, _solved_constraints(F, C))


def _solved_constraints(F, C):
    """Q⁻¹Cᵀ where the factor handle already holds it for these rows (the low-rank corrected
    factor solves with Cᵀ when it is made), else None."""
    known = getattr(F, "solved_constraints", None)
    return known if known is not None and getattr(F, "C", None) is C else None


class LaplaceProblem:
    """JAX functions of θ (the full internal vector) for one :class:`~adelia.runtime.problem.Problem`.

    Linear algebra goes through :meth:`factor_qc` (a factor handle: :class:`DenseFactor` here,
    CHOLMOD in :class:`adelia.runtime.laplace_sparse.SparseLaplaceProblem`).
    """

    #: simplified-Laplace coefficients need Σ's columns: only the dense path provides them
    supports_sla = True

    def __init__(self, model: Problem):
        self.model = model = as_problem(model)
        obs = model.observed
        self.y = device(np.where(obs, model.y, 0.0))
        self.mask = device(obs.astype(float))
        self.off = device(model.offset)
        # NaN in rows of another family's block would poison jnp.where's gradient: use 1 there
        self.extra = {k: device(np.where(np.isfinite(v), v, 1.0)) for k, v in model.extra.items()}
        self.family_index = device(model.family_index)
        #: every family's log-density is quadratic in η: g is quadratic in x (one Newton step)
        self.quadratic = all(f.quadratic for f in model.families)
        self.C = device(model.C)
        self.e = device(model.e)
        # a point with C x = e: Newton's damped steps then stay on the constraint set
        self.x_feasible = device(model.C.T @ np.linalg.solve(model.C @ model.C.T, model.e)
                                      if model.C.shape[0] else np.zeros(model.N))
        N = model.N
        mu = np.zeros(N)
        mu[model.fixed_offset:] = model.fixed_mean
        self.mu = device(mu)
        self.lik_idx = [device(ix, dtype=np.int64) for ix in model.lik_theta]
        fp = np.zeros(N)
        fp[model.fixed_offset:] = model.fixed_prec
        self.fixed_diag_np = fp
        self._setup_matrices(model)
        k = model.C.shape[0]
        self.const = self._constant(model, k)
        # normalisers of large blocks without a closed form, on their own sparse factors: a proper
        # block on its constraint set, or an unconstrained one without a closed-form log|Q|
        self._sparse_blocks = {}
        for j, s in enumerate(model.components):
            affine = _needs_affine(s)
            if (s.rank_def == 0) if affine else (s.logdet is None):
                block = sparse_block(s, constrained=affine)
                if block is not None:
                    self._sparse_blocks[j] = block
        self._mode = self._make_mode()

    def _setup_matrices(self, model: Problem) -> None:
        """Dense A, Q_p pieces and CᵀC (adding CᵀC leaves the density on {C x = e} unchanged but
        keeps Q_c invertible when the data cannot separate a constrained direction, e.g. an
        intercept and an intrinsic model)."""
        self.A = device(model.A.toarray())
        self.CtC = device(model.C.T @ model.C)
        self.fixed_diag = device(self.fixed_diag_np)
        self.pieces = [(c.offset, jnp.asarray(K.toarray()), coef, jnp.asarray(c.theta_index, dtype=int))
                       for c in model.components for K, coef in zip(c.matrices, c.coefs)]

    # ---- model pieces ----
    @staticmethod
    def _constant(model: Problem, k: int) -> float:
        """θ-free part of log π̃(θ|y): prior normalisers' constants, ½log|CCᵀ|, (N−k)/2 log 2π."""
        c = 0.5 * (model.N - k) * math.log(2 * math.pi)
        if k:
            c += 0.5 * np.linalg.slogdet(model.C @ model.C.T)[1]
        for s in model.components:
            if _needs_affine(s):                        # density on {C_c x = e_c}: n − k dims
                c -= 0.5 * (s.n - s.constraints.shape[0]) * math.log(2 * math.pi)
            else:
                c += 0.5 * s.logdet_star - 0.5 * (s.n - s.rank_def) * math.log(2 * math.pi)
        prec = model.fixed_prec[model.fixed_prec > 0]
        c += 0.5 * float(np.sum(np.log(prec / (2 * math.pi))))
        return c

    def Qp(self, theta: jax.Array) -> jax.Array:
        Q = jnp.diag(self.fixed_diag)
        for off, K, coef, idx in self.pieces:
            n = K.shape[0]
            Q = Q.at[off:off + n, off:off + n].add(coef(theta[idx]) * K)
        return Q

    def log_prior_normaliser(self, theta: jax.Array) -> jax.Array:
        """Σ_c ½ log|Q_c(θ)|*, θ-dependent part (closed form, or a Cholesky of the block).

        A proper component under constraints C_c x = 0 (iid with constr = TRUE, extra
        constraints) has its density on the constraint set: ½ log|Z_cᵀ Q_c Z_c| with Z_c an
        orthonormal basis of null(C_c) (= ½(log|Q_c| + log|C_c Q_c⁻¹ C_cᵀ| − log|C_c C_cᵀ|)).
        Intrinsic components' constraints remove their null space: ½ log|Q_c|*.
        """
        total = jnp.zeros((), theta.dtype)
        for j, s in enumerate(self.model.components):
            th = theta[jnp.asarray(s.theta_index, dtype=int)]
            block = self._sparse_blocks.get(j)
            if _needs_affine(s):
                total = total + (block.affine_normaliser(th) if block is not None else _affine_normaliser(s, th))
            elif s.logdet is not None:
                total = total + 0.5 * s.logdet(th)
            elif block is not None:
                total = total + block.half_logdet(th)
            else:
                Q = sum(c(th) * jnp.asarray(K.toarray()) for c, K in zip(s.coefs, s.matrices))
                total = total + 0.5 * dense.logdet(dense.factor(Q))
        return total

    def log_prior_theta(self, theta: jax.Array) -> jax.Array:
        """Σ log π(θ_k) over the estimated hyperparameters (a fixed one has no prior, as in R-INLA)."""
        return sum((t.log_prior(theta[i] if t.joint is None else theta[jnp.asarray(t.joint)])
                    for i, t in enumerate(self.model.thetas) if not t.fixed), jnp.zeros(()))

    def loglik_terms(self, eta: jax.Array, theta: jax.Array) -> jax.Array:
        fams = self.model.families
        if len(fams) == 1:
            return self.mask * fams[0].loglik(self.y, eta, theta[self.lik_idx[0]], self.extra)
        total = jnp.zeros_like(eta)
        for f, fam in enumerate(fams):
            extra = {k: v for k, v in self.extra.items() if k in fam.extras}
            total = total + jnp.where(self.family_index == f, fam.loglik(self.y, eta, theta[self.lik_idx[f]], extra), 0.0)
        return self.mask * total

    def A_of(self, theta: jax.Array) -> jax.Array:
        """A(θ): the observation matrix, with copy blocks scaled by their estimated β."""
        A = self.A
        for cp in self.model.copies:
            n = cp.B.shape[1]
            A = A.at[:, cp.src_offset:cp.src_offset + n].add(theta[cp.theta_index] * jnp.asarray(cp.B))
        return A

    def eta(self, x: jax.Array, theta: jax.Array) -> jax.Array:
        eta = self.A_of(theta) @ x + self.off
        for tc in self.model.theta_covariates:
            eta = eta + self.model.thetas[tc.theta_index].to_natural(theta[tc.theta_index]) * jnp.asarray(tc.w)
        return eta

    def g(self, x: jax.Array, theta: jax.Array, Qp: jax.Array | None = None) -> jax.Array:
        Qp = self.Qp(theta) if Qp is None else Qp
        r = x - self.mu
        return jnp.sum(self.loglik_terms(self.eta(x, theta), theta)) - 0.5 * r @ (Qp @ r)

    def _derivs(self, eta, theta):
        """Elementwise ∂log p/∂η and w = −∂²log p/∂η² (separable likelihood: Hessian-vector with 1)."""
        f = lambda e: jnp.sum(self.loglik_terms(e, theta))
        d1, d2 = jax.jvp(jax.grad(f), (eta,), (jnp.ones_like(eta),))
        return d1, -d2

    def _qc_dense(self, w, theta, Qp):
        A = self.A_of(theta)
        return Qp + self.CtC + (A.T * w) @ A

    def factor_qc(self, w, theta, Qp):
        """Factor handle of Q_c + CᵀC = Q_p + CᵀC + Aᵀ diag(w) A."""
        return DenseFactor(self._qc_dense(w, theta, Qp))

    # ---- inner Newton iteration ----
    def newton(self, theta: jax.Array, x0: jax.Array | None = None, C: jax.Array | None = None,
               e: jax.Array | None = None):
        """Mode of g on {C x = e} (the model's constraints by default) by damped Newton; returns
        (x̂, iterations, converged).

        Stopping. With δ_k the relative size of the k-th (undamped) Newton step, Newton converges
        quadratically near the mode, δ_{k+1} ≈ c δ_k², so after a full step the error left is
        about c δ_k² with c ≈ δ_k / δ_{k−1}²: the iteration stops when that prediction is below
        :data:`NEWTON_TOL` (after a damped step: when the step itself is), saving the step that
        would only confirm convergence. It also stops when a step after one below
        :data:`NEWTON_FLOOR` fails to shrink 4×: that is the rounding floor of the solve, where a
        fixed tolerance below the floor made the iteration bounce until its cap.
        """
        C, e = (self.C, self.e) if C is None else (C, e)
        Qp = self.Qp(theta)
        A = self.A_of(theta)
        x0 = self.x_feasible if x0 is None else x0
        gfun = lambda x: self.g(x, theta, Qp)

        def target_from(x):
            d1, w = self._derivs(self.eta(x, theta), theta)
            F = self.factor_qc(w, theta, Qp)
            b = A.T @ (d1 + w * (A @ x)) + Qp @ self.mu
            return krige(F, C, F.solve(b), e)

        if self.quadratic:
            # g is quadratic in x, so the Newton target from any x0 is the constrained mode itself
            x = target_from(x0)
            return x, 1, jnp.all(jnp.isfinite(x))

        def body(state):
            x, gx, it, prev, _ = state
            target = target_from(x)
            step = target - x

            def halve(s):
                s_val, _ = s
                return s_val * 0.5, gfun(x + s_val * 0.5 * step)

            # a step below NEWTON_FLOOR is taken whole: its change of g is below g's own rounding
            # (large prior precisions times small residuals), which a line search would judge
            size = jnp.max(jnp.abs(step)) / (1.0 + jnp.max(jnp.abs(target)))
            s0 = (1.0, gfun(x + step))
            s, g_new = jax.lax.while_loop(
                lambda s: (s[1] < gx - 1e-12 * jnp.abs(gx)) & (s[0] > 1e-6) & (size > NEWTON_FLOOR), halve, s0)
            x_new = x + s * step
            quadratic = (s == 1.0) & (size < prev) & jnp.isfinite(prev)
            predicted = jnp.where(quadratic, size ** 3 / prev ** 2, size)
            at_floor = (prev <= NEWTON_FLOOR) & (size > 0.25 * prev)
            # a non-finite step (Q_c not positive definite at this θ: the solves return NaN) ends
            # the iteration; the caller sees the NaN mode, where more iterations only repeat it
            done = (predicted <= NEWTON_TOL) | at_floor | ~jnp.isfinite(size)
            return x_new, g_new, it + 1, size, done

        def cond(state):
            _, _, it, _, done = state
            return (it < NEWTON_MAX_ITER) & ~done

        x, _, it, _, done = jax.lax.while_loop(cond, body, (x0, gfun(x0), 0, jnp.inf, False))
        return x, it, done & jnp.all(jnp.isfinite(x))

    def _make_mode(self):
        """x̂(θ) from the start x0, with the implicit-function-theorem VJP (x̂ does not depend on
        x0, so x0 gets a zero cotangent)."""

        @jax.custom_vjp
        def mode(theta, x0):
            return self.newton(theta, x0)[0]

        def fwd(theta, x0):
            x = self.newton(theta, x0)[0]
            return x, (x, theta)

        def bwd(res, v):
            # dx̂/dθ = K H⁻¹ ∂_θ∇ₓg  ⇒  θ̄ = (∂_θ∇ₓg)ᵀ u,  u = K H⁻¹ v  (K: kriging projector)
            x, theta = res
            F = self.factor_qc(self._derivs(self.eta(x, theta), theta)[1], theta, self.Qp(theta))
            u = krige(F, self.C, F.solve(v))
            _, vjp = jax.vjp(lambda th: jax.grad(self.g)(x, th), theta)
            return (*vjp(u), jnp.zeros_like(x))

        mode.defvjp(fwd, bwd)
        return mode

    def mode(self, theta: jax.Array, x0: jax.Array | None = None) -> jax.Array:
        """The constrained latent mode x̂(θ), Newton's method started at ``x0`` (a feasible point
        by default; the mode at a nearby θ saves most iterations)."""
        return self._mode(theta, self.x_feasible if x0 is None else x0)

    # ---- the objective ----
    def log_posterior(self, theta: jax.Array, x0: jax.Array | None = None) -> jax.Array:
        """log π̃(θ | y) including every constant (so its integral is the marginal likelihood)."""
        return self.log_posterior_and_mode(theta, x0)[0]

    def log_posterior_and_mode(self, theta: jax.Array, x0: jax.Array | None = None):
        """(log π̃(θ | y), x̂(θ)); ``x0`` starts the inner Newton iteration."""
        x = self.mode(theta, x0)
        Qp = self.Qp(theta)
        F = self.factor_qc(self._derivs(self.eta(x, theta), theta)[1], theta, Qp)
        value = (self.log_prior_theta(theta) + self.g(x, theta, Qp) + self.log_prior_normaliser(theta)
                 - 0.5 * F.logdet() - 0.5 * constraint_logdet(F, self.C) + self.const)
        return value, jax.lax.stop_gradient(x)

    def gaussian(self, theta: jax.Array, x_mode: jax.Array | None = None, sla: bool = True,
                 nodes: np.ndarray | None = None) -> GaussianApprox:
        """Mode and marginal sds of the constrained Gaussian approximation, and of η, with the
        simplified-Laplace coefficients (``x_mode``: x̂(θ) when already known, e.g. from the
        objective's evaluation at θ; ``sla``: whether the caller needs the coefficients — this
        path computes them either way, from the full covariance it forms anyway; ``nodes``: the
        only nodes to correct, R-INLA's adaptive strategy — the others keep γ = 0, Gaussian)."""
        x = self.mode(theta) if x_mode is None else x_mode
        F = self.factor_qc(self._derivs(self.eta(x, theta), theta)[1], theta, self.Qp(theta))
        Sigma = F.inverse()
        if self.C.shape[0]:
            V = Sigma @ self.C.T
            Sigma = Sigma - V @ jnp.linalg.solve(self.C @ V, V.T)
        var = jnp.clip(jnp.diagonal(Sigma), 0.0)
        A = self.A_of(theta)
        eta = self.eta(x, theta)
        ASigma = A @ Sigma
        eta_var = jnp.clip(A.rowwise_dot(ASigma) if hasattr(A, "rowwise_dot") else jnp.sum(ASigma * A, axis=1), 0.0)
        sd = jnp.sqrt(var)
        cols = np.arange(self.model.N) if nodes is None else np.asarray(nodes)
        gamma1, gamma3 = self._sla(theta, eta, eta_var, sd, ASigma[:, cols], cols)
        return GaussianApprox(x, sd, eta, jnp.sqrt(eta_var), gamma1, gamma3)

    def _sla(self, theta, eta, eta_var, sd, ASigma_cols, cols):
        """Simplified-Laplace coefficients (γ1, γ3) of nodes ``cols`` (zero elsewhere) from
        Cov(η, x_cols) = A Σ_c[:, cols], Var η and the marginal sds.

        Rue, Martino & Chopin 2009 §3.2.3 (METHOD.md §13.2): with b_ij = Cov(η_i, x_j)/σ_j,
        v_i = Var η_i and d3_i = ∂³log p/∂η³ at η̂,
            γ1_j = ½ Σ_i d3_i (v_i b_ij − b_ij³),   γ3_j = Σ_i d3_i b_ij³.
        """
        d3 = self._third(eta, theta)
        return self._sla_coefficients(sd, (d3 * eta_var) @ ASigma_cols, d3 @ ASigma_cols ** 3, cols)

    def _sla_coefficients(self, sd, u1, u3, cols):
        """(γ1, γ3) of nodes ``cols`` from the column sums u1_j = Σ_i d3_i v_i Cov(η_i, x_j) and
        u3_j = Σ_i d3_i Cov(η_i, x_j)³ (see :meth:`_sla`; b_ij = Cov(η_i, x_j)/σ_j)."""
        s = sd[cols]
        s = jnp.where(s > 0, s, 1.0)
        zeros = jnp.zeros_like(sd)
        gamma1 = zeros.at[cols].set(0.5 * u1 / s - 0.5 * u3 / s ** 3)
        gamma3 = zeros.at[cols].set(u3 / s ** 3)
        if self.C.shape[0]:
            # Per-node shifts σ_j γ1_j need not respect C x = e jointly (the exact posterior means
            # do): drop their component along the constraint rows (Euclidean projection, which
            # touches only constrained nodes; kriging instead would move a sum-to-zero field's
            # level into the intercept — 0.08 sd off R-INLA on S2, against 0.007 sd this way).
            shift = sd * gamma1
            shift = shift - self.C.T @ jnp.linalg.solve(self.C @ self.C.T, self.C @ shift)
            gamma1 = shift / jnp.where(sd > 0, sd, 1.0)
        return gamma1, gamma3

    def laplace_log_density(self, theta: jax.Array, nodes: np.ndarray, s: np.ndarray,
                            x_mode: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """The full Laplace approximation of π(x_j | θ, y) for each j in ``nodes``, at
        x_j = x̂_j + σ_j s_i (Rue, Martino & Chopin 2009 §3.2.1; R-INLA's strategy "laplace"):

            log π̃(x_j = v | θ, y) = g(x*) − ½ log|H(x*)| − ½ log|C̃ H(x*)⁻¹ C̃ᵀ| + const,

        x* the mode of g on {C x = e, x_j = v} (C̃ = [C; e_jᵀ]), H its Hessian (with CᵀC, which
        is constant on that set). Returns (log densities (n_nodes, n_s), less their value at
        s = 0; σ (n_nodes,)), σ_j the Gaussian approximation's sd. Newton starts from the
        Gaussian conditional mean x̂ + Σ_c e_j s_i/σ_j, which already satisfies every constraint.
        """
        x = self.mode(theta) if x_mode is None else x_mode
        Qp = self.Qp(theta)
        F = self.factor_qc(self._derivs(self.eta(x, theta), theta)[1], theta, Qp)
        N = self.model.N
        s = jnp.asarray(s)

        def at(v, j, x0):
            Cj = jnp.concatenate([self.C, jax.nn.one_hot(j, N)[None, :]])
            ej = jnp.concatenate([self.e, v[None]])
            xs = self.newton(theta, x0, Cj, ej)[0]
            Fs = self.factor_qc(self._derivs(self.eta(xs, theta), theta)[1], theta, Qp)
            return self.g(xs, theta, Qp) - 0.5 * Fs.logdet() - 0.5 * constraint_logdet(Fs, Cj)

        def node(j):
            col = krige(F, self.C, F.solve(jax.nn.one_hot(j, N)))      # Σ_c e_j
            sd = jnp.sqrt(jnp.maximum(col[j], 1e-300))
            vals = jax.vmap(lambda si: at(x[j] + sd * si, j, x + col * (si / sd)))(s)
            return vals - at(x[j], j, x), sd

        return jax.lax.map(node, jnp.asarray(nodes))

    def _third(self, eta, theta):
        """Elementwise ∂³ log p/∂η³ (separable likelihood: nested JVPs with a vector of ones)."""
        f = lambda e: jnp.sum(self.loglik_terms(e, theta))
        ones = jnp.ones_like(eta)
        second = lambda e: jax.jvp(jax.grad(f), (e,), (ones,))[1]
        return jax.jvp(second, (eta,), (ones,))[1]

    @property
    def n_normals(self) -> int:
        """Standard normals per draw of x (:meth:`sample_latent_from`): N here."""
        return self.model.N

    def sample_latent(self, theta: jax.Array, key: jax.Array, n: int, x_mode: jax.Array | None = None) -> jax.Array:
        """n draws of x from the constrained Gaussian approximation at θ, shape (n, N)
        (``x_mode``: x̂(θ) when already known)."""
        return self.sample_latent_from(theta, jax.random.normal(key, (self.n_normals, n)), x_mode)

    def sample_latent_from(self, theta: jax.Array, z: jax.Array, x_mode: jax.Array | None = None) -> jax.Array:
        """Draws of x as :meth:`sample_latent`, from given standard normals z (n_normals × n).

        The fit passes normals drawn on the host: made inside the program, XLA recomputed the
        threefry stream for each of their consumers (Germany space–time: 77 ms a chunk of 128
        draws against 27 ms for the rest)."""
        x = self.mode(theta) if x_mode is None else x_mode
        F = self.factor_qc(self._derivs(self.eta(x, theta), theta)[1], theta, self.Qp(theta))
        rows = self.model.N + getattr(F, "extra_normals", 0)
        if z.shape[0] != rows or rows != self.n_normals:
            raise ValueError(f"a draw takes {rows} standard normals, got {z.shape[0]} (n_normals = {self.n_normals})")
        draws = krige(F, self.C, F.sample_standard(z))      # columns: constrained zero-mean draws
        return (x[:, None] + draws).T


def _proper_constrained(s) -> bool:
    return s.rank_def == 0 and s.constraints.shape[0] > 0


def _needs_affine(s) -> bool:
    """Whether block s's density lives on its constraint set (a proper block under constraints,
    or user extraconstr): its normaliser is :func:`_affine_normaliser`'s."""
    return _proper_constrained(s) or bool(s.extra_constraints)


def _affine_normaliser(s, th) -> jax.Array:
    """θ-dependent log-normaliser of exp(−½ xᵀQx) on the affine set {C x = e} (C: the component's rows).

    With Z an orthonormal basis of null(C), x₀ = Cᵀ(CCᵀ)⁻¹e and b = ZᵀQx₀:
    ½ log|ZᵀQZ| + ½ x₀ᵀQx₀ − ½ bᵀ(ZᵀQZ)⁻¹b  (the last two = ½ eᵀ(CQ⁻¹Cᵀ)⁻¹e for proper Q).
    """
    C = s.constraints
    e = np.zeros(C.shape[0]) if s.constraint_rhs is None else s.constraint_rhs
    Z = jnp.asarray(scipy.linalg.null_space(C))
    x0 = jnp.asarray(C.T @ np.linalg.solve(C @ C.T, e))
    Q = sum(c(th) * jnp.asarray(K.toarray()) for c, K in zip(s.coefs, s.matrices))
    L = dense.factor(Z.T @ Q @ Z)
    b = Z.T @ (Q @ x0)
    return 0.5 * dense.logdet(L) + 0.5 * x0 @ (Q @ x0) - 0.5 * b @ dense.solve(L, b)


jax.tree_util.register_static(LaplaceProblem)
