"""R-INLA's ``inla.group(x, n = 25, method = c("cut", "quantile"), idx.only = FALSE)``.

Bins a covariate so that ``f(inla.group(x, n = 20), model = "rw2")`` has at most ``n`` nodes.
Replicates ``rinla/R/group.R`` (hrue/r-inla): the bins are R's ``cut(x, n)`` (``method = "cut"``:
``n`` equal-width intervals over the range, the outer breaks pushed out by range/1000, intervals
open on the left, ``cut.default`` in R's ``src/library/base/R/cut.R``) or
``cut(x, unique(quantile(x, c(0, ppoints(n - 1), 1))), include.lowest = TRUE)``
(``method = "quantile"``, R's type-7 quantiles); each value is replaced by the **median** of the
covariate values in its bin (or, with ``idx.only = TRUE``, by the bin's number 1..n). ``n = 1``
gives the median everywhere; missing values stay missing and do not take part in the binning.
"""

from __future__ import annotations

__all__ = ["inla_group", "cut_breaks", "quantile_breaks", "METHODS"]

import numpy as np

METHODS = ("cut", "quantile")


def _seq_length_out(start: float, stop: float, n: int) -> np.ndarray:
    """R's ``seq.int(start, stop, length.out = n)`` (C ``do_seq`` in R's ``src/main/seq.c``):
    the ends exactly, ``start + i * by`` between them, ``by = (stop - start) / (n - 1)``."""
    out = np.empty(n)
    out[0] = start
    if n > 1:
        out[-1] = stop
    if n > 2:
        by = (stop - start) / (n - 1)
        out[1:-1] = start + np.arange(1, n - 1) * by
    return out


def cut_breaks(x: np.ndarray, n: int) -> np.ndarray:
    """The ``n + 1`` breaks of R's ``cut(x, n)``."""
    lo, hi = float(np.min(x)), float(np.max(x))
    dx = hi - lo
    nb = n + 1
    if dx == 0:
        dx = abs(lo) if lo != 0 else 1.0
        return _seq_length_out(lo - dx / 1000, hi + dx / 1000, nb)
    breaks = _seq_length_out(lo, hi, nb)
    breaks[0], breaks[-1] = lo - dx / 1000, hi + dx / 1000
    return breaks


def _ppoints(m: int) -> np.ndarray:
    """R's ``ppoints(m)``: (1..m - a) / (m + 1 - 2a), a = 3/8 for m <= 10 else 1/2."""
    a = 3 / 8 if m <= 10 else 0.5
    return (np.arange(1, m + 1) - a) / (m + 1 - 2 * a)


def _quantile7(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R's ``quantile(x, probs)`` (type 7), with R's own interpolation formula."""
    xs = np.sort(x)
    index = 1 + (xs.size - 1) * probs
    lo = np.floor(index).astype(int)
    hi = np.ceil(index).astype(int)
    qs = xs[lo - 1]
    h = index - lo
    upper = xs[hi - 1]
    take = (index > lo) & (upper != qs)
    return np.where(take, (1 - h) * qs + h * upper, qs)


def quantile_breaks(x: np.ndarray, n: int) -> np.ndarray:
    """``unique(quantile(x, probs = c(0, ppoints(n - 1), 1)))``."""
    probs = np.concatenate([[0.0], _ppoints(n - 1), [1.0]])
    q = _quantile7(x, probs)
    return q[np.concatenate([[True], q[1:] != q[:-1]])]    # R's unique() keeps first occurrences


def _bins(x: np.ndarray, breaks: np.ndarray, include_lowest: bool) -> np.ndarray:
    """R's ``.bincode(x, breaks, right = TRUE, include.lowest)``: bin j (1-based) holds
    breaks[j-1] < x <= breaks[j]; with include.lowest the first bin also holds breaks[0]."""
    code = np.searchsorted(breaks, x, side="left")
    if include_lowest:
        code = np.where(x == breaks[0], 1, code)
    return code


def inla_group(x, n: int = 25, method: str = "cut", idx_only: bool = False) -> np.ndarray:
    """Grouped covariate (float array, NaN where ``x`` is missing); see the module docstring.

    Raises ``ValueError`` with a message for users (``n < 1``, unknown method, a constant
    covariate that the quantile method cannot split).
    """
    x = np.asarray(x, dtype=float)
    if not (n >= 1 and float(n).is_integer()):
        raise ValueError(f"the number of groups n must be a whole number >= 1, not {n}")
    if method not in METHODS:
        raise ValueError(f"method must be \"cut\" or \"quantile\", not {method!r}")
    n = int(n)
    out = np.full(x.shape, np.nan)
    ok = ~np.isnan(x)
    v = x[ok]
    if v.size == 0:
        return out
    if n == 1:                         # R returns the median here, even with idx.only = TRUE
        out[ok] = np.median(v)
        return out
    if method == "cut":
        code = _bins(v, cut_breaks(v, n), include_lowest=False)
    else:
        breaks = quantile_breaks(v, n)
        if breaks.size < 2:
            raise ValueError("the quantile method cannot group a covariate with a single value")
        code = _bins(v, breaks, include_lowest=True)
    if idx_only:
        out[ok] = code.astype(float)
        return out
    medians = {c: np.median(v[code == c]) for c in np.unique(code)}
    out[ok] = np.array([medians[c] for c in code])
    return out
