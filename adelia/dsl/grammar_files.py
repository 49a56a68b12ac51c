"""Load the Lark grammars shipped as package data (``grammars/`` -> ``adelia.grammars``).

Installed, the grammars are the package ``adelia.grammars``; when ``adelia`` is imported from a
source checkout (tests run from the repository root), they are read from ``<root>/grammars``.
"""

from __future__ import annotations

__all__ = ["open_grammar"]

import importlib.util
from pathlib import Path

from lark import Lark

_OPTIONS = dict(parser="lalr", propagate_positions=True, maybe_placeholders=False)


def open_grammar(name: str) -> Lark:
    """A LALR parser with positions for ``grammars/<name>`` (``%import`` resolves beside it)."""
    if importlib.util.find_spec("adelia.grammars") is not None:
        return Lark.open_from_package("adelia.grammars", name, ("",), **_OPTIONS)
    folder = Path(__file__).resolve().parents[2] / "grammars"
    return Lark.open(str(folder / name), import_paths=[str(folder)], **_OPTIONS)
