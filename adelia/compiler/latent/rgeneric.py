"""``rgeneric``: a latent model defined by the user in Python, R-INLA's ``inla.rgeneric.define``
(Gómez-Rubio 2020, ch. 11; R-INLA ``inla.doc("rgeneric")``) with JAX functions instead of R ones.

    f(idx, model = "rgeneric", rmodel = obj)     # fit(..., obj = my_model)

The index holds node numbers 1..n (or 0..n−1). ``obj`` is an object with these attributes (or a
dict with these keys); every function takes θ, a JAX vector on the model's internal scale, and
must be written with ``jax.numpy`` (it is traced and differentiated):

``n``
    number of latent nodes.
``theta``
    initial values of θ (its length d is the number of hyperparameters; R-INLA's ``initial``).
``Q`` — one of two forms
    * ``matrices`` (fixed n × n symmetric ``scipy.sparse`` K_1..K_J) and ``coefs(theta)`` returning
      the J coefficients: Q(θ) = Σ_j c_j(θ) K_j (adelia's own form, any number of terms);
    * ``graph`` (an n × n ``scipy.sparse`` whose nonzeros are Q's pattern) and ``Q(theta)`` returning
      the values of Q on the upper triangle of that pattern, diagonal included, in the order of
      ``scipy.sparse.triu(graph).tocoo()`` (R-INLA's ``graph`` and ``Q`` commands). Each pattern
      entry becomes its own term of the sum above and ``Q(theta)`` is traced once per entry, so
      this form suits small models (tens of nodes); use the first form for larger ones.
``log_prior(theta)``
    log π(θ) on this internal scale (Jacobian included), all d hyperparameters jointly.
``log_norm_const(theta)`` (optional)
    −(n − r)/2 log 2π + ½ log|Q(θ)|*, when it has a closed form; without it the runtime factorises Q.
``names`` (optional)
    d labels; the rows become "<label> for idx" (default "Theta1 for idx", …), θ reported as is.
``rank_def``, ``constraints`` (optional)
    dimension of Q's null space (default 0) and rows C of C x = 0 (k × n).

Every field is checked when the model is compiled (shape, symmetry, finiteness of the functions at
the initial θ); an error names the field and what it should be. The prior of θ1 is this
``log_prior`` (``rgeneric`` in the prior table), θ2… carry ``none``. The compiled programs are not
reused across fits with a user model (its functions cannot be compared), so each fit compiles anew.
"""

from __future__ import annotations

__all__ = ["rgeneric_hypers", "rgeneric_structure"]

import math
import uuid
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from adelia.compiler.latent.base import LATENT, LatentModel, Structure, TermInput
from adelia.compiler.latent.indexing import row_numbers
from adelia.compiler.likelihoods import HyperSpec
from adelia.compiler.priors import USER_JOINT
from adelia.errors import ModelError

_MISSING = object()


def _field(obj, key: str, default=_MISSING):
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _initial(obj) -> np.ndarray | None:
    theta = _field(obj, "theta", None)
    try:
        arr = np.asarray(theta, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    return arr if theta is not None and arr.size and np.all(np.isfinite(arr)) else None


def rgeneric_hypers(args: dict | None) -> tuple[HyperSpec, ...]:
    obj = (args or {}).get("rmodel")
    theta = _initial(obj) if obj is not None else None
    if theta is None:
        return ()                   # the builder reports what is wrong with the object
    names = _field(obj, "names", None)
    names = list(names) if names is not None and len(list(names)) == theta.size else None
    out = []
    for j, t0 in enumerate(theta):
        label = str(names[j]) if names else f"Theta{j + 1}"
        out.append(HyperSpec(f"theta{j + 1}", f"{label} for {{name}}", f"{label} for {{name}}",
                             ("rgeneric", ()) if j == 0 else ("none", ()), float(t0), USER_JOINT, lambda t: t))
    return tuple(out)


def _fail(term: TermInput, what: str, hint: str | None = None):
    raise ModelError(f"the rgeneric model of f({term.name}): {what}", span=term.describe("rmodel"),
                     hint=hint or "see the contract in adelia.compiler.latent.rgeneric's docstring")


def _call(term: TermInput, fn, theta, what: str):
    try:
        out = np.asarray(fn(jnp.asarray(theta)), dtype=float)
    except Exception as err:            # noqa: BLE001 — a user function: report it where it was given
        _fail(term, f"{what}(theta) failed at the initial theta {theta.tolist()}: {type(err).__name__}: {err}")
    if not np.all(np.isfinite(out)):
        _fail(term, f"{what}(theta) is not finite at the initial theta {theta.tolist()}")
    return out


def _symmetric_sparse(term: TermInput, K, n: int, what: str) -> sp.csr_matrix:
    if not (sp.issparse(K) or isinstance(K, np.ndarray)):
        _fail(term, f"{what} must be a scipy.sparse matrix, got {type(K).__name__}")
    K = sp.csr_matrix(K, dtype=float)
    if K.shape != (n, n):
        _fail(term, f"{what} has shape {K.shape}, expected ({n}, {n}) (n = {n})")
    if abs(K - K.T).max() > 1e-12 * max(abs(K).max(), 1.0):
        _fail(term, f"{what} is not symmetric")
    return K


def rgeneric_structure(term: TermInput, obj: Any) -> Structure:
    n = _field(obj, "n", None)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        _fail(term, f"n must be a positive integer (the number of latent nodes), got {n!r}")
    n = int(n)
    theta = _initial(obj)
    if theta is None:
        _fail(term, f"theta must hold the finite initial values of the hyperparameters, got {_field(obj, 'theta', None)!r}")
    log_prior = _field(obj, "log_prior", None)
    if not callable(log_prior):
        _fail(term, "log_prior(theta) is missing (the joint log prior of θ on its internal scale)")
    lp = _call(term, log_prior, theta, "log_prior")
    if lp.size != 1:
        _fail(term, f"log_prior(theta) must return one number, got shape {lp.shape}")

    matrices = _field(obj, "matrices", None)
    graph = _field(obj, "graph", None)
    if matrices is not None:
        coefs_fn = _field(obj, "coefs", None)
        if not callable(coefs_fn):
            _fail(term, "matrices are given but coefs(theta) is missing")
        Ks = tuple(_symmetric_sparse(term, K, n, f"matrices[{j}]") for j, K in enumerate(matrices))
        c0 = _call(term, coefs_fn, theta, "coefs").reshape(-1)
        if c0.size != len(Ks):
            _fail(term, f"coefs(theta) returned {c0.size} values for {len(Ks)} matrices")
        coefs = tuple((lambda th, j=j: jnp.reshape(coefs_fn(th), (-1,))[j]) for j in range(len(Ks)))
    elif graph is not None:
        q_fn = _field(obj, "Q", None)
        if not callable(q_fn):
            _fail(term, "graph is given but Q(theta) is missing")
        G = _symmetric_sparse(term, graph, n, "graph")
        upper = sp.triu(G).tocoo()
        upper = sp.coo_matrix((np.ones(upper.nnz), (upper.row, upper.col)), shape=(n, n))
        q0 = _call(term, q_fn, theta, "Q").reshape(-1)
        if q0.size != upper.nnz:
            _fail(term, f"Q(theta) returned {q0.size} values, but the upper triangle of graph (diagonal included) "
                        f"has {upper.nnz} entries", hint="return the values in the order of "
                                                         "scipy.sparse.triu(graph).tocoo()")
        Ks = []
        for i, j in zip(upper.row, upper.col):
            rows, cols = ([i], [j]) if i == j else ([i, j], [j, i])
            Ks.append(sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)))
        Ks = tuple(Ks)
        coefs = tuple((lambda th, j=j: jnp.reshape(q_fn(th), (-1,))[j]) for j in range(len(Ks)))
    else:
        _fail(term, "give Q as matrices + coefs(theta), or as graph + Q(theta)")

    rank_def = _field(obj, "rank_def", 0)
    C = _field(obj, "constraints", None)
    C = np.zeros((0, n)) if C is None else np.atleast_2d(np.asarray(C, dtype=float))
    if C.shape[1] != n:
        _fail(term, f"constraints must have n = {n} columns, got shape {C.shape}")
    if term.args.get("constr"):
        C = np.vstack([C, np.ones((1, n))])

    lnc = _field(obj, "log_norm_const", None)
    logdet = None
    if lnc is not None:
        if not callable(lnc):
            _fail(term, "log_norm_const must be a function of theta")
        _call(term, lnc, theta, "log_norm_const")
        const = (n - int(rank_def)) * math.log(2.0 * math.pi)
        logdet = lambda th: 2.0 * jnp.reshape(lnc(th), ()) + const       # log|Q|*, as Structure wants

    idx = row_numbers(term, n, "nodes of the rgeneric model")
    context = {"log_prior": lambda th: jnp.reshape(log_prior(th), ()), "model_token": uuid.uuid4().hex[:12]}
    return Structure(n, Ks, coefs, int(rank_def), C, np.arange(1, n + 1), idx, logdet=logdet, logdet_star=0.0,
                     prior_context=context)


def build(term: TermInput) -> Structure:
    obj = term.args.get("rmodel")
    if obj is None:
        raise ModelError(f"f({term.name}, model = \"rgeneric\") needs rmodel = <your model object>",
                         span=term.describe("model"),
                         hint="define n, theta, matrices + coefs (or graph + Q) and log_prior, and pass the "
                              "object to fit(..., name=obj)")
    return rgeneric_structure(term, obj)


LATENT.register("rgeneric")(LatentModel("rgeneric", rgeneric_hypers, build, ("rmodel",), doc=__doc__))
