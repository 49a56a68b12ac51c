"""Formula text -> IR.

The grammar (``grammars/formula.lark``, shipped as ``adelia.grammars``) is the single source of
syntax; the Transformer below only builds IR nodes (one method per grammar alias) and expands
Wilkinson-Rogers algebra (``a*b``, ``(a+b):c``, ``- x``, intercept flags). Meaning is checked
later, in the compiler.
"""

from __future__ import annotations

__all__ = ["parse_formula", "formula_parser"]

from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from adelia.dsl import ir
from adelia.errors import AdeliaError, FormulaSyntaxError, ModelError, Span

#: Terminal names -> words users read in "expected one of" lists.
_TERMINAL_WORDS = {
    "COMMA": "','", "RPAR": "')'", "LPAR": "'('", "RSQB": "']'", "LSQB": "'['",
    "LBRACE": "'{'", "RBRACE": "'}'", "EQUAL": "'='", "COLON": "':'", "PLUS": "'+'",
    "MINUS": "'-'", "STAR": "'*'", "TILDE": "'~'", "NAME": "a name", "NUMBER": "a number",
    "SIGNED_NUMBER": "a number", "STRING": "a string", "TRUE": "TRUE", "FALSE": "FALSE",
}
#: Token kinds in "unexpected ..." messages.
_TOKEN_KINDS = {"NAME": "name", "NUMBER": "number", "SIGNED_NUMBER": "number", "STRING": "string",
    "$END": "end of formula",
}


@lru_cache(maxsize=None)
def formula_parser() -> Lark:
    """The LALR parser, built once from the packaged grammar."""
    return Lark.open_from_package(
        "adelia.grammars", "formula.lark", ("",), parser="lalr",
        propagate_positions=True, maybe_placeholders=False,
    )


def _span_of(meta_or_token) -> Span | None:
    if isinstance(meta_or_token, Token):
        return Span(meta_or_token.line, meta_or_token.column, meta_or_token.start_pos, meta_or_token.end_pos)
    if getattr(meta_or_token, "empty", True):
        return None
    m = meta_or_token
    return Span(m.line, m.column, m.start_pos, m.end_pos)


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return body.encode("utf-8").decode("unicode_escape") if "\\" in body else body


# An intermediate "sum" is a list of terms plus an intercept instruction (None: unchanged).
class _Sum:
    __slots__ = ("terms", "intercept", "removed", "removed_intercept")

    def __init__(self, terms=(), intercept=None):
        self.terms: list[ir.Term] = list(terms)
        self.intercept: bool | None = intercept


def _as_sum(x) -> _Sum:
    return x if isinstance(x, _Sum) else _Sum([x])


def _dedupe(terms: list[ir.Term]) -> list[ir.Term]:
    out: list[ir.Term] = []
    for t in terms:
        if t not in out:
            out.append(t)
    return out


@v_args(meta=True)
class _ToIR(Transformer):
    def __init__(self, source: str, filename: str):
        super().__init__()
        self.source = source
        self.filename = filename

    # ---- values ----
    def string(self, meta, c):
        return ir.Str(_unquote(c[0]), _span_of(c[0]))

    def number(self, meta, c):
        return ir.Num(float(c[0]), _span_of(c[0]))

    def true(self, meta, c):
        return ir.Bool(True, _span_of(c[0]))

    def false(self, meta, c):
        return ir.Bool(False, _span_of(c[0]))

    def name(self, meta, c):
        return ir.Name(str(c[0]), _span_of(c[0]))

    def name_value(self, meta, c):
        return c[0]

    def positional(self, meta, c):
        return c[0]

    def keyword(self, meta, c):
        key, value = c
        name = key.id if isinstance(key, ir.Name) else _unquote(key)
        return ir.Keyword(name, value, _span_of(meta))

    def arglist(self, meta, c):
        return list(c)

    def dictitem(self, meta, c):
        return ir.Keyword(_unquote(c[0]), c[1], _span_of(meta))

    def dictitems(self, meta, c):
        return list(c)

    def vector(self, meta, c):
        items = c[0] if c else []
        for i in items:
            if isinstance(i, ir.Keyword):
                raise ModelError("a vector [...] holds values, not 'name = value' pairs",
                                 source=self.source, span=i.span, hint="use list(...) or {...} for named values")
        return ir.Vector(tuple(items), _span_of(meta))

    def dict_group(self, meta, c):
        return ir.Call("dict", (), tuple(c[0] if c else ()), _span_of(meta))

    def call(self, meta, c):
        func = c[0]
        items = c[1] if len(c) > 1 else []
        args = tuple(i for i in items if not isinstance(i, ir.Keyword))
        kwargs = tuple(i for i in items if isinstance(i, ir.Keyword))
        span = _span_of(meta)
        seen_kw = False
        for i in items:
            if isinstance(i, ir.Keyword):
                if any(k.name == i.name for k in kwargs[: kwargs.index(i)]):
                    raise ModelError(f"argument '{i.name}' is given twice", source=self.source, span=i.span)
                seen_kw = True
            elif seen_kw:
                raise ModelError("a positional argument follows a keyword argument",
                                 source=self.source, span=i.span,
                                 hint="put positional arguments (index, weights) first")
        if func.id == "c" and not kwargs:
            return ir.Vector(args, span)
        return ir.Call(func.id, args, kwargs, span)

    # ---- terms ----
    def _term_of(self, x) -> ir.Term:
        """An rhs atom (expression) as a term."""
        if isinstance(x, ir.Call) and x.func == "f":
            if not x.args:
                raise ModelError("f() needs the index variable as its first argument",
                                 source=self.source, span=x.span, hint="write f(region, model = \"iid\")")
            if len(x.args) > 2:
                raise ModelError("f() takes at most two positional arguments (index, weights)",
                                 source=self.source, span=x.args[2].span)
            return ir.LatentTerm(x.args[0], x.args[1] if len(x.args) > 1 else None, x.kwargs, x.span)
        if isinstance(x, ir.Call) and x.func == "offset":
            if len(x.args) != 1 or x.kwargs:
                raise ModelError("offset() takes exactly one expression", source=self.source, span=x.span)
            return ir.OffsetTerm(x.args[0], x.span)
        return ir.FixedTerm((x,), x.span)

    def variable(self, meta, c):
        return ir.FixedTerm((c[0],), c[0].span)

    def intercept_flag(self, meta, c):
        value = float(c[0])
        if value not in (0.0, 1.0):
            raise ModelError(f"a number in a formula must be 0 or 1 (the intercept), not {c[0]}",
                             source=self.source, span=_span_of(c[0]),
                             hint="use I(...) or a data column for constants")
        return _Sum([], intercept=value == 1.0)

    def _sum(self, x) -> _Sum:
        if isinstance(x, ir.Call):
            x = self._term_of(x)
        return _as_sum(x)

    def add(self, meta, c):
        left, right = self._sum(c[0]), self._sum(c[1])
        out = _Sum(left.terms + right.terms, left.intercept)
        if right.intercept is not None:
            out.intercept = right.intercept
        return out

    def remove(self, meta, c):
        left, right = self._sum(c[0]), self._sum(c[1])
        out = _Sum([t for t in left.terms if t not in right.terms], left.intercept)
        if right.intercept is True:
            out.intercept = False
        elif right.intercept is False:  # "- 0" adds the intercept back, as in R
            out.intercept = True
        return out

    def remove_leading(self, meta, c):
        right = self._sum(c[0])
        if right.terms:
            raise ModelError("a formula cannot start by removing a term", source=self.source,
                             span=_span_of(meta), hint="only '-1' (no intercept) may lead the right-hand side")
        return _Sum([], intercept=False if right.intercept else True)

    def _fixed_only(self, s: _Sum, what: str) -> list[ir.FixedTerm]:
        for t in s.terms:
            if not isinstance(t, ir.FixedTerm):
                raise ModelError(f"{what} cannot involve f() or offset() terms", source=self.source, span=t.span,
                                 hint="interact covariates only; use f(index, weights) for varying coefficients")
        if s.intercept is not None:
            raise ModelError(f"{what} cannot involve the intercept flags 0/1", source=self.source)
        return s.terms  # type: ignore[return-value]

    def interact(self, meta, c):
        left = self._fixed_only(self._sum(c[0]), "an interaction ':'")
        right = self._fixed_only(self._sum(c[1]), "an interaction ':'")
        terms = []
        for a in left:
            for b in right:
                factors = a.factors + tuple(f for f in b.factors if f not in a.factors)
                terms.append(ir.FixedTerm(factors, _span_of(meta)))
        return _Sum(_dedupe(terms))

    def cross(self, meta, c):
        a, b = self._sum(c[0]), self._sum(c[1])
        inter = self.interact(meta, [a, b])
        return _Sum(_dedupe(a.terms + b.terms + inter.terms))

    def formula(self, meta, c):
        response, rhs = c
        return self._finish(response, rhs, meta)

    def formula_noresponse(self, meta, c):
        return self._finish(None, c[0], meta)

    def response(self, meta, c):
        return c[0]

    def _finish(self, response, rhs, meta):
        s = self._sum(rhs)
        intercept = True if s.intercept is None else s.intercept
        return ir.Formula(response, tuple(_dedupe(s.terms)), intercept, self.source, _span_of(meta))


def _expected_words(expected) -> tuple[str, ...]:
    words = sorted({_TERMINAL_WORDS.get(t, t.lower()) for t in expected if not t.startswith("__")})
    return tuple(words)


def _syntax_error(text: str, err: UnexpectedInput, filename: str) -> FormulaSyntaxError:
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        stripped = text.rstrip()
        pos = len(stripped)
        line = stripped.count("\n") + 1
        col = pos - (stripped.rfind("\n") + 1) + 1
        span = Span(line, col, pos, pos + 1)
        expected = _expected_words(getattr(err, "expected", ()) or ())
        return FormulaSyntaxError("the formula ends too early", source=text, span=span, filename=filename,
                                  expected=expected, hint=_hint_for(text, None))
    if isinstance(err, UnexpectedCharacters):
        span = Span(err.line, err.column, err.pos_in_stream, err.pos_in_stream + 1)
        ch = text[err.pos_in_stream]
        return FormulaSyntaxError(f"unexpected character {ch!r}", source=text, span=span, filename=filename,
                                  expected=_expected_words(err.allowed or ()), hint=_hint_for(text, ch))
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    span = Span(tok.line, tok.column, tok.start_pos, tok.end_pos)
    kind = _TOKEN_KINDS.get(tok.type)
    what = f"{kind} '{tok}'" if kind else f"'{tok}'"
    return FormulaSyntaxError(f"unexpected {what}", source=text, span=span, filename=filename,
                              expected=_expected_words(err.accepts or err.expected), hint=_hint_for(text, str(tok)))


def _hint_for(text: str, token: str | None) -> str | None:
    if "~" not in text:
        return "a formula reads 'response ~ terms', e.g. 'y ~ x + f(region, model = \"iid\")'"
    if text.count("(") != text.count(")"):
        return "check that every '(' has a matching ')'"
    if token == "=":
        return "'=' only names an argument inside f(...) or a call"
    return None


def parse_formula(text: str, *, filename: str = "<formula>") -> ir.Formula:
    """Parse an R-INLA-style formula into the IR.

    Raises :class:`~adelia.errors.FormulaSyntaxError` (or another :class:`AdeliaError`) with
    ``line``/``column`` set and a caret under the offending token.
    """
    if not isinstance(text, str):
        raise AdeliaError(f"a formula must be a string, not {type(text).__name__}")
    if not text.strip():
        raise FormulaSyntaxError("the formula is empty", source=text, filename=filename,
                                 hint="a formula reads 'response ~ terms'")
    try:
        tree = formula_parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(text, err, filename) from None
    try:
        return _ToIR(text, filename).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, AdeliaError):
            e = err.orig_exc
            raise type(e)(e.message, source=text, span=e.span, filename=filename,
                          expected=e.expected, hint=e.hint) from None
        raise
