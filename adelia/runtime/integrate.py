"""Integration over θ: the standardised z-space, R-INLA's skewness correction, grid and CCD designs.

θ(z) = θ* + V Λ^(−½) (s^± ⊙ z) with H = V Λ Vᵀ the Hessian of f = −log π̃(θ|y) at the mode
(R-INLA ``GMRFLib_ai_z2theta``). The stretch s_k^± comes from f at z = ±√2 e_k
(``stdev_corr``: s = 1/√Δ, Δ = f(θ(±√2 e_k)) − f*), R-INLA's default with only the asymmetry
corrected (each pair divided by its geometric mean). Rules (METHOD.md §13.1):

* grid (classic, d ≤ 2): z on dz·ℤ^d, the region with f − f* ≤ diff.logdens grown from the mode
  through lattice neighbours (R-INLA: the box spanned by axis scans); weights ∝ exp(−f) × cell
  volume.
* ccd (d > 2): centre, 2d axial points and a resolution-V two-level fractional factorial
  (Sanchez & Sanchez 2005), rows scaled to radius f0·√d (f0 = 1.1), weights
  w = 1/((n−1)(1 + e^(−f²/2)(f²/d − 1))), w₀ = 1 − (n−1) w.
* eb: the mode alone.
"""

from __future__ import annotations

__all__ = ["ThetaFrame", "standardise", "grid_design", "ccd_design", "ccd_weights", "fractional_factorial"]

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ThetaFrame:
    """The map z -> θ at the mode."""

    mode: np.ndarray
    H: np.ndarray
    vectors: np.ndarray     # V
    scales: np.ndarray      # Λ^(−½)
    s_plus: np.ndarray
    s_minus: np.ndarray

    def theta(self, z: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(z)
        stretched = np.where(z >= 0, z * self.s_plus, z * self.s_minus)
        return self.mode + (stretched * self.scales) @ self.vectors.T

    def log_volume(self, z: np.ndarray) -> np.ndarray:
        """log |dθ/dz| at each z (piecewise constant in the orthant)."""
        z = np.atleast_2d(z)
        s = np.where(z >= 0, self.s_plus, self.s_minus)
        return np.sum(np.log(s * self.scales), axis=1)

    @property
    def d(self) -> int:
        return len(self.mode)


def standardise(mode: np.ndarray, H: np.ndarray, f: Callable[[np.ndarray], np.ndarray], f_mode: float,
                skewness: bool = True) -> ThetaFrame:
    """Build the z-frame; ``f`` evaluates f(θ) for a batch of θ rows."""
    lam, V = np.linalg.eigh(H)
    d = len(mode)
    frame = ThetaFrame(mode, H, V, 1.0 / np.sqrt(lam), np.ones(d), np.ones(d))
    if not skewness or d == 0:
        return frame
    step = np.sqrt(2.0)
    z = np.concatenate([np.eye(d) * step, -np.eye(d) * step])
    delta = np.asarray(f(frame.theta(z))) - f_mode
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(delta > 0, 1.0 / np.sqrt(np.where(delta > 0, delta, 1.0)), 1.0)
    sp, sm = s[:d], s[d:]
    g = np.sqrt(sp * sm)           # hessian.correct.skewness.only = TRUE
    return ThetaFrame(mode, H, V, frame.scales, sp / g, sm / g)


def grid_design(frame: ThetaFrame, f: Callable[[np.ndarray], np.ndarray], f_mode: float,
                dz: float = 0.75, diff_logdens: float = 6.0, max_steps: int = 30):
    """The lattice points z ∈ dz·ℤ^d connected to the mode with f − f* ≤ diff.logdens, their
    continuation along slowly falling tails, and on each axis the first point past the threshold.

    Returns (Z, f(θ(Z)), n_core): the first n_core rows are R-INLA's kind of design (within the
    threshold, plus the axis points past it), the rest the tails. The latent marginals mix over
    the core, the θ marginals and the marginal likelihood integrate over all of them: each tail
    point costs one inner optimisation and no latent marginals.

    R-INLA scans the axes until f − f* > diff.logdens and keeps the points of the box they span
    that pass the threshold. Here the region is grown from the mode instead, one layer of
    lattice neighbours at a time (each layer one batch of evaluations): on a round posterior the
    two coincide, but a curved ridge leaves the box.

    Past the threshold a point is still kept, and grown from, while f − f* ≤ 2·diff.logdens if
    the step to it from its kept neighbour fell by less than half of what a Gaussian falls there
    (½(|z_q|² − |z_p|²)): a tail much heavier than the Gaussian's, such as a PC prior's where the
    likelihood has gone flat. Across such a tail the points are kept while they lie less than 2.5
    below its ridge, and the tail holds at most half as many points as the region within
    diff.logdens (a PC prior's tail of a precision goes on for ever). A Gaussian-like posterior has no such
    step and keeps R-INLA's set. The zero-inflated negative binomial's (log size, logit p)
    posterior bends towards small size and no zero-inflation and has an exponential tail of the
    log size towards the Poisson limit (type 1): R-INLA's box kept 77 points and, even with the
    cell marginals of ``theta_marginal_lattice``, left the log size's sd at 0.87 of the exact
    (NUTS) one, the grown design with its tail 0.91 (tests/compiler/test_family_recovery.py).

    The axis points past the threshold bracket the tails: without them a slowly falling tail
    loses the mass between the last kept point and the true fall-off. On Seeds (binomial, iid
    plate effects) its log-precision density falls only 4.3 over 7.7 units below the mode and
    then steeply; the cut-off left the 2.5 % quantile 0.18 exact sd high and the plate effects'
    sds at 0.90–0.98 of the exact ones, against 0.06 sd and 0.96–1.02 with the two extra points.
    No coordinate goes beyond ``max_steps`` lattice steps (an improper direction stops there).
    """
    d = frame.d
    origin = (0,) * d
    kept = {origin: float(np.asarray(f(frame.theta(np.zeros((1, d)))))[0])}
    tail: dict[tuple, float] = {}          # past the threshold on a slow tail: f of the tail's ridge
    past: dict[tuple, float] = {}
    seen = {origin}
    frontier = [origin]
    radius2 = lambda q: float(np.dot(q, q)) * dz * dz
    tail_room = lambda: 2 * len(tail) < len(kept) - len(tail)     # the tail costs at most half the core
    while frontier:
        layer, parent = [], []
        for p in frontier:
            for i in range(d):
                for step in (1, -1):
                    q = p[:i] + (p[i] + step,) + p[i + 1:]
                    if q not in seen and abs(q[i]) <= max_steps:
                        seen.add(q)
                        layer.append(q)
                        parent.append(p)
        if not layer:
            break
        values = np.asarray(f(frame.theta(np.array(layer, dtype=float) * dz)), dtype=float)
        frontier = []
        for q, p, v in zip(layer, parent, values):
            if not np.isfinite(v):
                continue
            drop, fall = v - f_mode, v - kept[p]
            outward = radius2(q) - radius2(p)
            if drop <= diff_logdens:
                kept[q] = float(v)
                frontier.append(q)
                continue
            inner = tuple(c - np.sign(c) for c in q)
            if sum(c != 0 for c in q) == 1 and inner in kept and inner not in tail:
                past[q] = float(v)            # the axis point past the threshold: in the core
            if tail_room() and drop <= 2 * diff_logdens and outward > 0 and fall < 0.25 * outward:
                kept[q] = float(v)            # a slow tail: grown further
                tail[q] = float(v)
                frontier.append(q)
            elif tail_room() and drop <= 2 * diff_logdens and p in tail and v - tail[p] < 2.5:
                kept[q] = float(v)            # across the tail, down to e^-2.5 of its ridge
                tail[q] = tail[p]
                frontier.append(q)
    core = sorted(q for q in kept if q not in tail) + sorted(past)
    points = core + sorted(q for q in tail if q not in past)
    Z = np.array(points, dtype=float).reshape(-1, d) * dz
    fz = np.array([kept.get(q, past.get(q)) for q in points], dtype=float)
    return Z, fz, len(core)


@lru_cache(maxsize=None)
def fractional_factorial(d: int) -> np.ndarray:
    """A resolution-V two-level design (±1) for d factors with R-INLA's run counts.

    Columns are distinct non-zero vectors of GF(2)^p chosen so that no four or fewer of them
    sum to zero (no main effect or two-factor interaction is aliased with another), built
    greedily; p is the smallest that holds d such columns (full factorial for d ≤ 4).
    """
    if d <= 4:
        return np.array(list(itertools.product((-1.0, 1.0), repeat=d)))
    for p in range(d.bit_length(), 16):
        cols: list[int] = []
        sums = {0}          # XORs of ≤ 2 chosen columns
        for v in range(1, 2 ** p):
            # v is allowed if v ⊕ (sum of ≤3 chosen) ≠ 0, i.e. v ∉ {sums of ≤ 3}; with pairs-set P,
            # 3-sums are P ⊕ c; check directly.
            if v in sums or any((v ^ c) in sums for c in cols):
                continue
            cols.append(v)
            sums |= {v} | {v ^ c for c in cols[:-1]}
            if len(cols) == d:
                runs = np.array(list(itertools.product((0, 1), repeat=p)))
                bits = np.array([[(c >> b) & 1 for b in range(p)] for c in cols]).T  # p × d
                return 1.0 - 2.0 * ((runs @ bits) % 2)
    raise ValueError(f"no resolution-V design found for d = {d}")


def ccd_design(d: int, f0: float = 1.1) -> tuple[np.ndarray, np.ndarray]:
    """CCD points in z-space (centre, axial, factorial) and their integration weights."""
    ff = fractional_factorial(d)
    pts = np.concatenate([np.zeros((1, d)), np.eye(d), -np.eye(d), ff / np.sqrt(d)])
    radius = max(f0, 1.0) * np.sqrt(d)
    pts = pts * radius
    return pts, ccd_weights(len(pts), d, radius)


def ccd_weights(n: int, d: int, radius: float) -> np.ndarray:
    f2 = radius ** 2
    w = 1.0 / ((n - 1) * (1.0 + np.exp(-f2 / 2) * (f2 / d - 1.0)))
    out = np.full(n, w)
    out[0] = 1.0 - (n - 1) * w
    return out
