"""Load the Lark grammars shipped as package data (``grammars/`` -> ``adelia.grammars``).

Installed, the grammars are the package ``adelia.grammars``; when ``adelia`` is imported from a
source checkout (tests run from the repository root), they are read from ``<root>/grammars``.

Building the LALR tables costs about 0.1 s, paid by the first parse of every process. Lark's
own cache (``Lark(cache=path)``: the analysed parser pickled, keyed by a hash of the grammar,
its options and Lark's version, rebuilt on any mismatch or unreadable file) keeps them in
``$XDG_CACHE_HOME/adelia/lark`` (``~/.cache/adelia/lark``) beside the compilation cache; the
same switch turns both off (``ADELIA_COMPILATION_CACHE=off``, :mod:`adelia.cache_home`), and an
unwritable directory means no cache rather than a failure.
"""

from __future__ import annotations

__all__ = ["open_grammar"]

import importlib.util
import os
from pathlib import Path

import lark
from lark import Lark

from adelia.cache_home import cache_home, caches_off

_OPTIONS = dict(parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _cache_file(name: str) -> str | bool:
    """Where Lark keeps the analysed parser of grammar ``name`` (False: no cache)."""
    if caches_off():
        return False
    folder = cache_home() / "lark"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    if not os.access(folder, os.W_OK):
        return False
    return str(folder / f"{Path(name).stem}-lark{lark.__version__}.cache")


def open_grammar(name: str) -> Lark:
    """A LALR parser with positions for ``grammars/<name>`` (``%import`` resolves beside it)."""
    cache = _cache_file(name)
    # cache_grammar: the grammar itself is kept too (hypothesis.extra.lark generates sentences from it)
    options = dict(_OPTIONS, cache=cache, cache_grammar=bool(cache))
    if importlib.util.find_spec("adelia.grammars") is not None:
        return Lark.open_from_package("adelia.grammars", name, ("",), **options)
    folder = Path(__file__).resolve().parents[2] / "grammars"
    return Lark.open(str(folder / name), import_paths=[str(folder)], **options)
