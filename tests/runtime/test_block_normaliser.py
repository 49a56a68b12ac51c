"""Large blocks' prior normalisers on a sparse factor (adelia.runtime.block_normaliser) against
the dense forms kept for small blocks."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from adelia.runtime import block_normaliser, dense, sparse
from adelia.runtime.laplace import _affine_normaliser

pytestmark = pytest.mark.skipif(not sparse.available(), reason="no CHOLMOD")


def _block(n, k, with_rhs, seed=0):
    rng = np.random.default_rng(seed)
    A = sp.random(n, n, density=0.05, random_state=seed)
    K1 = (A @ A.T + sp.identity(n)).tocsr()
    K2 = sp.diags(rng.uniform(0.5, 2.0, n), format="csr")
    coefs = (lambda th: jnp.exp(th[0]), lambda th: jnp.exp(th[0] + th[1]))
    C = rng.normal(size=(k, n))
    e = rng.normal(size=k) if with_rhs else None
    return SimpleNamespace(n=n, coefs=coefs, matrices=(K1, K2), constraints=C, constraint_rhs=e, rank_def=0)


@pytest.mark.parametrize("k,with_rhs", [(1, False), (3, False), (2, True)])
def test_affine_normaliser_and_its_gradient_equal_the_null_space_form(k, with_rhs):
    s = _block(70, k, with_rhs)
    b = block_normaliser.SparseBlock(s.coefs, s.matrices, s.constraints, s.constraint_rhs)
    for th in (jnp.array([0.2, -0.4]), jnp.array([-1.5, 0.8])):
        assert float(b.affine_normaliser(th)) == pytest.approx(float(_affine_normaliser(s, th)), rel=1e-12)
        np.testing.assert_allclose(jax.grad(b.affine_normaliser)(th), jax.grad(lambda t: _affine_normaliser(s, t))(th),
                                   rtol=1e-10)


def test_half_logdet_and_its_gradient_equal_a_dense_cholesky():
    s = _block(50, 1, False, seed=3)
    b = block_normaliser.SparseBlock(s.coefs, s.matrices)

    def dense_half(th):
        Q = sum(c(th) * jnp.asarray(K.toarray()) for c, K in zip(s.coefs, s.matrices))
        return 0.5 * dense.logdet(dense.factor(Q))

    th = jnp.array([0.7, 0.1])
    assert float(b.half_logdet(th)) == pytest.approx(float(dense_half(th)), rel=1e-12)
    np.testing.assert_allclose(jax.grad(b.half_logdet)(th), jax.grad(dense_half)(th), rtol=1e-10)


def test_small_blocks_stay_dense():
    assert block_normaliser.sparse_block(_block(block_normaliser.DENSE_MAX, 1, False), constrained=True) is None
    assert isinstance(block_normaliser.sparse_block(_block(block_normaliser.DENSE_MAX + 1, 1, False), constrained=True),
                      block_normaliser.SparseBlock)


def test_a_fit_with_a_large_constrained_iid_equals_the_dense_normaliser(monkeypatch):
    """iid with constr = TRUE on 700 levels: the sparse normaliser's fit equals the dense one's."""
    import adelia

    rng = np.random.default_rng(5)
    n_levels, reps = 700, 2
    u = rng.normal(0.0, 0.5, n_levels)
    u -= u.mean()
    idx = np.repeat(np.arange(1, n_levels + 1), reps)
    data = pd.DataFrame({"y": rng.poisson(np.exp(0.3 + u[idx - 1])), "idx": idx})
    formula = "y ~ 1 + f(idx, model = 'iid', constr = TRUE)"
    kw = dict(family="poisson", n_samples=0)
    used = []
    real = block_normaliser.SparseBlock.affine_normaliser
    monkeypatch.setattr(block_normaliser.SparseBlock, "affine_normaliser",
                        lambda self, th: used.append(1) or real(self, th))
    sparse_fit = adelia.summary(adelia.fit(formula, data, **kw))
    assert used
    monkeypatch.setattr(block_normaliser, "DENSE_MAX", 10 ** 6)
    from adelia.runtime import inference

    inference._CACHE.clear()                       # else the compiled model, sparse block included, is reused
    used.clear()
    dense_fit = adelia.summary(adelia.fit(formula, data, **kw))
    assert not used
    pd.testing.assert_frame_equal(sparse_fit, dense_fit, rtol=1e-6)


@pytest.mark.parametrize("constr", [False, True])
def test_an_spde_fit_on_the_sparse_normaliser_equals_the_closed_form(monkeypatch, constr):
    """SPDE meshes beyond EIGEN_MAX_NODES have no closed-form log|Q(θ)| and meshes beyond
    DENSE_MAX go to the sparse block (½ log|Q|, or the affine form under constr = TRUE): forced
    here on a small mesh, the fit (mlik included) equals the closed-form / dense one."""
    import adelia
    from adelia.compiler.latent import spde as spde_module
    from adelia.compiler.mesh import Mesh
    from adelia.runtime import inference

    rng = np.random.default_rng(7)
    loc = rng.uniform(0, 1, size=(60, 2))
    mesh = Mesh.from_delaunay(loc, offset=0.3, spacing=0.2)
    data = pd.DataFrame({"y": np.sin(3 * loc[:, 0]) + loc[:, 1] + rng.normal(scale=0.1, size=60),
                         "site": np.arange(1, 61)})

    def run():
        inference._CACHE.clear()
        sp_obj = spde_module.SPDE(mesh, prior_range=(0.3, 0.5), prior_sigma=(1.0, 0.01), loc=loc, constr=constr)
        dt = adelia.fit("y ~ 1 + f(site, model = sp)", data, n_samples=0, sp=sp_obj)
        return adelia.summary(dt), float(dt["inla"].attrs["mlik_gaussian"])

    reference, mlik_ref = run()
    used = []
    for name in ("half_logdet", "affine_normaliser"):
        real = getattr(block_normaliser.SparseBlock, name)
        monkeypatch.setattr(block_normaliser.SparseBlock, name,
                            lambda self, th, real=real: used.append(1) or real(self, th))
    monkeypatch.setattr(spde_module, "EIGEN_MAX_NODES", 0)
    monkeypatch.setattr(block_normaliser, "DENSE_MAX", 0)
    got, mlik = run()
    assert used
    pd.testing.assert_frame_equal(got, reference, rtol=1e-6)
    assert mlik == pytest.approx(mlik_ref, abs=1e-6)
