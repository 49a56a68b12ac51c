"""Triangle meshes for SPDE models: P1 finite-element matrices and the observation projector.

Own numpy/scipy code (ECOSYSTEM.md §6.1). For a triangle with vertices p₁, p₂, p₃, area |T| and
e_i the edge opposite vertex i (e₁ = p₃ − p₂, e₂ = p₁ − p₃, e₃ = p₂ − p₁):

    G_T[i, j] = (e_i · e_j) / (4 |T|)            stiffness
    C_T[i, j] = |T| / 12 · (1 + δ_ij)            consistent mass
    c0        = row sums of C = |T|/3 per vertex lumped (diagonal) mass

scattered and summed over triangles. The same formulas hold for flat triangles embedded in ℝ³
(a sphere mesh). The SPDE matrices of Lindgren, Rue & Lindström (2011) are g1 = G,
g2 = G c0⁻¹ G.

The projector row of a point inside triangle T holds its barycentric coordinates at T's three
vertices (rows sum to 1), which is what R-INLA's ``inla.spde.make.A`` / ``fm_basis`` return.
"""

from __future__ import annotations

__all__ = ["Mesh", "FEM", "fem_matrices", "projector"]

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from adelia.errors import DataError

#: points this far outside a triangle (in barycentric units) still count as inside
BARY_TOL = 1e-10


@dataclass(frozen=True)
class FEM:
    C: sp.csr_matrix        # consistent mass matrix
    c0: np.ndarray          # lumped mass (diagonal of C0)
    G: sp.csr_matrix        # stiffness matrix

    @property
    def C0(self) -> sp.csr_matrix:
        return sp.diags(self.c0, format="csr")

    @property
    def G2(self) -> sp.csr_matrix:
        """G c0⁻¹ G."""
        return (self.G @ sp.diags(1.0 / self.c0) @ self.G).tocsr()


def _check(nodes: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nodes = np.asarray(nodes, dtype=float)
    tri = np.asarray(triangles)
    if nodes.ndim != 2 or nodes.shape[1] not in (2, 3):
        raise DataError(f"mesh nodes must be an (n, 2) or (n, 3) array, got shape {nodes.shape}")
    if tri.ndim != 2 or tri.shape[1] != 3 or not np.issubdtype(tri.dtype, np.integer):
        raise DataError(f"mesh triangles must be an (t, 3) integer array, got shape {tri.shape} ({tri.dtype})")
    if tri.size and (tri.min() < 0 or tri.max() >= len(nodes)):
        raise DataError(f"mesh triangles refer to vertices outside 0..{len(nodes) - 1}",
                        hint="triangles are 0-based vertex indices; subtract 1 from R-INLA's 1-based ones")
    return nodes, tri.astype(np.int64)


def fem_matrices(nodes: np.ndarray, triangles: np.ndarray) -> FEM:
    """P1 mass and stiffness matrices of a triangle mesh (0-based triangles)."""
    nodes, tri = _check(nodes, triangles)
    n = len(nodes)
    p = nodes[tri]                                          # (t, 3, dim)
    e = np.stack([p[:, 2] - p[:, 1], p[:, 0] - p[:, 2], p[:, 1] - p[:, 0]], axis=1)
    if nodes.shape[1] == 2:
        area = 0.5 * np.abs(e[:, 2, 0] * (-e[:, 1, 1]) - e[:, 2, 1] * (-e[:, 1, 0]))
    else:
        area = 0.5 * np.linalg.norm(np.cross(e[:, 2], -e[:, 1]), axis=1)
    if np.any(area <= 0):
        bad = np.flatnonzero(area <= 0)
        raise DataError(f"the mesh has {bad.size} degenerate triangle(s) (zero area), first: {bad[:5].tolist()}")
    Gt = np.einsum("tik,tjk->tij", e, e) / (4.0 * area)[:, None, None]
    Ct = (area / 12.0)[:, None, None] * (np.ones((3, 3)) + np.eye(3))[None]
    rows = np.repeat(tri, 3, axis=1).ravel()
    cols = np.tile(tri, (1, 3)).ravel()
    G = sp.coo_matrix((Gt.ravel(), (rows, cols)), shape=(n, n)).tocsr()
    C = sp.coo_matrix((Ct.ravel(), (rows, cols)), shape=(n, n)).tocsr()
    c0 = np.asarray(C.sum(axis=1)).ravel()
    if np.any(c0 <= 0):
        raise DataError(f"{int(np.sum(c0 <= 0))} mesh vertices belong to no triangle",
                        hint="drop unused vertices from the mesh")
    return FEM(C, c0, G)


def _barycentric(p: np.ndarray, tri_pts: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of points p (k, 2) in triangles tri_pts (k, 3, 2)."""
    a, b, c = tri_pts[:, 0], tri_pts[:, 1], tri_pts[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    l1 = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
    l2 = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
    return np.stack([1.0 - l1 - l2, l1, l2], axis=1)


def locate(nodes: np.ndarray, triangles: np.ndarray, points: np.ndarray, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(triangle index or −1, barycentric coordinates) for each point of a planar mesh."""
    nodes, tri = _check(nodes, triangles)
    if nodes.shape[1] != 2:
        raise DataError("the projector is implemented for planar (2-D) meshes only")
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise DataError(f"locations must be an (m, 2) array, got shape {pts.shape}")
    m, t = len(pts), len(tri)
    found = np.full(m, -1, dtype=np.int64)
    bary = np.zeros((m, 3))
    tp = nodes[tri]                                           # (t, 3, 2)
    # candidates: the triangles with the nearest centroids, then every triangle for the rest
    tree = cKDTree(tp.mean(axis=1))
    kk = min(k, t)
    _, cand = tree.query(pts, k=kk)
    cand = cand.reshape(m, kk)
    for j in range(kk):
        todo = np.flatnonzero(found < 0)
        if not todo.size:
            break
        ti = cand[todo, j]
        lam = _barycentric(pts[todo], tp[ti])
        ok = np.all(lam >= -BARY_TOL, axis=1)
        found[todo[ok]] = ti[ok]
        bary[todo[ok]] = lam[ok]
    todo = np.flatnonzero(found < 0)
    for i in todo:                                            # exhaustive search (rare)
        lam = _barycentric(np.repeat(pts[i:i + 1], t, axis=0), tp)
        ok = np.flatnonzero(np.all(lam >= -BARY_TOL, axis=1))
        if ok.size:
            found[i] = ok[0]
            bary[i] = lam[ok[0]]
    bary = np.clip(bary, 0.0, None)
    s = bary.sum(axis=1, keepdims=True)
    bary = np.divide(bary, s, out=np.zeros_like(bary), where=s > 0)
    return found, bary


def projector(nodes: np.ndarray, triangles: np.ndarray, points: np.ndarray, *, outside: str = "error") -> sp.csr_matrix:
    """The (m × n) P1 interpolation matrix from mesh vertices to points.

    ``outside = "error"`` raises for points outside the mesh; ``"zero"`` gives them zero rows
    (R-INLA's behaviour for prediction points off the mesh).
    """
    nodes, tri = _check(nodes, triangles)
    found, bary = locate(nodes, tri, points)
    miss = np.flatnonzero(found < 0)
    if miss.size and outside == "error":
        raise DataError(f"{miss.size} location(s) lie outside the mesh (first rows: {miss[:5].tolist()})",
                        hint="extend the mesh (a larger offset), or pass outside=\"zero\"")
    m, n = len(found), len(nodes)
    inside = found >= 0
    rows = np.repeat(np.flatnonzero(inside), 3)
    cols = tri[found[inside]].ravel()
    A = sp.coo_matrix((bary[inside].ravel(), (rows, cols)), shape=(m, n)).tocsr()
    A.eliminate_zeros()
    return A


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh: ``nodes`` (n, 2) or (n, 3), ``triangles`` (t, 3) 0-based vertex indices."""

    nodes: np.ndarray
    triangles: np.ndarray

    def __post_init__(self):
        nodes, tri = _check(self.nodes, self.triangles)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "triangles", tri)

    @property
    def n(self) -> int:
        return len(self.nodes)

    @property
    def dim(self) -> int:
        """Manifold dimension (2 for planar and sphere meshes)."""
        return 2

    def fem(self) -> FEM:
        return fem_matrices(self.nodes, self.triangles)

    def projector(self, points, *, outside: str = "error") -> sp.csr_matrix:
        return projector(self.nodes, self.triangles, points, outside=outside)

    @classmethod
    def from_delaunay(cls, points, *, offset: float | None = None, spacing: float | None = None) -> "Mesh":
        """A licence-clean planar mesh: the Delaunay triangulation of the points plus, when
        ``offset`` is given, a regular grid of extra vertices (step ``spacing``) covering the
        bounding box enlarged by ``offset`` (a crude stand-in for fmesher's outer extension)."""
        from scipy.spatial import Delaunay

        pts = np.unique(np.asarray(points, dtype=float), axis=0)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
            raise DataError("Mesh.from_delaunay needs at least 3 distinct 2-D points")
        if offset is not None:
            lo, hi = pts.min(axis=0) - offset, pts.max(axis=0) + offset
            step = spacing or offset / 2.0
            gx = np.arange(lo[0], hi[0] + step / 2, step)
            gy = np.arange(lo[1], hi[1] + step / 2, step)
            grid = np.array(np.meshgrid(gx, gy)).reshape(2, -1).T
            d, _ = cKDTree(pts).query(grid)
            pts = np.concatenate([pts, grid[d > step / 2]])
        tri = Delaunay(pts).simplices
        return cls(pts, tri.astype(np.int64))
