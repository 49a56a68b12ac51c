"""adelia.config: the persistent compilation cache switch (checked in fresh processes, since the
setting is read once at import)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

PROBE = "import adelia, jax; print(jax.config.jax_compilation_cache_dir)"


def _cache_dir_in_new_process(env_update: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "ADELIA_COMPILATION_CACHE"}
    env.update(env_update)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_default_is_under_the_user_cache_directory(tmp_path):
    assert _cache_dir_in_new_process({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "adelia" / "jax")
    assert (tmp_path / "adelia" / "jax").is_dir()


@pytest.mark.parametrize("value", ["off", "0", "false", "OFF"])
def test_switched_off(value):
    assert _cache_dir_in_new_process({"ADELIA_COMPILATION_CACHE": value}) == "None"


def test_explicit_directory(tmp_path):
    target = tmp_path / "jit"
    assert _cache_dir_in_new_process({"ADELIA_COMPILATION_CACHE": str(target)}) == str(target)


def test_set_compilation_cache_round_trip(tmp_path):
    import jax

    import adelia

    before = jax.config.jax_compilation_cache_dir
    try:
        assert adelia.set_compilation_cache(tmp_path / "c") == tmp_path / "c"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
        assert adelia.set_compilation_cache(None) is None
        assert jax.config.jax_compilation_cache_dir is None
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_unwritable_directory_disables_the_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    import jax

    import adelia

    before = jax.config.jax_compilation_cache_dir
    try:
        assert adelia.set_compilation_cache(blocker / "sub") is None
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_hugepage_advice_off_inside_a_fit_block_and_restored(monkeypatch):
    from adelia.config import no_hugepage_advice

    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    switch = np._core.multiarray._set_madvise_hugepage
    before = switch(True)
    try:
        with no_hugepage_advice():
            assert switch(False) is False          # was off inside
        assert switch(True) is True                # restored after
        with pytest.raises(RuntimeError):
            with no_hugepage_advice():
                raise RuntimeError
        assert switch(True) is True                # restored after an error too
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
        with no_hugepage_advice():
            assert switch(True) is True            # NumPy's own switch wins
    finally:
        switch(before)
