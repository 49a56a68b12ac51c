"""Parse + validate a 100-term formula; prints one JSON line {"name", "seconds", ...}.

``seconds`` is the median over repeats of parse_formula + compile_formula (resolve against a
200-row data frame) on a warm parser; the grammar is built once before timing. Target < 50 ms.
"""

import json
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def formula_and_data(n_terms: int = 100, rows: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_fixed, n_latent = n_terms * 3 // 5, n_terms - n_terms * 3 // 5
    cols = {"y": rng.normal(size=rows)}
    terms = []
    for i in range(n_fixed):
        cols[f"x{i}"] = rng.normal(size=rows)
        terms.append(f"x{i}")
    models = ['model = "iid"', 'model = "rw1", scale.model = TRUE', 'model = "rw2", constr = TRUE',
              'model = "iid", hyper = list(prec = list(prior = "pc.prec", param = c(1, 0.01)))']
    for j in range(n_latent):
        cols[f"g{j}"] = rng.integers(0, 8, rows)
        terms.append(f"f(g{j}, {models[j % len(models)]})")
    return "y ~ 1 + " + " + ".join(terms), pd.DataFrame(cols)


def main() -> None:
    from adelia.api import compile_formula
    from adelia.dsl.parser import formula_parser, parse_formula

    formula, data = formula_and_data()
    formula_parser()                      # build the grammar once (cached)
    compile_formula(formula, data)        # warm imports
    parse_times, total_times = [], []
    for _ in range(7):
        t0 = time.perf_counter()
        parse_formula(formula)
        t1 = time.perf_counter()
        compile_formula(formula, data)
        t2 = time.perf_counter()
        parse_times.append(t1 - t0)
        total_times.append(t2 - t1)         # compile_formula = parse + resolve
    print(json.dumps({"name": "parse_validate_100_terms", "seconds": statistics.median(total_times),
                      "parse_seconds": statistics.median(parse_times), "terms": 100, "rows": len(data)}))


if __name__ == "__main__":
    sys.exit(main())
