"""Space–time latent models on an SPDE mesh: ``demf`` (alias ``spacetime``), the non-separable
diffusion-based extension of the Matérn field DEMF(1, 2, 1) (Lindgren, Bakka, Bolin, Krainski & Rue
2024, arXiv:2006.04917; R package INLAspacetime, model "121"), and ``coregional``, k = 2 or 3 such
fields tied by a linear model of coregionalisation (METHOD.md §9–§10; the runtime's
:mod:`adelia.runtime.coregional` holds the maps and the factorisation-free log-determinants).

    f(site, model = "demf", spde = sp, time = t)                       # one field
    f(site, model = "coregional", spde = sp, time = t, field = v)     # x_v(site, t), v = 1..k

``spde`` is an :class:`~adelia.compiler.latent.spde.SPDE` on a planar mesh (its ``loc``/``A`` maps
``site`` to the mesh as for ``model = "spde"``; without them ``site`` holds mesh nodes); ``time`` holds
integer time points on a regular grid (step ``time.step``, default 1): the grid runs from the
smallest to the largest value, or over 1..``ntime``. ``field`` (coregional) holds 1..k.

**One field** (plane, α_t = 1, α_s = 2, α_e = 1, so ν_s = 1, ν_t = ½), with C0, G the mesh's lumped
mass and stiffness, g2 = G C0⁻¹ G, g3 = G C0⁻¹ g2, κ = e^{γ_s}, q1 = κ²C0 + G, q2 = κ⁴C0 + 2κ²G + g2,
q3 = κ⁶C0 + 3κ⁴G + 3κ²g2 + g3 and the temporal matrices m0 = h·diag(½, 1, …, 1, ½),
m1 = diag(1, 0, …, 0, 1), m2 = h⁻¹·tridiag(−1, 2, −1) (corners 1/h):

    Q = e^{2γ_st} [ m0 ⊗ q3 + e^{γ_t} m1 ⊗ q2 + e^{2γ_t} m2 ⊗ q1 ]      (time-major, blocks = nt)

θ = (log r_s, log r_t, log σ) — spatial range, temporal range, marginal standard deviation — with
γ_s = ½ log 8ν_s − log r_s, γ_t = log r_t − ½ log 8ν_t + 2γ_s, γ_st = ½ log c1 − ½γ_t − γ_s − log σ,
c1 = Γ(ν_t)Γ(ν_s)/(Γ(α_t)Γ(2)(4π)^{3/2}) (METHOD.md §9.2). Q = Σ_j c_j(θ) K_j with the nine fixed
K_j = m_a ⊗ F_b (F = C0, G, g2, g3). Priors (METHOD.md §9.3): r_s ~ pc.range(the SPDE object's
prior.range, d = 2), σ ~ pc.sd(its prior.sigma), r_t ~ pc.range(u_t, p_t, d = 1) with
``prior.range.time = c(u_t, p_t)``, by default u_t = half the time span, p_t = 0.5 (adelia's choice:
R-INLA has no default for this model); initial values log r0 + 1, log(u_t) + 1, log σ0 − 1, as the
SPDE model. Labels "Spatial range for x", "Temporal range for x", "Stdev for x".

**Coregional**: x_0 = σ_0 u_0, x_1 = λ_01 x_0 + σ_1 u_1, x_2 = λ_12 x_0 + λ_02 x_1 + σ_2 u_2 with u_m
independent unit-variance DEMF fields, i.e. Q = Σ_m (E_m,:ᵀ E_m,:) ⊗ P_m with E = Λ⁻¹ unit lower
triangular and P_m the field of θ_m = (log r_s,m, log r_t,m, log σ_m); each time block holds
[x_0,t; x_1,t; …] (size k·ns). θ = [θ_0; …; θ_{k−1}; λ] with λ = (λ_01) or (λ_01, λ_02, λ_12) and
λ ~ normal(0, precision 1) (adelia's choice); labels "Spatial range 1 for x", …, "Lambda01 for x".
log|Q| = Σ_m log|P_m| (unit-determinant map; each log|P_m| without factorisation, METHOD.md §9–10).
Only planar meshes are supported (the sphere's constant c_s(κ) is not).
"""

from __future__ import annotations

__all__ = ["demf_structure", "coregional_structure", "spacetime_hypers"]

import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.latent.spde import SPDE
from adelia.compiler.likelihoods import HyperSpec
from adelia.compiler.priors import LOG_RANGE, LOG_SD
from adelia.errors import DataError, ModelError
from adelia.runtime.coregional import (coregional_prior_logdet, demf_field, demf_logdet, demf_temporal,
                                       fem_powers, lmc_weights)

ARGS = ("spde", "time", "ntime", "time.step", "prior.range.time")
#: (temporal generator a, basis matrix b) pairs with a nonzero weight: m0 ⊗ (C0, G, g2, g3), m1 ⊗ (C0, G, g2),
#: m2 ⊗ (C0, G) — the rows q3, q2, q1 of demf_field
PAIRS = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1))


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------

def _spde(term: TermInput, model: str) -> SPDE:
    obj = term.args.get("spde")
    if not isinstance(obj, SPDE):
        raise ModelError(f"f({term.name}, model = \"{model}\") needs spde = <an adelia "
                         "SPDE object> (its mesh, projector and spatial priors)",
                         span=term.describe("spde" if obj is not None else "model"),
                         hint="spde = SPDE(mesh, prior_range=(r0, p), prior_sigma=(s0, p), loc=coords), passed to "
                              "fit(..., spde=obj); in a model file: spde sp = spde(m, prior.range = c(...), ...)")
    if obj.mesh is None or obj.dim != 2 or obj.mesh.nodes.shape[1] != 2:
        raise ModelError("the space–time models need an SPDE on a planar (2-D) mesh", span=term.describe("spde"))
    return obj


def _time_grid(args: dict, m: int | None = None, term: TermInput | None = None):
    """(0-based time point of each row (−1: NA), nt, h) from the ``time`` column."""
    t = args.get("time")
    where = (lambda key: term.describe(key)) if term is not None else (lambda key: None)
    if t is None:
        if term is None:
            return None, None, 1.0
        raise ModelError(f"f({term.name}) needs time = <column of time points>", span=where("model"),
                         hint="time points are integers on a regular grid: time = t")
    t = np.asarray(t, dtype=float)
    ok = ~np.isnan(t)
    if term is not None and (t.shape != (m,) or np.any(t[ok] != np.round(t[ok]))):
        raise DataError(f"time of f({term.name}) must be a data column of integer time points", span=where("time"))
    h = float(args.get("time.step") or 1.0)
    ntime = args.get("ntime")
    if ntime is not None:
        start, nt = 1, int(ntime)
    else:
        start = int(np.min(t[ok])) if ok.any() else 1
        nt = int(np.max(t[ok])) - start + 1 if ok.any() else 0
    idx = np.where(ok, np.nan_to_num(t) - start, -1).astype(np.int64)
    if term is not None:
        if nt < 2:
            raise DataError(f"the time grid of f({term.name}) has {nt} point(s); the space–time models need at least 2",
                            span=where("time"))
        bad = np.flatnonzero(ok & ((idx < 0) | (idx >= nt)))
        if bad.size:
            raise DataError(f"time of f({term.name}) has values outside 1..ntime = {nt} (rows {bad[:5].tolist()})",
                            span=where("time"))
        if h <= 0:
            raise ModelError(f"time.step of f({term.name}) must be positive, got {h}", span=where("time.step"))
    return idx, nt, h


def _fields(args: dict, m: int | None = None, term: TermInput | None = None):
    """(0-based field of each row, k) from ``field`` (1..k)."""
    v = args.get("field")
    if v is None:
        if term is None:
            return None, 2
        raise ModelError(f"f({term.name}, model = \"coregional\") needs field = <column of 1..k>",
                         span=term.describe("model"), hint="field says which of the k variables each row observes")
    v = np.asarray(v, dtype=float)
    ok = ~np.isnan(v)
    k = int(args.get("nfield") or (np.max(v[ok]) if ok.any() else 2))
    if term is not None:
        if v.shape != (m,) or np.any(v[ok] != np.round(v[ok])) or np.any(v[ok] < 1) or np.any(v[ok] > k):
            raise DataError(f"field of f({term.name}) must be a data column of integers 1..k", span=term.describe("field"))
        if k not in (2, 3):
            raise ModelError(f"coregional models have k = 2 or 3 fields, got k = {k}", span=term.describe("field"))
    return np.where(ok, np.nan_to_num(v) - 1, -1).astype(np.int64), k


# ---------------------------------------------------------------------------------------------
# hyperparameters
# ---------------------------------------------------------------------------------------------

def _pair(value, default):
    try:
        a, p = (float(x) for x in value)
        return a, p
    except (TypeError, ValueError):
        return default


def _field_hypers(obj, args: dict, suffix: str) -> list[HyperSpec]:
    r0, pr = obj.prior_range if obj is not None else (1.0, 0.5)
    s0, ps = obj.prior_sigma if obj is not None else (1.0, 0.5)
    _, nt, h = _time_grid(args)
    ut, pt = _pair(args.get("prior.range.time"), ((nt or 2) * h / 2.0, 0.5))
    return [
        HyperSpec(f"range{suffix.strip()}", f"Spatial range{suffix} for {{name}}", f"log(Spatial range{suffix}) for {{name}}",
                  ("pc.range", (r0, pr, 2.0)), math.log(r0) + 1.0, LOG_RANGE, jnp.exp),
        HyperSpec(f"range.time{suffix.strip()}", f"Temporal range{suffix} for {{name}}",
                  f"log(Temporal range{suffix}) for {{name}}", ("pc.range", (ut, pt, 1.0)), math.log(ut) + 1.0,
                  LOG_RANGE, jnp.exp),
        HyperSpec(f"stdev{suffix.strip()}", f"Stdev{suffix} for {{name}}", f"log(Stdev{suffix}) for {{name}}",
                  ("pc.sd", (s0, ps)), math.log(s0) - 1.0, LOG_SD, jnp.exp),
    ]


def spacetime_hypers(coregional: bool):
    def hypers(args: dict | None) -> tuple[HyperSpec, ...]:
        args = args or {}
        obj = args.get("spde") if isinstance(args.get("spde"), SPDE) else None
        try:
            if not coregional:
                return tuple(_field_hypers(obj, args, ""))
            _, k = _fields(args)
            k = k if k in (2, 3) else 2
            out = [h for m in range(k) for h in _field_hypers(obj, args, f" {m + 1}")]
            for a, b in ((0, 1), (0, 2), (1, 2))[: k * (k - 1) // 2]:
                out.append(HyperSpec(f"lambda{a}{b}", f"Lambda{a}{b} for {{name}}", f"Lambda{a}{b} for {{name}}",
                                     ("normal", (0.0, 1.0)), 0.0, "real", lambda t: t))
            return tuple(out)
        except (TypeError, ValueError):
            return ()                       # the builder reports the bad argument with its position
    return hypers


# ---------------------------------------------------------------------------------------------
# structures
# ---------------------------------------------------------------------------------------------

def _temporal_matrices(nt: int, h: float) -> list[sp.csr_matrix]:
    diag, lower = demf_temporal(nt, h)
    return [sp.diags([lower[a], diag[a], lower[a]], [-1, 0, 1], format="csr") for a in range(3)]


def _basis(obj: SPDE):
    c0 = obj.fem.c0
    G = sp.csr_matrix(obj.fem.G)
    g2 = (G @ sp.diags(1.0 / c0) @ G).tocsr()
    g3 = (G @ sp.diags(1.0 / c0) @ g2).tocsr()
    return [sp.diags(c0, format="csr"), G, g2, g3], fem_powers(c0, G.toarray())


def _observations(term: TermInput, obj: SPDE, t_idx: np.ndarray, block: int, offset: np.ndarray,
                  n_total: int) -> sp.csr_matrix:
    """Row i: the spatial projector row of site i placed at columns t_i·block + offset_i."""
    projector, node = obj._observation_map(term)
    m = len(t_idx)
    if projector is None:
        ok = np.flatnonzero(node >= 0)
        projector = sp.csr_matrix((np.ones(ok.size), (ok, node[ok])), shape=(m, obj.n))
    S = sp.coo_matrix(projector)
    keep = t_idx[S.row] >= 0
    rows, cols, vals = S.row[keep], S.col[keep], S.data[keep]
    cols = cols + t_idx[rows] * block + offset[rows]
    return sp.csr_matrix((vals, (rows, cols)), shape=(m, n_total))


def demf_structure(obj: SPDE, nt: int, h: float, projector: sp.csr_matrix | None = None) -> Structure:
    ns = obj.n
    F, gen = _basis(obj)
    M = _temporal_matrices(nt, h)
    matrices = tuple(sp.kron(M[a], F[b], format="csr") for a, b in PAIRS)
    coefs = tuple((lambda th, a=a, b=b: demf_field(th)[a, b]) for a, b in PAIRS)
    m_diag, m_lower = (jnp.asarray(x) for x in demf_temporal(nt, h))
    n = nt * ns
    return Structure(n, matrices, coefs, 0, np.zeros((0, n)), np.arange(1, n + 1), np.full(0, -1, np.int64),
                     logdet=lambda th: demf_logdet(th, gen, m_diag, m_lower), logdet_star=0.0,
                     projector=projector, blocks=nt)


def coregional_structure(obj: SPDE, nt: int, h: float, k: int, projector: sp.csr_matrix | None = None) -> Structure:
    ns = obj.n
    F, gen = _basis(obj)
    M = _temporal_matrices(nt, h)
    matrices, coefs = [], []

    def weights(th):
        fields = jax.vmap(demf_field)(th[: 3 * k].reshape(k, 3))          # (k, 3, 4)
        W = lmc_weights(th[3 * k:], k)                                    # (k, k, k): W[m] = E_m,:ᵀ E_m,:
        return jnp.einsum("mpq,mlc->lpqc", W, fields)                     # (3, k, k, 4)

    for p in range(k):
        for q in range(p, k):
            E = sp.csr_matrix(([1.0] * (1 if p == q else 2), ([p] if p == q else [p, q], [q] if p == q else [q, p])),
                              shape=(k, k))
            for a, b in PAIRS:
                matrices.append(sp.kron(M[a], sp.kron(E, F[b]), format="csr"))
                coefs.append(lambda th, a=a, b=b, p=p, q=q: weights(th)[a, p, q, b])
    m_diag, m_lower = (jnp.asarray(x) for x in demf_temporal(nt, h))
    data = SimpleNamespace(gen_data=gen, m_diag=m_diag, m_lower=m_lower)
    n = nt * k * ns
    return Structure(n, tuple(matrices), tuple(coefs), 0, np.zeros((0, n)), np.arange(1, n + 1),
                     np.full(0, -1, np.int64), logdet=lambda th: coregional_prior_logdet(th, data), logdet_star=0.0,
                     projector=projector, blocks=nt)


def build_demf(term: TermInput) -> Structure:
    obj = _spde(term, "demf")
    m = len(term.index)
    t_idx, nt, h = _time_grid(term.args, m, term)
    A = _observations(term, obj, t_idx, obj.n, np.zeros(m, np.int64), nt * obj.n)
    s = demf_structure(obj, nt, h, A)
    return _with_rows(s, m)


def build_coregional(term: TermInput) -> Structure:
    obj = _spde(term, "coregional")
    m = len(term.index)
    t_idx, nt, h = _time_grid(term.args, m, term)
    v, k = _fields(term.args, m, term)
    t_idx = np.where(v >= 0, t_idx, -1)
    A = _observations(term, obj, t_idx, k * obj.n, np.maximum(v, 0) * obj.n, nt * k * obj.n)
    s = coregional_structure(obj, nt, h, k, A)
    return _with_rows(s, m)


def _with_rows(s: Structure, m: int) -> Structure:
    import dataclasses
    return dataclasses.replace(s, node_of_obs=np.full(m, -1, np.int64))


LATENT.register("demf", "spacetime")(LatentModel("demf", spacetime_hypers(False), build_demf, ARGS, doc=__doc__))
LATENT.register("coregional")(LatentModel(
    "coregional", spacetime_hypers(True), build_coregional, ARGS + ("field", "nfield"),
    doc="k = 2 or 3 DEMF(1, 2, 1) space–time fields tied by a linear model of coregionalisation "
        "(METHOD.md §10); see ``demf`` (adelia.compiler.latent.spacetime) for the arguments and priors.\n"))
