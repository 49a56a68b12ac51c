"""Several devices for one fit (adelia.runtime.devices): θ batches sharded over devices, the
BTA path partitioned over devices, and a two-process run over loopback.

The pytest process has already started JAX with one CPU device, so every multi-device check
runs in a subprocess (this file run as a script) with
``XLA_FLAGS=--xla_force_host_platform_device_count=K`` or as two processes joined by
``jax.distributed`` (gloo collectives on CPU).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
TOL = 1e-8


def _data(seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), 5)
    x = rng.normal(size=g.size)
    y = 0.5 + 0.8 * x + rng.normal(size=12)[g] * 0.7 + rng.normal(size=g.size) * 0.5
    return pd.DataFrame({"y": y, "x": x, "g": g})


FORMULA = 'y ~ 1 + x + f(g, model = "iid")'


def _summary(dt) -> dict:
    """Every float variable of the result and its marginal likelihood, as lists."""
    out = {}
    for node in dt.subtree:
        for k, v in node.ds.data_vars.items():
            if np.asarray(v.values).dtype.kind == "f":
                out[f"{node.path}/{k}"] = np.asarray(v.values, float).ravel().tolist()
    out["mlik"] = [dt["inla"].attrs["mlik_integration"], dt["inla"].attrs["mlik_gaussian"]]
    return out


def _max_rel(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    worst = 0.0
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.shape == y.shape, k
        if x.size:
            worst = max(worst, float(np.max(np.abs(x - y) / (np.abs(y) + 1e-6))))
    return worst


def _fit(**kw):
    import adelia

    return _summary(adelia.fit(FORMULA, _data(), n_samples=20, int_strategy="grid", **kw))


# ---------------------------------------------------------------------------
# subprocess bodies
# ---------------------------------------------------------------------------


def _theta_parallel() -> dict:
    """A fit on 2 devices (θ batches sharded) against the same fit on one."""
    import jax

    from adelia.runtime import inference

    serial = _fit(devices=1)
    sharded = _fit()   # devices=None: both devices
    used = [cp for cp in inference._CACHE.values() if getattr(cp, "_theta_batches", None)]
    return {"max_rel": _max_rel(sharded, serial), "devices": len(jax.devices()),
            "sharded_programs": len(used)}


def _partitioned_bta() -> dict:
    """The BTA Laplace problem with its time blocks on 2 devices against one device."""
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(ROOT / "tests" / "runtime"))
    from test_laplace_bta import FORMULAS, _model

    from adelia.runtime.devices import plan
    from adelia.runtime.laplace_bta import BTALaplaceProblem

    family, formula = FORMULAS[1]
    model = _model(formula, family)
    single, parted = BTALaplaceProblem(model), BTALaplaceProblem(model, jax.devices())

    def evaluate(prob):
        def f(th):
            g = prob.gaussian(th)
            return prob.log_posterior(th), jax.grad(prob.log_posterior)(th), g.sd, g.eta_sd, prob.mode(th)
        return jax.jit(f)

    th = jnp.asarray([t.initial for t in model.thetas]) + 0.1
    a, b = evaluate(single)(th), evaluate(parted)(th)
    rel = max(float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y))) for x, y in zip(b, a))
    return {"max_rel": rel, "partitions": int(parted.mesh.devices.size), "nt": parted.layout.nt,
            "plan_bta_named": plan(2, "bta").partition is not None, "plan_bta_auto": plan(None, "bta").batch is not None,
            "plan_dense": plan(2, "dense").batch is not None}


def _distributed_worker() -> dict:
    """One of two processes: the same fit with distributed=True (θ batches over both)."""
    import jax

    out = _fit(distributed=True)
    return {"result": out, "processes": jax.process_count(), "devices": len(jax.devices())}


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------


def _script(mode: str, env_extra: dict, timeout=240) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **env_extra)
    proc = subprocess.run([sys.executable, __file__, mode], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_theta_batches_sharded_over_two_devices_equal_the_serial_fit():
    r = _script("theta", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert r["devices"] == 2 and r["sharded_programs"] == 1
    assert r["max_rel"] < TOL


def test_partitioned_bta_laplace_equals_single_device():
    r = _script("bta", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert r["nt"] == 5 and r["partitions"] == 2
    assert r["max_rel"] < 1e-10
    assert r["plan_bta_named"] and r["plan_bta_auto"] and r["plan_dense"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_over_loopback_equal_one_process(tmp_path):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", ADELIA_COORDINATOR=f"127.0.0.1:{_free_port()}",
               ADELIA_NUM_PROCESSES="2")
    env.pop("XLA_FLAGS", None)
    # output to files, not pipes: a process blocked on a full pipe would stall the other at
    # jax.distributed's shutdown barrier
    files = [(tmp_path / f"out{i}", tmp_path / f"err{i}") for i in range(2)]
    procs = []
    for i, (out, err) in enumerate(files):
        with open(out, "w") as fo, open(err, "w") as fe:
            procs.append(subprocess.Popen([sys.executable, __file__, "worker"], env=dict(env, ADELIA_PROCESS_ID=str(i)),
                                          stdout=fo, stderr=fe, cwd=ROOT))
    try:
        for p in procs:
            p.wait(timeout=240)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outs = []
    for p, (out, err) in zip(procs, files):
        assert p.returncode == 0, err.read_text()[-3000:]
        outs.append(json.loads(out.read_text().strip().splitlines()[-1]))
    single = _fit()   # this process: one device, the serial path
    for o in outs:
        assert o["processes"] == 2 and o["devices"] == 2
        assert _max_rel(o["result"], single) < TOL


def test_devices_option_is_checked():
    from adelia.errors import ModelError
    from adelia.runtime.devices import resolve_devices

    assert resolve_devices(None) is None and resolve_devices(1) is None   # one device: serial path
    with pytest.raises(ModelError, match="devices = 5, but JAX sees 1 device"):
        resolve_devices(5)
    with pytest.raises(ModelError, match="devices must be None, an int or a list of jax devices"):
        resolve_devices(["cpu"])


EXAMPLES = ROOT / "examples"


def _seeds(tmp_path) -> Path:
    import shutil

    for name in ("seeds.adl", "seeds.csv"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / "seeds.adl"


def test_cli_devices_option_reaches_the_fit(tmp_path):
    from click.testing import CliRunner

    from adelia.cli import cli

    res = CliRunner().invoke(cli, ["fit", str(_seeds(tmp_path)), "--devices", "3", "-q"])
    assert res.exit_code != 0
    assert "devices = 3, but JAX sees 1 device" in res.output


def test_cli_distributed_single_process(tmp_path):
    """``adelia fit --distributed`` as a one-process run with an explicit coordinator."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", ADELIA_COORDINATOR=f"127.0.0.1:{_free_port()}",
               ADELIA_NUM_PROCESSES="1", ADELIA_PROCESS_ID="0")
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, "-c", "from adelia.cli import main; main()", "fit", str(_seeds(tmp_path)),
               "--distributed", "-q", "--samples", "10"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(Intercept)" in proc.stdout


if __name__ == "__main__":
    body = {"theta": _theta_parallel, "bta": _partitioned_bta, "worker": _distributed_worker}[sys.argv[1]]
    print(json.dumps(body()), flush=True)
