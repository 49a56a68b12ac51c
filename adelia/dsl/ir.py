"""Intermediate representation of a parsed formula: frozen dataclasses holding tuples.

Each node carries a :class:`~adelia.errors.Span` (excluded from equality) so that every later
error — unknown model, missing column, bad prior — can point at its source. The IR is pure
syntax: it says nothing about whether names exist in the data or the registries; that is the
compiler's resolve pass.
"""

from __future__ import annotations

__all__ = [
    "Str", "Num", "Bool", "Name", "Vector", "Call", "Keyword", "BinOp", "Neg", "Expr", "BINARY_OPS",
    "FixedTerm", "OffsetTerm", "LatentTerm", "Term", "Formula",
]

from dataclasses import dataclass, field
from typing import Union

from adelia.errors import Span


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Num:
    value: float
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Vector:
    """``[1, 2]`` or ``c(1, 2)``."""

    items: tuple["Expr", ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str
    value: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args..., key=value...)``; ``list(...)``, ``dict(...)`` and ``{...}`` are calls
    named ``list``/``dict`` (keyword groups)."""

    func: str
    args: tuple["Expr", ...] = ()
    kwargs: tuple[Keyword, ...] = ()
    span: Span | None = _span()

    def kwarg(self, name: str) -> Keyword | None:
        for kw in self.kwargs:
            if kw.name == name:
                return kw
        return None


#: Binary operators of argument expressions, as R spells them (``**`` is read as ``^``; ``:`` is
#: R's sequence ``from:to``).
BINARY_OPS = ("+", "-", "*", "/", "^", ":")


@dataclass(frozen=True, slots=True)
class BinOp:
    """``left op right`` inside a call argument, ``I(...)`` or the response (R precedence; see
    ``grammars/formula.lark``). Constant operands are folded to :class:`Num`/:class:`Vector`
    where a value is needed (:mod:`adelia.dsl.evaluate`)."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus ``-operand`` of a non-literal (``-2`` is ``Num(-2.0)``)."""

    operand: "Expr"
    span: Span | None = _span()


Expr = Union[Str, Num, Bool, Name, Vector, Call, BinOp, Neg]


@dataclass(frozen=True, slots=True)
class FixedTerm:
    """A fixed-effect term: one factor (``x``, ``C(g)``, ``log(z)``) or an interaction ``a:b``."""

    factors: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class OffsetTerm:
    """``offset(expr)``: added to the linear predictor with coefficient 1."""

    expr: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class LatentTerm:
    """``f(index[, weights], key=value, ...)`` — an R-INLA latent component."""

    index: Expr
    weights: Expr | None = None
    kwargs: tuple[Keyword, ...] = ()
    span: Span | None = _span()

    def kwarg(self, name: str) -> Keyword | None:
        """The keyword ``name``, accepting R's dotted and Python's snake_case spelling."""
        alt = name.replace(".", "_")
        for kw in self.kwargs:
            if kw.name == name or kw.name.replace(".", "_") == alt:
                return kw
        return None

    @property
    def label(self) -> str:
        """The component's name (R-INLA: the index variable's name)."""
        return expr_label(self.index)


Term = Union[FixedTerm, OffsetTerm, LatentTerm]


@dataclass(frozen=True, slots=True)
class Formula:
    response: Expr | None
    terms: tuple[Term, ...]
    intercept: bool = True
    source: str = field(default="", compare=False, repr=False)
    span: Span | None = _span()

    @property
    def fixed(self) -> tuple[FixedTerm, ...]:
        return tuple(t for t in self.terms if isinstance(t, FixedTerm))

    @property
    def latent(self) -> tuple[LatentTerm, ...]:
        return tuple(t for t in self.terms if isinstance(t, LatentTerm))

    @property
    def offsets(self) -> tuple[OffsetTerm, ...]:
        return tuple(t for t in self.terms if isinstance(t, OffsetTerm))


def expr_label(expr: Expr) -> str:
    """Source-like text of an expression (used for term names)."""
    from adelia.dsl.printer import print_expr

    return print_expr(expr)
