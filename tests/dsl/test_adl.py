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


@pytest.mark.parametrize("name", ["seeds", "monthly", "regions", "regions_edges", "growth"])
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
