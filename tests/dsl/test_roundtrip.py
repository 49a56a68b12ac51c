"""Property tests: parse -> print -> parse is the identity on the IR."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from adelia.dsl import ir
from adelia.dsl.evaluate import CONSTANT_FUNCTIONS, SEQUENCE_FUNCTIONS
from adelia.dsl.adl import model_parser, parse_model
from adelia.dsl.parser import formula_parser, parse_formula
from adelia.errors import AdeliaError
from adelia.dsl.printer import RESERVED, print_expr, print_formula

_first = string.ascii_letters + "_"
_rest = string.ascii_letters + string.digits + "_."
# T/F read as booleans where a value is named; folded functions (exp, seq, ...) would be
# evaluated on constant arguments: neither can round-trip as a generated name.
_NOT_NAMES = {"f", "offset", "c", "T", "F", *CONSTANT_FUNCTIONS, *SEQUENCE_FUNCTIONS}
names = st.builds(lambda a, b: a + b, st.sampled_from(_first), st.text(_rest, max_size=6)).filter(
    lambda s: s not in RESERVED and s not in _NOT_NAMES)
columns = st.sampled_from(["x", "z", "w1", "age", "x.1", "log_e", "region"])
numbers = st.one_of(st.integers(-10**6, 10**6).map(float),
                    st.floats(allow_nan=False, allow_infinity=False, width=64))
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


def _constant(e) -> bool:
    """What the parser folds: literals and flat vectors of literals."""
    return isinstance(e, (ir.Num, ir.Bool, ir.Str)) or (
        isinstance(e, ir.Vector) and all(isinstance(i, (ir.Num, ir.Bool, ir.Str)) for i in e.items))


def _values(children):
    kw = st.builds(ir.Keyword, st.one_of(names, texts.filter(bool)), children)
    unique_kws = st.lists(kw, max_size=3, unique_by=lambda k: k.name).map(tuple)
    group = st.builds(ir.Call, st.sampled_from(["list", "dict"]), st.just(()), unique_kws)
    # arithmetic that stays symbolic: at least one operand is not a constant (else it is folded)
    binop = st.builds(ir.BinOp, st.sampled_from(ir.BINARY_OPS), children, children).filter(
        lambda b: not (_constant(b.left) and _constant(b.right)) and not _is_group(b.left) and not _is_group(b.right))
    neg = st.builds(ir.Neg, children).filter(lambda n: not _constant(n.operand) and not _is_group(n.operand))
    return st.one_of(
        st.builds(ir.Vector, st.lists(children, max_size=3).map(tuple)),
        group,
        st.builds(ir.Call, names, st.lists(children, max_size=3).map(tuple), unique_kws),
        binop, neg,
    )


def _is_group(e) -> bool:
    return isinstance(e, ir.Call) and e.func in ("list", "dict")


exprs = st.recursive(
    st.one_of(st.builds(ir.Str, texts), st.builds(ir.Num, numbers), st.builds(ir.Bool, st.booleans()),
              st.builds(ir.Name, names)),
    _values, max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exprs)
def test_expression_roundtrip(e):
    """Any argument value prints to text that parses back to the same IR."""
    text = f"y ~ f(a, v = {print_expr(e)})"
    assert parse_formula(text).latent[0].kwarg("v").value == e


# ---- whole formulas generated as text from the grammar's shapes ----

def _atoms():
    call = st.builds(lambda fn, c: f"{fn}({c})", st.sampled_from(["log", "C", "sqrt", "I", "scale"]), columns)
    arith = st.builds(lambda c, e: f"I({c}{e})", columns,
                      st.sampled_from(["/10", " ^ 2", "**2", " * 2 - 1", " + exp(1)", "/(1 + z)", ""]))
    return st.one_of(columns, call, arith, st.just("I(-x^2)"))


def _f_terms():
    kw = st.sampled_from(['model = "iid"', 'model = "rw2", scale.model = TRUE', "constr = FALSE",
                          'hyper = list(prec = list(prior = "pc.prec", param = c(1, 0.01)))',
                          "values = [1, 2, 3]", "graph = W", "cyclic = True", "n = 12", "initial = -4.5e-1",
                          '"odd name" = 1', "extra = {\"a\": [1, -2]}",
                          'hyper = list(prec = list(prior = "pc.prec", param = c(1/0.31, 0.01)))',
                          "values = 1:50", "values = seq(1, 50, by = 2)", "w = rep(1, 10)", "constr = T",
                          "initial = -log(2)^2", "k = 10^-3", "s = seq(0, 1, length.out = 5) * k",
                          "v = rep(c(1, 2), each = 2, times = 2)", "d = -x + 2/3"])
    return st.builds(lambda idx, w, kws: "f(" + ", ".join([idx] + ([w] if w else []) + kws) + ")",
                     st.sampled_from(["g", "region", "time", "id.x", "inla.group(x, n = 20)",
                                      'inla.group(x, method = "quantile")']), st.sampled_from([None, "w", "z"]),
                     st.lists(kw, max_size=3, unique_by=lambda s: s.split("=")[0].strip()))


def _sums(depth=2):
    atom = st.one_of(_atoms(), _f_terms().map(lambda s: s), st.sampled_from(["1", "0"]))
    fixed_atom = _atoms()
    inter = st.one_of(fixed_atom, st.builds(lambda a, b: f"{a}:{b}", fixed_atom, fixed_atom),
                      st.builds(lambda a, b: f"{a}*{b}", fixed_atom, fixed_atom),
                      st.builds(lambda a, b, c: f"({a} + {b}):{c}", fixed_atom, fixed_atom, fixed_atom))
    term = st.one_of(atom, inter, st.builds(lambda e: f"offset(log({e}))", columns))
    return st.builds(lambda first, rest: first + "".join(rest), term,
                     st.lists(st.builds(lambda op, t: f" {op} {t}", st.sampled_from(["+", "+", "-"]), term),
                              max_size=6))


formulas = st.builds(lambda lhs, rhs: f"{lhs} ~ {rhs}", st.sampled_from(["y", "cbind(y, n)", "log(y)"]), _sums())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas)
def test_formula_roundtrip(text):
    first = parse_formula(text)
    printed = print_formula(first)
    second = parse_formula(printed)
    assert second == first
    assert print_formula(second) == printed     # printing is canonical (a fixed point)


# ---- sentences generated from the grammars themselves (hypothesis.extra.lark) ----

@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))  # generation is the slow part (~0.2 s each)
@given(from_lark(formula_parser()))
def test_grammar_sentences_parse_or_fail_cleanly(text):
    """Any sentence of formula.lark (arithmetic, sequences, calls, terms; tokens may run
    together) either parses, and then round-trips through the printer, or raises an AdeliaError
    with a position -- never a raw lark/Python exception."""
    try:
        first = parse_formula(text)
    except AdeliaError as err:
        assert err.line is not None and err.column is not None
        return
    assert parse_formula(print_formula(first)) == first


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(from_lark(model_parser()))
def test_model_file_sentences_parse_or_fail_cleanly(text):
    try:
        parse_model("# generated\n" + text, validate=False)    # (a one-line text could read as a path)
    except AdeliaError as err:
        assert err.line is not None and err.column is not None
