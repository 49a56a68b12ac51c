"""Dense reference solver: the oracle for the structured kernels and the path for small models.

The solver seam every backend implements (tinygp's ``Solver`` idea): ``factor``, ``logdet``,
``solve``, ``inverse`` (selected inverse; dense: the full inverse) and ``sample``. All pure
functions of arrays, jit/vmap/grad-able (JAX differentiates ``jnp.linalg.cholesky``).
"""

from __future__ import annotations

__all__ = ["factor", "logdet", "solve", "inverse", "sample_standard", "krige", "constraint_logdet", "constrain",
           "constrained_logdet_term"]

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular


def factor(Q: jax.Array) -> jax.Array:
    """Lower Cholesky factor L with Q = L Lᵀ (NaN entries if Q is not positive definite)."""
    return jnp.linalg.cholesky(Q)


def logdet(L: jax.Array) -> jax.Array:
    """log|Q| = 2 Σ log L_ii."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))


def solve(L: jax.Array, b: jax.Array) -> jax.Array:
    """Q⁻¹ b for a vector or a matrix of right-hand sides."""
    return cho_solve((L, True), b)


def inverse(L: jax.Array) -> jax.Array:
    return solve(L, jnp.eye(L.shape[0], dtype=L.dtype))


def sample_standard(L: jax.Array, z: jax.Array) -> jax.Array:
    """L⁻ᵀ z ~ N(0, Q⁻¹) for z ~ N(0, I) (one back substitution; Rue & Held 2005, Alg. 2.4)."""
    return solve_triangular(L.T, z, lower=False)


def krige(solve_fn, C: jax.Array, x: jax.Array, e: jax.Array | None = None, V: jax.Array | None = None) -> jax.Array:
    """Kriging correction onto {C x = e}: x − Q⁻¹Cᵀ(C Q⁻¹ Cᵀ)⁻¹ (C x − e) (Rue & Held 2005, eq. 2.30),
    for any solver ``solve_fn(b) = Q⁻¹ b`` (dense, sparse); ``V``: Q⁻¹Cᵀ when already known.

    Applied to the mode it gives the constrained mode; applied to a zero-mean draw (e = 0), a
    constrained draw.
    """
    if C.shape[0] == 0:
        return x
    V = solve_fn(C.T) if V is None else V
    r = C @ x if e is None else C @ x - e
    return x - V @ jnp.linalg.solve(C @ V, r)


def constraint_logdet(solve_fn, C: jax.Array, V: jax.Array | None = None) -> jax.Array:
    """log|C Q⁻¹ Cᵀ|: the extra normaliser of N(μ, Q⁻¹) conditioned on C x = e (0 without
    constraints); ``V``: Q⁻¹Cᵀ when already known."""
    if C.shape[0] == 0:
        return jnp.zeros(())
    return jnp.linalg.slogdet(C @ (solve_fn(C.T) if V is None else V))[1]


def constrain(L: jax.Array, C: jax.Array, x: jax.Array, e: jax.Array | None = None) -> jax.Array:
    """:func:`krige` with the dense factor L."""
    return krige(lambda b: solve(L, b), C, x, e)


def constrained_logdet_term(L: jax.Array, C: jax.Array) -> jax.Array:
    """:func:`constraint_logdet` with the dense factor L."""
    return constraint_logdet(lambda b: solve(L, b), C)
