"""The R expressions R-INLA users paste into arguments: arithmetic, ':' / seq() / rep(), T/F,
inla.group(...), I(...) / scale(...) in fixed effects -- in formula strings and .adl files.

Folded values are compared with Python's own arithmetic (an independent evaluator) and with R's
documented results; inla.group with an independent pandas.cut/numpy.quantile construction.
"""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adelia
from adelia.adl_run import check_model, load_model
from adelia.compiler.grouping import inla_group
from adelia.dsl import ir
from adelia.dsl.adl import parse_model
from adelia.dsl.parser import parse_formula
from adelia.dsl.printer import print_formula
from adelia.errors import AdeliaError, FormulaSyntaxError, ModelError, UnknownNameError


def value_of(text: str):
    """The folded value of ``text`` as the argument v of an f() term (float or list)."""
    v = parse_formula(f"y ~ f(a, v = {text})").latent[0].kwarg("v").value
    if isinstance(v, ir.Vector):
        return [i.value for i in v.items]
    return v.value


# (R text, value R gives) -- R values written out by hand / from ?seq, ?rep, ?Syntax
CONSTANTS = [
    ("c(1/0.31, 0.01)", [1 / 0.31, 0.01]),
    ("2/3", 2 / 3),
    ("10^-3", 1e-3),
    ("10**-3", 1e-3),
    ("-1", -1.0),
    ("- 1", -1.0),
    ("+2", 2.0),
    ("--3", 3.0),
    ("exp(1)", math.e),
    ("log(2)", math.log(2)),
    ("log(100, 10)", 2.0),
    ("log10(1000) + log2(8)", 6.0),
    ("sqrt(2)", math.sqrt(2)),
    ("abs(-2.5)", 2.5),
    ("-(1 + 2) * 3", -9.0),
    ("(1 + 2) / (3 - 1)", 1.5),
    ("2^3^2", 512.0),            # right-associative
    ("-2^2", -4.0),              # ^ binds tighter than unary minus
    ("(-2)^2", 4.0),
    ("2^-1", 0.5),
    ("1 - 2 - 3", -4.0),         # left-associative
    ("12 / 2 / 3", 2.0),
    ("1e-5 * 2", 2e-5),
    ("1:5", [1.0, 2.0, 3.0, 4.0, 5.0]),
    ("5:1", [5.0, 4.0, 3.0, 2.0, 1.0]),
    ("1.5:4", [1.5, 2.5, 3.5]),
    ("-1:2", [-1.0, 0.0, 1.0, 2.0]),   # unary minus binds tighter than ':'
    ("2*1:3", [2.0, 4.0, 6.0]),        # ':' binds tighter than '*'
    ("1:3 + 1", [2.0, 3.0, 4.0]),
    ("1:1", [1.0]),
    ("seq(1, 50, by = 2)", [float(v) for v in range(1, 51, 2)]),
    ("seq(1, 10, 3)", [1.0, 4.0, 7.0, 10.0]),
    ("seq(10, 1)", [float(v) for v in range(10, 0, -1)]),
    ("seq(0, 1, length.out = 5)", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("seq(0, 1, length = 3)", [0.0, 0.5, 1.0]),
    ("seq(1, by = 2, length.out = 4)", [1.0, 3.0, 5.0, 7.0]),
    ("seq(to = 10, by = 2, length.out = 3)", [6.0, 8.0, 10.0]),
    ("seq(5, 1, by = -2)", [5.0, 3.0, 1.0]),
    ("seq(length.out = 3)", [1.0, 2.0, 3.0]),
    ("seq_len(4)", [1.0, 2.0, 3.0, 4.0]),
    ("rep(1, 3)", [1.0, 1.0, 1.0]),
    ("rep(c(1, 2), times = 3)", [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]),
    ("rep(c(1, 2), each = 2)", [1.0, 1.0, 2.0, 2.0]),
    ("rep(c(1, 2), each = 2, times = 2)", [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]),
    ("rep(c(1, 2), times = c(2, 3))", [1.0, 1.0, 2.0, 2.0, 2.0]),
    ("rep(1:3, length.out = 7)", [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]),
    ("rep(TRUE, 2)", [True, True]),
    ('rep("a", 2)', ["a", "a"]),
    ("c(1:3, 10)", [1.0, 2.0, 3.0, 10.0]),
    ("c(1, 2) * 2", [2.0, 4.0]),
    ("c(1, 2) + c(10, 20)", [11.0, 22.0]),
    ("exp(c(0, 1))", [1.0, math.e]),
    ("c(T, F)", [True, False]),
    ("T", True),
    ("F", False),
    ("c(0, Inf)", [0.0, math.inf]),   # clinear's range = c(low, high)
    ("-Inf", -math.inf),
    ("c(-Inf, Inf)", [-math.inf, math.inf]),
]


@pytest.mark.parametrize("text,expected", CONSTANTS, ids=[c[0] for c in CONSTANTS])
def test_constant_arguments_fold_as_in_r(text, expected):
    got = value_of(text)
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g == pytest.approx(e, rel=1e-15, abs=1e-15) if isinstance(e, float) else g == e
    else:
        assert got == pytest.approx(expected, rel=1e-15) if isinstance(expected, float) and not isinstance(
            expected, bool) else got == expected


def test_inf_prints_back_as_r_writes_it():
    f = parse_formula('y ~ f(x, model = "clinear", range = c(0, Inf)) + f(z, v = -Inf)')
    text = print_formula(f)
    assert "0, Inf" in text and "-Inf" in text
    assert print_formula(parse_formula(text)) == text


def test_seq_by_fractions_matches_r_construction():
    """seq(0, 1, by = 0.1) is from + (0:n) * by in R (not repeated addition), so 0.3 is 3 * 0.1."""
    got = value_of("seq(0, 1, by = 0.1)")
    assert got == [0 + k * 0.1 for k in range(11)]
    assert np.allclose(value_of("seq(0, 1, length.out = 11)"), np.linspace(0, 1, 11), rtol=0, atol=1e-15)


# ---- property: folding agrees with Python's arithmetic on random expression trees ----

def _leaf():
    return st.one_of(st.integers(0, 9).map(float), st.sampled_from([0.5, 0.25, 1.5, 2.0, 3.0, 10.0]))


def _trees():
    return st.recursive(
        _leaf().map(lambda v: (repr(v), v)),
        lambda kids: st.one_of(
            st.builds(lambda op, a, b: (f"({a[0]}) {op[0]} ({b[0]})", (op[1], a[1], b[1])),
                      st.sampled_from([("+", "+"), ("-", "-"), ("*", "*"), ("/", "/"), ("^", "**"), ("**", "**")]),
                      kids, kids),
            st.builds(lambda a: (f"-({a[0]})", ("neg", a[1])), kids)),
        max_leaves=8)


def _python(tree):
    if isinstance(tree, float):
        return tree
    if tree[0] == "neg":
        return -_python(tree[1])
    op, a, b = tree
    a, b = _python(a), _python(b)
    return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
            "**": lambda: a ** b}[op]()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees())
def test_folding_matches_python_arithmetic(tree):
    text, structure = tree
    try:
        expected = _python(structure)
    except (ZeroDivisionError, OverflowError):
        expected = None
    if isinstance(expected, complex) or (expected is not None and not math.isfinite(expected)):
        expected = None
    if expected is None:          # R would give Inf/NaN: a located error here
        with pytest.raises(ModelError) as info:
            value_of(text)
        assert info.value.line == 1 and info.value.column is not None
        return
    assert value_of(text) == pytest.approx(expected, rel=1e-12, abs=1e-300)


# ---- symbolic arithmetic stays an expression (for the compiler) ----

def test_arithmetic_over_names_stays_symbolic_and_prints_like_r():
    f = parse_formula("y ~ f(a, v = -x^2 + (b - c) * d/e, w = 2^-k, r = 1:n)")
    kws = {k.name: k.value for k in f.latent[0].kwargs}
    assert kws["v"] == ir.BinOp("+", ir.Neg(ir.BinOp("^", ir.Name("x"), ir.Num(2))),
                                ir.BinOp("/", ir.BinOp("*", ir.BinOp("-", ir.Name("b"), ir.Name("c")), ir.Name("d")),
                                         ir.Name("e")))
    assert kws["r"] == ir.BinOp(":", ir.Num(1), ir.Name("n"))
    text = print_formula(f)
    assert "v = -x^2 + (b - c) * d/e" in text and "w = 2^-k" in text and "r = 1:n" in text
    assert parse_formula(text) == f


def test_t_and_f_are_names_where_a_term_or_index_is_expected():
    f = parse_formula("y ~ T + f(F, model = 'iid', constr = T, x = c(T, F), d = {'k': F})")
    assert f.fixed[0].factors == (ir.Name("T"),)
    assert f.latent[0].index == ir.Name("F")
    kws = {k.name: k.value for k in f.latent[0].kwargs}
    assert kws["constr"] == ir.Bool(True)
    assert kws["x"] == ir.Vector((ir.Bool(True), ir.Bool(False)))
    assert kws["d"].kwargs[0].value == ir.Bool(False)


def test_i_keeps_its_expression_as_written():
    f = parse_formula("y ~ I(x/10) + I(2^2 * x) + log(x + exp(1))")
    assert [print_formula(f)] == ["y ~ 1 + I(x/10) + I(2^2 * x) + log(x + exp(1))"]


# ---- inla.group: R-INLA's binning ----

def test_inla_group_r_documentation_example():
    """?inla.group: 'x = 1:10; inla.group(x, n = 2)  ## this gives groups 3 and 8'."""
    assert inla_group(np.arange(1, 11.0), 2).tolist() == [3.0] * 5 + [8.0] * 5
    assert inla_group(np.arange(1, 11.0), 2, idx_only=True).tolist() == [1.0] * 5 + [2.0] * 5


def _reference_cut(x, n):
    """Independent construction: pandas.cut with n equal-width bins (right-closed), bin medians."""
    codes = pd.cut(x, n, labels=False)
    return pd.Series(x).groupby(codes).transform("median").to_numpy()


def _reference_quantile(x, n):
    m = n - 1
    a = 3 / 8 if m <= 10 else 1 / 2
    probs = np.r_[0.0, (np.arange(1, m + 1) - a) / (m + 1 - 2 * a), 1.0]
    breaks = np.unique(np.quantile(x, probs))          # type 7 = numpy's default "linear"
    codes = pd.cut(x, breaks, labels=False, include_lowest=True)
    return pd.Series(x).groupby(codes).transform("median").to_numpy()


@pytest.mark.parametrize("seed", range(40))
def test_inla_group_matches_cut_and_quantile_references(seed):
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 3.0, size=int(rng.integers(5, 300)))
    n = int(rng.integers(2, 40))
    np.testing.assert_allclose(inla_group(x, n, "cut"), _reference_cut(x, n), rtol=0, atol=1e-12)
    np.testing.assert_allclose(inla_group(x, n, "quantile"), _reference_quantile(x, n), rtol=0, atol=1e-12)
    assert len(np.unique(inla_group(x, n))) <= n
    ties = rng.integers(0, 30, size=x.size).astype(float)      # many values on bin edges
    if np.ptp(ties) > 0:
        np.testing.assert_allclose(inla_group(ties, n, "cut"), _reference_cut(ties, n), rtol=0, atol=1e-12)
        np.testing.assert_allclose(inla_group(ties, n, "quantile"), _reference_quantile(ties, n), rtol=0, atol=1e-12)


def test_inla_group_keeps_missing_values_and_handles_constants():
    x = np.array([1.0, np.nan, 3.0, 5.0, np.nan, 7.0])
    out = inla_group(x, 2)
    assert np.isnan(out[[1, 4]]).all()
    assert out[[0, 2, 3, 5]].tolist() == [2.0, 2.0, 6.0, 6.0]
    assert inla_group(np.full(4, 2.0), 3).tolist() == [2.0] * 4      # R: cut still makes 3 bins
    assert inla_group(np.array([1.0, 2.0, 10.0]), 1).tolist() == [2.0] * 3   # n = 1: the median
    with pytest.raises(ValueError, match="single value"):
        inla_group(np.full(4, 2.0), 3, "quantile")


@pytest.fixture
def curve():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 10, 80).round(3)
    return pd.DataFrame({"y": np.sin(x) + rng.normal(0, 0.2, 80), "x": x, "g": np.repeat(np.arange(8), 10)})


def test_inla_group_as_a_latent_index(curve):
    m = adelia.compile_formula('y ~ 1 + f(inla.group(x, n = 20), model = "rw2")', curve)
    comp = m.components[0]
    assert comp.name == "inla.group(x, n = 20)"
    grouped = inla_group(curve.x.to_numpy(), 20)
    nodes = np.unique(grouped)
    assert comp.n == len(nodes) <= 20
    np.testing.assert_array_equal(np.asarray(comp.structure.values, float), nodes)
    A = m.A[:, comp.offset: comp.offset + comp.n].toarray()
    np.testing.assert_array_equal(A @ nodes, grouped)          # each row points at its bin's node
    default = adelia.compile_formula('y ~ f(inla.group(x, method = "quantile"), model = "rw1")', curve)
    assert default.components[0].name == 'inla.group(x, method = "quantile")'
    assert default.components[0].n == len(np.unique(inla_group(curve.x.to_numpy(), 25, "quantile")))


def test_values_and_priors_from_r_expressions(curve):
    m = adelia.compile_formula(
        'y ~ f(g, model = "rw1", values = 0:7, hyper = list(prec = list(prior = "pc.prec", param = c(1/0.31, 10^-2))))',
        curve)
    assert m.components[0].n == 8
    theta = next(t for t in m.thetas if t.owner == "g")
    assert theta.prior.describe() == adelia.compile_formula(
        'y ~ f(g, model = "rw1", hyper = list(prec = list(prior = "pc.prec", param = c(3.225806451612903, 0.01))))',
        curve).thetas[1].prior.describe()
    # names in a sequence resolve to passed objects (R: values = 0:(n - 1) with n defined)
    m2 = adelia.compile_formula('y ~ f(g, model = "rw1", values = seq(0, k - 1))', curve, objects={"k": 8})
    assert np.asarray(m2.components[0].structure.values, float).tolist() == list(range(8))


def test_arithmetic_in_the_response_offset_and_weights(curve):
    m = adelia.compile_formula("y * 2 - 1 ~ offset(log(x + 1)) + f(g, x/10, model = 'iid')", curve)
    x = curve.x.to_numpy()
    np.testing.assert_allclose(m.y, curve.y.to_numpy() * 2 - 1)
    np.testing.assert_allclose(m.offset, np.log(x + 1))
    comp = m.components[0]
    np.testing.assert_allclose(m.A[:, comp.offset: comp.offset + comp.n].toarray().sum(axis=1), x / 10)


# ---- fixed effects: I(...) and scale(...) with R's names ----

def test_i_and_scale_fixed_effects(curve):
    m = adelia.compile_formula("y ~ I(x/10) + I(x^2) + scale(x) + I(-x + 1)", curve)
    assert m.fixed.names == ("(Intercept)", "I(x/10)", "I(x^2)", "scale(x)", "I(-x + 1)")
    x = curve.x.to_numpy()
    X = m.fixed.X
    np.testing.assert_allclose(X[:, 1], x / 10)
    np.testing.assert_allclose(X[:, 2], x ** 2)
    np.testing.assert_allclose(X[:, 3], (x - x.mean()) / x.std(ddof=1))     # R's scale(): sd with n - 1
    np.testing.assert_allclose(X[:, 4], 1 - x)


def test_fit_stores_r_names(curve):
    dt = adelia.fit("y ~ I(x/10) + f(inla.group(x, n = 10), model = 'rw2')", curve, n_samples=20)
    assert list(dt["inla"]["summary_fixed"].fixed_term.values) == ["(Intercept)", "I(x/10)"]
    assert "inla.group(x, n = 10)" in dt["posterior"]
    assert "I(x\u221510)" in dt["posterior"]           # DataTree variable names cannot hold '/'


# ---- .adl model files ----

ADL = """\
data d = csv("d.csv")
family gaussian(hyper = list(prec = list(prior = "pc.prec", param = c(1/0.31, 0.01))))
formula y ~ I(x/10) + f(inla.group(x, n = 4*5), model = "rw2", constr = T)
prior prec(inla.group(x, n = 20)) = pc.prec(1/0.31, 10^-2)
fixed(prec = 1/1000)
options(quantiles = c(0.025, 1/2, 0.975), n_samples = 10*5)
"""


def test_adl_folds_r_expressions(tmp_path, curve):
    curve.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "m.adl").write_text(ADL)
    mf = parse_model(tmp_path / "m.adl")
    assert mf.family.kwarg("hyper").value.kwargs[0].value.kwarg("param").value == ir.Vector(
        (ir.Num(1 / 0.31), ir.Num(0.01)))
    assert mf.priors[0].target == "inla.group(x, n = 20)"
    assert mf.priors[0].value == ir.Call("pc.prec", (ir.Num(1 / 0.31), ir.Num(0.01)))
    assert mf.fixed_keywords()[0].value == ir.Num(0.001)
    opts = {k.name: k.value for k in mf.option_keywords()}
    assert opts["quantiles"] == ir.Vector((ir.Num(0.025), ir.Num(0.5), ir.Num(0.975)))
    assert opts["n_samples"] == ir.Num(50)
    prepared = load_model(tmp_path / "m.adl")
    assert f"hyper = list(prec = pc.prec({1 / 0.31!r}, 0.01))" in prepared.formula_text
    m = adelia.compile_formula(prepared.formula_text, prepared.data)
    assert [c.name for c in m.components] == ["inla.group(x, n = 20)"]
    assert m.fixed.names == ("(Intercept)", "I(x/10)")


def test_adl_check_finds_columns_inside_arithmetic(tmp_path, curve):
    curve.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "m.adl").write_text('data d = csv("d.csv")\nformula y ~ I(xx/10) + I(-x)\n')
    _, problems = check_model(tmp_path / "m.adl")
    assert [(p.line, p.column) for p in problems] == [(2, 15)] and "'xx'" in problems[0].message


# ---- a formula without a response; unknown models and families ----

def test_missing_response_is_a_located_error(curve):
    with pytest.raises(ModelError, match="no response") as info:
        adelia.fit("~ x", curve)
    assert (info.value.line, info.value.column) == (1, 1) and "^" in str(info.value)
    assert parse_formula("~ x").response is None           # parsing alone still accepts it


def test_missing_response_in_a_model_file(tmp_path, curve):
    curve.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "m.adl").write_text('data d = csv("d.csv")\nformula ~ x\n')
    _, problems = check_model(tmp_path / "m.adl")
    assert problems and any("no response" in p.message for p in problems)
    assert all(p.line == 2 for p in problems if "no response" in p.message)


def test_unknown_model_lists_near_and_known_names(curve):
    with pytest.raises(UnknownNameError) as info:
        adelia.compile_formula('y ~ f(g, model = "rw3")', curve)
    err = info.value
    assert (err.line, err.column) == (1, 18)
    assert "did you mean 'rw2' or 'rw1'" in err.message and "known: " in err.message and "iid" in err.message
    assert "^~~~~" in str(err)
    with pytest.raises(UnknownNameError, match=r"unknown likelihood family 'poison' \(did you mean 'poisson'"):
        adelia.compile_formula("y ~ x", curve, family="poison")


def test_unknown_family_in_a_model_file_is_located(tmp_path, curve):
    curve.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "m.adl").write_text('data d = csv("d.csv")\nfamily gausian\nformula y ~ x\n')
    _, problems = check_model(tmp_path / "m.adl")
    [err] = [p for p in problems if "gausian" in p.message]
    assert err.line == 2 and "did you mean 'gaussian'" in err.message and "known: " in err.message


# ---- malformed variants: located errors with a caret ----

MALFORMED = [
    # (formula, line, column, message fragment)
    ("y ~ f(a, v = c(1/, 2))", 1, 18, "unexpected ','"),
    ("y ~ f(a, v = 1:)", 1, 16, "unexpected ')'"),
    ("y ~ f(a, v = 2^)", 1, 16, "unexpected ')'"),
    ("y ~ f(a, v = (1 + 2)", 1, 21, "ends too early"),
    ("y ~ f(a, v = 1 */ 2)", 1, 17, "unexpected '/'"),
    ("y ~ f(a, v = seq(1))", 1, 14, "seq() needs where to end"),
    ("y ~ f(a, v = seq())", 1, 14, "seq() needs where to end"),
    ("y ~ f(a, v = seq(1, 10, by = -1))", 1, 30, "does not lead from 1 to 10"),
    ("y ~ f(a, v = seq(1, 2, foo = 3))", 1, 24, "seq() has no argument 'foo'"),
    ("y ~ f(a, v = seq(1, 2, 3, 4, 5))", 1, 30, "at most 4 positional"),
    ("y ~ f(a, v = seq(0, 1, length.out = -1))", 1, 37, "length.out must be >= 0"),
    ("y ~ f(a, v = rep())", 1, 14, "rep() needs the value to repeat"),
    ("y ~ f(a, v = rep(1, times = -1))", 1, 29, "whole number >= 0"),
    ("y ~ f(a, v = rep(1, 2.5))", 1, 21, "whole number >= 0"),
    ("y ~ f(a, v = rep(c(1, 2), times = c(1, 2, 3)))", 1, 35, "one count or one per element"),
    ("y ~ f(a, v = rep(1, bad = 2))", 1, 21, "rep() has no argument 'bad'"),
    ("y ~ f(a, v = 1/0)", 1, 14, "infinite"),
    ("y ~ f(a, v = log(-1))", 1, 14, "not a number"),
    ("y ~ f(a, v = c(1, 2, 3) + c(1, 2))", 1, 14, "same length"),
    ("y ~ f(a, v = 'a' + 1)", 1, 14, "needs numbers"),
    ("y ~ f(a, v = -'a')", 1, 15, "needs numbers"),
    ("y ~ f(a, v = c(1, 2):3)", 1, 14, "one number"),
    ("y ~ f(a, v = 1:1e9)", 1, 14, "at most 10,000,000"),
    ("y ~ f(a, v = exp(1, 2))", 1, 14, "takes one argument"),
    ("y ~ f(inla.group(), model = 'rw2')", 1, 7, "inla.group() needs the covariate"),
    ("y ~ I()", 1, 5, "I() takes one expression"),
    ("y ~ I(x, z)", 1, 10, "I() takes one expression"),
    ("y ~ scale()", 1, 5, "scale() takes one variable"),
    ("y ~ I(x, k = 1)", 1, 10, "I() takes one expression"),
    ("y ~ f(inla.group(x, 2, 'cut', TRUE, 5), model = 'rw2')", 1, 37, "inla.group() takes"),
    ("y ~ x^2", 1, 6, "unexpected '^'"),
    ("y ~ x +\n  f(a, hyper = list(prec = list(param = c(1/, 0.01))))", 2, 45, "unexpected ','"),
]


@pytest.mark.parametrize("text,line,column,fragment", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_r_expressions(text, line, column, fragment):
    with pytest.raises(AdeliaError) as info:
        parse_formula(text)
    err = info.value
    assert fragment in err.message, str(err)
    assert (err.line, err.column) == (line, column), str(err)
    rendered = str(err).splitlines()
    assert rendered[0].startswith(f"<formula>:{line}:{column}: error:")
    assert rendered[2].index("^") == column - 1


def test_power_at_term_level_hints_at_i():
    with pytest.raises(FormulaSyntaxError) as info:
        parse_formula("y ~ x^2")
    assert "I(x^2)" in (info.value.hint or "")


COMPILE_ERRORS = [
    ('y ~ f(inla.group(x, n = 0), model = "rw2")', 1, 25, "whole number >= 1"),
    ('y ~ f(inla.group(x, method = "foo"), model = "rw2")', 1, 30, '"cut" or "quantile"'),
    ('y ~ f(inla.group(x, bins = 3), model = "rw2")', 1, 21, "no argument 'bins'"),
    ('y ~ f(inla.group(xx), model = "rw2")', 1, 18, "'xx'"),
    ('y ~ f(g, model = "rw1", values = 1:k)', 1, 36, "'k'"),
    ('y ~ f(g, model = "rw1", values = seq(1, k))', 1, 41, "'k'"),
    ("y ~ I(1:3)", 1, 7, "sequence"),
]


@pytest.mark.parametrize("text,line,column,fragment", COMPILE_ERRORS, ids=[m[0] for m in COMPILE_ERRORS])
def test_compile_errors_are_located(curve, text, line, column, fragment):
    with pytest.raises(AdeliaError) as info:
        adelia.compile_formula(text, curve)
    err = info.value
    assert fragment in err.message, str(err)
    assert (err.line, err.column) == (line, column), str(err)
    assert "^" in str(err)


ADL_ERRORS = [
    ('data d = csv("d.csv")\nformula y ~ x\nfixed(prec = 1/)\n', 3, 16, "unexpected ')'"),
    ('data d = csv("d.csv")\nformula y ~ f(g)\nprior prec(g) = pc.prec(1/0, 0.01)\n', 3, 25, "infinite"),
    ('data d = csv("d.csv")\nformula y ~ x\noptions(quantiles = seq(0.1))\n', 3, 21, "seq() needs where to end"),
    ('data d = csv("d.csv")\nformula y ~ f(g, values = rep())\n', 2, 27, "rep() needs the value"),
]


@pytest.mark.parametrize("text,line,column,fragment", ADL_ERRORS, ids=[t[0].splitlines()[-1] for t in ADL_ERRORS])
def test_adl_malformed_r_expressions(text, line, column, fragment):
    with pytest.raises(AdeliaError) as info:
        parse_model(text)
    err = info.value
    assert fragment in err.message, str(err)
    assert (err.line, err.column) == (line, column), str(err)


def test_adl_folds_inf_in_a_clinear_range(tmp_path, curve):
    curve.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "m.adl").write_text('data d = csv("d.csv")\nformula y ~ 1 + f(x, model = "clinear", range = c(0, Inf))\n')
    mf = parse_model(tmp_path / "m.adl")
    assert mf.formula.latent[0].kwarg("range").value == ir.Vector((ir.Num(0.0), ir.Num(math.inf)))
    prepared = load_model(tmp_path / "m.adl")
    assert prepared is not None
