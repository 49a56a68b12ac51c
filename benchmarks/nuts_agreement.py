"""Agreement with the exact posterior: fits of S1, S3, S5 against the stored long NUTS runs.

``../shared/reference/<case>/nuts.json`` holds 4 x 20,000 NUTS draws of each model (Monte Carlo
noise ≈ 0.01 sd). For each case and each method asked for, one JSON object with
:func:`adelia.compare` condensed:

    fixed:    per fixed effect, mean difference in exact sds and sd ratio
    hyperpar: per hyperparameter (internal scale), mean / 2.5 % / 50 % / 97.5 % quantile
              differences in exact sds and sd ratio
    random:   per component, the range (min, max) of the nodes' sd ratios and the largest
              |mean difference| in exact sds

Methods: ``inla`` (adelia's defaults), ``nuts`` (``method = "nuts"``, 4 x 1000 draws after
1000 warm-up), ``inla_nuts`` (``int_strategy = "nuts"``).

    OPENBLAS_NUM_THREADS=1 python benchmarks/nuts_agreement.py [--methods inla,nuts,inla_nuts] [--only S1,S3]
"""

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_reference import REF, s1, s3, s5  # noqa: E402

CASES = {"S1_gaussian_linear": s1, "S3_seeds_binomial_iid": s3, "S5_tokyo_rw2_cyclic": s5}
METHODS = {"inla": {}, "nuts": {"method": "nuts"}, "inla_nuts": {"int_strategy": "nuts", "n_samples": 0}}


def condense(table) -> dict:
    r = lambda v: round(float(v), 3)
    out = {"fixed": {}, "hyperpar": {}, "random": {}}
    for (group, name), row in table.iterrows():
        if group == "fixed":
            out["fixed"][name] = {"mean_diff_sd": r(row["mean_diff_sd"]), "sd_ratio": r(row["sd_ratio"])}
        elif group == "hyperpar":
            out["hyperpar"][name] = {"mean_diff_sd": r(row["mean_diff_sd"]), "sd_ratio": r(row["sd_ratio"]),
                                     **{c: r(row[c]) for c in table.columns if c.startswith("q")}}
    for group in {g for g, _ in table.index if g.startswith("random:")}:
        sub = table.loc[group]
        out["random"][group.split(":", 1)[1]] = {
            "sd_ratio_min": r(sub["sd_ratio"].min()), "sd_ratio_max": r(sub["sd_ratio"].max()),
            "max_abs_mean_diff_sd": r(sub["mean_diff_sd"].abs().max())}
    return out


def main(argv):
    import adelia

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="inla", help="comma-separated: inla, nuts, inla_nuts (default inla)")
    ap.add_argument("--only", help="comma-separated case prefixes, e.g. S1,S3")
    args = ap.parse_args(argv)
    names = [n for n in CASES if not args.only or any(n.startswith(p) for p in args.only.split(","))]
    for name in names:
        if not (REF / name / "nuts.json").is_file():
            print(json.dumps({"name": name, "skipped": "no nuts.json"}), flush=True)
            continue
        ref = json.loads((REF / name / "nuts.json").read_text())
        formula, data, kw = CASES[name]()
        for method in args.methods.split(","):
            t = time.perf_counter()
            dt = adelia.fit(formula, data, **kw, **METHODS[method])
            row = {"name": name, "method": method, "seconds": round(time.perf_counter() - t, 1),
                   **condense(adelia.compare(dt, ref, random=True))}
            if method == "nuts":
                import arviz as az

                s = az.summary(dt, var_names=[v for v in dt["posterior"].data_vars], kind="diagnostics")
                row["diagnostics"] = {"divergences": int(dt["inla"].attrs["divergences"]),
                                      "max_rhat": round(float(s["r_hat"].max()), 4),
                                      "min_ess_bulk": int(s["ess_bulk"].min())}
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
