"""Gaussian linear regression y = 1 + 2x + ε, fitted with INLA and compared with least squares.

Run:  python examples/gaussian_linear.py
"""

import numpy as np
import pandas as pd

import adelia


def simulate(seed: int = 20260601, n: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": 1.0 + 2.0 * x + rng.normal(scale=0.5, size=n)})


def main() -> None:
    data = simulate()
    dt = adelia.fit("y ~ 1 + x", data, family="gaussian")
    print(adelia.summary(dt).round(4).to_string())
    ols = np.polyfit(data.x, data.y, 1)[::-1]
    print(f"\nleast squares: (Intercept) {ols[0]:.4f}, x {ols[1]:.4f}")
    print(f"log marginal likelihood: {dt['inla'].attrs['mlik_integration']:.3f}")


if __name__ == "__main__":
    main()
