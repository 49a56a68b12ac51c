"""The adelia command line, driven through click's CliRunner."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from adelia.cli import cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def seeds(tmp_path):
    for name in ("seeds.adl", "seeds.csv"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / "seeds.adl"


def test_version(runner):
    res = runner.invoke(cli, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("adelia ")


def test_help(runner):
    res = runner.invoke(cli, ["-h"])
    assert res.exit_code == 0
    for cmd in ("check", "fit", "summary"):
        assert cmd in res.output


def test_check_ok(runner, seeds):
    res = runner.invoke(cli, ["check", str(seeds)])
    assert res.exit_code == 0, res.output
    assert "ok" in res.stdout and "21 rows" in res.stdout
    assert res.stderr == ""


def test_check_reports_all_problems(runner, seeds, tmp_path):
    bad = tmp_path / "bad.adl"
    bad.write_text('data d = csv("seeds.csv")\nfamily binomal(Ntrials = nn)\n'
                   'formula r ~ x1 + x3 + f(plate, model = "iidd")\n')
    res = runner.invoke(cli, ["check", str(bad)])
    assert res.exit_code == 1
    assert res.stdout == ""
    err = res.stderr
    assert f"{bad}:2:1: error: unknown likelihood family 'binomal'" in err
    assert f"{bad}:2:26: error:" in err
    assert f"{bad}:3:18: error:" in err
    assert f"{bad}:3:40: error: unknown latent model 'iidd'" in err
    assert "4 problems found" in err
    assert "Traceback" not in err


def test_check_syntax_error(runner, tmp_path):
    bad = tmp_path / "bad.adl"
    bad.write_text('formula y ~ f(region model = "iid")\n')
    res = runner.invoke(cli, ["check", str(bad)])
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert lines[0] == f"{bad}:1:22: error: unexpected name 'model'"
    assert lines[1] == 'formula y ~ f(region model = "iid")'
    assert lines[2] == " " * 21 + "^~~~~"
    assert lines[3].startswith("expected one of: ") and "','" in lines[3]


def test_check_missing_file(runner, tmp_path):
    res = runner.invoke(cli, ["check", str(tmp_path / "nope.adl")])
    assert res.exit_code == 1 and "not found" in res.stderr


def test_usage_errors(runner, seeds):
    assert runner.invoke(cli, ["check"]).exit_code == 2
    assert runner.invoke(cli, ["bogus"]).exit_code == 2
    assert runner.invoke(cli, ["fit", str(seeds), "--samples", "-1"]).exit_code == 2
    res = runner.invoke(cli, ["fit", str(seeds), "-o", str(seeds.with_suffix(".csv"))])
    assert res.exit_code == 2 and ".nc" in res.stderr


def test_fit_never_overwrites_inputs(runner, seeds, tmp_path):
    # a netCDF data file given with --data cannot be the output
    df = pd.read_csv(seeds.with_suffix(".csv"))
    nc = tmp_path / "seeds_data.nc"
    df.to_xarray().to_netcdf(nc, engine="h5netcdf")
    before = nc.read_bytes()
    res = runner.invoke(cli, ["fit", str(seeds), "--data", str(nc), "-o", str(nc), "--force", "--samples", "10"])
    assert res.exit_code == 2 and "input" in res.stderr
    assert nc.read_bytes() == before
    res = runner.invoke(cli, ["fit", str(seeds), "--data", str(nc), "-o", str(nc)])
    assert res.exit_code == 2 and "--force" in res.stderr


def test_fit_writes_result_and_summary(runner, seeds, tmp_path):
    out = tmp_path / "result.nc"
    res = runner.invoke(cli, ["fit", str(seeds), "-o", str(out), "--samples", "50"])
    assert res.exit_code == 0, res.output
    assert out.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]   # the temp file was renamed
    assert "optimising" in res.stderr                                        # progress on stderr
    assert "(Intercept)" in res.stdout and "Precision for plate" in res.stdout
    assert "x1:x2" in res.stdout and "Marginal log-likelihood" in res.stdout

    res2 = runner.invoke(cli, ["summary", str(out)])
    assert res2.exit_code == 0, res2.output
    assert "(Intercept)" in res2.stdout and "Precision for plate" in res2.stdout

    res3 = runner.invoke(cli, ["fit", str(seeds), "-o", str(out), "--samples", "10", "--quiet"])
    assert res3.exit_code == 2                                                 # exists, no --force


def test_summary_errors(runner, tmp_path):
    res = runner.invoke(cli, ["summary", str(tmp_path / "nope.nc")])
    assert res.exit_code == 1 and "not found" in res.stderr
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    res = runner.invoke(cli, ["summary", str(junk)])
    assert res.exit_code == 1 and "cannot read" in res.stderr and "Traceback" not in res.stderr


def _copy_example(tmp_path, name):
    for suffix in (".adl", ".csv"):
        shutil.copy(EXAMPLES / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path / f"{name}.adl"


def test_check_lists_objects_and_families(runner, tmp_path):
    res = runner.invoke(cli, ["check", str(_copy_example(tmp_path, "spatial"))])
    assert res.exit_code == 0, res.output
    assert "ok — gaussian model, 40 rows, latent: f(site); objects: mesh m, spde matern" in res.stdout
    res = runner.invoke(cli, ["check", str(_copy_example(tmp_path, "joint"))])
    assert res.exit_code == 0, res.output
    assert "ok — gaussian + poisson model, 50 rows" in res.stdout


def test_check_reports_problems_in_new_statements(runner, tmp_path):
    _copy_example(tmp_path, "spatial")
    bad = tmp_path / "bad.adl"
    bad.write_text('data d = csv("spatial.csv")\n'
                   'column site = row()\n'
                   'mesh m = mesh(nodes = "nodes.csv", triangles = "tri.csv", base = 2)\n'
                   'mesh m2 = delaunay(x = s1, y = s3)\n'
                   'spde sp = spde(m2, prior.range = c(0.3, 2), prior.sigma = c(1, 0.01), loc = c(s1, s2))\n'
                   'family gaussian, poisson\n'
                   'formula y ~ x + f(site, model = spx)\n'
                   'prior prec(likelihood[3]) = pc.prec(1, 0.01)\n')
    res = runner.invoke(cli, ["check", str(bad)])
    assert res.exit_code == 1 and res.stdout == ""
    err = res.stderr
    for where, what in [("3:66", "base must be 0 or 1"),
                        ("4:32", "'s3' (delaunay() coordinates) is not a column of the data"),
                        ("5:34", "prior.range must be c(value, probability) with value > 0 and "
                                 "0 < probability < 1, not c(0.3, 2)"),
                        ("6:18", "2 likelihood families are given but the formula has one response"),
                        ("7:33", "'spx' is neither a latent model nor an spde object"),
                        ("8:23", "likelihood[3] does not exist")]:
        assert f"{bad}:{where}: error: {what}" in err, (where, err)
    assert "6 problems found" in err and "Traceback" not in err


def test_fit_several_likelihoods(runner, tmp_path):
    model = _copy_example(tmp_path, "joint")
    out = tmp_path / "joint.nc"
    res = runner.invoke(cli, ["fit", str(model), "-o", str(out), "--samples", "10", "--strategy", "gaussian",
                              "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    assert "Precision for the Gaussian observations" in res.stdout and "Precision for group" in res.stdout
    res = runner.invoke(cli, ["summary", str(out)])
    assert res.exit_code == 0 and "Precision for group" in res.stdout
    assert runner.invoke(cli, ["fit", str(model), "--strategy", "fullaplace"]).exit_code == 2
