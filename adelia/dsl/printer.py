"""IR -> canonical formula text. ``parse_formula(print_formula(ir)) == ir`` for every IR."""

from __future__ import annotations

__all__ = ["print_formula", "print_expr", "print_term", "print_string"]

import re

from adelia.dsl import ir

#: Words the grammar reads as booleans; names spelled like this are quoted or cannot be printed.
RESERVED = frozenset({"TRUE", "FALSE", "True", "False"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_ESC = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def print_string(s: str) -> str:
    """A double-quoted string literal the grammar reads back as ``s`` (non-printable characters
    as ``\\uXXXX``, astral ones as surrogate pairs, as JSON does)."""
    out = []
    for ch in s:
        if ch in _ESC:
            out.append(_ESC[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) > 0xFFFF:
            v = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 + (v >> 10):04x}\\u{0xDC00 + (v & 0x3FF):04x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def _num(value: float) -> str:
    if value in (float("inf"), float("-inf")):
        return "Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


#: Precedence of printed expressions, loosest first (R; grammars/formula.lark): binary + -, * /,
#: ':', unary minus (and negative numbers), ^, then atoms.
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, ":": 3, "neg": 4, "^": 5}
_ATOM = 6
#: R's deparse spacing: spaces around + - *, none around / ^ : (so I(x/10) prints as R names it).
_SPACED = frozenset({"+", "-", "*"})


def _prec(e: ir.Expr) -> int:
    match e:
        case ir.BinOp(op=op):
            return _PREC[op]
        case ir.Neg():
            return _PREC["neg"]
        case ir.Num(value=v) if v < 0 or (v == 0 and str(float(v)).startswith("-")):
            return _PREC["neg"]
    return _ATOM


def _wrap(e: ir.Expr, need: int, python: bool) -> str:
    text = print_expr(e, python=python)
    return f"({text})" if _prec(e) < need else text


def _print_binop(e: ir.BinOp, python: bool) -> str:
    p = _PREC[e.op]
    if e.op == "^":     # right-associative; its right operand may be a unary minus (2^-1)
        left, right = _wrap(e.left, p + 1, python), _wrap(e.right, _PREC["neg"], python)
    else:               # left-associative
        left, right = _wrap(e.left, p, python), _wrap(e.right, p + 1, python)
    if python:
        if e.op == ":":
            raise ValueError("R's ':' sequence has no Python spelling")
        return f"{left} {'**' if e.op == '^' else e.op} {right}"
    sep = " " if e.op in _SPACED else ""
    return f"{left}{sep}{e.op}{sep}{right}"


def print_expr(e: ir.Expr, *, python: bool = False) -> str:
    """Canonical text of ``e``: R's spelling and spacing (as R's deparse names terms), or with
    ``python=True`` Python's (``**``, ``True``) for formulaic, which evaluates fixed-effect terms."""
    match e:
        case ir.BinOp():
            return _print_binop(e, python)
        case ir.Neg(operand=x):
            return "-" + _wrap(x, _PREC["neg"] + (1 if isinstance(x, ir.Num) else 0), python)
        case ir.Bool(value=v) if python:
            return "True" if v else "False"
        case ir.Vector(items=items) if python:
            return "[" + ", ".join(print_expr(i, python=True) for i in items) + "]"
        case ir.Call(func=f, args=args, kwargs=kwargs) if python:
            parts = [print_expr(a, python=True) for a in args] + [_kw(k, python=True) for k in kwargs]
            return f"{f}(" + ", ".join(parts) + ")"
    match e:
        case ir.Str(value=v):
            return print_string(v)
        case ir.Num(value=v):
            return _num(v)
        case ir.Bool(value=v):
            return "TRUE" if v else "FALSE"
        case ir.Name(id=i):
            if not _is_name(i):
                raise ValueError(f"{i!r} cannot be printed as a name")
            return i
        case ir.Vector(items=items):
            return "[" + ", ".join(print_expr(i) for i in items) + "]"
        case ir.Call(func=f, args=args, kwargs=kwargs):
            if not _is_name(f):
                raise ValueError(f"{f!r} cannot be printed as a function name")
            parts = [print_expr(a) for a in args] + [_kw(k) for k in kwargs]
            return f"{f}(" + ", ".join(parts) + ")"
    raise TypeError(f"not an IR expression: {e!r}")


def _kw(k: ir.Keyword, python: bool = False) -> str:
    name = k.name if _is_name(k.name) else print_string(k.name)
    return f"{name} = {print_expr(k.value, python=python)}"


def _is_name(s: str) -> bool:
    return bool(_NAME.match(s)) and s not in RESERVED


def print_term(t: ir.Term, *, python: bool = False) -> str:
    match t:
        case ir.FixedTerm(factors=fs):
            return ":".join(print_expr(f, python=python) for f in fs)
        case ir.OffsetTerm(expr=e):
            return f"offset({print_expr(e)})"
        case ir.LatentTerm(index=i, weights=w, kwargs=kws):
            parts = [print_expr(i)] + ([print_expr(w)] if w is not None else []) + [_kw(k) for k in kws]
            return "f(" + ", ".join(parts) + ")"
    raise TypeError(f"not an IR term: {t!r}")


def print_formula(f: ir.Formula) -> str:
    rhs = ["1" if f.intercept else "0"] + [print_term(t) for t in f.terms]
    lhs = print_expr(f.response) + " " if f.response is not None else ""
    return f"{lhs}~ " + " + ".join(rhs)
