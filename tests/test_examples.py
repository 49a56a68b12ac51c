"""Every example script runs end to end; the analyses of real data sets (``main(argv)`` with
``--out``) write their summary table and figures into the directory they are given."""

import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("path", [p for p in EXAMPLES if not p.name.startswith("make_")], ids=lambda p: p.name)
def test_example_runs(path, capsys, tmp_path):
    source = path.read_text()
    if "libpysal" in source:
        pytest.importorskip("libpysal")      # the examples extra (part of the test extra)
    if "def main(argv" not in source:
        runpy.run_path(str(path), run_name="__main__")
        assert "mean" in capsys.readouterr().out
        return
    pytest.importorskip("matplotlib")
    runpy.run_path(str(path), run_name="example")["main"](["--out", str(tmp_path), "--n-samples", "100"])
    assert "mean" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "summary.csv", index_col=0)
    assert list(table.columns[:2]) == ["mean", "sd"] and len(table) >= 2 and np.isfinite(table.to_numpy()).all()
    pngs = sorted(tmp_path.glob("*.png"))
    assert path.stem + ".png" in [p.name for p in pngs]
    import matplotlib.image as mpimg

    for png in pngs:
        pixels = mpimg.imread(png)
        assert pixels.shape[0] > 150 and pixels.shape[1] > 300 and pixels[..., :3].std() > 0.02, png.name   # drawn, not blank
