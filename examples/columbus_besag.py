"""Residential burglaries and vehicle thefts in 49 neighbourhoods of Columbus, Ohio, 1980
(Anselin 1988, the spatial-econometrics textbook data set), as a Gaussian model with an
intrinsic CAR (Besag) neighbourhood effect instead of a spatial lag:

    CRIME ~ 1 + INC + HOVAL + f(id, model = "besag", graph = W, scale.model = TRUE,
                                hyper = list(prec = pc.prec(10, 0.01))),   CRIME_i ~ N(η_i, 1/τ)

CRIME per thousand households, INC household income and HOVAL housing value (both in $1000),
W the neighbourhoods' queen contiguity (libpysal), Σ besag = 0. Both precisions get PC priors,
P(σ > 10) = 0.01 (CRIME's sd is 16.6): with R-INLA's default loggamma(1, 5e-5), whose mean
precision is 20,000, 49 areas cannot tell the noise from the Besag field and one of the two
variances collapses to zero (which one depends on the other's prior); the marginals figure
draws each prior beside its posterior.

Data: libpysal's bundled ``columbus`` example (no download); ``pip install "adelia[examples]"``.

Run:  python examples/columbus_besag.py [--out DIR]   (writes summary.csv, random_id.csv,
      columbus_besag.png and columbus_besag_marginals.png; default DIR examples/out/columbus_besag)
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only, no window

import geopandas as gpd  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from libpysal.examples import get_path  # noqa: E402
from libpysal.weights import Queen  # noqa: E402

import adelia  # noqa: E402
import adelia.plots  # noqa: E402

NAME = "columbus_besag"


def load():
    areas = gpd.read_file(get_path("columbus.shp"))
    W = Queen.from_dataframe(areas, use_index=False, silence_warnings=True).sparse
    data = areas.drop(columns="geometry").assign(id=np.arange(1, len(areas) + 1))
    return data, areas, W


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / NAME)
    parser.add_argument("--n-samples", type=int, default=1000)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    data, areas, W = load()
    dt = adelia.fit('CRIME ~ 1 + INC + HOVAL + f(id, model = "besag", graph = W, scale.model = TRUE, '
                    'hyper = list(prec = pc.prec(10, 0.01)))', data, W=W,
                    control_family={"hyper": {"prec": {"prior": "pc.prec", "param": [10, 0.01]}}},
                    n_samples=args.n_samples)
    table = adelia.summary(dt)
    print(table.round(4).to_string())
    table.to_csv(args.out / "summary.csv")
    dt["inla"]["summary_random_id"].to_pandas().to_csv(args.out / "random_id.csv")

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained", gridspec_kw={"width_ratios": [1, 1, 0.9]})
    adelia.plots.plot_map(dt, "id", areas, ax=axes[0], cmap="RdBu_r")
    axes[0].set_title("besag effect: posterior mean")
    adelia.plots.plot_map(dt, "id", areas, stat="sd", ax=axes[1], cmap="magma_r")
    axes[1].set_title("besag effect: posterior sd")
    adelia.plots.plot_fitted(dt, ax=axes[2])
    fig.savefig(args.out / f"{NAME}.png", dpi=80)
    adelia.plots.plot_marginals(dt).savefig(args.out / f"{NAME}_marginals.png", dpi=70)
    plt.close("all")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
