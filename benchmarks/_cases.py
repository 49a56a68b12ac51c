"""The simulated SPDE ⊗ AR1 space–time case shared by ``spacetime.py`` and ``fit_reference.py``."""

import numpy as np
import pandas as pd

FORMULA = 'y ~ 1 + f(site, model = sp, group = time, control.group = list(model = "ar1"))'


def simulate(n_sites: int, nt: int, seed: int = 1, spacing: float = 0.1):
    """Sites uniform on the unit square, a smooth moving field plus N(0, 0.3²) noise, and an SPDE
    on a Delaunay mesh with the given node spacing."""
    from adelia.compiler.latent.spde import SPDE
    from adelia.compiler.mesh import Mesh

    rng = np.random.default_rng(seed)
    sites = rng.uniform(0, 1, size=(n_sites, 2))
    mesh = Mesh.from_delaunay(sites, offset=0.2, spacing=spacing)
    t = np.repeat(np.arange(1, nt + 1), n_sites)
    s = np.tile(np.arange(1, n_sites + 1), nt)
    xy = sites[s - 1]
    field = np.sin(3 * xy[:, 0] + 0.3 * t) + np.cos(2 * xy[:, 1] - 0.2 * t)
    y = 1.0 + field + 0.3 * rng.normal(size=len(t))
    spde = SPDE(mesh, prior_range=(0.3, 0.5), prior_sigma=(1.0, 0.1), loc=sites)
    return pd.DataFrame({"y": y, "site": s, "time": t}), spde
