"""Per-capita personal income of the 48 contiguous US states, 1929–2009 (US Bureau of Economic
Analysis, as shipped by PySAL for the Rey & Montouri 1999 convergence study): a national
trend as a second-order random walk, plus a state effect, on the log scale:

    log_income ~ 1 + f(year, model = "rw2") + f(state, model = "iid"),   N(η, 1/τ)

3,888 observations, 81 + 48 latent effects. The rw2 (R-INLA ``inla.doc("rw2")``: Σ x = 0,
unscaled, loggamma(1, 5e-5) on its log precision) bends with the Depression, the war
economy and the 1970s; the state effects are each state's average log-income gap.

Data: libpysal's bundled ``us_income`` example (no download); ``pip install "adelia[examples]"``.

Run:  python examples/us_income_rw2.py [--out DIR]   (writes summary.csv, random_year.csv,
      random_state.csv and us_income_rw2.png; default DIR examples/out/us_income_rw2)
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only, no window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from libpysal.examples import get_path  # noqa: E402

import adelia  # noqa: E402
import adelia.plots  # noqa: E402

NAME = "us_income_rw2"


def load() -> pd.DataFrame:
    wide = pd.read_csv(get_path("usjoin.csv"))
    years = [c for c in wide.columns if c.isdigit()]
    long = wide.melt(id_vars=["Name"], value_vars=years, var_name="year", value_name="income")
    return pd.DataFrame({"log_income": np.log(long["income"].to_numpy(float)),
                         "year": long["year"].astype(int).to_numpy(), "state": long["Name"].to_numpy()})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / NAME)
    parser.add_argument("--n-samples", type=int, default=1000)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    data = load()
    dt = adelia.fit('log_income ~ 1 + f(year, model = "rw2") + f(state, model = "iid")', data,
                    n_samples=args.n_samples)
    table = adelia.summary(dt)
    print(table.round(4).to_string())
    table.to_csv(args.out / "summary.csv")
    for name in ("year", "state"):
        dt["inla"][f"summary_random_{name}"].to_pandas().to_csv(args.out / f"random_{name}.csv")

    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained", gridspec_kw={"width_ratios": [1.2, 1]})
    adelia.plots.plot_random(dt, "year", ax=ax_t)
    ax_t.set_title("national trend: rw2 on log income (mean, 95 % band)")
    adelia.plots.plot_random(dt, "state", ax=ax_s, color="C2")
    ax_s.tick_params(axis="x", labelsize=6)
    ax_s.set_title("state effects (iid)")
    fig.savefig(args.out / f"{NAME}.png", dpi=80)
    plt.close("all")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
