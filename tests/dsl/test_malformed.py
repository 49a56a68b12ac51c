"""Malformed formulas and model files: every one raises an AdeliaError subclass with the right
line and column -- never a raw lark or Python exception."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adelia.dsl.adl import parse_model
from adelia.dsl.parser import parse_formula
from adelia.errors import AdeliaError, FormulaSyntaxError, ModelError

# (text, line, column) -- hand-written, one per shape of mistake
FORMULAS = [
    ("y ~", 1, 4),
    ("y ~ ", 1, 4),
    ("~", 1, 2),
    ("y", 1, 2),
    ("y x", 1, 3),
    ("y ~ x +", 1, 8),
    ("y ~ x -", 1, 8),
    ("y ~ x *", 1, 8),
    ("y ~ x :", 1, 8),
    ("y ~ + x", 1, 5),
    ("y ~ * x", 1, 5),
    ("y ~ x + + z", 1, 9),
    ("y ~ x ++ z", 1, 8),
    ("y ~ x z", 1, 7),
    ("y ~ x ~ z", 1, 7),
    ("y ~ (x", 1, 7),
    ("y ~ x)", 1, 6),
    ("y ~ ()", 1, 6),
    ("y ~ (x + )", 1, 10),
    ("y ~ f(", 1, 7),
    ("y ~ f(a", 1, 8),
    ("y ~ f(a,", 1, 9),
    ("y ~ f(a b)", 1, 9),
    ("y ~ f(a,, b)", 1, 9),
    ("y ~ f(, a)", 1, 7),
    ("y ~ f(a, model =)", 1, 17),
    ("y ~ f(a, model = )", 1, 18),
    ("y ~ f(a, = 1)", 1, 10),
    ("y ~ f(a, model == 'iid')", 1, 17),
    ("y ~ f(a, model = 'iid'", 1, 23),
    ("y ~ f(a, model = 'iid)", 1, 18),
    ('y ~ f(a, model = "iid)', 1, 18),
    ("y ~ f(a, hyper = list(prec = list(prior = 'pc.prec', param = c(1, 0.01)))", 1, 74),
    ("y ~ f(a, hyper = list(prec = list(prior = 'pc.prec', param = c(1 0.01))))", 1, 66),
    ("y ~ f(a, x = [1, 2)", 1, 19),
    ("y ~ f(a, x = [1, 2", 1, 19),
    ("y ~ f(a, x = {1: 2})", 1, 15),
    ("y ~ f(a, x = {'k' 2})", 1, 19),
    ("y ~ f(a, x = {'k': })", 1, 20),
    ("y ~ f(a, x = 1.2.3)", 1, 17),
    ("y ~ f(a, x = 1e)", 1, 15),
    ("y ~ f(a, x = $)", 1, 14),
    ("y ~ f(a, x = @w)", 1, 14),
    ("y ~ f(a, x = `w`)", 1, 14),
    ("y ~ f(a, x = 'a\\q')", 1, 16),
    ("y ~ f(a, x = '\\u12')", 1, 15),
    ("y ~ f(a, x = '\\x4')", 1, 15),
    ("y ~ f(a, x = 'trailing\\", 1, 14),
    ("y ~ x^2", 1, 6),
    ("y ~ x**2", 1, 6),
    ("y ~ x / z", 1, 7),
    ("y ~ x | g", 1, 7),
    ("y ~ .", 1, 5),
    ("y ~ 1x", 1, 6),
    ("y ~ 2", 1, 5),
    ("y ~ 0.5", 1, 5),
    ("y ~ 1e3", 1, 5),
    ("y ~ -x", 1, 5),
    ("y ~ - f(a)", 1, 5),
    ("y ~ -1 - -1", 1, 10),
    ("y ~ x:1", 1, 5),
    ("y ~ x:f(a)", 1, 7),
    ("y ~ f(a)*x", 1, 5),
    ("y ~ offset(log(E)):x", 1, 5),
    ("y ~ offset()", 1, 5),
    ("y ~ offset(a, b)", 1, 5),
    ("y ~ f()", 1, 5),
    ("y ~ f(model = 'iid')", 1, 5),
    ("y ~ f(a, w, v)", 1, 13),
    ("y ~ f(a, k = 1, w)", 1, 17),
    ("y ~ f(a, k = 1, k = 2)", 1, 17),
    ("y ~ f(a, x = [1, k = 2])", 1, 18),
    ("y ~ f(a, x = {'k': 1, 'k': 2})", 1, 23),
    ("y ~ f(a, x = list(k = 1, k = 2))", 1, 26),
    ("y ~ TRUE", 1, 5),
    ("y ~ f(a, False = 1)", 1, 16),
    ("y ~ x\n  + \n", 2, 4),
    ("y ~ x +\n  f(a b)", 2, 7),
    ("y ~ x +\n\n  $", 3, 3),
    ("y ~ x + # comment\n", 1, 8),
    ("\n\ny ~ x )", 3, 7),
    ("   ", 1, 1),
    ("", 1, 1),
    ("y ~ f(a, x = 'ok') + f(b, x = \"unterminated)\n", 1, 31),
    ("y ~ " + "g(" * 120 + "x" + ")" * 120, 1, 206),
    ("y ~ " + "(" * 120 + "x" + ")" * 120, 1, 105),
    ("y ~ f(a, v = " + "[" * 150 + "]" * 150 + ")", 1, 113),
    ("y ~ x\x00", 1, 6),
    ("y ~ x\u00a0+ z", 1, 6),
    ("y ~ x + é", 1, 9),
]


@pytest.mark.parametrize("text,line,column", FORMULAS, ids=[repr(f[0])[:40] for f in FORMULAS])
def test_malformed_formula(text, line, column):
    with pytest.raises(AdeliaError) as info:
        parse_formula(text)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    rendered = str(err)
    assert rendered.startswith(f"<formula>:{line}:{column}: error: ")
    assert "^" in rendered
    for raw in ("COMMA", "RPAR", "LPAR", "$END", "__ANON", "formula__"):
        assert raw not in rendered


# ---- generated: a valid formula with one bad character inserted at a known place ----

VALID = [
    "y ~ 1 + x + f(g, model = iid, n = 10)",
    "y ~ a*b + log(z) + f(region, w, graph = W, scale.model = TRUE)",
    "y ~ 0 + x:z + offset(log(E)) + f(t, model = rw2, values = c(1, 2, 3))",
    "cbind(y, n) ~ x + f(i, hyper = list(prec = list(param = c(1, 0.01))))",
]
_rng = random.Random(5)
INSERTED = []
for base in VALID:
    for pos in sorted(_rng.sample(range(len(base) + 1), 8)):
        bad = _rng.choice("@$`?!&|;£%")
        INSERTED.append((base[:pos] + bad + base[pos:], pos))


@pytest.mark.parametrize("text,pos", INSERTED, ids=[t for t, _ in INSERTED])
def test_inserted_bad_character(text, pos):
    with pytest.raises(FormulaSyntaxError, match="unexpected character") as info:
        parse_formula(text)
    assert (info.value.line, info.value.column) == (1, pos + 1)


TRUNCATED = []
for base in VALID:
    for cut in (base.index("~") + 1, base.index("(") + 1, base.rindex(",") + 1, base.rindex("=") + 1,
                base.index("+") + 1):
        TRUNCATED.append(base[:cut])


@pytest.mark.parametrize("text", TRUNCATED)
def test_truncated(text):
    with pytest.raises(FormulaSyntaxError, match="ends too early") as info:
        parse_formula(text)
    end = len(text.rstrip())
    assert (info.value.line, info.value.column) == (1, end + 1)


DOUBLED = [(b[:b.index(",") + 1] + "," + b[b.index(",") + 1:], b.index(",") + 2) for b in VALID]


@pytest.mark.parametrize("text,col", DOUBLED)
def test_doubled_comma(text, col):
    with pytest.raises(FormulaSyntaxError) as info:
        parse_formula(text)
    assert (info.value.line, info.value.column) == (1, col)


# ---- fuzz: random text never leaks a raw exception ----

_alphabet = st.sampled_from(list("yxfg~+-*:()[]{},=\"'\\.0123456789 \n#$") + ["f(", "TRUE", "c(", "list(",
                                                                            "model", "1e-5", "-1"])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_alphabet, max_size=30).map("".join))
def test_fuzz_formula_never_raw(text):
    try:
        parse_formula(text)
    except AdeliaError as err:
        assert err.line is not None and err.column is not None, str(err)
        lines = text.split("\n")
        assert 1 <= err.line <= len(lines) + 1
        assert 1 <= err.column <= len(lines[err.line - 1]) + 2 if err.line <= len(lines) else True


# ---- model files ----

MODELS = [
    ("formula y ~ x\nbogus", 2, 1),
    ("formula y ~ x +\n", 1, 16),
    ("data = csv('a.csv')\n", 1, 20),
    ("data d = csv('a.csv'\nformula y ~ x", 2, 1),
    ("data d csv('a.csv')\nformula y ~ x", 1, 8),
    ("data d = tsv('a.csv')\nformula y ~ x", 1, 1),
    ("data d = csv(a.csv)\nformula y ~ x", 1, 14),
    ("data d = csv()\nformula y ~ x", 1, 1),
    ("data d = csv('a.csv', sepp = ';')\nformula y ~ x", 1, 23),
    ("formula y ~ x\nformula y ~ z", 2, 9),
    ("family poisson\nfamily gaussian\nformula y ~ x", 2, 1),
    ("family poisson(E = list(a = 1))\nformula y ~ x", 1, 20),
    ("family poisson(EE = e)\nformula y ~ x", 1, 16),
    ("family poisson(e)\nformula y ~ x", 1, 16),
    ("family\nformula y ~ x", 2, 9),     # 'formula' is read as the family's name
    ("graph g = bogus('x')\nformula y ~ x", 1, 1),
    ("graph seed = 'x.graph'\nformula y ~ x", 1, 7),
    ("graph g = 'a'\ngraph g = 'b'\nformula y ~ x", 2, 7),
    ("graph g\nformula y ~ x", 2, 1),
    ("formula y ~ x\nprior prec x = pc.prec(1, 0.01)", 2, 12),
    ("formula y ~ x\nprior prec(x) = 1", 2, 17),
    ("formula y ~ x\nprior prec(x) pc.prec(1, 0.01)", 2, 15),
    ("formula y ~ x\nprior prec(g) = pc.prec(1)\nprior prec(g) = pc.prec(2)", 3, 1),
    ("formula y ~ x\noptions(n_samples = -1)", 2, 21),
    ("formula y ~ x\noptions(n_samples = 1.5)", 2, 21),
    ("formula y ~ x\noptions(int_strategy = 'foo')", 2, 24),
    ("formula y ~ x\noptions(bogus = 1)", 2, 9),
    ("formula y ~ x\noptions(seed = 1, seed = 2)", 2, 19),
    ("formula y ~ x\noptions(quantiles = c(0.5, 2))", 2, 21),
    ("formula y ~ x\noptions(dz = 0)", 2, 14),
    ("formula y ~ x\noptions(1)", 2, 9),
    ("formula y ~ x\nfixed(prec = 'a')", 2, 14),
    ("formula y ~ x\nfixed(precc = 1)", 2, 7),
    ("formula y ~ x\noptions(n_samples = 10", 2, 23),
    ("# only a comment\n", 1, 17),
    ("data d = csv('a.csv')", 1, 22),
    ("formula y ~ f(a, model = 'iid'\n", 1, 31),
    ("formula y ~ x\n  $\n", 2, 3),
    ("formula y ~ x\n\nformula = y", 3, 9),
    ("options(seed = 1) formula ~", 1, 28),
]


@pytest.mark.parametrize("text,line,column", MODELS, ids=[repr(m[0])[:40] for m in MODELS])
def test_malformed_model_file(text, line, column):
    with pytest.raises(AdeliaError) as info:
        parse_model(text, filename="m.adl")
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert str(err).startswith(f"m.adl:{line}:{column}: error: ")
    assert isinstance(err, (FormulaSyntaxError, ModelError))


def test_count():
    total = len(FORMULAS) + len(INSERTED) + len(TRUNCATED) + len(DOUBLED) + len(MODELS)
    assert total >= 100
