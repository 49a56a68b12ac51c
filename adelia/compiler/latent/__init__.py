"""Latent model catalogue: one file per model, each registering itself in ``LATENT``."""

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.latent import iid, rw, besag, bym2, ar1, spde, seasonal  # noqa: F401  (registration)
from adelia.compiler.latent import ar, iidkd, rgeneric, spacetime  # noqa: F401  (registration; issue 15 part B)
from adelia.compiler.latent import (bym, besagproper, generic, z, linear, rw2d, matern2d, crw2,  # noqa: F401
                                    ou, clinear)  # (registration; issue 15 part A)

__all__ = ["LATENT", "LatentModel", "Structure", "TermInput"]
