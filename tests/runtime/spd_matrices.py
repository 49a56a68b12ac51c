"""Sparse SPD test matrices shared by the sparse-path tests: grid SPDE, space–time, random, arrowhead."""

import numpy as np
import scipy.sparse as sp


def lap1d(m):
    return sp.diags([-np.ones(m - 1), 2 * np.ones(m), -np.ones(m - 1)], [-1, 0, 1])


def grid_K(m, kappa2=0.5):
    eye = sp.identity(m)
    return (kappa2 * sp.identity(m * m) + sp.kron(lap1d(m), eye) + sp.kron(eye, lap1d(m))).tocsc()


def spde_grid(m, kappa2=0.5):
    """K², K = κ²I + 5-point Laplacian: the α = 2 SPDE precision with lumped mass on a grid."""
    K = grid_K(m, kappa2)
    return (K @ K).tocsc()


def ar1(nt, rho=0.8):
    d = np.full(nt, 1 + rho**2)
    d[0] = d[-1] = 1.0
    return sp.diags([-rho * np.ones(nt - 1), d, -rho * np.ones(nt - 1)], [-1, 0, 1]) / (1 - rho**2)


def spacetime(m, nt):
    return sp.kron(ar1(nt), spde_grid(m)).tocsc()


def random_spd(n, density, seed):
    rng = np.random.default_rng(seed)
    A = sp.random(n, n, density=density, random_state=rng)
    A = A + A.T
    return (A + sp.diags(np.abs(A).sum(axis=1).A1 + 1.0)).tocsc()


def arrowhead(n, a, seed=0):
    """Sparse body plus a dense arrow of a rows/cols (fixed effects)."""
    rng = np.random.default_rng(seed)
    Q = sp.lil_matrix(random_spd(n, 3 / n, seed))
    for i in range(n - a, n):
        Q[i, : n - a] = rng.uniform(-0.1, 0.1, n - a)
        Q[: n - a, i] = Q[i, : n - a].T
    Q = sp.csc_matrix(Q)
    return (Q + sp.diags(np.abs(Q).sum(axis=1).A1)).tocsc()


def field_with_leaves(m, seed=0):
    """A grid field with, hanging off random field nodes, single nodes (per-observation iid
    effects: leaf supernodes of one column) and small cliques (leaves of several columns) —
    the elimination-tree leaves the batched leaf step of the selected inversion handles."""
    rng = np.random.default_rng(seed)
    K = grid_K(m)
    n0 = K.shape[0]
    blocks, links = [], []
    for size in [1] * (2 * n0) + [2] * 10 + [3] * 8 + [5, 5]:
        hosts = rng.choice(n0, size=rng.integers(1, 4) if size == 1 else 2, replace=False)
        blocks.append(np.eye(size) * 2.0 + 0.3 * np.ones((size, size)))
        links.append((hosts, size))
    n = n0 + sum(b.shape[0] for b in blocks)
    Q = sp.lil_matrix((n, n))
    Q[:n0, :n0] = K
    at = n0
    for b, (hosts, size) in zip(blocks, links):
        Q[at:at + size, at:at + size] = b
        for h in hosts:
            Q[at:at + size, h] = -0.4
            Q[h, at:at + size] = -0.4
        at += size
    Q = sp.csc_matrix(Q)
    return (Q + sp.diags(np.abs(Q).sum(axis=1).A1)).tocsc()
