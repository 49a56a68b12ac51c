"""The one error hierarchy users see, and the one helper that renders positioned errors.

Every error raised at a user (bad formula, unknown model, data mismatch, failed fit) is an
:class:`AdeliaError`. Positioned errors render as::

    <formula>:1:14: error: unexpected name 'model'
    y ~ f(region model="bym2")
                 ^~~~~
    expected one of: ',', ')'
    hint: separate arguments with commas

(the layout follows formulaic's ``parser/utils.py`` and lark's ``get_context``).
"""

from __future__ import annotations

__all__ = [
    "AdeliaError",
    "FormulaSyntaxError",
    "ModelError",
    "UnknownNameError",
    "DataError",
    "FitError",
    "Span",
    "render_error",
]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A region of source text: 1-based line/column of the start, 0-based offsets."""

    line: int
    column: int
    start: int
    end: int

    def merge(self, other: "Span | None") -> "Span":
        if other is None:
            return self
        first = self if self.start <= other.start else other
        return Span(first.line, first.column, min(self.start, other.start), max(self.end, other.end))


def render_error(
    message: str,
    *,
    source: str | None = None,
    span: Span | None = None,
    filename: str = "<formula>",
    expected: tuple[str, ...] = (),
    hint: str | None = None,
) -> str:
    """Format ``file:line:col: error: message``, the source line, a ``^~~`` underline, and hints."""
    lines = []
    if span is not None:
        lines.append(f"{filename}:{span.line}:{span.column}: error: {message}")
        if source is not None:
            src_lines = source.splitlines() or [""]
            text = src_lines[min(span.line, len(src_lines)) - 1]
            lines.append(text)
            line_start = sum(len(s) + 1 for s in src_lines[: span.line - 1])
            width = max(1, min(span.end, line_start + len(text)) - span.start)
            lines.append(" " * (span.column - 1) + "^" + "~" * (width - 1))
    else:
        lines.append(f"error: {message}")
    if expected:
        lines.append("expected one of: " + ", ".join(expected))
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)


class AdeliaError(Exception):
    """Base of every user-facing adelia error.

    ``line`` and ``column`` (1-based) are set when the error has a source position.
    ``message`` is the bare message; ``str(err)`` is the full rendering.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        span: Span | None = None,
        filename: str = "<formula>",
        expected: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.span = span
        self.filename = filename
        self.expected = tuple(expected)
        self.hint = hint
        super().__init__(
            render_error(
                message, source=source, span=span, filename=filename, expected=self.expected, hint=hint
            )
        )

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None


class FormulaSyntaxError(AdeliaError):
    """The formula or model text does not parse."""


class ModelError(AdeliaError):
    """The text parses but does not describe a valid model (wrong argument, bad value...)."""


class UnknownNameError(ModelError):
    """A latent model, family, prior or object name that does not exist."""


class DataError(AdeliaError):
    """The data do not fit the model: missing column, wrong length, invalid values."""


class FitError(AdeliaError):
    """The numerical fit failed (non-finite objective, no positive-definite Hessian...)."""
