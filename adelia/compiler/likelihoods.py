"""Likelihood families (kept as the import path other modules use; the definitions live in
:mod:`adelia.compiler.families`, one small module per group)."""

from adelia.compiler.families import FAMILIES, LINKS, Family, HyperSpec, Issue, Link

__all__ = ["Family", "FAMILIES", "HyperSpec", "Issue", "Link", "LINKS"]
