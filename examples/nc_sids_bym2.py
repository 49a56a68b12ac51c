"""Sudden infant deaths in the 100 counties of North Carolina, 1974–78 (Cressie & Read 1985;
Cressie 1993): the classic disease-mapping case for the BYM model, here its BYM2
reparameterisation (Riebler et al. 2016) with R-INLA's default PC priors.

    SID74 ~ 1 + nwprop + f(id, model = "bym2", graph = W),   SID74_i ~ Poisson(E_i exp(η_i))

E_i = BIR74_i × (total deaths / total births) are the expected counts under a constant rate,
nwprop the standardised proportion of non-white births, W the counties' queen contiguity
(libpysal). exp(total area effect) is each county's relative risk beyond the covariate.

Data: libpysal's bundled ``sids2`` example (no download). Needs the ``examples`` extra:
``pip install "adelia[examples]"``.

Run:  python examples/nc_sids_bym2.py [--out DIR]   (writes summary.csv, random_id.csv,
      nc_sids_bym2.png and nc_sids_bym2_marginals.png; default DIR examples/out/nc_sids_bym2)
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

NAME = "nc_sids_bym2"


def load():
    counties = gpd.read_file(get_path("sids2.shp"))
    W = Queen.from_dataframe(counties, use_index=False, silence_warnings=True).sparse   # row i = county i
    data = counties.drop(columns="geometry").assign(id=np.arange(1, len(counties) + 1))
    data["E"] = data["BIR74"] * data["SID74"].sum() / data["BIR74"].sum()
    nw = data["NWBIR74"] / data["BIR74"]
    data["nwprop"] = (nw - nw.mean()) / nw.std()
    return data, counties, W


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / NAME)
    parser.add_argument("--n-samples", type=int, default=1000)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    data, counties, W = load()
    dt = adelia.fit('SID74 ~ 1 + nwprop + f(id, model = "bym2", graph = W)', data, family="poisson", E="E",
                    n_samples=args.n_samples, W=W)
    table = adelia.summary(dt)
    print(table.round(4).to_string())
    table.to_csv(args.out / "summary.csv")
    rr = dt["inla"]["summary_random_id"].to_pandas().iloc[: len(data)]      # bym2: total effect first
    rr.assign(county=data["NAME"].values).to_csv(args.out / "random_id.csv")

    fig, (ax_map, ax_fit) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained",
                                         gridspec_kw={"width_ratios": [2.2, 1]})
    adelia.plots.plot_map(dt, "id", counties, transform=np.exp, ax=ax_map, cmap="RdYlBu_r")
    ax_map.set_title("NC SIDS 1974–78: relative risk exp(bym2 total effect), posterior mean")
    adelia.plots.plot_fitted(dt, E=data["E"].to_numpy(), ax=ax_fit)
    fig.savefig(args.out / f"{NAME}.png", dpi=90)
    adelia.plots.plot_marginals(dt).savefig(args.out / f"{NAME}_marginals.png", dpi=70)
    plt.close("all")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
