"""The adaptive strategy on the Germany space–time model (issue: fixed effects corrected on every path).

besag ⊗ ar1 over years + iid per region and year, Poisson (../shared/peer-data/germany_spacetime, graph from the S2
reference). On the first 3 years (N = 3265) the dense simplified-Laplace fit is the reference
for the sparse and BTA paths under ``strategy = "adaptive"`` and ``"gaussian"``; on all 8 years
(N = 8705, where "auto" means adaptive) the sparse and BTA paths are compared with each other.
One JSON line per fit: name, years, solver, strategy, N, seconds, the fixed effects' mean and sd,
and ``max_diff_sd``: the largest |mean − reference mean| / reference sd over the fixed effects.

    OPENBLAS_NUM_THREADS=1 python benchmarks/adaptive.py [--skip-dense]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

REF = Path(__file__).resolve().parents[2] / "shared" / "reference"
DATA = REF.parent / "peer-data" / "germany_spacetime" / "data.csv"
GRAPH = REF / "S2_germany_bym2_rw2" / "germany.graph"
# the iid over (region, year) is written as an iid over regions grouped by year with an iid group
# model (the same prior, iid ⊗ iid): its blocks follow the years, so the BTA path can take it
FORMULA = ('Y ~ 1 + f(region, model = "besag", graph = g, group = year, control.group = list(model = "ar1"))'
           ' + f(cell, model = "iid", group = year, control.group = list(model = "iid"))')


def run(years: int, solver: str, strategy: str):
    import adelia

    d = pd.read_csv(DATA)
    d = d[d.year <= years].copy()
    d["cell"] = d["region"]
    t0 = time.perf_counter()
    dt = adelia.fit(FORMULA, d, family="poisson", E="E", g=str(GRAPH), solver=solver, strategy=strategy, n_samples=0)
    seconds = time.perf_counter() - t0
    fixed = dt["inla"]["summary_fixed"].to_pandas()
    return {"years": years, "solver": dt["inla"].attrs["solver"], "strategy": strategy, "seconds": round(seconds, 2),
            "mean": fixed["mean"].round(5).to_dict(), "sd": fixed["sd"].round(5).to_dict()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-dense", action="store_true",
                    help="leave out the dense 3-year reference fit (about 15 min on a 2-core CPU); the "
                         "3-year rows are then compared with the first of them")
    args = ap.parse_args()
    if not DATA.is_file():
        print(json.dumps({"name": "germany_spacetime", "skipped": "../shared/peer-data absent"}))
        return
    cases = [] if args.skip_dense else [(3, "dense", "simplified.laplace")]
    cases += [(3, "sparse", "adaptive"), (3, "bta", "adaptive"), (3, "bta", "gaussian"),
              (8, "sparse", "adaptive"), (8, "bta", "adaptive")]
    ref = {}
    for years, solver, strategy in cases:
        row = {"name": f"germany_{years}y", **run(years, solver, strategy)}
        base = ref.setdefault(years, row)
        row["max_diff_sd"] = max(abs(row["mean"][k] - base["mean"][k]) / base["sd"][k] for k in base["mean"])
        row["reference"] = f'{base["solver"]}/{base["strategy"]}'
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
