"""Formula text -> IR, driven by case tables."""

import pytest

from adelia.dsl import ir
from adelia.dsl.parser import parse_formula
from adelia.dsl.printer import print_formula
from adelia.errors import AdeliaError, FormulaSyntaxError, ModelError

N, S, B, V, C, K = ir.Num, ir.Str, ir.Bool, ir.Vector, ir.Call, ir.Keyword


def value(text: str):
    """The IR of ``text`` used as the value of f(a, v = text)."""
    return parse_formula(f"y ~ f(a, v = {text})").latent[0].kwarg("v").value


VALUES = [
    ('"rw2"', S("rw2")),
    ("'iid'", S("iid")),
    ('"a\\"b"', S('a"b')),
    ('"tab\\there"', S("tab\there")),
    ('"\\u00e9t\\u00e9"', S("été")),
    ('"\\ud83d\\ude00"', S("\U0001F600")),
    ('"été"', S("été")),
    ("1", N(1.0)),
    ("0.01", N(0.01)),
    ("1e-5", N(1e-5)),
    ("1E+3", N(1000.0)),
    (".5", N(0.5)),
    ("-1", N(-1.0)),
    ("-1e-5", N(-1e-5)),
    ("- 2.5", N(-2.5)),
    ("TRUE", B(True)),
    ("FALSE", B(False)),
    ("True", B(True)),
    ("False", B(False)),
    ("W", ir.Name("W")),
    ("my.graph", ir.Name("my.graph")),
    ("snake_case", ir.Name("snake_case")),
    ("[1, 2]", V((N(1), N(2)))),
    ("[]", V(())),
    ("[1, 2,]", V((N(1), N(2)))),
    ("c(1, 0.01)", V((N(1), N(0.01)))),
    ("c()", V(())),
    ('c("a", TRUE, x)', V((S("a"), B(True), ir.Name("x")))),
    ("list(a = 1)", C("list", (), (K("a", N(1)),))),
    ("list()", C("list")),
    ("dict(a = 1, b = \"x\")", C("dict", (), (K("a", N(1)), K("b", S("x"))))),
    ('{"k": 1, "j": [1]}', C("dict", (), (K("k", N(1)), K("j", V((N(1),))))),),
    ("{}", C("dict")),
    ("pc.prec(1, 0.01)", C("pc.prec", (N(1), N(0.01)))),
    ("pc_prec(u = 1, alpha = 0.01)", C("pc_prec", (), (K("u", N(1)), K("alpha", N(0.01))))),
    ('list("odd key" = 1)', C("list", (), (K("odd key", N(1)),))),
    ("list(prec = list(prior = \"pc.prec\", param = c(1, 0.01)))",
     C("list", (), (K("prec", C("list", (), (K("prior", S("pc.prec")), K("param", V((N(1), N(0.01))))))),))),
]


@pytest.mark.parametrize("text,expected", VALUES, ids=[v[0] for v in VALUES])
def test_values(text, expected):
    assert value(text) == expected


def test_rinla_term_copied_from_r_parses_unchanged():
    text = ('y ~ f(idx, model = "rw2", hyper = list(prec = list(prior = "pc.prec", param = c(1, 0.01))), '
            'scale.model = TRUE, constr = TRUE)')
    term = parse_formula(text).latent[0]
    assert term.index == ir.Name("idx")
    assert term.kwarg("model").value == S("rw2")
    assert term.kwarg("scale.model").value == B(True)
    assert term.kwarg("scale_model").value == B(True)        # snake_case lookup of a dotted name
    assert term.kwarg("constr").value == B(True)
    hyper = term.kwarg("hyper").value
    assert hyper.kwarg("prec").value.kwarg("param").value == V((N(1), N(0.01)))


def test_multiline_formula_with_comments():
    f = parse_formula("y ~ 1 +  # intercept\n  x +\n  f(g, model = 'iid')  # random effect\n")
    assert [t.__class__.__name__ for t in f.terms] == ["FixedTerm", "LatentTerm"]
    assert f.latent[0].span.line == 3


FORMULAS = [
    ("y ~ x", "y ~ 1 + x"),
    ("y ~ 0 + x", "y ~ 0 + x"),
    ("y ~ -1 + x", "y ~ 0 + x"),
    ("y ~ x - 1", "y ~ 0 + x"),
    ("y ~ a*b", "y ~ 1 + a + b + a:b"),
    ("y ~ (a + b):c", "y ~ 1 + a:c + b:c"),
    ("y ~ a*b - a:b", "y ~ 1 + a + b"),
    ("y ~ x + x", "y ~ 1 + x"),
    ("y ~ log(x) + C(g)", "y ~ 1 + log(x) + C(g)"),
    ("y ~ offset(log(E)) + x", "y ~ 1 + offset(log(E)) + x"),
    ("y ~ f(g, w)", "y ~ 1 + f(g, w)"),
    ("~ x", "~ 1 + x"),
    ("cbind(y, n) ~ x", "cbind(y, n) ~ 1 + x"),
    ("y ~ f(g, model = 'iid', scale_model = True)", 'y ~ 1 + f(g, model = "iid", scale_model = TRUE)'),
    ("y ~ data + formula", "y ~ 1 + data + formula"),
]


@pytest.mark.parametrize("text,printed", FORMULAS, ids=[f[0] for f in FORMULAS])
def test_formulas_print_canonically(text, printed):
    f = parse_formula(text)
    assert print_formula(f) == printed
    assert parse_formula(printed) == f


def test_spans_point_at_source():
    text = 'y ~ x + f(region, model = "bym2")'
    f = parse_formula(text)
    term = f.latent[0]
    kw = term.kwarg("model")
    assert text[term.span.start:term.span.end] == 'f(region, model = "bym2")'
    assert text[kw.span.start:kw.span.end] == 'model = "bym2"'
    assert text[kw.value.span.start:kw.value.span.end] == '"bym2"'
    assert (kw.value.span.line, kw.value.span.column) == (1, 27)


ERRORS = [
    ("y ~ f(region model='bym2')", FormulaSyntaxError, r"unexpected name 'model'", (1, 14)),
    ("y ~ x + + z", FormulaSyntaxError, r"unexpected '\+'", (1, 9)),
    ("y ~ x +", FormulaSyntaxError, r"ends too early", (1, 8)),
    ("y ~ f(a, b = 1, b = 2)", ModelError, r"'b' is given twice", (1, 17)),
    ("y ~ f(a, k = 1, w)", ModelError, r"positional argument follows a keyword", (1, 17)),
    ("y ~ f(model = 'iid')", ModelError, r"needs the index variable", (1, 5)),
    ("y ~ 2", ModelError, r"must be 0 or 1", (1, 5)),
    ("y ~ x:1", ModelError, r"intercept flags", (1, 5)),
    ("y ~ f(a):x", ModelError, r"cannot involve f\(\)", (1, 5)),
    ("y ~ TRUE", ModelError, r"'TRUE' is a boolean", (1, 5)),
    ('y ~ f(a, v = "\\q")', FormulaSyntaxError, r"unknown escape", (1, 15)),
    ("   ", FormulaSyntaxError, r"the formula is empty", (1, 1)),
]


@pytest.mark.parametrize("text,cls,match,pos", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(text, cls, match, pos):
    with pytest.raises(cls, match=match) as info:
        parse_formula(text)
    assert (info.value.line, info.value.column) == pos


def test_error_rendering_has_caret_and_words():
    with pytest.raises(FormulaSyntaxError) as info:
        parse_formula('y ~ f(region model="bym2")', filename="model.adl")
    text = str(info.value)
    lines = text.splitlines()
    assert lines[0] == "model.adl:1:14: error: unexpected name 'model'"
    assert lines[1] == 'y ~ f(region model="bym2")'
    assert lines[2] == " " * 13 + "^~~~~"
    assert lines[3].startswith("expected one of: ")
    assert "','" in lines[3] and "')'" in lines[3]
    assert "COMMA" not in text and "RPAR" not in text


def test_not_a_string():
    with pytest.raises(AdeliaError, match="must be a string"):
        parse_formula(42)
