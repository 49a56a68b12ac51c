"""The θ-mode search (quasi-Newton on exact AD gradients) and the Hessian at the mode.

The outer loop stays in Python around a jitted ``value_and_grad`` (METHOD.md §12): SciPy's
L-BFGS-B (without bounds; limited-memory BFGS with a scaled initial inverse Hessian, Byrd, Lu,
Nocedal & Zhu 1995) and its line search. The Hessian is central differences of the exact gradient,
column i = (∇f(θ + h eᵢ) − ∇f(θ − h eᵢ)) / 2h, h = 0.005 (R-INLA's ``control.inla(h = 0.005)``),
symmetrised; positive definiteness is checked and reported.
"""

from __future__ import annotations

__all__ = ["ModeResult", "find_mode", "hessian_at", "central_difference_gradient"]

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.optimize

from adelia.errors import FitError


@dataclass(frozen=True)
class ModeResult:
    theta: np.ndarray
    f: float
    grad: np.ndarray
    n_iter: int
    n_eval: int
    message: str


#: The search also stops once an iteration changes f by less than this fraction of |f| while the
#: gradient is below NOISE_GTOL: what is left to gain is then within some 100 times the
#: objective's rounding noise (the inner Newton iteration ends at the solve's floor, ~1e-12 of
#: f), where line searches fail and wander (S2: 29 evaluations, 18 of them in a last failing
#: line search, where 11 reach the same mode to 1e-4 of a posterior sd)
NOISE_FTOL = 1e-10
NOISE_GTOL = 1e-3
#: ... and once this many evaluations in a row land within NOISE_FTOL of the best f while the
#: best point's gradient is below NOISE_GTOL_STEEP: a line search probing differences it cannot
#: resolve. On a steep objective (SPDE ⊗ AR1 10k: curvature 2800 in the noise precision) the
#: gradient left at the resolvable minimum is ~1e-3 and θ within 1e-6 of the mode, and BFGS went
#: on for 22 evaluations (7 s) before reporting precision loss
NOISE_STREAK = 5
NOISE_GTOL_STEEP = 1e-2


class _Stop(Exception):
    """Raised inside the objective to end the search at the best point, for ``message``."""

    message = ""


class _InNoise(_Stop):
    """See :data:`NOISE_STREAK`."""

    message = "the line search ran into the objective's rounding noise"


class _Stationary(_Stop):
    """Raised inside the objective when an evaluated point meets ``gtol`` at the best f (within
    :data:`NOISE_FTOL`): L-BFGS-B tests ``gtol`` only at the points its line searches accept, and
    where the best point's f is within the objective's rounding noise of a trial's, it can
    reject a trial with a gradient below ``gtol`` and go on searching the noise (S2: five more
    evaluations, all at the same f to 1e-10, until :data:`NOISE_STREAK` ended it)."""

    message = "the gradient is below gtol at the best point"


def find_mode(value_and_grad: Callable, theta0: np.ndarray, *, gtol: float = 1e-5, max_iter: int = 500,
              callback: Callable | None = None) -> ModeResult:
    """Minimise f(θ) = −log π̃(θ|y) from θ0 with L-BFGS-B and exact gradients (until |∇f|∞ ≤ gtol,
    or f stalls at its rounding noise with |∇f|∞ ≤ :data:`NOISE_GTOL`)."""
    n_eval = 0
    best = {"f": np.inf, "theta": np.asarray(theta0, float), "g": None}
    grads: dict[bytes, np.ndarray] = {}
    streak = 0

    latest: dict = {}

    def evaluate(th):
        """value_and_grad, once per point in a row: the search asks again for θ0 (checked first
        below) and the final point (its mode must be the caller's latest, which it then is)."""
        nonlocal n_eval
        key = np.asarray(th, float).tobytes()
        if latest.get("key") != key:
            n_eval += 1
            f, g = value_and_grad(th)
            latest.update(key=key, f=float(f), g=np.asarray(g, dtype=float))
        return latest["f"], latest["g"].copy()

    def fun(th):
        nonlocal streak
        f, g = evaluate(th)
        if not np.isfinite(f) or not np.all(np.isfinite(g)):
            return _wall(np.asarray(th, float), best)
        streak = streak + 1 if abs(f - best["f"]) <= NOISE_FTOL * max(1.0, abs(f)) else 0
        if f < best["f"]:
            best.update(f=f, theta=np.array(th), g=g)
        grads[np.asarray(th, float).tobytes()] = g
        if np.max(np.abs(g)) <= gtol and f <= best["f"] + NOISE_FTOL * max(1.0, abs(f)):
            best.update(f=f, theta=np.array(th), g=g)
            raise _Stationary
        if streak >= NOISE_STREAK and np.max(np.abs(best["g"])) <= NOISE_GTOL_STEEP:
            raise _InNoise
        return f, g

    last = {"f": np.inf, "noise": False, "nit": 0}

    def iteration(intermediate_result):
        last["nit"] += 1
        if callback is not None:
            callback(intermediate_result.x)
        f = float(intermediate_result.fun)
        g = grads.get(np.asarray(intermediate_result.x, float).tobytes())
        if (g is not None and np.max(np.abs(g)) <= NOISE_GTOL
                and abs(last["f"] - f) <= NOISE_FTOL * max(1.0, abs(f))):
            last["noise"] = True
            raise StopIteration
        last["f"] = f

    if len(theta0) == 0:
        return ModeResult(np.zeros(0), float(value_and_grad(np.zeros(0))[0]), np.zeros(0), 0, 1, "no hyperparameters")
    try:
        f0, _ = fun(np.asarray(theta0, float))
        if f0 >= 1e300:
            raise FitError("the Laplace objective is not finite at the initial hyperparameters",
                           hint="check the data for extreme values, or give initial values in hyper = list(...)")
        # L-BFGS-B rather than BFGS: it rescales its inverse-Hessian guess by yᵀs / yᵀy at every
        # iteration (Shanno & Phua 1978; Nocedal & Wright 2006, eq. 7.20), where SciPy's BFGS starts
        # from H₀ = I and, on θ objectives of curvature 10²–10³, overshoots by orders of magnitude
        # in its first steps. No bounds are given; ftol is left to the noise rules above.
        res = scipy.optimize.minimize(fun, np.asarray(theta0, float), jac=True, method="L-BFGS-B",
                                      options={"gtol": gtol, "maxiter": max_iter, "ftol": 1e-15},
                                      callback=iteration)
    except _Stop as stop:
        res = scipy.optimize.OptimizeResult(x=best["theta"], fun=best["f"], success=True, nit=last["nit"],
                                            message=stop.message)
    if last["noise"]:
        res.success, res.message = True, "the objective no longer changes beyond its rounding noise"
    elif "REDUCTION OF F" in str(res.message) and np.max(np.abs(best["g"])) > NOISE_GTOL:
        res.success = False      # f stalled with a gradient left: judged below, not taken as converged
    theta = res.x if res.fun <= best["f"] else best["theta"]
    f, g = evaluate(theta)
    if not np.isfinite(float(f)):
        raise FitError("the θ-mode search ended at a non-finite objective")
    if not res.success and np.max(np.abs(g)) > 1e-3 and not _near_minimum(g, getattr(res, "hess_inv", None)):
        raise FitError(f"the θ-mode search did not converge (|∇f| = {np.max(np.abs(g)):.3g}; {res.message})",
                       hint="try other initial values, or fix a poorly identified hyperparameter")
    return ModeResult(np.asarray(theta), float(f), g, int(res.nit), n_eval, str(res.message))


def _wall(theta: np.ndarray, best: dict) -> tuple[float, np.ndarray]:
    """(f, ∇f) reported where the Laplace objective is not defined (a θ where Q_c is not positive
    definite): the quadratic through the best point so far that rises by max(1, |f_best|) at θ,
    so the line search steps back. A value like 1e300 with a zero gradient broke L-BFGS-B's
    line search, which then reported convergence by its relative-reduction test (its scale is
    max(|f_old|, |f|, 1), and so 1e300 times the tolerance)."""
    d = theta - best["theta"]
    rise = max(1.0, abs(best["f"])) if np.isfinite(best["f"]) else 1.0
    dd = float(d @ d)
    if not np.isfinite(best["f"]) or dd == 0.0:
        return (best["f"] + rise if np.isfinite(best["f"]) else 1e300), np.zeros_like(theta)
    return best["f"] + rise, 2.0 * rise * d / dd


def _near_minimum(g: np.ndarray, hess_inv, tol: float = 1e-4) -> bool:
    """Whether the search, stopped by precision loss (the objective's rounding noise, some 1e-11 of
    its value on large models, exceeds what a line search can resolve), stands close enough to
    the minimum anyway: the Newton decrement gᵀH⁻¹g with the search's own inverse-Hessian estimate is
    below ``tol``, i.e. θ is within about √tol posterior sds of the mode and f within tol/2 of
    its minimum. A gradient of 10⁻³ is nothing on a θ with posterior sd 0.02 (curvature 2500)."""
    if hess_inv is None or not len(g):
        return False
    decrement = float(g @ (hess_inv @ g if hasattr(hess_inv, "matvec") else np.asarray(hess_inv) @ g))
    return bool(np.isfinite(decrement) and 0.0 <= decrement <= tol)


def central_difference_gradient(value: Callable, theta: np.ndarray, h: float = 0.005) -> tuple[float, np.ndarray]:
    """(f(θ), ∇f(θ)) with ∂f/∂θᵢ ≈ (f(θ + h eᵢ) − f(θ − h eᵢ)) / 2h: R-INLA's gradient of the
    θ-objective (GMRFLib's central differences, ``control.inla(h = 0.005)``; RINLA.md §6.2),
    2d + 1 evaluations of f. Kept beside the exact AD gradient so the two can be measured side
    by side (``gradient = "fd"``); its error is O(h² ∂³f), so the mode it finds is within about
    that of the exact one."""
    theta = np.asarray(theta, float)
    f0 = float(value(theta))
    g = np.zeros(len(theta))
    for i in range(len(theta)):
        e = np.zeros(len(theta))
        e[i] = h
        g[i] = (float(value(theta + e)) - float(value(theta - e))) / (2 * h)
    return f0, g


def hessian_at(grad: Callable, theta: np.ndarray, h: float = 0.005) -> np.ndarray:
    """Symmetrised central-difference Hessian of f from its exact gradient (2d gradient calls)."""
    d = len(theta)
    H = np.zeros((d, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = h
        H[:, i] = (np.asarray(grad(theta + e)) - np.asarray(grad(theta - e))) / (2 * h)
    H = 0.5 * (H + H.T)
    if d and not np.all(np.isfinite(H)):
        raise FitError("the Hessian of the θ-objective is not finite at the mode")
    eig = np.linalg.eigvalsh(H) if d else np.zeros(0)
    if d and eig.min() <= 0:
        raise FitError(f"the θ-mode is not a maximum: the Hessian has eigenvalues {np.array2string(eig, precision=3)}",
                       hint="a hyperparameter may be unidentified; fix it or give it a more informative prior")
    return H
