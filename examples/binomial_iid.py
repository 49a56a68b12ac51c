"""Seed germination, the BUGS "Seeds" design: r germinated out of n seeds on 21 plates, seed type
x1 and root extract x2, with an overdispersion effect per plate (Crowder 1978; R-INLA's ``Seeds``).

The counts here are simulated with a fixed seed from that design, so the example needs no
download; the model is the classic one:

    r ~ 1 + x1*x2 + f(plate, model = "iid"),   r_i ~ Binomial(n_i, logit⁻¹(η_i))

Run:  python examples/binomial_iid.py
"""

import numpy as np
import pandas as pd

import adelia


def simulate(seed: int = 1978) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = np.repeat([0, 0, 1, 1], [5, 6, 5, 5])
    x2 = np.concatenate([np.zeros(5), np.ones(6), np.zeros(5), np.ones(5)])
    n = rng.integers(5, 80, size=21)
    eta = -0.55 + 0.1 * x1 + 1.3 * x2 - 0.8 * x1 * x2 + rng.normal(scale=0.3, size=21)
    r = rng.binomial(n, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"r": r, "n": n, "x1": x1, "x2": x2, "plate": np.arange(1, 22)})


def main() -> None:
    data = simulate()
    dt = adelia.fit('r ~ 1 + x1*x2 + f(plate, model = "iid")', data, family="binomial", Ntrials="n")
    print(adelia.summary(dt).round(4).to_string())
    inla = dt["inla"].attrs
    print(f"\nlog marginal likelihood: {inla['mlik_integration']:.3f}   DIC: {inla['dic']:.2f}   "
          f"WAIC: {inla['waic']:.2f}   θ points: {inla['n_theta_points']}")
    print("\nplate effects (first 5):")
    print(dt["inla"]["summary_random_plate"].sel(stat=["mean", "sd"]).to_pandas().head().round(4))


if __name__ == "__main__":
    main()
