"""README.md lists exactly what the registries hold: its marked model, family and prior tables
equal what adelia.registry_tables generates (refresh: python -m adelia.registry_tables --write README.md)."""

from pathlib import Path

import pytest

from adelia.compiler.latent import LATENT
from adelia.compiler.likelihoods import FAMILIES
from adelia.compiler.priors import PRIORS
from adelia.registry_tables import MARKERS, refresh, tables

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(text: str, key: str) -> str:
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    assert text.count(start) == 1 and text.count(end) == 1, f"README.md needs one {start} … {end} block"
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


@pytest.mark.parametrize("key", MARKERS)
def test_readme_table_is_current(key):
    text = README.read_text(encoding="utf-8")
    assert _block(text, key) == tables()[key], \
        "README.md is out of date: run python -m adelia.registry_tables --write README.md"


@pytest.mark.parametrize("key, registry", [("latent-models", LATENT), ("families", FAMILIES), ("priors", PRIORS)])
def test_every_registered_name_has_a_row(key, registry):
    rows = [r for r in tables()[key].splitlines()[2:]]
    firsts = [r.split("|")[1] for r in rows]
    for name in registry.names():
        assert sum(f"`{name}`" in cell.split(", ")[0] for cell in firsts) == 1, name
    assert len(rows) == len(registry.names())


def test_refresh_replaces_only_the_marked_blocks():
    text = "intro\n" + "".join(f"<!-- {k}:start -->\nSTALE-TABLE\n<!-- {k}:end -->\nbetween {k}\n" for k in MARKERS) + "outro"
    out = refresh(text)
    assert out.startswith("intro\n") and out.endswith("outro") and "STALE-TABLE" not in out
    for k in MARKERS:
        assert f"between {k}" in out and _block(out, k) == tables()[k]
    assert refresh(out) == out
    with pytest.raises(ValueError, match="latent-models"):
        refresh("no markers")
