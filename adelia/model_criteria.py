"""``adelia.criteria(dt)``: the model-comparison numbers of a fit in one dict (R-INLA's
``mlik``, ``dic``, ``waic``, ``cpo`` and, on request, ``pit``)."""

from __future__ import annotations

__all__ = ["criteria"]

import numpy as np
import xarray as xr

from adelia.errors import AdeliaError


def criteria(dt: xr.DataTree, *, pit: bool = False) -> dict:
    """mlik (integration and Gaussian estimates), DIC, WAIC, CPO and optionally PIT of a fit."""
    if not isinstance(dt, xr.DataTree) or "inla" not in dt.children:
        raise AdeliaError("criteria() needs the DataTree returned by adelia.fit (or read from its netCDF file)")
    inla = dt["inla"]
    a = inla.attrs
    out = {"mlik": float(a["mlik_integration"]), "mlik_gaussian": float(a["mlik_gaussian"])}
    for k in ("dic", "dic_p_eff", "waic", "waic_p_eff", "sum_log_cpo"):
        out[k] = float(a[k]) if k in a else float("nan")
    return out
