"""Model files: parsing to the IR, reading data and graphs, checking against the data, fitting."""

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adelia.adl_run import check_model, fit_model, load_model
from adelia.dsl import ir
from adelia.dsl.adl import ModelFile, parse_model
from adelia.errors import DataError, ModelError, UnknownNameError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SEEDS = """\
# Seeds
data seeds = csv("seeds.csv")
family binomial(Ntrials = n)
formula r ~ 1 + x1*x2 + f(plate, model = "iid")
prior prec(plate) = pc.prec(1, 0.01)
options(int_strategy = "auto", n_samples = 500, seed = 1)
"""


def test_parse_seeds_ir():
    mf = parse_model(SEEDS)
    assert isinstance(mf, ModelFile)
    assert mf.data[0].name == "seeds" and mf.data[0].reader == "csv" and mf.data[0].path == ir.Str("seeds.csv")
    assert mf.family.name == "binomial" and mf.family.kwarg("Ntrials").value == ir.Name("n")
    assert [t.label for t in mf.formula.latent] == ["plate"]
    assert mf.priors[0].hyper == "prec" and mf.priors[0].target == "plate"
    assert mf.priors[0].value == ir.Call("pc.prec", (ir.Num(1), ir.Num(0.01)))
    assert {k.name: k.value for k in mf.option_keywords()}["n_samples"] == ir.Num(500)
    # spans are file positions
    assert mf.formula.latent[0].span.line == 4
    assert mf.priors[0].span.line == 5 and mf.priors[0].span.column == 1


def test_free_layout_and_keywords_as_column_names():
    mf = parse_model(textwrap.dedent("""\
        data = csv("d.csv")   data csv2 = csv("e.csv")
        formula y ~ data + family +
             f(formula, model = "rw1",
               cyclic = TRUE)   # a comment inside
        family poisson(E = E, offset = off)
        fixed(prec = 0.01, prec.intercept = 0)
    """), validate=False)
    assert [d.name for d in mf.data] == [None, "csv2"]
    assert [ir.expr_label(t.factors[0]) for t in mf.formula.fixed] == ["data", "family"]
    assert mf.formula.latent[0].label == "formula"
    assert mf.family.kwarg("offset").value == ir.Name("off")


def test_parse_from_path_resolves_relative_paths(tmp_path):
    (tmp_path / "m.adl").write_text('data d = csv("sub/d.csv")\nformula y ~ x\n')
    mf = parse_model(tmp_path / "m.adl")
    assert mf.filename.endswith("m.adl")
    assert mf.resolve_path("sub/d.csv") == tmp_path / "sub" / "d.csv"


def test_crlf_and_bom(tmp_path):
    (tmp_path / "m.adl").write_bytes("\ufeffformula y ~ x +\r\n  z\r\n".encode("utf-8"))
    mf = parse_model(str(tmp_path / "m.adl"))
    assert len(mf.formula.fixed) == 2


def test_missing_file():
    with pytest.raises(DataError, match="not found"):
        parse_model("no/such/model.adl")


def test_graph_forms():
    mf = parse_model('graph a = inla_graph("g.graph")\ngraph b = edges("e.csv", from = "i", to = "j")\n'
                     'graph c = "e.csv"\ngraph d = "x.graph"\nformula y ~ x\n')
    assert [(g.name, g.reader) for g in mf.graphs] == [("a", "inla_graph"), ("b", "edges"), ("c", "edges"),
                                                      ("d", "inla_graph")]


# ---- checking against data ----

def _write(tmp_path, model: str, **files) -> Path:
    for name, content in files.items():
        path = tmp_path / name.replace("_dot_", ".")
        if isinstance(content, pd.DataFrame):
            content.to_csv(path, index=False)
        else:
            path.write_text(content)
    p = tmp_path / "m.adl"
    p.write_text(model)
    return p


@pytest.fixture
def small():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"y": rng.normal(size=30).round(3), "x": rng.normal(size=30).round(3),
                         "g": np.repeat(np.arange(1, 7), 5), "n": 10, "k": rng.integers(0, 10, 30)})


def test_check_ok(tmp_path, small):
    p = _write(tmp_path, 'data d = csv("d.csv")\nformula y ~ x + f(g, model = "iid")\n', d_dot_csv=small)
    prepared, problems = check_model(p)
    assert problems == []
    assert prepared.family == "gaussian" and len(prepared.data) == 30
    assert prepared.inputs[0] == p


def test_check_reports_every_problem(tmp_path, small):
    p = _write(tmp_path, textwrap.dedent("""\
        data d = csv("d.csv")
        graph G = inla_graph("missing.graph")
        family binomal(Ntrials = nn)
        formula y ~ x + xx + f(g, model = "idd") + f(k, model = "besag", graph = H)
        prior prec(gg) = pc.prec(1, 0.01)
        options(n_samples = -3)
        """), d_dot_csv=small)
    prepared, problems = check_model(p)
    assert prepared is None
    where = [(e.line, e.column) for e in problems]
    messages = "\n".join(e.message for e in problems)
    assert (2, 22) in where and "graph file 'missing.graph' not found" in messages
    assert (3, 1) in where and "unknown likelihood family 'binomal'" in messages
    assert (3, 26) in where and "'nn'" in messages
    assert (4, 17) in where and "'xx'" in messages
    assert (4, 35) in where and "unknown latent model 'idd'" in messages
    assert (4, 74) in where and "graph 'H'" in messages
    assert (5, 12) in where and "names no f() term" in messages
    assert (6, 21) in where
    assert len(problems) == 8
    assert all(str(e).startswith(f"{p}:") for e in problems)
    assert where == sorted(where)


def test_missing_data_file(tmp_path):
    p = _write(tmp_path, 'data d = csv("nope.csv")\nformula y ~ x\n')
    _, problems = check_model(p)
    assert len(problems) == 1 and isinstance(problems[0], DataError)
    assert (problems[0].line, problems[0].column) == (1, 14)
    assert "paths are relative to the model file" in str(problems[0])


def test_data_override(tmp_path, small):
    small.to_csv(tmp_path / "other.csv", index=False)
    p = _write(tmp_path, 'formula y ~ x\n')
    prepared, problems = check_model(p, data=tmp_path / "other.csv")
    assert problems == [] and len(prepared.data) == 30
    prepared, problems = check_model(p, data=small)
    assert problems == []


def test_prior_merging(tmp_path, small):
    p = _write(tmp_path, 'data d = csv("d.csv")\nformula y ~ x + f(g, model = "iid")\n'
                         'prior prec(g) = pc.prec(1, 0.01)\nprior prec(likelihood) = loggamma(1, 5e-5)\n',
               d_dot_csv=small)
    prepared = load_model(p)
    assert 'hyper = list(prec = pc.prec(1, 0.01))' in prepared.formula_text
    assert prepared.control_family == {"hyper": {"prec": {"prior": "loggamma", "param": [1.0, 5e-5]}}}


def test_prior_conflict(tmp_path, small):
    p = _write(tmp_path, 'data d = csv("d.csv")\n'
                         'formula y ~ f(g, model = "iid", hyper = list(prec = list(prior = "pc.prec", param = c(1, 0.01))))\n'
                         'prior prec(g) = pc.prec(2, 0.01)\nprior rho(g) = pc.prec(2, 0.01)\n', d_dot_csv=small)
    _, problems = check_model(p)
    msgs = [e.message for e in problems]
    assert any("given twice" in m for m in msgs)
    assert any("no hyperparameter 'rho'" in m for m in msgs)


def test_compiler_errors_point_into_the_file(tmp_path, small):
    p = _write(tmp_path, 'data d = csv("d.csv")\nformula y ~ x + f(g, model = "rw2", cylic = TRUE)\n',
               d_dot_csv=small)
    with pytest.raises(ModelError, match="no argument 'cylic'") as info:
        load_model(p)
    assert (info.value.line, info.value.column) == (2, 37)
    assert "did you mean 'cyclic'" in str(info.value)


def test_unknown_column_hint(tmp_path, small):
    p = _write(tmp_path, 'data d = csv("d.csv")\nformula y ~ xx\n', d_dot_csv=small)
    with pytest.raises(UnknownNameError, match="'xx'") as info:
        load_model(p)
    assert "did you mean 'x'" in str(info.value)


def test_edge_list_graph(tmp_path):
    edges = pd.DataFrame({"a": [1, 2, 3, 4], "b": [2, 3, 4, 5]})
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"r": np.arange(1, 6), "y": rng.poisson(5, 5), "E": 5.0})
    p = _write(tmp_path, 'data d = csv("d.csv")\ngraph W = edges("e.csv", from = "a", to = "b")\n'
                         'family poisson(E = E)\nformula y ~ f(r, model = "besag", graph = W)\n',
               d_dot_csv=data, e_dot_csv=edges)
    prepared = load_model(p)
    W = prepared.objects["W"]
    assert W.shape == (5, 5) and W.nnz == 8


def test_bad_edge_list(tmp_path):
    p = _write(tmp_path, 'data d = csv("d.csv")\ngraph W = edges("e.csv")\nformula y ~ f(r, model = "besag", graph = W)\n',
               d_dot_csv=pd.DataFrame({"r": [1, 2], "y": [1.0, 2.0]}), e_dot_csv="a,b\nx,y\n")
    _, problems = check_model(p)
    assert any("whole node numbers" in e.message and e.line == 2 for e in problems)


@pytest.mark.parametrize("name", ["seeds", "monthly", "regions", "regions_edges", "growth", "spatial", "joint"])
def test_examples_check(name):
    prepared, problems = check_model(EXAMPLES / f"{name}.adl")
    assert problems == [], "\n".join(map(str, problems))


def test_fit_example():
    prepared = load_model(EXAMPLES / "growth.adl")
    msgs = []
    dt = fit_model(prepared, n_samples=50, progress=msgs.append)
    assert msgs and "inla" in dt.children
    assert dt["posterior"].dataset.sizes["draw"] == 50
    assert "f(group" in dt.attrs["formula"]


# ---- meshes, spde models, matrices, derived columns ----

def _square_mesh(tmp_path, base=1, header=True, k=4):
    """A k x k grid of nodes on [0, 1]^2 split into triangles, written as nodes/triangles CSVs."""
    g = np.linspace(0, 1, k)
    nodes = np.array([(x, y) for y in g for x in g])
    tri = []
    for j in range(k - 1):
        for i in range(k - 1):
            a = j * k + i
            tri += [(a, a + 1, a + k + 1), (a, a + k + 1, a + k)]
    tri = np.array(tri) + base
    pd.DataFrame(nodes, columns=["x", "y"]).to_csv(tmp_path / "nodes.csv", index=False, header=header)
    pd.DataFrame(tri, columns=["v1", "v2", "v3"]).to_csv(tmp_path / "triangles.csv", index=False, header=header)
    return nodes, tri - base


@pytest.fixture
def sites():
    rng = np.random.default_rng(3)
    s1, s2 = rng.uniform(0.05, 0.95, 25).round(3), rng.uniform(0.05, 0.95, 25).round(3)
    return pd.DataFrame({"s1": s1, "s2": s2, "y": (np.sin(3 * s1) + s2 + rng.normal(0, 0.2, 25)).round(3)})


SPATIAL = """\
data d = csv("d.csv")
column site = row()
column one = 1
mesh m = mesh(nodes = "nodes.csv", triangles = "triangles.csv")
spde sp = spde(m, prior.range = c(0.3, 0.5), prior.sigma = c(1, 0.01), loc = c(s1, s2))
formula y ~ -1 + one + f(site, model = sp)
"""


def test_parse_objects_ir():
    mf = parse_model(SPATIAL + 'matrix M = matrix(c(1, 0, 1), nrow = 1)\nmesh m2 = delaunay(d, s1, s2, offset = 0.2)\n')
    assert [(c.name, c.value) for c in mf.columns] == [("site", ir.Call("row")), ("one", ir.Num(1))]
    assert [(o.kind, o.name, o.reader) for o in mf.objects] == [("mesh", "m", "mesh"), ("spde", "sp", "spde"),
                                                               ("matrix", "M", "matrix"), ("mesh", "m2", "delaunay")]
    sp = mf.spdes[0].arguments()
    assert sp["mesh"] == ir.Name("m") and sp["prior.range"] == ir.Vector((ir.Num(0.3), ir.Num(0.5)))
    assert mf.meshes[1].arguments() == {"data": ir.Name("d"), "x": ir.Name("s1"), "y": ir.Name("s2"),
                                        "offset": ir.Num(0.2)}
    assert mf.object_kinds() == {"m": "mesh", "sp": "spde", "M": "matrix", "m2": "mesh"}
    assert mf.spdes[0].span.line == 5 and mf.spdes[0].name_span.column == 6


@pytest.mark.parametrize("base,header", [(1, True), (0, True), (1, False)])
def test_mesh_from_files_and_spde(tmp_path, sites, base, header):
    nodes, tri = _square_mesh(tmp_path, base=base, header=header)
    p = _write(tmp_path, SPATIAL, d_dot_csv=sites)
    prepared, problems = check_model(p)
    assert problems == [], "\n".join(map(str, problems))
    sp = prepared.objects["sp"]
    np.testing.assert_array_equal(sp.mesh.nodes, nodes)
    np.testing.assert_array_equal(sp.mesh.triangles, tri)
    assert sp.A.shape == (25, 16) and sp.prior_range == (0.3, 0.5)
    assert set(prepared.definitions) == {"m", "sp"} and "m" not in prepared.objects
    assert list(prepared.data["site"]) == list(range(1, 26)) and (prepared.data["one"] == 1).all()
    assert {tmp_path / "nodes.csv", tmp_path / "triangles.csv"} <= set(prepared.inputs)


def test_explicit_base_and_model_spde_keyword(tmp_path, sites):
    _square_mesh(tmp_path, base=1)
    text = SPATIAL.replace('triangles.csv")', 'triangles.csv", base = 1)').replace(
        "model = sp", 'model = "spde", spde = sp')
    prepared, problems = check_model(_write(tmp_path, text, d_dot_csv=sites))
    assert problems == [] and "sp" in prepared.objects
    bad = SPATIAL.replace('triangles.csv")', 'triangles.csv", base = 0)')
    _, problems = check_model(_write(tmp_path, bad, d_dot_csv=sites))
    assert len(problems) == 1 and "numbers vertices 1..16" in problems[0].message
    assert (problems[0].line, problems[0].column) == (4, 48)


def test_delaunay_mesh_and_fit_matches_python(tmp_path, sites):
    import adelia
    from adelia.adl_run import fit_arguments
    from adelia.compiler.latent.spde import SPDE
    from adelia.compiler.mesh import Mesh

    text = SPATIAL.replace('mesh(nodes = "nodes.csv", triangles = "triangles.csv")',
                           "delaunay(x = s1, y = s2, offset = 0.2, spacing = 0.2)")
    prepared = load_model(_write(tmp_path, text + "options(n_samples = 5, int_strategy = 'eb')\n", d_dot_csv=sites))
    mesh = prepared.definitions["m"]
    assert mesh.n > 25
    args, kwargs = fit_arguments(prepared)
    assert args[0] == "y ~ 0 + one + f(site, model = sp)" and set(kwargs) == {"sp", "n_samples", "int_strategy"}
    dt = fit_model(prepared)
    spde = SPDE(Mesh.from_delaunay(sites[["s1", "s2"]].to_numpy(), offset=0.2, spacing=0.2),
                prior_range=(0.3, 0.5), prior_sigma=(1, 0.01), loc=sites[["s1", "s2"]].to_numpy())
    ref = adelia.fit("y ~ -1 + one + f(site, model = sp)", sites.assign(site=np.arange(1, 26), one=1.0),
                     n_samples=5, int_strategy="eb", sp=spde)
    pd.testing.assert_frame_equal(adelia.summary(dt), adelia.summary(ref), rtol=1e-8)
    assert "Range for site" in adelia.summary(dt).index


def test_matrices(tmp_path):
    from adelia.adl_run import read_matrix

    (tmp_path / "dense.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    (tmp_path / "nohead.csv").write_text("1;2\n3;4\n")
    (tmp_path / "coo.csv").write_text("row,col,value\n1,1,0.5\n2,3,2\n")
    (tmp_path / "m.adl").write_text(textwrap.dedent("""\
        matrix D = csv("dense.csv")
        matrix S = csv("nohead.csv", sep = ";")
        matrix C = coo("coo.csv", nrow = 2, ncol = 4)
        matrix R = matrix(c(1, 2, 3, 4, 5, 6), nrow = 2)
        matrix B = matrix(c(1, 2, 3, 4, 5, 6), nrow = 2, byrow = TRUE)
        matrix K = rbind(c(1, 1, 0), c(0, 0, 1))
        formula y ~ x
        """))
    mf = parse_model(tmp_path / "m.adl")
    got = {o.name: read_matrix(o, mf)[0] for o in mf.matrices}
    np.testing.assert_array_equal(got["D"], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(got["S"], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(got["C"].toarray(), [[0.5, 0, 0, 0], [0, 0, 2, 0]])
    np.testing.assert_array_equal(got["R"], [[1, 3, 5], [2, 4, 6]])          # R's column-major fill
    np.testing.assert_array_equal(got["B"], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(got["K"], [[1, 1, 0], [0, 0, 1]])


def test_matrix_in_extraconstr(tmp_path, small):
    p = _write(tmp_path, 'data d = csv("d.csv")\nmatrix M = matrix(c(1, 1, 0, 0, 0, 0), nrow = 1)\n'
                         'formula y ~ x + f(g, model = "iid", extraconstr = list(A = M, e = c(0)))\n', d_dot_csv=small)
    prepared, problems = check_model(p)
    assert problems == [] and prepared.objects["M"].shape == (1, 6)
    assert "extraconstr = list(A = M" in prepared.formula_text


def test_columns(tmp_path, small):
    small = small.assign(E=np.linspace(1, 3, 30))
    p = _write(tmp_path, textwrap.dedent("""\
        data d = csv("d.csv")
        column i = row()
        column lE = log(E)
        column g2 = g
        column w = 0.5
        formula y ~ x + lE + w + f(g, model = "iid") + f(g2, model = "iid")
        """), d_dot_csv=small)
    prepared, problems = check_model(p)
    assert problems == []
    d = prepared.data
    assert list(d["i"]) == list(range(1, 31)) and np.allclose(d["lE"], np.log(small["E"]))
    assert list(d["g2"]) == list(small["g"]) and (d["w"] == 0.5).all()
    assert "i" not in small.columns                           # the caller's frame is not modified


# ---- several likelihoods ----

@pytest.fixture
def joint():
    rng = np.random.default_rng(5)
    g1, g2 = np.repeat(np.arange(1, 6), 4), np.repeat(np.arange(1, 6), 3)
    u = rng.normal(0, 0.5, 5)
    a = pd.DataFrame({"y1": (u[g1 - 1] + rng.normal(0, 0.3, 20)).round(3), "y2": np.nan, "y3": np.nan,
                      "E": np.nan, "n": np.nan, "off": 0.0, "g": g1})
    E = rng.uniform(2, 6, 15).round(2)
    b = pd.DataFrame({"y1": np.nan, "y2": rng.poisson(E * np.exp(u[g2 - 1])), "y3": np.nan, "E": E, "n": np.nan,
                      "off": 0.1, "g": g2})
    c = pd.DataFrame({"y1": np.nan, "y2": np.nan, "y3": rng.binomial(5, 0.4, 15), "E": np.nan, "n": 5.0,
                      "off": -0.2, "g": g2})
    return pd.concat([a, b, c], ignore_index=True)


JOINT = """\
data d = csv("d.csv")
family gaussian(hyper = list(prec = list(prior = "pc.prec", param = c(1, 0.01)))), poisson(E = E)
family binomial(Ntrials = n)
formula cbind(y1, y2, y3) ~ 1 + f(g, model = "iid")
prior prec(likelihood) = pc.prec(2, 0.01)
options(n_samples = 5, seed = 2)
"""


def test_several_families_parse():
    mf = parse_model(JOINT.replace("prior prec(likelihood)", "prior prec(g)"))
    assert mf.family_names == ("gaussian", "poisson", "binomial")
    assert [f.span.line for f in mf.families] == [2, 2, 3]
    assert (mf.families[1].span.line, mf.families[1].span.column) == (2, 84)
    mf = parse_model("family gaussian\nformula y ~ x\nprior prec(likelihood[1]) = pc.prec(1, 0.1)\n")
    assert mf.priors[0].likelihood == 1 and mf.priors[0].index_span.column == 23


def test_several_families_check_and_fit(tmp_path, joint):
    import adelia
    from adelia.adl_run import fit_arguments

    text = JOINT.replace("prior prec(likelihood) = pc.prec(2, 0.01)", "")
    prepared, problems = check_model(_write(tmp_path, text, d_dot_csv=joint))
    assert problems == [], "\n".join(map(str, problems))
    assert prepared.family == ["gaussian", "poisson", "binomial"]
    assert prepared.family_label == "gaussian + poisson + binomial"
    assert prepared.control_family == [{"hyper": {"prec": {"prior": "pc.prec", "param": [1, 0.01]}}}, {}, {}]
    assert prepared.likelihood == {"E": "E", "Ntrials": "n"}
    args, kwargs = fit_arguments(prepared)
    assert args[2] == ["gaussian", "poisson", "binomial"] and kwargs["E"] == "E"
    dt = fit_model(prepared)
    ref = adelia.fit("cbind(y1, y2, y3) ~ 1 + f(g, model = 'iid')", joint, ["gaussian", "poisson", "binomial"],
                     E="E", Ntrials="n", control_family=[{"hyper": {"prec": {"prior": "pc.prec", "param": [1, 0.01]}}},
                                                         {}, {}], n_samples=5, seed=2)
    pd.testing.assert_frame_equal(adelia.summary(dt), adelia.summary(ref), rtol=1e-8)
    assert "Precision for the Gaussian observations" in adelia.summary(dt).index


def test_several_families_priors_and_per_family_columns(tmp_path, joint):
    text = JOINT.replace('(hyper = list(prec = list(prior = "pc.prec", param = c(1, 0.01))))', "") \
        .replace("poisson(E = E)", "poisson(E = E, offset = off)").replace("binomial(Ntrials = n)",
                                                                           "binomial(Ntrials = n, offset = off)")
    prepared, problems = check_model(_write(tmp_path, text, d_dot_csv=joint))
    assert problems == [], "\n".join(map(str, problems))
    assert prepared.control_family == [{"hyper": {"prec": {"prior": "pc.prec", "param": [2, 0.01]}}}, {}, {}]
    off = prepared.likelihood["offset"]
    np.testing.assert_array_equal(off, np.r_[np.zeros(20), np.full(15, 0.1), np.full(15, -0.2)])
    # a second family giving the same key: each family's values on its own rows
    joint2 = joint.assign(E2=np.where(joint["y3"].notna(), 9.0, np.nan))
    text2 = 'data d = csv("d.csv")\nfamily poisson(E = E), poisson(E = E2)\nformula cbind(y2, y3) ~ 1\n'
    prepared, problems = check_model(_write(tmp_path, text2, d_dot_csv=joint2))
    assert problems == []
    E = prepared.likelihood["E"]
    np.testing.assert_array_equal(E[20:35], joint["E"][20:35])
    assert (E[35:] == 9).all() and np.isnan(E[:20]).all()


SEVERAL_BAD = [
    # (model text, line, column, message fragment)
    ("family gaussian, poisson\nformula y ~ x\n", 1, 18, "2 likelihood families are given but the formula has one"),
    ("family gaussian\nformula cbind(a, b) ~ x\n", 2, 9, "the response has 2 columns but one likelihood family"),
    ("family gaussian, poisson\nformula cbind(a, b) ~ x\nprior prec(likelihood[3]) = pc.prec(1, 0.1)\n", 3, 23,
     "likelihood[3] does not exist"),
    ("formula y ~ x\nprior prec(likelihood[1.5]) = pc.prec(1, 0.1)\n", 2, 23, "likelihood[1.5] does not exist"),
    ("formula y ~ f(g)\nprior prec(g[1]) = pc.prec(1, 0.1)\n", 2, 14, "only 'likelihood' takes a family number"),
    ("family gaussian, gaussian\nformula cbind(a, b) ~ x\nprior prec(likelihood[2]) = pc.prec(1, 0.1)\n"
     "prior prec(likelihood[2]) = pc.prec(1, 0.2)\n", 4, 1, "the prior of prec(likelihood[2]) is given twice"),
]


@pytest.mark.parametrize("text,line,column,fragment", SEVERAL_BAD, ids=[t[3][:30] for t in SEVERAL_BAD])
def test_several_families_structure_errors(text, line, column, fragment):
    with pytest.raises(ModelError) as info:
        parse_model(text, filename="m.adl")
    assert (info.value.line, info.value.column) == (line, column), str(info.value)
    assert fragment in info.value.message


def test_several_families_data_errors(tmp_path, joint):
    p = _write(tmp_path, 'data d = csv("d.csv")\nfamily gaussian, poison(E = EE)\nformula cbind(y1, y22) ~ 1\n'
                         'prior rho(likelihood[1]) = pc.prec(1, 0.1)\n', d_dot_csv=joint)
    _, problems = check_model(p)
    got = [(e.line, e.column, e.message) for e in problems]
    assert (2, 18) == got[0][:2] and "unknown likelihood family 'poison'" in got[0][2]
    assert any((2, 29) == g[:2] and "'EE'" in g[2] for g in got)
    assert any((3, 19) == g[:2] and "'y22'" in g[2] for g in got)
    assert any((4, 1) == g[:2] and "(likelihood[1]) has no hyperparameter 'rho'" in g[2] for g in got)
    assert len(problems) == 4


# ---- errors in the new statements, every one located ----

OBJECT_BAD = [
    ('mesh m = bogus("a")\n', 1, 10, "a mesh is made with mesh(), delaunay(), not bogus()"),
    ('mesh m = mesh(nodes = "n.csv")\n', 1, 10, "mesh() needs triangles = ..."),
    ('mesh m = mesh(nodes = n, triangles = "t.csv")\n', 1, 23, "nodes = must be a quoted file path"),
    ('mesh m = mesh("n.csv", "t.csv", "x.csv")\n', 1, 33, "mesh() takes at most 2 unnamed arguments"),
    ('mesh m = mesh("n.csv", "t.csv", base = 2)\n', 1, 40, "base must be 0 or 1"),
    ('mesh m = mesh("n.csv", "t.csv", nodes = "x.csv")\n', 1, 33, "mesh() gets 'nodes' twice"),
    ('mesh m = delaunay(x = s1)\n', 1, 10, "delaunay() needs y = ..."),
    ('mesh m = delaunay(s1, s2, offset = -1)\n', 1, 36, "offset must be a positive number"),
    ('mesh m = delaunay(s1, s2, offst = 1)\n', 1, 27, "delaunay() has no argument 'offst'"),
    ('spde s = spde(mm, prior.range = c(1, 0.5), prior.sigma = c(1, 0.5))\n', 1, 15,
     "mesh 'mm' is not defined in the model file"),
    ('graph g = "a.graph"\nspde s = spde(g, prior.range = c(1, 0.5), prior.sigma = c(1, 0.5))\n', 2, 15,
     "'g' is a graph, not a mesh"),
    ('mesh m = mesh("n.csv", "t.csv")\nspde s = spde(m, prior.sigma = c(1, 0.5))\n', 2, 10,
     "spde() needs prior.range = ..."),
    ('mesh m = mesh("n.csv", "t.csv")\nspde s = spde(m, prior.range = c(1, 2), prior.sigma = c(1, 0.5))\n', 2, 32,
     "prior.range must be c(value, probability)"),
    ('mesh m = mesh("n.csv", "t.csv")\nspde s = spde(m, prior.range = c(1, .5), prior.sigma = c(1, .5), loc = s1)\n',
     2, 72, "loc = must be two coordinate columns"),
    ('mesh m = mesh("n.csv", "t.csv")\nspde s = spde(m, prior.range = c(1, .5), prior.sigma = c(1, .5), alpha = 1)\n',
     2, 74, "only alpha = 2 is supported"),
    ('mesh m = mesh("n.csv", "t.csv")\nspde s = spde(m, prior.range = c(1, .5), prior.sigma = c(1, .5), A = m)\n',
     2, 70, "'m' is a mesh, not a matrix"),
    ('matrix M = matrix(c(1, 2, 3), nrow = 2)\n', 1, 38, "3 values do not fill 2 rows"),
    ('matrix M = matrix(c(1, 2, 3, 4), nrow = 2, ncol = 3)\n', 1, 12, "4 values for 2 x 3"),
    ('matrix M = matrix(c(1, 2))\n', 1, 12, "matrix() needs nrow = or ncol ="),
    ('matrix M = rbind(c(1, 2), c(1))\n', 1, 12, "different lengths"),
    ('matrix M = coo("a.csv", nrow = 0)\n', 1, 32, "nrow must be a whole number >= 1"),
    ('matrix M = c(1, 2)\n', 1, 12, "a matrix is made with csv(), coo(), matrix(), rbind(), not c()"),
    ('mesh m = mesh("n.csv", "t.csv")\nmatrix m = matrix(c(1), nrow = 1)\n', 2, 8, "matrix 'm' is already a mesh"),
    ('mesh data = mesh("n.csv", "t.csv")\n', 1, 6, "'data' cannot name a mesh"),
    ('column i = row(1)\n', 1, 12, "row() takes no arguments"),
    ('column i = c(1, 2)\n', 1, 12, "a column is a number, a column name, row() or"),
    ('column i = log(a, b)\n', 1, 12, "log() takes one argument"),
    ('column i = 1\ncolumn i = 2\n', 2, 8, "column 'i' is defined twice"),
]


@pytest.mark.parametrize("text,line,column,fragment", OBJECT_BAD, ids=[t[3][:40] for t in OBJECT_BAD])
def test_object_statement_errors(text, line, column, fragment):
    with pytest.raises(ModelError) as info:
        parse_model(text + "formula y ~ x\n", filename="m.adl")
    err = info.value
    assert fragment in err.message, str(err)
    assert (err.line, err.column) == (line, column), str(err)
    assert str(err).startswith(f"m.adl:{line}:{column}: error: ")


def test_object_problems_with_data(tmp_path, sites):
    _square_mesh(tmp_path)
    (tmp_path / "bad_tri.csv").write_text("v1,v2,v3\n1,2,99\n")
    text = textwrap.dedent("""\
        data d = csv("d.csv")
        column y = 1
        column lz = log(zz)
        mesh m = mesh(nodes = "nodes.csv", triangles = "missing.csv")
        mesh m2 = mesh(nodes = "nodes.csv", triangles = "bad_tri.csv")
        mesh m3 = delaunay(x = s1, y = s3)
        mesh ok = mesh("nodes.csv", "triangles.csv")
        spde sp = spde(m, prior.range = c(0.3, 0.5), prior.sigma = c(1, 0.01), loc = c(s1, s2))
        spde sp2 = spde(ok, prior.range = c(0.3, 0.5), prior.sigma = c(1, 0.01), loc = c(s1, s9))
        matrix M = csv("nope.csv")
        formula y ~ f(s1, model = m) + f(s2, model = "spde", spde = spx) + f(s1, extraconstr = list(A = MM, e = 0))
        """)
    prepared, problems = check_model(_write(tmp_path, text, d_dot_csv=sites))
    assert prepared is None
    got = {(e.line, e.column): e.message for e in problems}
    assert "'y' is already a column of the data" in got[(2, 8)]
    assert "'zz'" in got[(3, 17)]
    assert "mesh triangles file 'missing.csv' not found" in got[(4, 48)]
    assert "numbers vertices 1..99" in got[(5, 49)]
    assert "'s3'" in got[(6, 32)]
    assert "'s9'" in got[(9, 86)]
    assert "matrix file 'nope.csv' not found" in got[(10, 16)]
    assert "'m' is a mesh: model = takes a model name or an spde object" in got[(11, 27)]
    assert "spde 'spx' is not defined" in got[(11, 61)]
    assert "matrix 'MM' is not defined" in got[(11, 97)]
    assert len(problems) == 10          # sp (built on the broken mesh m) is skipped, not reported again
    assert [(e.line, e.column) for e in problems] == sorted((e.line, e.column) for e in problems)


def test_spde_points_outside_mesh(tmp_path, sites):
    _square_mesh(tmp_path)
    p = _write(tmp_path, SPATIAL, d_dot_csv=sites.assign(s1=sites["s1"] + 0.5))
    _, problems = check_model(p)
    assert len(problems) == 1 and "outside the mesh" in problems[0].message
    assert (problems[0].line, problems[0].column) == (5, 78)


def test_strategy_option():
    mf = parse_model("formula y ~ x\noptions(strategy = \"gaussian\")\n")
    assert mf.option_keywords()[0].name == "strategy"
    with pytest.raises(ModelError, match="strategy must be one of"):
        parse_model("formula y ~ x\noptions(strategy = \"fullaplace\")\n")


@pytest.mark.parametrize("name", ["spatial", "joint"])
def test_new_examples_check(name):
    prepared, problems = check_model(EXAMPLES / f"{name}.adl")
    assert problems == [], "\n".join(map(str, problems))
