"""House prices in Baltimore, 1978 (Dubin 1992; PySAL's ``baltim`` data: 211 sales with their
coordinates): a hedonic regression with a Matérn spatial field on the sales' locations, by the
SPDE approach (Lindgren, Rue & Lindström 2011) with the PC prior on range and σ (R-INLA's
``inla.spde2.pcmatern``):

    log_price ~ 1 + NROOM + NBATH + AGE + SQFT + f(site, model = spde),   N(η, 1/τ)

The mesh is the Delaunay triangulation of the sales plus a ring of regular vertices around
them (``Mesh.from_delaunay(offset=, spacing=)``); coordinates are in the data's miles-like
units (the city spans about 130 × 80). Priors: P(range < 10) = 0.5, P(σ > 1) = 0.01. The figure
shows the field's posterior mean and sd projected to a grid.

Data: libpysal's bundled ``baltim`` example (no download); ``pip install "adelia[examples]"``.

Run:  python examples/baltimore_spde.py [--out DIR]   (writes summary.csv, random_site.csv
      and baltimore_spde.png; default DIR examples/out/baltimore_spde)
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only, no window

import geopandas as gpd  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from libpysal.examples import get_path  # noqa: E402

import adelia  # noqa: E402
import adelia.plots  # noqa: E402
from adelia.compiler.latent.spde import SPDE  # noqa: E402
from adelia.compiler.mesh import Mesh  # noqa: E402

NAME = "baltimore_spde"


def load():
    sales = gpd.read_file(get_path("baltim.shp")).drop(columns="geometry")
    sales["log_price"] = np.log(sales["PRICE"])
    sales["site"] = np.arange(1, len(sales) + 1)
    loc = sales[["X", "Y"]].to_numpy(float)
    mesh = Mesh.from_delaunay(loc, offset=20.0, spacing=10.0)
    spde = SPDE(mesh, prior_range=(10.0, 0.5), prior_sigma=(1.0, 0.01), loc=loc)
    return sales, spde, loc


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / NAME)
    parser.add_argument("--n-samples", type=int, default=1000)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    sales, spde, loc = load()
    dt = adelia.fit("log_price ~ 1 + NROOM + NBATH + AGE + SQFT + f(site, model = spde)", sales, spde=spde,
                    n_samples=args.n_samples)
    table = adelia.summary(dt)
    print(table.round(4).to_string())
    table.to_csv(args.out / "summary.csv")
    dt["inla"]["summary_random_site"].to_pandas().to_csv(args.out / "random_site.csv")

    fig = adelia.plots.plot_spde(dt, "site", spde, points=loc, resolution=150, cmap="cividis")
    fig.suptitle("Baltimore 1978: spatial effect on log house price (SPDE Matérn field)")
    fig.savefig(args.out / f"{NAME}.png", dpi=80)
    plt.close("all")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
