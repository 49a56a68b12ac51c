"""Homicides in the 78 counties around St Louis, 1979–84 (Messner et al. 1999, PySAL's ``stl``
data): homicide counts out of the population at risk, with a county-level overdispersion
effect, as a binomial GLMM:

    HC7984 ~ 1 + RDAC80 + f(id, model = "iid"),   HC7984_i ~ Binomial(PO7984_i, logit⁻¹(η_i))

RDAC80 is the 1980 resource-deprivation index (a composite of income, poverty, female-headed
households, ...), PO7984 the population. R-INLA's defaults: flat intercept, N(0, 1000) slope,
loggamma(1, 5e-5) on the iid log precision.

Data: libpysal's bundled ``stl`` example (no download); ``pip install "adelia[examples]"``.

Run:  python examples/stl_homicide_binomial.py [--out DIR]   (writes summary.csv, random_id.csv
      and stl_homicide_binomial.png; default DIR examples/out/stl_homicide_binomial)
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

NAME = "stl_homicide_binomial"


def load():
    counties = gpd.read_file(get_path("stl_hom.shp"))
    data = counties.drop(columns="geometry").assign(id=np.arange(1, len(counties) + 1))
    data["PO7984"] = data["PO7984"].round().astype(int)
    return data, counties


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / NAME)
    parser.add_argument("--n-samples", type=int, default=1000)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    data, counties = load()
    dt = adelia.fit('HC7984 ~ 1 + RDAC80 + f(id, model = "iid")', data, family="binomial", Ntrials="PO7984",
                    n_samples=args.n_samples)
    table = adelia.summary(dt)
    print(table.round(4).to_string())
    table.to_csv(args.out / "summary.csv")
    dt["inla"]["summary_random_id"].to_pandas().assign(county=data["NAME"].values).to_csv(args.out / "random_id.csv")

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), layout="constrained", gridspec_kw={"width_ratios": [1, 1, 0.9]})
    adelia.plots.plot_map(dt, "id", counties, transform=np.exp, ax=axes[0], cmap="RdYlBu_r")
    axes[0].set_title("county odds ratio exp(iid effect): mean")
    rate = 1e5 * data["HC7984"] / data["PO7984"]
    axes[1].scatter(data["RDAC80"], rate, s=10)
    axes[1].set_xlabel("resource deprivation RDAC80")
    axes[1].set_ylabel("homicides per 100,000 (1979–84)")
    axes[1].set_yscale("symlog", linthresh=1)
    adelia.plots.plot_fitted(dt, Ntrials=data["PO7984"].to_numpy(), ax=axes[2])
    axes[2].set_xscale("symlog", linthresh=1)
    axes[2].set_yscale("symlog", linthresh=1)
    fig.savefig(args.out / f"{NAME}.png", dpi=80)
    plt.close("all")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
