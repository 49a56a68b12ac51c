"""The analysed LALR parsers kept by Lark's cache (adelia.dsl.grammar_files): built once, then
loaded; the same parses either way; no cache where the switch is off or the folder unwritable."""

import os
import subprocess
import sys

import pytest

from adelia.dsl import grammar_files

FORMULA = "y ~ 1 + x + f(region, model = 'bym2', graph = g, hyper = list(prec = list(prior = 'pc.prec', param = c(1, 0.01))))"


def _parse_in_new_process(env) -> str:
    code = ("from adelia.dsl.parser import parse_formula; from adelia.dsl.printer import print_formula; "
            f"print(print_formula(parse_formula({FORMULA!r})))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout


def test_parser_is_cached_and_loads_the_same(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("ADELIA_COMPILATION_CACHE", None)
    first = _parse_in_new_process(env)
    files = list((tmp_path / "adelia" / "lark").iterdir())
    assert [f.name.startswith("formula-lark") for f in files] == [True]
    assert _parse_in_new_process(env) == first        # loaded from the cache file


@pytest.mark.parametrize("switch", ["off", "0", "false"])
def test_switched_off_with_the_compilation_cache(monkeypatch, switch):
    monkeypatch.setenv("ADELIA_COMPILATION_CACHE", switch)
    assert grammar_files._cache_file("formula.lark") is False


def test_unwritable_folder_means_no_cache(monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.delenv("ADELIA_COMPILATION_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert grammar_files._cache_file("formula.lark") is False
    assert grammar_files.open_grammar("formula.lark").parse("y ~ x") is not None
