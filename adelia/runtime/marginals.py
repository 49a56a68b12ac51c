"""Posterior marginals: Gaussian mixtures over the θ points (latent field) and the θ marginals.

Latent marginals (strategy "gaussian"): π(x_j | y) ≈ Σ_k w_k N(x̂_j(θ_k), σ²_j(θ_k)), the
weights being the normalised integration weights. Hyperparameter marginals: for d = 1 the
log-density through the grid points (a cubic spline, R-INLA's "gridsum" idea); for a grid
design with d > 1 the design's own cells pushed forward to θ_j; for CCD R-INLA's
asymmetric-Gaussian ("ccd") interpolator along the line of conditional means (METHOD.md §13.1,
``GMRFLib_ai_marginal_one_hyperparamter``).
"""

from __future__ import annotations

__all__ = ["mixture_summary", "skew_mixture_summary", "skew_normal_from_sla", "density_summary", "laplace_mixture_summary",
           "theta_marginal_grid", "theta_marginal_lattice", "QUANTILES", "mixture_density", "marginal_grid", "symmetric_kld",
           "cumulative_trapezoid", "cubic_spline"]

import numpy as np
from scipy.special import ndtr, ndtri, owens_t

QUANTILES = (0.025, 0.5, 0.975)

#: every column: the default column selection of the mixtures' cdf(x, cols) and pdf(x, cols)
_ALL = slice(None)


def mixture_summary(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, quantiles=QUANTILES) -> dict[str, np.ndarray]:
    """Mean, sd, quantiles and mode of Σ_k w_k N(mu[k], sd[k]²), columnwise (mu, sd: (K, n))."""
    w = np.asarray(w, float) / np.sum(w)
    mu, sd = np.atleast_2d(mu), np.maximum(np.atleast_2d(sd), 1e-300)
    mean = w @ mu
    var = w @ (sd ** 2 + mu ** 2) - mean ** 2
    out = {"mean": mean, "sd": np.sqrt(np.maximum(var, 0.0))}
    lo = np.min(mu - 10 * sd, axis=0)
    hi = np.max(mu + 10 * sd, axis=0)
    cdf = lambda x, c=_ALL: w @ ndtr((x - mu[:, c]) / sd[:, c])
    pdf = lambda x, c=_ALL: w @ (np.exp(-0.5 * ((x - mu[:, c]) / sd[:, c]) ** 2) / sd[:, c]) / np.sqrt(2 * np.pi)
    for q in quantiles:
        out[f"{q}quant"] = _quantile(cdf, pdf, q, lo, hi, mean + ndtri(q) * out["sd"])
    out["mode"] = _mode(pdf, mean, out["sd"], mu)
    return out


def density_summary(theta: np.ndarray, logdens: np.ndarray, to_natural, quantiles=QUANTILES) -> dict[str, float]:
    """Summaries of a 1-D density given on a fine θ grid, for θ itself and for to_natural(θ)."""
    dens = np.exp(logdens - logdens.max())
    dens /= np.trapezoid(dens, theta)
    cdf = cumulative_trapezoid(dens, theta)
    cdf /= cdf[-1]
    nat = np.asarray(to_natural(theta), float)
    out = {}
    for label, values in (("internal", theta), ("natural", nat)):
        mean = np.trapezoid(values * dens, theta)
        sd = np.sqrt(max(np.trapezoid((values - mean) ** 2 * dens, theta), 0.0))
        row = {"mean": mean, "sd": sd}
        for q in quantiles:
            row[f"{q}quant"] = float(np.interp(q, cdf, values))
        # density of the transformed variable: π(v) = π(θ) / |dv/dθ|
        jac = np.abs(np.gradient(values, theta))
        row["mode"] = float(values[np.argmax(dens / np.maximum(jac, 1e-300))])
        out[label] = row
    return out


# The two helpers below stand in for SciPy's ``cumulative_trapezoid(y, x, axis=0, initial=0)``
# and ``CubicSpline(x, y)(x_new)``: every fit needs them, and importing scipy.integrate and
# scipy.interpolate for them cost each new process about 60 ms of its first fit.

def cumulative_trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """∫ from x_0 to x_i of y dx by the trapezoid rule, along axis 0 of y (x: 1-D, increasing)."""
    y = np.asarray(y, float)
    dx = np.diff(np.asarray(x, float)).reshape((-1,) + (1,) * (y.ndim - 1))
    return np.concatenate([np.zeros((1,) + y.shape[1:]), np.cumsum(0.5 * (y[1:] + y[:-1]) * dx, axis=0)])


def cubic_spline(x: np.ndarray, y: np.ndarray, x_new: np.ndarray) -> np.ndarray:
    """The not-a-knot cubic spline through (x_i, y_i) at ``x_new`` (x: n ≥ 4 increasing knots;
    y: (n, ...), one spline per trailing index; result (len(x_new), ...)).

    Second-derivative form (de Boor 1978, ch. IV): with h_i = x_{i+1} − x_i and
    δ_i = (y_{i+1} − y_i)/h_i, the moments M_i = s''(x_i) solve
    h_{i−1} M_{i−1} + 2(h_{i−1} + h_i) M_i + h_i M_{i+1} = 6(δ_i − δ_{i−1}) inside, and the third
    derivative is continuous at x_1 and x_{n−2} (not-a-knot); on [x_i, x_{i+1}], with t = x − x_i,
    s = y_i + t (δ_i − h_i(2M_i + M_{i+1})/6) + t² M_i/2 + t³ (M_{i+1} − M_i)/(6h_i)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    n = len(x)
    if n < 4:
        raise ValueError(f"a not-a-knot cubic spline needs 4 knots or more, got {n}")
    flat = y.reshape(n, -1)
    h = np.diff(x)
    delta = np.diff(flat, axis=0) / h[:, None]
    A = np.zeros((n, n))
    rhs = np.zeros_like(flat)
    i = np.arange(1, n - 1)
    A[i, i - 1], A[i, i], A[i, i + 1] = h[:-1], 2 * (h[:-1] + h[1:]), h[1:]
    rhs[1:-1] = 6 * (delta[1:] - delta[:-1])
    A[0, :3] = h[1], -(h[0] + h[1]), h[0]
    A[-1, -3:] = h[-1], -(h[-2] + h[-1]), h[-2]
    M = np.linalg.solve(A, rhs)
    x_new = np.asarray(x_new, float)
    k = np.clip(np.searchsorted(x, x_new, side="right") - 1, 0, n - 2)
    t = (x_new - x[k])[:, None]
    hk = h[k][:, None]
    slope = delta[k] - hk * (2 * M[k] + M[k + 1]) / 6
    out = flat[k] + t * (slope + t * (M[k] / 2 + t * (M[k + 1] - M[k]) / (6 * hk)))
    return out.reshape((len(x_new),) + y.shape[1:])


def theta_marginal_grid(theta_pts: np.ndarray, logpost: np.ndarray, n_fine: int = 801):
    """Fine (θ, log density) from 1-D grid points via a cubic spline of the log-density."""
    order = np.argsort(theta_pts)
    t, lp = theta_pts[order], logpost[order]
    if len(t) < 4:
        fine = np.linspace(t[0], t[-1], n_fine)
        return fine, np.interp(fine, t, lp)
    fine = np.linspace(t[0], t[-1], n_fine)
    return fine, cubic_spline(t, lp, fine)


def theta_marginal_lattice(frame, Z: np.ndarray, logpost: np.ndarray, dz: float, j: int,
                           max_fine: int = 200_000, n_out: int = 801):
    """θ_j marginal of the grid design (d ≥ 2): each design point's cell of the z-lattice carries
    its midpoint-rule mass π̃(θ(z) | y) |dθ/dz| dz^d (the integration weights), spread uniformly
    over the cell and pushed forward to θ_j.

    Each cell is sampled on an r^d sub-lattice and the samples binned linearly at θ_j(z). R-INLA
    uses such a "gridsum" only for d = 1 or a diagonal Hessian and otherwise the
    asymmetric-Gaussian interpolant of ``theta_marginal_ccd`` (``GMRFLib_ai_INLA``,
    approx-inference.c), which cannot follow a curved or long-tailed posterior: for the
    zero-inflated negative binomial (type 0) the log size's sd came out at 0.44 of the exact (NUTS)
    one, against 0.96 here.
    """
    n, d = Z.shape
    r = int(np.clip((max_fine / n) ** (1.0 / d), 2, 16))
    sub = (np.arange(r) + 0.5) / r * dz - dz / 2
    offsets = np.stack(np.meshgrid(*([sub] * d), indexing="ij"), axis=-1).reshape(-1, d)
    zf = (Z[:, None, :] + offsets[None, :, :]).reshape(-1, d)
    logmass = np.repeat(logpost, len(offsets)) + frame.log_volume(zf)
    mass = np.exp(logmass - logmass.max())
    v = frame.theta(zf)[:, j]
    # bins no finer than the spread of one sub-cell along θ_j, so that every bin collects samples
    step = dz / r * np.max(np.abs(frame.vectors[j] * frame.scales) * np.maximum(frame.s_plus, frame.s_minus))
    n_bins = int(np.clip((v.max() - v.min()) / step, 20, 400))
    edges = np.linspace(v.min(), v.max(), n_bins + 1)
    width = edges[1] - edges[0]
    pos = (v - edges[0]) / width - 0.5                 # linear binning onto the bin centres
    left = np.clip(np.floor(pos).astype(int), 0, n_bins - 1)
    frac = np.clip(pos - left, 0.0, 1.0)
    dens = (np.bincount(left, mass * (1 - frac), n_bins)
            + np.bincount(np.minimum(left + 1, n_bins - 1), mass * frac, n_bins))
    centres = edges[:-1] + width / 2
    keep = dens > dens.max() * 1e-12
    first, last = np.argmax(keep), len(keep) - np.argmax(keep[::-1])
    t, logd = centres[first:last], np.log(np.maximum(dens[first:last], dens.max() * 1e-12))
    fine = np.linspace(t[0], t[-1], n_out)            # one length for every θ_j (the stored table)
    return fine, np.interp(fine, t, logd)


def theta_marginal_ccd(frame, j: int, x=np.linspace(-7, 7, 801)):
    """θ_j marginal from the asymmetric Gaussian interpolant along the conditional-mean line."""
    Sigma = np.linalg.inv(frame.H)
    sd_j = np.sqrt(Sigma[j, j])
    direction = Sigma[:, j] / sd_j
    thetas = frame.mode[None, :] + x[:, None] * direction[None, :]
    z = ((thetas - frame.mode) @ frame.vectors) / frame.scales
    s = np.where(z >= 0, frame.s_plus, frame.s_minus)
    logdens = -0.5 * np.sum((z / s) ** 2, axis=1)
    return thetas[:, j], logdens


H3 = 2.0 * (2.0 / np.pi) ** 1.5 - (2.0 / np.pi) ** 0.5     # third derivative of log Φ at 0


def skew_normal_from_sla(gamma1: np.ndarray, gamma3: np.ndarray):
    """Skew-normal SN(ξ, ω, α) for the standardised s with mean γ1, variance 1 and third
    log-density derivative γ3 at ξ (R-INLA's fit of the simplified Laplace cubic; METHOD.md §13.2)."""
    g3 = np.asarray(gamma3, float)
    small = np.abs(g3) < 1e-10
    c = np.cbrt(H3 / np.where(small, 1.0, g3))
    c2 = c * c
    a2 = c2 * (1.0 - 2.0 / np.pi)
    # positive root of a2 t² + (c² − 1) t − 1 = 0, written to avoid cancellation
    disc = np.sqrt((c2 - 1.0) ** 2 + 4.0 * a2)
    t = np.where(c2 - 1.0 > 0, 2.0 / ((c2 - 1.0) + disc), (-(c2 - 1.0) + disc) / (2.0 * a2))
    alpha = np.where(small, 0.0, np.sign(g3) * np.sqrt(np.maximum(t, 0.0)))
    delta = alpha / np.sqrt(1.0 + alpha ** 2)
    omega = 1.0 / np.sqrt(1.0 - (2.0 / np.pi) * delta ** 2)
    xi = np.asarray(gamma1, float) - omega * delta * np.sqrt(2.0 / np.pi)
    return xi, omega, alpha


def skew_mixture_summary(w, loc, scale, alpha, quantiles=QUANTILES) -> dict[str, np.ndarray]:
    """Summaries of Σ_k w_k SN(loc[k], scale[k], alpha[k]) columnwise ((K, n) arrays)."""
    w = np.asarray(w, float) / np.sum(w)
    loc, scale, alpha = np.atleast_2d(loc), np.maximum(np.atleast_2d(scale), 1e-300), np.atleast_2d(alpha)
    delta = alpha / np.sqrt(1.0 + alpha ** 2)
    mk = loc + scale * delta * np.sqrt(2.0 / np.pi)
    vk = scale ** 2 * (1.0 - 2.0 * delta ** 2 / np.pi)
    mean = w @ mk
    var = w @ (vk + mk ** 2) - mean ** 2
    sd = np.sqrt(np.maximum(var, 0.0))
    out = {"mean": mean, "sd": sd}
    lo = np.min(mk - 12 * np.sqrt(vk), axis=0)
    hi = np.max(mk + 12 * np.sqrt(vk), axis=0)
    # Owen's T and Φ(αz) only where some component is skewed: elsewhere (every node but the
    # adaptive strategy's few, all of them for a Gaussian likelihood) SN is N, and T(z, 0) = 0,
    # 2Φ(0) = 1 exactly
    skewed = np.any(alpha != 0, axis=0)

    def cdf(x, c=_ALL):
        z = (x - loc[:, c]) / scale[:, c]
        out = ndtr(z)
        sk = np.flatnonzero(skewed[c])
        if len(sk):
            out[:, sk] -= 2.0 * owens_t(z[:, sk], alpha[:, c][:, sk])
        return w @ out

    def pdf(x, c=_ALL):
        z = (x - loc[:, c]) / scale[:, c]
        dens = np.exp(-0.5 * z ** 2) / scale[:, c]
        sk = np.flatnonzero(skewed[c])
        if len(sk):
            dens[:, sk] *= 2.0 * ndtr(alpha[:, c][:, sk] * z[:, sk])
        return w @ dens / np.sqrt(2 * np.pi)

    for q in quantiles:
        out[f"{q}quant"] = _quantile(cdf, pdf, q, lo, hi, mean + ndtri(q) * sd)
    out["mode"] = _mode(pdf, mean, sd, mk)
    return out


def _quantile(cdf, pdf, q: float, lo: np.ndarray, hi: np.ndarray, start: np.ndarray, iterations: int = 60):
    """x with cdf(x) = q, columnwise (``cdf(x, cols)``, ``pdf(x, cols)``: the mixture at x for the
    columns ``cols``, those still searched): Newton steps from ``start`` inside a bracket [a, b] that
    every evaluation narrows; a Newton step leaving the bracket is replaced by the secant
    (false position) through the bracket's ends, or by bisection while an end has no value yet.
    A column ends, and stays, when its step, its Newton correction or its bracket is below 10⁻¹¹
    of the initial width (24 sd), or its cdf hits q exactly. From the moment-matched start this takes a handful of mixture-CDF
    evaluations where bisection needed 60–80. The secant matters where the cdf is concave
    towards the root: Newton then overshoots the end nearest to it at every step, and a
    bisection fallback would creep up to that end one halving at a time."""
    a, b = lo.copy(), hi.copy()
    fa, fb = np.full(a.shape, np.nan), np.full(b.shape, np.nan)
    x = np.clip(start, a, b)
    tol = 1e-11 * (hi - lo)
    finished = np.zeros(x.shape, dtype=bool)
    for _ in range(iterations):
        # a finished column stays put (one more step from its root would see Newton land on the
        # bracket's end and fall back to a point far inside), and its mixture is not evaluated
        c = np.flatnonzero(~finished)
        if not len(c):
            break
        xc, ac, bc, fac, fbc, tc = x[c], a[c], b[c], fa[c], fb[c], tol[c]
        f = cdf(xc, c) - q
        hit = f == 0
        below, above = f < 0, f > 0
        ac, fac = np.where(below, xc, ac), np.where(below, f, fac)
        bc, fbc = np.where(above, xc, bc), np.where(above, f, fbc)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xc - f / pdf(xc, c)
            secant = ac - fac * (bc - ac) / (fbc - fac)
        inside = np.isfinite(newton) & (newton > ac) & (newton < bc)
        secant_ok = np.isfinite(secant) & (secant > ac) & (secant < bc)
        fallback = np.where(secant_ok, secant, 0.5 * (ac + bc))
        # a column whose Newton correction is below tol stays put too, wherever it would land
        close = np.abs(newton - xc) <= tc
        x_new = np.where(hit | close, xc, np.where(inside, newton, fallback))
        finished[c] = hit | close | (np.abs(x_new - xc) <= tc) | (bc - ac <= tc)
        x[c], a[c], b[c], fa[c], fb[c] = x_new, ac, bc, fac, fbc
    return x


def _mode(pdf, centre: np.ndarray, scale: np.ndarray, candidates: np.ndarray, keep: int = 3) -> np.ndarray:
    """argmax of a mixture density, columnwise. Start points: the local maxima of a 41-point grid
    over ±5 scale and the components' own centres (``candidates``, (K, n): a narrow, well
    separated component can fall between grid points); the ``keep`` best of them are each refined
    and the highest result wins, so two peaks of nearly equal height are both looked at closely
    before one is chosen (the best grid points alone can all sit on one broad peak beside a
    narrow one as high).

    Refinement: at steps h = 0.25, 0.05, 0.01, 0.002 scale, the vertex of the parabola through
    log p at x − h, x, x + h (exact for a Gaussian peak; off by O(h²) of the skewness otherwise,
    which the next, smaller step corrects) and the best of those four points is kept, so the
    density never decreases and a narrow peak is not left for a broad parabola. 13 density
    evaluations per start where grids of 21 points per level took 43."""
    s = scale + 1e-300
    cols = np.arange(centre.shape[0])
    grid = centre[None, :] + np.linspace(-5.0, 5.0, 41)[:, None] * s[None, :]
    on_grid = np.stack([pdf(g) for g in grid])
    padded = np.pad(on_grid, ((1, 1), (0, 0)), constant_values=-np.inf)
    peak = (on_grid >= padded[:-2]) & (on_grid >= padded[2:])
    start = np.concatenate([grid, candidates])
    dens = np.concatenate([np.where(peak, on_grid, -np.inf), np.stack([pdf(g) for g in candidates])])
    log = lambda d: np.log(np.maximum(d, 1e-300))
    best_x, best_d = centre, np.full(centre.shape, -np.inf)
    for rank in np.argsort(-dens, axis=0)[:keep]:
        x = start[rank, cols]
        d = pdf(x)
        for h in (0.25, 0.05, 0.01, 0.002):
            hs = h * s
            dl, dr = pdf(x - hs), pdf(x + hs)
            l0, ll, lr = log(d), log(dl), log(dr)
            curv = ll - 2.0 * l0 + lr
            with np.errstate(divide="ignore", invalid="ignore"):
                shift = np.where(curv < 0, 0.5 * (ll - lr) / curv, 0.0)
            v = x + np.clip(np.nan_to_num(shift), -2.0, 2.0) * hs
            dv = pdf(v)
            xs, ds = np.stack([x, x - hs, x + hs, v]), np.stack([d, dl, dr, dv])
            pick = np.argmax(ds, axis=0)
            x, d = xs[pick, cols], ds[pick, cols]
        better = d > best_d
        best_x, best_d = np.where(better, x, best_x), np.where(better, d, best_d)
    return best_x


#: R-INLA's layout of a marginal's table (GMRFLib_density_layout_x): these probabilities' quantiles
LAYOUT_P = np.array([1e-5, 1e-4, 1e-3, 0.01, 0.025, 0.05, 0.10, 0.15, 0.2, 0.25, 0.30, 0.35, 0.375, 0.40, 0.425,
                     0.45, 0.46, 0.47, 0.475, 0.48, 0.49, 0.50, 0.51, 0.52, 0.525, 0.53, 0.54, 0.55, 0.575, 0.60,
                     0.625, 0.65, 0.70, 0.75, 0.80, 0.85, 0.9, 0.95, 0.975, 0.99, 0.999, 0.9999, 0.99999])


def mixture_density(w, loc, scale, alpha, x) -> np.ndarray:
    """Σ_k w_k SN(x; loc_k, scale_k, alpha_k) for each node (params (K, n), x (n, P) -> (n, P));
    alpha = 0 is the Gaussian mixture. SN(x) = 2/ω φ(z) Φ(α z), z = (x − ξ)/ω (Azzalini 1985)."""
    w = np.asarray(w, float) / np.sum(w)
    loc, scale = np.atleast_2d(loc), np.maximum(np.atleast_2d(scale), 1e-300)
    alpha = np.zeros_like(loc) if alpha is None else np.atleast_2d(alpha)
    z = (x[None, :, :] - loc[:, :, None]) / scale[:, :, None]                       # (K, n, P)
    dens = 2.0 * np.exp(-0.5 * z ** 2) / (np.sqrt(2 * np.pi) * scale[:, :, None]) * ndtr(alpha[:, :, None] * z)
    return np.einsum("k,knp->np", w, dens)


def marginal_grid(w, loc, scale, alpha, n_iter: int = 45) -> np.ndarray:
    """The x of each node's marginal table (n, 43): the mixture's own quantiles at R-INLA's layout
    probabilities (GMRFLib_density_layout_x takes them from the density's inverse CDF), by
    bisection on the mixture CDF Σ_k w_k [Φ(z) − 2 T(z, α)] (Owen's T for the skew-normal)."""
    w = np.asarray(w, float) / np.sum(w)
    loc, scale = np.atleast_2d(loc), np.maximum(np.atleast_2d(scale), 1e-300)
    alpha = None if alpha is None else np.atleast_2d(alpha)
    lo = np.broadcast_to(np.min(loc - 12 * scale, axis=0)[:, None], (loc.shape[1], LAYOUT_P.size)).copy()
    hi = np.broadcast_to(np.max(loc + 12 * scale, axis=0)[:, None], lo.shape).copy()

    def cdf(x):
        z = (x[None] - loc[:, :, None]) / scale[:, :, None]
        c = ndtr(z) if alpha is None else ndtr(z) - 2.0 * owens_t(z, alpha[:, :, None])
        return np.einsum("k,knp->np", w, c)

    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        below = cdf(mid) < LAYOUT_P[None, :]
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def symmetric_kld(w, loc, scale, alpha, mean: np.ndarray, sd: np.ndarray, n_grid: int = 401) -> np.ndarray:
    """½ [KL(p ‖ g) + KL(g ‖ p)] per node (clipped at 0), p the marginal (mixture), g = N(mean, sd²)
    with p's mean and sd: R-INLA's ``kld`` (GMRFLib_kld_sym, which integrates adaptively). Here the
    trapezoid rule on mean ± 10 sd merged with each component's own ± 8 scale points, so that a
    narrow component (a scale mixture's spike) is resolved."""
    loc_, scale_ = np.atleast_2d(loc), np.atleast_2d(scale)
    x = np.concatenate([np.asarray(mean)[:, None] + np.asarray(sd)[:, None] * np.linspace(-10, 10, n_grid)[None, :],
                        (loc_[:, :, None] + scale_[:, :, None] * np.linspace(-8, 8, 41)).transpose(1, 0, 2)
                        .reshape(loc_.shape[1], -1)], axis=1)
    x = np.sort(x, axis=1)
    p = np.maximum(mixture_density(w, loc, scale, alpha, x), 1e-300)
    sdm = np.maximum(np.asarray(sd), 1e-300)[:, None]
    g = np.maximum(np.exp(-0.5 * ((x - np.asarray(mean)[:, None]) / sdm) ** 2) / (np.sqrt(2 * np.pi) * sdm), 1e-300)
    lr = np.log(p) - np.log(g)
    kl = np.trapezoid(p * lr, x, axis=1) + np.trapezoid(-g * lr, x, axis=1)
    return np.maximum(0.5 * kl, 0.0)


def laplace_mixture_summary(w, mu, sd, s, logdens, quantiles=QUANTILES) -> dict[str, np.ndarray]:
    """Summaries of Σ_k w_k π̃_k(x_j) per node j from full-Laplace log densities.

    ``mu``, ``sd``: (K, n) the Gaussian approximation's mode and sd at each θ_k; ``logdens``
    (K, n, len(s)): log π̃_k(x_j = μ + σ s_i) up to a constant. Each is a cubic spline in s,
    normalised on [s_0, s_last] (beyond ±4 Gaussian sds the mass is < 1e-4). Every component's
    moments and CDF are taken on its own s-grid and combined exactly (mean, variance, mixture CDF
    for the quantiles): a far tail point of θ can have a conditional sd twenty times the bulk's
    and a point near the precision's upper end one twentieth, which no common x-grid resolves.
    """
    w = np.asarray(w, float) / np.sum(w)
    s = np.asarray(s, float)
    fine_s = np.linspace(s[0], s[-1], 201)
    ds = fine_s[1] - fine_s[0]
    logp = cubic_spline(s, np.moveaxis(np.asarray(logdens, float), 2, 0), fine_s)      # (201, K, n)
    dens_s = np.exp(logp - logp.max(axis=0))
    dens_s /= np.trapezoid(dens_s, fine_s, axis=0)                                    # ∫ π̃(s) ds = 1
    cum_s = cumulative_trapezoid(dens_s, fine_s)
    cum_s /= cum_s[-1]
    m1 = np.trapezoid(fine_s[:, None, None] * dens_s, fine_s, axis=0)
    m2 = np.trapezoid(fine_s[:, None, None] ** 2 * dens_s, fine_s, axis=0)
    mean = w @ (mu + sd * m1)
    var = w @ (sd ** 2 * m2 + 2 * mu * sd * m1 + mu ** 2) - mean ** 2
    sd_all = np.sqrt(np.maximum(var, 0.0))

    columns = np.arange(mu.shape[1])

    def on_grid(table, x, c, outside_left, outside_right):
        # Σ_k w_k table_k((x − μ_k)/σ_k), linear in s on the uniform fine grid, columnwise in x
        pos = ((x[None, :] - mu[:, c]) / sd[:, c] - fine_s[0]) / ds
        i = np.clip(np.floor(pos).astype(int), 0, len(fine_s) - 2)
        f = np.clip(pos - i, 0.0, 1.0)
        k_idx = np.arange(mu.shape[0])[:, None]
        j_idx = columns[c][None, :]
        v = (1 - f) * table[i, k_idx, j_idx] + f * table[i + 1, k_idx, j_idx]
        v = np.where(pos < 0, outside_left, np.where(pos > len(fine_s) - 1, outside_right, v))
        return v

    cdf = lambda x, c=_ALL: w @ on_grid(cum_s, x, c, 0.0, 1.0)
    pdf = lambda x, c=_ALL: w @ (on_grid(dens_s, x, c, 0.0, 0.0) / sd[:, c])
    lo = np.min(mu + fine_s[0] * sd, axis=0)
    hi = np.max(mu + fine_s[-1] * sd, axis=0)
    out = {"mean": mean, "sd": sd_all}
    for q in quantiles:
        out[f"{q}quant"] = _quantile(cdf, pdf, q, lo, hi, mean + ndtri(q) * sd_all)
    peaks = mu + sd * fine_s[np.argmax(dens_s, axis=0)]
    out["mode"] = _mode(pdf, mean, sd_all, peaks)
    return out
