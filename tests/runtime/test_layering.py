"""The layering the README promises: the runtime owns its problem type and never reaches up
into the compiler, the DSL, the results layer or the front ends."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[2] / "adelia" / "runtime"
FORBIDDEN = ("adelia.compiler", "adelia.dsl", "adelia.results", "adelia.api", "adelia.cli", "adelia.adl_run")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:                       # relative: resolve against adelia.runtime
                base = ["adelia", "runtime"][: max(0, 2 - (node.level - 1))]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found += [(node.lineno, module)] + [(node.lineno, f"{module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__"):
            found += [(node.lineno, a.value) for a in node.args if isinstance(a, ast.Constant)]
    return found


@pytest.mark.parametrize("path", sorted(RUNTIME.glob("*.py")), ids=lambda p: p.name)
def test_runtime_module_imports_no_upper_layer(path):
    bad = [(line, name) for line, name in _imports(path)
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, f"{path.name} imports {bad}"


def test_the_check_sees_imports():
    """The checker itself: each import form is caught (so the test above can fail)."""
    import tempfile

    src = ("import adelia.compiler.model\nfrom adelia.dsl import ir\nfrom ..results import x\n"
           "import importlib\nimportlib.import_module('adelia.api')\n")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.py"
        p.write_text(src)
        names = {n for _, n in _imports(p)}
    assert {"adelia.compiler.model", "adelia.dsl", "adelia.results", "adelia.api"} <= names
