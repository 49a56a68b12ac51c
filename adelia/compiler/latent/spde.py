"""``spde``: a Matérn field on a triangle mesh via the SPDE approach (Lindgren, Rue & Lindström
2011), with the PC prior on (range, σ) of Fuglstad, Simpson, Lindgren & Rue (2019) — R-INLA's
``inla.spde2.pcmatern(mesh, alpha = 2, prior.range, prior.sigma)``.

For α = 2 on a d-dimensional mesh (ν = α − d/2) the precision of the weights at the mesh nodes is

    Q = τ² (κ⁴ C + 2κ² G + G C⁻¹ G),      C lumped mass, G stiffness (adelia.compiler.mesh)

with κ = √(8ν)/range and σ² = Γ(ν) / (Γ(α) (4π)^{d/2} κ^{2ν} τ²). θ = (log range, log σ); as
R-INLA's B matrices: log κ = ½ log(8ν) − θ₁, log τ = ½(log Γ(ν) − log Γ(α) − (d/2) log 4π) − ν log κ − θ₂.
Since Q = τ² (κ²C + G) C⁻¹ (κ²C + G),

    log|Q| = 2n log τ + log|C| + 2 Σ_i log(κ² + λ_i),     λ_i the eigenvalues of C^{−½} G C^{−½},

computed once. Defaults (pcmatern): P(range < range₀) = p_r, P(σ > σ₀) = p_s, given by the
:class:`SPDE` object; initial values log range₀ + 1 and log σ₀ − 1.

Usage::

    spde = SPDE(mesh, prior_range=(0.3, 0.5), prior_sigma=(10, 0.01), loc=coords)
    adelia.fit("y ~ -1 + intercept + f(site, model = 'spde', spde = spde)", data, spde=spde)

With ``loc`` (or a projector ``A``, n_loc × n_mesh) the index holds location numbers (1..n_loc,
or 0..n_loc−1) and row i of the observation matrix is the projector row of location index[i]
(barycentric weights); without them the index holds mesh node numbers, like R-INLA's
``inla.spde.make.index``. Missing index values give rows with no field.
"""

from __future__ import annotations

__all__ = ["SPDE", "SPDEStructure"]

import math
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.indexing import row_numbers
from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.likelihoods import HyperSpec
from adelia.compiler.mesh import FEM, Mesh
from adelia.compiler.priors import LOG_RANGE, LOG_SD
from adelia.errors import DataError, ModelError

#: meshes up to this many nodes get the closed-form log-determinant (one dense eigendecomposition)
EIGEN_MAX_NODES = 4000


@dataclass(frozen=True)
class SPDEStructure(Structure):
    """A :class:`Structure` with a general observation projector (m × n) replacing the one-hot
    block, and what its priors need (``prior_context``)."""

    projector: sp.csr_matrix | None = None
    prior_context: dict = field(default_factory=dict)


class SPDE:
    """A Matérn SPDE model (α = 2) with the PC prior on range and σ.

    Parameters
    ----------
    mesh
        A :class:`adelia.compiler.mesh.Mesh` (or ``(nodes, triangles)`` with 0-based triangles).
        Alternatively give the FEM matrices ``C0`` (lumped mass, a vector or diagonal matrix) and
        ``G`` (stiffness) directly.
    prior_range, prior_sigma
        ``(range0, p)``: P(range < range0) = p; ``(sigma0, p)``: P(σ > sigma0) = p.
    loc, A
        Observation locations (n_loc × 2, needs a mesh) or a ready projector (n_loc × n_mesh).
    dim
        Manifold dimension when only matrices are given (default 2).
    constr
        Integrate-to-zero constraint Σ c0_i x_i = 0 (R-INLA ``constr = TRUE``).
    """

    def __init__(self, mesh=None, *, prior_range, prior_sigma, C0=None, G=None, loc=None, A=None,
                 alpha: float = 2, dim: int | None = None, constr: bool = False):
        if alpha != 2:
            raise ModelError(f"only alpha = 2 is supported for the SPDE model, got {alpha}")
        if mesh is not None and not isinstance(mesh, Mesh):
            nodes, tri = mesh
            mesh = Mesh(np.asarray(nodes), np.asarray(tri))
        self.mesh = mesh
        if mesh is not None:
            fem = mesh.fem()
            self.dim = mesh.dim
        else:
            if C0 is None or G is None:
                raise ModelError("SPDE needs a mesh, or both C0 (lumped mass) and G (stiffness)")
            c0 = np.asarray(C0.diagonal() if sp.issparse(C0) else C0, dtype=float).ravel()
            if sp.issparse(C0) and abs(C0 - sp.diags(c0)).sum() > 0:
                raise ModelError("C0 must be the lumped (diagonal) mass matrix")
            fem = FEM(sp.diags(c0, format="csr"), c0, sp.csr_matrix(G, dtype=float))
            self.dim = 2 if dim is None else int(dim)
        if fem.G.shape != (len(fem.c0), len(fem.c0)):
            raise ModelError(f"G has shape {fem.G.shape} but C0 has {len(fem.c0)} entries")
        self.fem = fem
        self.n = len(fem.c0)
        self.alpha = float(alpha)
        self.nu = self.alpha - self.dim / 2.0
        if self.nu <= 0:
            raise ModelError(f"smoothness nu = alpha - dim/2 = {self.nu} must be > 0")
        self.prior_range = _tail(prior_range, "prior_range")
        self.prior_sigma = _tail(prior_sigma, "prior_sigma")
        self.constr = bool(constr)
        if loc is not None and A is not None:
            raise ModelError("give either loc or A to SPDE, not both")
        if loc is not None:
            if mesh is None:
                raise ModelError("SPDE(loc = ...) needs a mesh to build the projector", hint="or pass A")
            A = mesh.projector(np.asarray(loc, dtype=float))
        if A is not None:
            A = sp.csr_matrix(A, dtype=float)
            if A.shape[1] != self.n:
                raise DataError(f"the projector A has {A.shape[1]} columns but the mesh has {self.n} nodes")
        self.A = A
        self._eig: np.ndarray | None = None

    # ---- the parameterisation (R-INLA's B matrices) ----
    def log_kappa(self, theta):
        return 0.5 * math.log(8.0 * self.nu) - theta[0]

    def log_tau(self, theta):
        c = 0.5 * (math.lgamma(self.nu) - math.lgamma(self.alpha) - self.dim / 2.0 * math.log(4.0 * math.pi))
        return c - self.nu * self.log_kappa(theta) - theta[1]

    def eigenvalues(self) -> np.ndarray:
        """λ_i of C^{−½} G C^{−½} (cached)."""
        if self._eig is None:
            s = 1.0 / np.sqrt(self.fem.c0)
            M = (sp.diags(s) @ self.fem.G @ sp.diags(s)).toarray()
            self._eig = np.clip(np.linalg.eigvalsh(0.5 * (M + M.T)), 0.0, None)
        return self._eig

    def hypers(self, *, from_object: bool = True) -> tuple[HyperSpec, ...]:
        r0, s0 = self.prior_range[0], self.prior_sigma[0]
        if from_object:
            rng = ("pc.range", (*self.prior_range, float(self.dim)))
            sd = ("pc.sd", self.prior_sigma)
            init = (math.log(r0) + 1.0, math.log(s0) - 1.0)
        else:
            return REGISTERED_HYPERS
        return (HyperSpec("range", "Range for {name}", "log(Range) for {name}", rng, init[0], LOG_RANGE, jnp.exp),
                HyperSpec("stdev", "Stdev for {name}", "log(Stdev) for {name}", sd, init[1], LOG_SD, jnp.exp))

    def latent_model(self) -> LatentModel:
        """This SPDE as a latent model whose default priors and initial values are the object's
        (what ``f(x, model = spde)`` with the object itself should use)."""
        return LatentModel("spde", self.hypers(), lambda term: self.structure(term), doc=__doc__)

    # ---- building ----
    def structure(self, term: TermInput) -> SPDEStructure:
        n = self.n
        fem = self.fem
        matrices = (fem.C0, fem.G.tocsr(), fem.G2)
        coefs = (
            lambda th: jnp.exp(2.0 * self.log_tau(th) + 4.0 * self.log_kappa(th)),
            lambda th: 2.0 * jnp.exp(2.0 * self.log_tau(th) + 2.0 * self.log_kappa(th)),
            lambda th: jnp.exp(2.0 * self.log_tau(th)),
        )
        if n <= EIGEN_MAX_NODES:
            lam = jnp.asarray(self.eigenvalues())
            logdet = lambda th: (2.0 * n * self.log_tau(th)
                                 + 2.0 * jnp.sum(jnp.log(jnp.exp(2.0 * self.log_kappa(th)) + lam)))
            logdet_star = float(np.sum(np.log(fem.c0)))
        else:
            logdet, logdet_star = None, 0.0
        constraints = fem.c0[None, :].copy() if self.constr else np.zeros((0, n))
        projector, node_of_obs = self._observation_map(term)
        context = {"prior_range": (*self.prior_range, float(self.dim)), "prior_sigma": self.prior_sigma}
        return SPDEStructure(n, matrices, coefs, 0, constraints, np.arange(1, n + 1), node_of_obs,
                             logdet=logdet, logdet_star=logdet_star, projector=projector, prior_context=context)

    def _observation_map(self, term: TermInput) -> tuple[sp.csr_matrix | None, np.ndarray]:
        n_rows = self.n if self.A is None else self.A.shape[0]
        what = "mesh nodes" if self.A is None else "locations of the SPDE projector"
        idx = _row_numbers(term, n_rows, what)
        if self.A is None:
            return None, idx
        m = len(idx)
        ok = np.flatnonzero(idx >= 0)
        sel = sp.csr_matrix((np.ones(ok.size), (ok, idx[ok])), shape=(m, n_rows))
        return (sel @ self.A).tocsr(), np.full(m, -1, dtype=np.int64)


def _tail(pair, what: str) -> tuple[float, float]:
    try:
        a, p = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ModelError(f"{what} must be a pair (value, probability), got {pair!r}") from None
    if a <= 0 or not 0 < p < 1:
        raise ModelError(f"{what} = {pair!r}: the value must be > 0 and the probability in (0, 1)")
    return a, p


def _row_numbers(term: TermInput, n: int, what: str) -> np.ndarray:
    """Index values -> 0-based row numbers (1..n as in R, or 0..n−1); NaN -> −1."""
    return row_numbers(term, n, what)


def build(term: TermInput) -> SPDEStructure:
    obj = term.args.get("spde")
    if not isinstance(obj, SPDE):
        raise ModelError(f"f({term.name}, model = \"spde\") needs spde = <an adelia SPDE object>",
                         span=term.describe("spde" if obj is not None else "model"),
                         hint="build it with adelia.compiler.latent.spde.SPDE(mesh, prior_range=..., "
                              "prior_sigma=...) and pass it to fit(..., spde=obj)")
    if term.args.get("constr") and not obj.constr:
        obj = _with_constr(obj)
    return obj.structure(term)


def _with_constr(obj: SPDE) -> SPDE:
    import copy
    out = copy.copy(obj)
    out.constr = True
    return out


# The registered model takes its priors from the object through structure-bound pc.range() and
# pc.sd(); initial values are generic (0, 0). ``SPDE.latent_model()`` carries the object's own.
REGISTERED_HYPERS = (
    HyperSpec("range", "Range for {name}", "log(Range) for {name}", ("pc.range", ()), 0.0, LOG_RANGE, jnp.exp),
    HyperSpec("stdev", "Stdev for {name}", "log(Stdev) for {name}", ("pc.sd", ()), 0.0, LOG_SD, jnp.exp),
)

LATENT.register("spde")(LatentModel("spde", REGISTERED_HYPERS, build, ("spde",), doc=__doc__))
