"""Fits of the R-INLA reference cases in ../shared/reference (skipped when it is absent).

Targets (DEVELOPERS.md): fixed-effect means within 0.05 posterior sd, hyperparameter posterior
medians within 5 % (means too where sd < mean), mlik within 0.5, DIC/WAIC within 1 %.
Where R-INLA departs from the exact posterior (S3's plate precision tail), the NUTS reference
is checked as well.
"""

import json

import numpy as np
import pandas as pd
import pytest

import adelia


def _load(reference, case):
    folder = reference / case
    data = pd.read_csv(folder / "data.csv")
    results = json.loads((folder / "results.json").read_text())
    nuts = json.loads((folder / "nuts.json").read_text()) if (folder / "nuts.json").exists() else None
    return data, results, nuts


def _check(dt, ref, *, mlik_tol=0.5, crit_rel=0.01):
    s = adelia.summary(dt)
    for term, r in ref["summary.fixed"].items():
        assert abs(s.loc[term, "mean"] - r["mean"]) < 0.05 * r["sd"], term
        assert s.loc[term, "sd"] == pytest.approx(r["sd"], rel=0.05), term
    for term, r in ref["summary.hyperpar"].items():
        assert s.loc[term, "0.5quant"] == pytest.approx(r["0.5quant"], rel=0.05), term
        if r["sd"] < r["mean"]:
            assert s.loc[term, "mean"] == pytest.approx(r["mean"], rel=0.05), term
    attrs = dt["inla"].attrs
    assert abs(attrs["mlik_integration"] - ref["mlik"]["integration"]) < mlik_tol
    assert abs(attrs["mlik_gaussian"] - ref["mlik"]["gaussian"]) < mlik_tol
    assert attrs["dic"] == pytest.approx(ref["dic"]["dic"], rel=crit_rel)
    assert attrs["waic"] == pytest.approx(ref["waic"]["waic"], rel=crit_rel)
    return s


def test_s1_gaussian_linear(reference):
    data, ref, nuts = _load(reference, "S1_gaussian_linear")
    dt = adelia.fit("y ~ 1 + x", data, family="gaussian", n_samples=200)
    s = _check(dt, ref)
    theta = float(dt["inla"]["theta_mode"].values[0])
    assert theta == pytest.approx(ref["mode.theta"]["Log precision for the Gaussian observations"], abs=1e-3)
    for term, r in nuts["summary.fixed"].items():
        assert abs(s.loc[term, "mean"] - r["mean"]) < 0.05 * r["sd"]
    assert dt["inla"].attrs["sum_log_cpo"] == pytest.approx(ref["cpo"]["sum_log_cpo"], rel=0.01)


def test_s3_seeds_binomial_iid(reference):
    data, ref, nuts = _load(reference, "S3_seeds_binomial_iid")
    dt = adelia.fit('r ~ 1 + x1*x2 + f(plate, model = "iid")', data, family="binomial", Ntrials="n",
                    n_samples=200)
    s = _check(dt, ref)
    # the exact (NUTS) posterior: fixed effects and the precision's median
    for term, r in nuts["summary.fixed"].items():
        assert abs(s.loc[term, "mean"] - r["mean"]) < 0.05 * r["sd"], term
    r = nuts["summary.hyperpar"]["Precision for plate"]
    assert s.loc["Precision for plate", "0.5quant"] == pytest.approx(r["0.5quant"], rel=0.05)
