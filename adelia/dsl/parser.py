"""Formula text -> IR.

The grammar (``grammars/formula.lark``, shipped as ``adelia.grammars``) is the single source of
syntax; the Transformer below only builds IR nodes (one method per grammar alias) and expands
Wilkinson-Rogers algebra (``a*b``, ``(a+b):c``, ``- x``, intercept flags). The arguments of
``f()`` and ``offset()`` are constant-folded as R would evaluate them before ``inla()`` sees them
(``c(1/0.31, 0.01)``, ``1:50``, ``seq(...)``: :mod:`adelia.dsl.evaluate`); fixed-effect terms
such as ``I(x/10)`` keep their expression, which names the column. Meaning (models, columns,
priors) is checked later, in the compiler.
"""

from __future__ import annotations

__all__ = ["parse_formula", "formula_parser", "MAX_NESTING"]

import re
from functools import lru_cache

from adelia.dsl.grammar_files import open_grammar
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from adelia.dsl import ir
from adelia.dsl.evaluate import fold, fold_call_args
from adelia.errors import AdeliaError, FormulaSyntaxError, ModelError, Span

#: Terminal names -> words users read in "expected one of" lists.
_TERMINAL_WORDS = {
    "COMMA": "','", "RPAR": "')'", "LPAR": "'('", "RSQB": "']'", "LSQB": "'['",
    "LBRACE": "'{'", "RBRACE": "'}'", "EQUAL": "'='", "COLON": "':'", "PLUS": "'+'",
    "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "POW": "'^'", "TILDE": "'~'", "NAME": "a name", "NUMBER": "a number",
    "SIGNED_NUMBER": "a number", "STRING": "a string", "TRUE": "TRUE", "FALSE": "FALSE",
}
_RESERVED = frozenset({"TRUE", "FALSE", "True", "False"})
#: Token kinds in "unexpected ..." messages.
_TOKEN_KINDS = {"NAME": "name", "NUMBER": "number", "SIGNED_NUMBER": "number", "STRING": "string",
                "TRUE": "boolean", "FALSE": "boolean"}


@lru_cache(maxsize=None)
def formula_parser() -> Lark:
    """The LALR parser, built once from the packaged grammar."""
    return open_grammar("formula.lark")


def _span_of(meta_or_token) -> Span | None:
    if isinstance(meta_or_token, Token):
        return Span(meta_or_token.line, meta_or_token.column, meta_or_token.start_pos, meta_or_token.end_pos)
    if getattr(meta_or_token, "empty", True):
        return None
    m = meta_or_token
    return Span(m.line, m.column, m.start_pos, m.end_pos)


_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0", "a": "\a",
                   "v": "\v", "\\": "\\", '"': '"', "'": "'", "/": "/", "`": "`"}


class _BadEscape(ValueError):
    def __init__(self, offset: int, width: int, text: str):
        super().__init__(text)
        self.offset, self.width, self.text = offset, width, text


def _unquote(tok: str) -> str:
    """The value of a quoted string token. Escapes as in R and JSON: \\n \\t \\" \\\\ \\uXXXX
    (UTF-16 surrogate pairs combine), \\xXX, \\U{XXXXXX}; anything else raises :class:`_BadEscape`
    with the offset of the backslash inside ``tok``."""
    body = tok[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            raise _BadEscape(i + 1, 1, "a string cannot end with a lone backslash")
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
            continue
        m = (re.match(r"u([0-9A-Fa-f]{4})", body[i + 1:]) or re.match(r"x([0-9A-Fa-f]{2})", body[i + 1:])
             or re.match(r"[uU]\{([0-9A-Fa-f]{1,6})\}", body[i + 1:]))
        if m is None and e in "uUx":
            need = "2 hex digits" if e == "x" else "4 hex digits or {hex}"
            raise _BadEscape(i + 1, 2, f"'\\{e}' in a string must be followed by {need}")
        if m is None:
            raise _BadEscape(i + 1, 2, f"unknown escape sequence '\\{e}' in a string")
        code = int(m.group(1), 16)
        if code > 0x10FFFF:
            raise _BadEscape(i + 1, 1 + m.end(), f"'\\{m.group(0)}' is not a Unicode character")
        out.append(chr(code))
        i += 1 + m.end()
    text = "".join(out)
    try:  # combine UTF-16 surrogate pairs written as two \\u escapes (JSON style)
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise _BadEscape(0, len(tok), "a string holds an unpaired UTF-16 surrogate escape") from None


#: R's T and F: booleans where a value is named (key = T, c(T, F), {"k": F}); elsewhere they stay
#: names, so data columns called T or F still work in terms and f() indices.
_R_BOOLEANS = {"T": True, "F": False}


def _r_boolean(e):
    if isinstance(e, ir.Name) and e.id in _R_BOOLEANS:
        return ir.Bool(_R_BOOLEANS[e.id], e.span)
    return e


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
    def _err(self, cls, message, span, **kw):
        return cls(message, source=self.source, filename=self.filename, span=span, **kw)

    def string(self, meta, c):
        return ir.Str(self._unquote_token(c[0]), _span_of(c[0]))

    def _unquote_token(self, tok: Token) -> str:
        try:
            return _unquote(str(tok))
        except _BadEscape as err:
            start = tok.start_pos + err.offset
            span = Span(tok.line, tok.column + err.offset, start, start + err.width)
            raise self._err(FormulaSyntaxError, err.text, span,
                            hint="write a backslash as '\\\\'; known escapes: \\n \\t \\\" \\' \\\\ \\uXXXX") from None

    def number(self, meta, c):
        return ir.Num(float(c[0]), _span_of(c[0]))

    # ---- arithmetic (folded to constants where a value is needed: adelia.dsl.evaluate) ----
    def _binop(self, op, meta, c):
        left, right = c[0], c[-1]
        for side in (left, right):
            if isinstance(side, ir.Call) and side.func in ("list", "dict"):
                raise self._err(ModelError, f"'{op}' cannot take a list(...) of named values", side.span,
                                hint="arithmetic works on numbers, names and c(...) vectors")
        return ir.BinOp(op, left, right, _span_of(meta))

    def plus(self, meta, c):
        return self._binop("+", meta, c)

    def minus(self, meta, c):
        return self._binop("-", meta, c)

    def times(self, meta, c):
        return self._binop("*", meta, c)

    def divide(self, meta, c):
        return self._binop("/", meta, c)

    def colon(self, meta, c):
        return self._binop(":", meta, c)

    def power(self, meta, c):
        return self._binop("^", meta, c)

    def neg(self, meta, c):
        x = c[0]
        if isinstance(x, ir.Num):          # "-2" is the number -2 (as before arithmetic existed)
            return ir.Num(-x.value, _span_of(meta))
        return ir.Neg(x, _span_of(meta))

    def pos(self, meta, c):
        return c[0]

    def true(self, meta, c):
        return ir.Bool(True, _span_of(c[0]))

    def false(self, meta, c):
        return ir.Bool(False, _span_of(c[0]))

    def name(self, meta, c):
        if str(c[0]) in _RESERVED:
            raise self._err(ModelError, f"'{c[0]}' is a boolean, not a name", _span_of(c[0]),
                            hint="rename the column, e.g. in the data frame")
        return ir.Name(str(c[0]), _span_of(c[0]))

    def name_value(self, meta, c):
        return c[0]

    def positional(self, meta, c):
        return c[0]

    def keyword(self, meta, c):
        key, value = c
        name = key.id if isinstance(key, ir.Name) else self._unquote_token(key)
        return ir.Keyword(name, _r_boolean(value), _span_of(meta))

    def arglist(self, meta, c):
        return list(c)

    def dictitem(self, meta, c):
        return ir.Keyword(self._unquote_token(c[0]), _r_boolean(c[1]), _span_of(meta))

    def dictitems(self, meta, c):
        self._check_unique(c)
        return list(c)

    def _check_unique(self, kwargs) -> None:
        seen: set[str] = set()
        for k in kwargs:
            if isinstance(k, ir.Keyword):
                if k.name in seen:
                    raise self._err(ModelError, f"argument '{k.name}' is given twice", k.span,
                                    hint="give each name once")
                seen.add(k.name)

    def vector(self, meta, c):
        items = c[0] if c else []
        for i in items:
            if isinstance(i, ir.Keyword):
                raise self._err(ModelError, "a vector [...] holds values, not 'name = value' pairs", i.span,
                                hint="use list(...) or {...} for named values")
        return ir.Vector(tuple(_r_boolean(i) for i in items), _span_of(meta))

    def dict_group(self, meta, c):
        return ir.Call("dict", (), tuple(c[0] if c else ()), _span_of(meta))

    def call(self, meta, c):
        func = c[0]
        items = c[1] if len(c) > 1 else []
        args = tuple(i for i in items if not isinstance(i, ir.Keyword))
        kwargs = tuple(i for i in items if isinstance(i, ir.Keyword))
        span = _span_of(meta)
        self._check_unique(items)
        seen_kw = False
        for i in items:
            if isinstance(i, ir.Keyword):
                seen_kw = True
            elif seen_kw:
                raise self._err(ModelError, "a positional argument follows a keyword argument", i.span,
                                hint="put positional arguments (index, weights) first")
        if func.id == "c" and not kwargs:
            return ir.Vector(tuple(_r_boolean(a) for a in args), span)
        return ir.Call(func.id, args, kwargs, span)

    # ---- terms ----
    def _term_of(self, x) -> ir.Term:
        """An rhs atom (expression) as a term."""
        if isinstance(x, ir.Call) and x.func == "f":
            if not x.args:
                raise ModelError("f() needs the index variable as its first argument",
                                 source=self.source, filename=self.filename, span=x.span, hint="write f(region, model = \"iid\")")
            if len(x.args) > 2:
                raise ModelError("f() takes at most two positional arguments (index, weights)",
                                 source=self.source, filename=self.filename, span=x.args[2].span)
            x = fold_call_args(x)
            _check_index(x.args[0])
            return ir.LatentTerm(x.args[0], x.args[1] if len(x.args) > 1 else None, x.kwargs, x.span)
        if isinstance(x, ir.Call) and x.func == "offset":
            if len(x.args) != 1 or x.kwargs:
                raise ModelError("offset() takes exactly one expression", source=self.source, filename=self.filename, span=x.span)
            return ir.OffsetTerm(fold(x.args[0]), x.span)
        if isinstance(x, ir.Call) and x.func in _ONE_ARGUMENT and (
                not x.args or (x.func == "I" and (len(x.args) > 1 or x.kwargs))):
            raise ModelError(f"{x.func}() takes {_ONE_ARGUMENT[x.func]}", source=self.source, filename=self.filename,
                             span=x.args[1].span if len(x.args) > 1 else x.kwargs[0].span if x.args else x.span,
                             hint=f"e.g. {x.func}(x / 10)" if x.func == "I" else f"e.g. {x.func}(x)")
        return ir.FixedTerm((x,), x.span)

    def variable(self, meta, c):
        return ir.FixedTerm((c[0],), c[0].span)

    def intercept_flag(self, meta, c):
        value = float(c[0])
        if value not in (0.0, 1.0):
            raise ModelError(f"a number in a formula must be 0 or 1 (the intercept), not {c[0]}",
                             source=self.source, filename=self.filename, span=_span_of(c[0]),
                             hint="use I(...) or a data column for constants")
        return _Sum([], intercept=value == 1.0)

    def _sum(self, x) -> _Sum:
        if isinstance(x, ir.Call):
            x = self._term_of(x)
        elif not isinstance(x, (_Sum, ir.FixedTerm, ir.OffsetTerm, ir.LatentTerm)):
            raise self._err(ModelError, f"{ir.expr_label(x)} cannot be a formula term", getattr(x, "span", None),
                            hint="terms are column names, calls such as log(x), or f(...)")
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
                             filename=self.filename, span=_span_of(meta), hint="only '-1' (no intercept) may lead the right-hand side")
        return _Sum([], intercept=False if right.intercept else True)

    def _fixed_only(self, s: _Sum, what: str, span: Span | None) -> list[ir.FixedTerm]:
        for t in s.terms:
            if not isinstance(t, ir.FixedTerm):
                raise ModelError(f"{what} cannot involve f() or offset() terms", source=self.source, filename=self.filename, span=t.span,
                                 hint="interact covariates only; use f(index, weights) for varying coefficients")
        if s.intercept is not None:
            raise ModelError(f"{what} cannot involve the intercept flags 0/1", source=self.source,
                             filename=self.filename, span=span, hint="write the intercept as its own term: 'y ~ 1 + a:b'")
        return s.terms  # type: ignore[return-value]

    def interact(self, meta, c):
        span = _span_of(meta)
        left = self._fixed_only(self._sum(c[0]), "an interaction", span)
        right = self._fixed_only(self._sum(c[1]), "an interaction", span)
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


#: Fixed-effect transforms that take exactly one expression (and what to call it in errors).
_ONE_ARGUMENT = {"I": "one expression", "scale": "one variable (and optional center =, scale =)"}


def _check_index(index: ir.Expr) -> None:
    """The index of f(): a name or inla.group(name, n = ..., method = ...) (R-INLA's binning)."""
    if isinstance(index, ir.Call) and index.func == "inla.group":
        if not index.args:
            raise ModelError("inla.group() needs the covariate to group", span=index.span,
                             hint='e.g. f(inla.group(x, n = 20), model = "rw2")')
        if len(index.args) > 4:
            raise ModelError("inla.group() takes (x, n, method, idx.only)", span=index.args[4].span,
                             hint='e.g. inla.group(x, n = 20, method = "quantile")')


def _terminal_word(name: str, parser: Lark | None = None) -> str:
    """A terminal's name as users read it: ``COMMA`` -> ``','``, ``NAME`` -> ``a name``."""
    base = name.rsplit("__", 1)[-1] if "__" in name.strip("_") else name
    if base in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[base]
    if base == "$END":
        return "end of input"
    if parser is not None:
        for t in parser.terminals:
            if t.name == name and t.pattern.type == "str":
                return f"'{t.pattern.value}'"
    return base.lower().replace("_", " ")


def _expected_words(expected, parser: Lark | None = None) -> tuple[str, ...]:
    words = {_terminal_word(t, parser) for t in expected if not t.startswith("__")}
    # keywords first (quoted), then kinds of token ("a name"), then end of input
    return tuple(sorted(words, key=lambda w: (not w.startswith("'"), w == "end of input", w.lower())))


def _is_terminal(name: str) -> bool:
    return name.rsplit("__", 1)[-1].isupper()


def _acceptable(err: UnexpectedInput):
    """Terminals that would have been accepted where ``err`` happened.

    Like lark's ``UnexpectedToken.accepts`` (feed each candidate to a copy of the parser), but
    also for terminals imported from another grammar (``formula__NUMBER``), which lark skips.
    """
    ip = getattr(err, "interactive_parser", None)
    if ip is None:
        return set(getattr(err, "accepts", None) or getattr(err, "expected", None) or getattr(err, "allowed", ()) or ())
    out = set()
    try:
        from copy import copy

        conf = copy(ip.parser_state.parse_conf)
        conf.callbacks = {}
        for t in ip.choices():
            if not _is_terminal(t):
                continue
            cursor = ip.copy(deepcopy_values=False)
            cursor.parser_state.parse_conf = conf
            try:
                cursor.feed_token(Token(t, ""))
            except UnexpectedInput:
                continue
            except Exception:  # a reduction callback or lark internals: keep the candidate
                pass
            out.add(t)
    except Exception:  # pragma: no cover - lark internals changed; fall back to lark's sets
        return set(getattr(err, "accepts", None) or getattr(err, "expected", None) or ())
    return out


def _end_span(text: str, err: UnexpectedInput) -> Span:
    """Where an end-of-input error points: just after the last token (not after trailing comments)."""
    tok = getattr(err, "token", None)
    end = getattr(tok, "end_pos", None)
    if tok is None or end is None or not getattr(tok, "end_line", None):
        stripped = text.rstrip()
        end = len(stripped)
    line = text.count("\n", 0, end) + 1
    col = end - (text.rfind("\n", 0, end) + 1) + 1
    return Span(line, col, end, end + 1)


def _syntax_error(text: str, err: UnexpectedInput, filename: str, *, parser: Lark | None = None,
                  what: str = "formula", hint_for=None) -> FormulaSyntaxError:
    """A lark error -> :class:`FormulaSyntaxError` with position, caret and expected words."""
    hint_for = hint_for or _hint_for
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        expected = _expected_words(_acceptable(err), parser)
        return FormulaSyntaxError(f"the {what} ends too early", source=text, span=_end_span(text, err),
                                  filename=filename, expected=tuple(w for w in expected if w != "end of input"),
                                  hint=hint_for(text, None))
    if isinstance(err, UnexpectedCharacters):
        span = Span(err.line, err.column, err.pos_in_stream, err.pos_in_stream + 1)
        ch = text[err.pos_in_stream]
        if ch in "\"'":
            return FormulaSyntaxError("this string is not closed on its line", source=text, span=span,
                                      filename=filename, hint=f"add the closing {ch} (strings cannot span lines)")
        return FormulaSyntaxError(f"unexpected character {ch!r}", source=text, span=span, filename=filename,
                                  expected=_expected_words(_acceptable(err), parser), hint=hint_for(text, ch))
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    span = Span(tok.line, tok.column, tok.start_pos, tok.end_pos)
    base = tok.type.rsplit("__", 1)[-1]
    kind = _TOKEN_KINDS.get(base)
    shown = str(tok) if len(str(tok)) <= 40 else str(tok)[:37] + "..."
    desc = f"{kind} {shown!r}" if kind else f"'{shown}'"
    return FormulaSyntaxError(f"unexpected {desc}", source=text, span=span, filename=filename,
                              expected=_expected_words(_acceptable(err), parser),
                              hint=hint_for(text, str(tok)))


def _hint_for(text: str, token: str | None) -> str | None:
    if "~" not in text:
        return "a formula reads 'response ~ terms', e.g. 'y ~ x + f(region, model = \"iid\")'"
    if text.count("(") != text.count(")"):
        return "check that every '(' has a matching ')'"
    if token in ("^", "**", "/"):
        return f"arithmetic on a covariate goes inside I(...), e.g. I(x{token}2)"
    if token == "=":
        return "'=' only names an argument inside f(...) or a call"
    if token == "==":
        return "'==' is not part of the formula language"
    return None


#: Deepest bracket nesting accepted (the Transformer recurses once per level).
MAX_NESTING = 100


def _nesting_error(text: str, filename: str) -> FormulaSyntaxError | None:
    """The first bracket nested more than :data:`MAX_NESTING` deep (outside strings), if any."""
    depth, quote, i, n = 0, None, 0, len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote or ch == "\n":
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, i) + 1
                col = i - (text.rfind("\n", 0, i) + 1) + 1
                return FormulaSyntaxError(f"brackets are nested more than {MAX_NESTING} deep",
                                          source=text, span=Span(line, col, i, i + 1), filename=filename,
                                          hint="simplify the expression")
        elif ch in ")]}":
            depth -= 1
        i += 1
    return None


def _rewrap(err: AdeliaError, text: str, filename: str) -> AdeliaError:
    return type(err)(err.message, source=text, span=err.span, filename=filename, expected=err.expected,
                     hint=err.hint)


def transform(transformer: Transformer, tree, text: str, filename: str):
    """Run ``transformer`` on ``tree``, turning wrapped errors back into :class:`AdeliaError`."""
    try:
        return transformer.transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, AdeliaError):
            raise _rewrap(err.orig_exc, text, filename) from None
        if isinstance(err.orig_exc, RecursionError):
            raise _nesting_error(text, filename) or FormulaSyntaxError(
                "the text is nested too deeply", source=text, filename=filename,
                span=Span(1, 1, 0, 1)) from None
        raise
    except RecursionError:
        raise _nesting_error(text, filename) or FormulaSyntaxError(
            "the text is nested too deeply", source=text, filename=filename, span=Span(1, 1, 0, 1)) from None


def parse_formula(text: str, *, filename: str = "<formula>") -> ir.Formula:
    """Parse an R-INLA-style formula into the IR.

    Raises :class:`~adelia.errors.FormulaSyntaxError` (or another :class:`AdeliaError`) with
    ``line``/``column`` set and a caret under the offending token.
    """
    if not isinstance(text, str):
        raise AdeliaError(f"a formula must be a string, not {type(text).__name__}",
                          hint="write the formula as text, e.g. 'y ~ x + f(g, model = \"iid\")'")
    if not text.strip():
        raise FormulaSyntaxError("the formula is empty", source=text or " ", filename=filename,
                                 span=Span(1, 1, 0, 1), hint="a formula reads 'response ~ terms'")
    nested = _nesting_error(text, filename)
    if nested is not None:
        raise nested
    parser = formula_parser()
    try:
        tree = parser.parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(text, err, filename, parser=parser) from None
    return transform(_ToIR(text, filename), tree, text, filename)
