"""Scotland lip cancer (56 districts) with R-INLA's ``bym`` model:

    Counts ~ 1 + I(X/10) + f(Region, model = "bym", graph = g),  family poisson, E = expected counts

Data: ``../shared/peer-data/scotland`` (hrue/r-inla ``Scotland.rda`` and ``scotland.graph``);
skipped when absent. peer-data holds no R-INLA results for this model, so the references are
(a) the same posterior computed by NUTS (numpyro, ``adelia.fit(method = "nuts")``) on the same
compiled model, recorded below, and (b) the identity bym = besag + iid with the same priors.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.sparse.csgraph import connected_components

import adelia
from adelia.compiler.graphs import read_inla_graph

from conftest import SHARED

SCOTLAND = SHARED / "peer-data" / "scotland"

#: adelia.fit(..., method = "nuts", chains = 2, warmup = 500, draws = 500), seed 0, with the formula
#: below (written with a column X10 = X/10): posterior mean and sd. Monte Carlo error of a mean is
#: about sd/20.
NUTS = {
    "(Intercept)": (-0.1135, 0.1080),
    "I(X/10)": (0.2611, 0.1144),
    "Precision for Region (spatial component)": (2.403, 0.779),
}

FORMULA = 'Counts ~ 1 + I(X/10) + f(Region, model = "bym", graph = G)'


@pytest.fixture(scope="module")
def scotland():
    if not SCOTLAND.is_dir():
        pytest.skip("../shared/peer-data/scotland is not present")
    d = pd.read_csv(SCOTLAND / "data.csv")
    d["X10"] = d["X"] / 10
    return d, str(SCOTLAND / "scotland.graph")


@pytest.fixture(scope="module")
def bym_fit(scotland):
    d, g = scotland
    return adelia.fit(FORMULA, d, family="poisson", E="E", G=g, n_samples=50)


def test_bym_matches_nuts(bym_fit):
    s = adelia.summary(bym_fit)
    for label, (mean, sd) in NUTS.items():
        assert s.loc[label, "mean"] == pytest.approx(mean, abs=0.15 * sd), label
        assert s.loc[label, "sd"] == pytest.approx(sd, rel=0.1), label
    lo, hi = s.loc["I(X/10)", ["0.025quant", "0.975quant"]]
    assert 0 < lo < hi                        # the agriculture/fishing/forestry effect is positive
    rows = bym_fit["inla"]["summary_random_Region"]
    assert rows.shape[0] == 2 * 56            # R-INLA's layout: v + u, then u


def test_bym_is_besag_plus_iid_on_scotland(scotland, bym_fit):
    d, g = scotland
    d = d.assign(Region2=d["Region"])
    hyper = 'hyper = list(prec = list(prior = "loggamma", param = c(1, 0.0005)))'
    split = adelia.fit(f'Counts ~ 1 + X10 + f(Region, model = "iid", {hyper}) + '
                       f'f(Region2, model = "besag", graph = G, {hyper})', d, family="poisson", E="E", G=g, n_samples=50)
    sb, ss = adelia.summary(bym_fit), adelia.summary(split)
    assert sb.loc["Precision for Region (spatial component)", "mean"] == pytest.approx(
        ss.loc["Precision for Region2", "mean"], rel=1e-3)
    assert sb.loc["(Intercept)", "mean"] == pytest.approx(ss.loc["(Intercept)", "mean"], abs=2e-3)
    assert sb.loc["I(X/10)", "mean"] == pytest.approx(ss.loc["X10", "mean"], abs=2e-3)
    # the marginal likelihoods differ by R-INLA's bym constant, (2n − r)/4 log 2π (inla.c, F_BYM),
    # against −(2n − r)/2 log 2π for the separate besag and iid terms
    W = read_inla_graph(g)
    _, label = connected_components(W, directed=False)
    r = int(np.sum(np.bincount(label) > 1))
    shift = (2 * 56 - r) / 4 * math.log(2 * math.pi)
    assert bym_fit["inla"].attrs["mlik_gaussian"] - split["inla"].attrs["mlik_gaussian"] == pytest.approx(shift, abs=1e-3)
