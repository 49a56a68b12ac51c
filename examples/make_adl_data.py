"""Simulate the small data sets the example model files (``examples/*.adl``) read.

Run from anywhere: ``python examples/make_adl_data.py``. Fixed seed, so the committed CSVs are
reproducible. Every table is tiny (< 100 rows) so that ``adelia check``/``adelia fit`` on the
examples take seconds.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def seeds(rng: np.random.Generator) -> pd.DataFrame:
    """21 plates, 2x2 design (seed type x1, root extract x2), binomial germination, iid plate effect
    (shape of Crowder 1978's seeds data)."""
    plates = 21
    x1 = np.array([0] * 11 + [1] * 10)
    x2 = np.array([0] * 5 + [1] * 6 + [0] * 5 + [1] * 5)
    n = rng.integers(10, 80, plates)
    eta = -0.55 + 0.1 * x1 + 1.35 * x2 - 0.8 * x1 * x2 + rng.normal(0, 0.3, plates)
    r = rng.binomial(n, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"plate": np.arange(1, plates + 1), "r": r, "n": n, "x1": x1, "x2": x2})


def monthly(rng: np.random.Generator) -> pd.DataFrame:
    """60 months of counts with expected counts E, a smooth trend (rw2) and a season (cyclic rw1)."""
    t = np.arange(1, 61)
    month = (t - 1) % 12 + 1
    E = rng.uniform(20, 40, t.size).round(2)
    trend = 0.3 * np.sin(t / 15)
    season = 0.25 * np.cos(2 * np.pi * month / 12)
    y = rng.poisson(E * np.exp(0.1 + trend + season))
    return pd.DataFrame({"time": t, "month": month, "E": E, "y": y})


def grid_graph(nrow: int = 4, ncol: int = 5):
    """Rook neighbours on an nrow x ncol lattice, nodes 1..n row by row."""
    nbrs = {}
    for i in range(nrow):
        for j in range(ncol):
            k = i * ncol + j + 1
            nbrs[k] = [(i + di) * ncol + (j + dj) + 1 for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))
                       if 0 <= i + di < nrow and 0 <= j + dj < ncol]
    return nbrs


def regions(rng: np.random.Generator, nbrs) -> pd.DataFrame:
    """Disease counts in 20 lattice regions with a spatially smooth relative risk."""
    n = len(nbrs)
    k = np.arange(1, n + 1)
    row, col = (k - 1) // 5, (k - 1) % 5
    risk = 0.4 * (col - 2) / 2 - 0.2 * (row - 1.5)
    E = rng.uniform(5, 25, n).round(2)
    x = rng.normal(0, 1, n).round(3)
    y = rng.poisson(E * np.exp(risk + 0.2 * x))
    return pd.DataFrame({"region": k, "E": E, "x": x, "y": y})


def growth(rng: np.random.Generator) -> pd.DataFrame:
    """Gaussian responses: 8 groups x 6 observations, a covariate and an iid group effect."""
    g = np.repeat(np.arange(1, 9), 6)
    x = rng.normal(0, 1, g.size).round(3)
    u = rng.normal(0, 0.7, 8)
    y = (1.0 + 0.5 * x + u[g - 1] + rng.normal(0, 0.4, g.size)).round(4)
    return pd.DataFrame({"y": y, "x": x, "group": g})


def main() -> None:
    rng = np.random.default_rng(20240517)
    seeds(rng).to_csv(HERE / "seeds.csv", index=False)
    monthly(rng).to_csv(HERE / "monthly.csv", index=False)
    nbrs = grid_graph()
    regions(rng, nbrs).to_csv(HERE / "regions.csv", index=False)
    with open(HERE / "regions.graph", "w") as fh:       # R-INLA graph file (inla.read.graph)
        fh.write(f"{len(nbrs)}\n")
        for k, ns in nbrs.items():
            fh.write(f"{k} {len(ns)} {' '.join(map(str, ns))}\n")
    edges = [(k, j) for k, ns in nbrs.items() for j in ns if k < j]
    pd.DataFrame(edges, columns=["from", "to"]).to_csv(HERE / "regions_edges.csv", index=False)
    growth(rng).to_csv(HERE / "growth.csv", index=False)


if __name__ == "__main__":
    main()
