"""Simulate the data of the example model files ``spatial.adl`` (an SPDE field on a Delaunay
mesh of the sites) and ``joint.adl`` (two likelihoods sharing a component).

Run from anywhere: ``python examples/make_adl_spatial_data.py``. Fixed seed, so the committed
CSVs are reproducible; the tables are tiny so that ``adelia check``/``adelia fit`` take seconds.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def spatial(rng: np.random.Generator) -> pd.DataFrame:
    """40 sites in the unit square, a smooth surface plus noise, one covariate."""
    n = 40
    s1, s2 = rng.uniform(0, 1, n).round(3), rng.uniform(0, 1, n).round(3)
    x = rng.normal(size=n).round(3)
    field = np.sin(3 * s1) + np.cos(2 * s2) - 1.0
    y = (1.0 + 0.5 * x + field + rng.normal(0, 0.3, n)).round(4)
    return pd.DataFrame({"s1": s1, "s2": s2, "x": x, "y": y})


def joint(rng: np.random.Generator) -> pd.DataFrame:
    """10 groups observed twice: Gaussian measurements (y1) and Poisson counts with expected
    counts E (y2), sharing an iid group effect; NA outside each likelihood's block."""
    groups = np.arange(1, 11)
    u = rng.normal(0, 0.5, groups.size)
    g1 = np.repeat(groups, 3)
    g2 = np.repeat(groups, 2)
    y1 = (1.0 + u[g1 - 1] + rng.normal(0, 0.4, g1.size)).round(4)
    E = rng.uniform(5, 15, g2.size).round(2)
    y2 = rng.poisson(E * np.exp(0.2 + u[g2 - 1]))
    gauss = pd.DataFrame({"y1": y1, "y2": np.nan, "E": np.nan, "group": g1})
    pois = pd.DataFrame({"y1": np.nan, "y2": y2, "E": E, "group": g2})
    return pd.concat([gauss, pois], ignore_index=True)


def main() -> None:
    rng = np.random.default_rng(20240905)
    spatial(rng).to_csv(HERE / "spatial.csv", index=False)
    joint(rng).to_csv(HERE / "joint.csv", index=False)


if __name__ == "__main__":
    main()
