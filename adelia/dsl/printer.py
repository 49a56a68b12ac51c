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
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def print_expr(e: ir.Expr) -> str:
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


def _kw(k: ir.Keyword) -> str:
    name = k.name if _is_name(k.name) else print_string(k.name)
    return f"{name} = {print_expr(k.value)}"


def _is_name(s: str) -> bool:
    return bool(_NAME.match(s)) and s not in RESERVED


def print_term(t: ir.Term) -> str:
    match t:
        case ir.FixedTerm(factors=fs):
            return ":".join(print_expr(f) for f in fs)
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
