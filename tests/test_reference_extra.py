"""Golden tests against R-INLA reference fits (../shared/reference, see its README.md):

* S2 Germany: ``Y ~ 1 + f(region, bym2, graph) + f(x, rw2)``, Poisson with E (irregular rw2);
* S4 SPDEtoy: ``y ~ -1 + intercept + f(spatial, spde)``, Gaussian, PC-Matérn prior;
* S5 Tokyo:   ``y ~ -1 + f(time, rw2, cyclic = TRUE)``, binomial, with and without constr.

Targets: fixed-effect means within 0.05 posterior sd, hyperparameter medians within 5 %, log
marginal likelihood within 0.5 of R-INLA's Gaussian estimate (its CCD "integration" estimate
carries a constant offset, checked as such). Where adelia does not meet a target the test is
marked ``xfail(strict=True)`` with the measured numbers in the reason. The data
are read in place and never copied; every test skips when the folder is absent.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import adelia
from adelia.compiler.latent.spde import SPDE
from adelia.compiler.mesh import Mesh

REF = Path(__file__).resolve().parents[2] / "shared" / "reference"


def case_dir(name: str) -> Path:
    path = REF / name
    if not (path / "results.json").is_file():
        pytest.skip(f"reference case {name} not available at {path}")
    return path


def fit(formula, data, family, *, n_samples=0, objects=None, **kw):
    return adelia.fit(formula, data, family=family, n_samples=n_samples, **kw, **(objects or {}))


def sd_units(dt, ref, term):
    """|mean difference| of a fixed effect in units of R-INLA's posterior sd."""
    ours = adelia.summary(dt).loc[term, "mean"]
    return abs(ours - ref["summary.fixed"][term]["mean"]) / ref["summary.fixed"][term]["sd"]


def median_rel(dt, ref, label):
    ours = adelia.summary(dt).loc[label, "0.5quant"]
    theirs = ref["summary.hyperpar"][label]["0.5quant"]
    return abs(ours / theirs - 1.0)


def mlik_diff(dt, ref, kind):
    return abs(dt["inla"].attrs[f"mlik_{kind}"] - ref["mlik"][kind])


def random_sd_units(dt, ref, name):
    """max over nodes of |mean difference| / R-INLA sd for summary.random[name]."""
    ours = dt["inla"][f"summary_random_{name}"].sel(stat="mean").values
    theirs = ref["summary.random"][name]
    return float(np.max(np.abs(ours - np.asarray(theirs["mean"])) / np.asarray(theirs["sd"])))


# ---------------------------------------------------------------------------------------------
# S5 Tokyo: cyclic rw2, binomial
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _s5(constr: bool):
    path = case_dir("S5_tokyo_rw2_cyclic")
    ref = json.loads((path / ("results.json" if constr else "results_constr_false.json")).read_text())
    data = pd.read_csv(path / "data.csv")
    dt = fit(f"y ~ -1 + f(time, model = 'rw2', cyclic = TRUE, constr = {'TRUE' if constr else 'FALSE'})", data,
             "binomial", Ntrials="n")
    return dt, ref


S5_CASES = [pytest.param(True, id="constr"), pytest.param(False, id="no-constr")]


@pytest.mark.parametrize("constr", S5_CASES)
def test_s5_hyperparameter_median(constr):
    dt, ref = _s5(constr)
    assert median_rel(dt, ref, "Precision for time") < 0.05


@pytest.mark.parametrize("constr", S5_CASES)
def test_s5_mlik(constr):
    dt, ref = _s5(constr)
    assert mlik_diff(dt, ref, "gaussian") < 0.05
    assert mlik_diff(dt, ref, "integration") < 0.5


@pytest.mark.parametrize("constr", [
    pytest.param(True, id="constr"),
    pytest.param(False, id="no-constr", marks=pytest.mark.xfail(
        strict=True, reason="S5 constr = FALSE: rw2 means differ from R-INLA's by up to 0.070 posterior sd with "
                             "simplified-Laplace marginals (0.116 with Gaussian ones); no exact reference exists "
                             "for this variant (constr = TRUE: 0.03 sd from both R-INLA and NUTS)")),
])
def test_s5_random_effect_means(constr):
    dt, ref = _s5(constr)
    assert random_sd_units(dt, ref, "time") < 0.05


def test_s5_matches_exact_posterior():
    """nuts.json: the exact posterior of the constr = TRUE model (Monte Carlo noise ≈ 0.01 sd)."""
    dt, _ = _s5(True)
    nuts_file = REF / "S5_tokyo_rw2_cyclic" / "nuts.json"
    if not nuts_file.is_file():
        pytest.skip("no nuts.json")
    nuts = json.loads(nuts_file.read_text())
    assert median_rel(dt, nuts, "Precision for time") < 0.05
    assert random_sd_units(dt, nuts, "time") < 0.05


# ---------------------------------------------------------------------------------------------
# S4 SPDEtoy: Matérn SPDE, Gaussian
# ---------------------------------------------------------------------------------------------

def _coo(path: Path, shape) -> sp.csr_matrix:
    c = pd.read_csv(path)
    return sp.csr_matrix((c["value"].to_numpy(), (c["row"].to_numpy() - 1, c["col"].to_numpy() - 1)), shape=shape)


@pytest.fixture(scope="module")
def s4_inputs():
    path = case_dir("S4_spdetoy_spde")
    data = pd.read_csv(path / "data.csv")
    nodes = pd.read_csv(path / "nodes.csv").to_numpy()
    tri = pd.read_csv(path / "triangles.csv").to_numpy() - 1
    return path, data, Mesh(nodes, tri)


def test_s4_fem_and_projector_match_fmesher(s4_inputs):
    path, data, mesh = s4_inputs
    n = mesh.n
    fem = mesh.fem()
    for ours, fname in ((fem.C0, "C_lumped.csv"), (fem.G, "G1.csv"), (fem.G2, "G2.csv")):
        ref = _coo(path / fname, (n, n))
        assert abs(ours - ref).max() <= 1e-12 * abs(ref).max(), fname
    A = mesh.projector(data[["s1", "s2"]].to_numpy())
    assert abs(A - _coo(path / "A.csv", (len(data), n))).max() < 1e-12


@pytest.fixture(scope="module")
def s4(s4_inputs):
    path, data, mesh = s4_inputs
    ref = json.loads((path / "results.json").read_text())
    pr = ref["priors"]["spde_pcmatern"]
    spde = SPDE(mesh, prior_range=pr["prior.range"], prior_sigma=pr["prior.sigma"],
                loc=data[["s1", "s2"]].to_numpy())
    data = data.assign(intercept=1.0, spatial=np.arange(1, len(data) + 1))
    dt = fit("y ~ -1 + intercept + f(spatial, model = 'spde', spde = spde)", data, "gaussian",
             objects={"spde": spde})
    return dt, ref


def test_s4_fixed_effect(s4):
    dt, ref = s4
    assert sd_units(dt, ref, "intercept") < 0.05


@pytest.mark.parametrize("label", ["Precision for the Gaussian observations", "Range for spatial",
                                   "Stdev for spatial"])
def test_s4_hyperparameter_medians(s4, label):
    dt, ref = s4
    assert median_rel(dt, ref, label) < 0.05


def test_s4_mlik_gaussian(s4):
    dt, ref = s4
    assert mlik_diff(dt, ref, "gaussian") < 0.05


#: R-INLA's CCD "integration" mlik for d = 3 sits this far from the exact value of a Gaussian θ
#: posterior (it takes the design's relative weights as absolute ones; ../shared/reference/README.md)
RINLA_CCD_BIAS_D3 = -1.293


def test_s4_mlik_integration(s4):
    """Ours is correctly normalised (within 0.05 of the Gaussian estimate); R-INLA's carries its
    documented constant offset, so ours plus that offset lands on R-INLA's value."""
    dt, ref = s4
    ours = dt["inla"].attrs["mlik_integration"]
    assert abs(ours - dt["inla"].attrs["mlik_gaussian"]) < 0.05
    assert abs(ours + RINLA_CCD_BIAS_D3 - ref["mlik"]["integration"]) < 0.1


def test_s4_field_means(s4):
    dt, ref = s4
    assert random_sd_units(dt, ref, "spatial") < 0.05


# ---------------------------------------------------------------------------------------------
# S2 Germany: bym2 + irregular rw2, Poisson with E
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s2():
    path = case_dir("S2_germany_bym2_rw2")
    ref = json.loads((path / "results.json").read_text())
    data = pd.read_csv(path / "data.csv")
    dt = fit("Y ~ 1 + f(region, model = 'bym2', graph = g) + f(x, model = 'rw2')", data, "poisson", E="E",
             objects={"g": str(path / "germany.graph")})
    return dt, ref


@pytest.mark.slow
@pytest.mark.parametrize("label", ["Precision for region", "Phi for region", "Precision for x"])
def test_s2_hyperparameter_medians(s2, label):
    dt, ref = s2
    assert median_rel(dt, ref, label) < 0.05


@pytest.mark.slow
def test_s2_fixed_effect(s2):
    dt, ref = s2
    assert sd_units(dt, ref, "(Intercept)") < 0.05


@pytest.mark.slow
def test_s2_mlik_gaussian(s2):
    dt, ref = s2
    assert mlik_diff(dt, ref, "gaussian") < 0.5


@pytest.mark.slow
def test_s2_mlik_integration(s2):
    """As for S4: correctly normalised here, R-INLA's value offset by its d = 3 CCD constant."""
    dt, ref = s2
    ours = dt["inla"].attrs["mlik_integration"]
    assert abs(ours - dt["inla"].attrs["mlik_gaussian"]) < 0.05
    assert abs(ours + RINLA_CCD_BIAS_D3 - ref["mlik"]["integration"]) < 0.1


@pytest.mark.slow
def test_s2_structure_and_layout(s2):
    dt, ref = s2
    region = dt["inla"]["summary_random_region"]
    assert region.sizes["region_index"] == 2 * 544          # (x, u*) as R-INLA
    np.testing.assert_array_equal(dt["inla"]["summary_random_x"]["x_index"].values, ref["summary.random"]["x"]["ID"])
    u = region.sel(stat="mean").values[544:]
    assert abs(u.sum()) < 1e-8                              # Σ u* = 0


def test_s4_pc_matern_helper_equals_spde_object_priors(s4_inputs, s4):
    """hyper = pc.matern(range0, p_range, sigma0, p_sigma) gives the SPDE object's PC priors."""
    path, data, mesh = s4_inputs
    dt_ref, ref = s4
    pr = ref["priors"]["spde_pcmatern"]
    spde = SPDE(mesh, prior_range=pr["prior.range"], prior_sigma=pr["prior.sigma"], loc=data[["s1", "s2"]].to_numpy())
    (r0, p_r), (s0, p_s) = pr["prior.range"], pr["prior.sigma"]
    data = data.assign(intercept=1.0, spatial=np.arange(1, len(data) + 1))
    dt = fit(f"y ~ -1 + intercept + f(spatial, model = spde, hyper = pc.matern({r0}, {p_r}, {s0}, {p_s}))", data,
             "gaussian", objects={"spde": spde})
    # the same model spelt two ways: equal up to where the θ-mode search stops in the objective's
    # rounding noise (the two spellings round differently)
    pd.testing.assert_frame_equal(adelia.summary(dt), adelia.summary(dt_ref), rtol=1e-5)
