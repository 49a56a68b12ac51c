"""IR -> canonical formula text. ``parse_formula(print_formula(ir)) == ir`` for every IR."""

from __future__ import annotations

__all__ = ["print_formula", "print_expr", "print_term"]

import json

from adelia.dsl import ir


def _num(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def print_expr(e: ir.Expr) -> str:
    match e:
        case ir.Str(value=v):
            return json.dumps(v)
        case ir.Num(value=v):
            return _num(v)
        case ir.Bool(value=v):
            return "TRUE" if v else "FALSE"
        case ir.Name(id=i):
            return i
        case ir.Vector(items=items):
            return "[" + ", ".join(print_expr(i) for i in items) + "]"
        case ir.Call(func=f, args=args, kwargs=kwargs):
            parts = [print_expr(a) for a in args] + [_kw(k) for k in kwargs]
            return f"{f}(" + ", ".join(parts) + ")"
    raise TypeError(f"not an IR expression: {e!r}")


def _kw(k: ir.Keyword) -> str:
    name = k.name if _is_name(k.name) else json.dumps(k.name)
    return f"{name} = {print_expr(k.value)}"


def _is_name(s: str) -> bool:
    return bool(s) and (s[0].isalpha() or s[0] == "_") and all(c.isalnum() or c in "_." for c in s)


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
