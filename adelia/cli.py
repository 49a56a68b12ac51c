"""The ``adelia`` command line: check, fit and summarise ``.adl`` model files.

::

    adelia check MODEL.adl [--data DATA]               # parse + validate, every problem reported
    adelia fit MODEL.adl -o result.nc [--samples N] [--seed N] [--int-strategy S] [--strategy S]
                                      [--quiet] [--force]
    adelia summary result.nc
    adelia predict MODEL.adl NEW.csv -o pred.nc [--kind response|linear] [--samples N] [--seed N]

Progress and problems go to stderr, tables to stdout. Exit codes: 0 success, 1 model or data
error (``file:line:col: error: ...`` with a caret, no traceback), 2 usage error.
"""

from __future__ import annotations

__all__ = ["main", "cli"]

import math
import os
import sys
import tempfile
from pathlib import Path

import click

from adelia.options import INT_STRATEGIES, STRATEGIES

EXIT_MODEL_ERROR = 1


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("adelia")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def _consoles():
    from rich.console import Console

    width = None if sys.stdout.isatty() else 120
    return Console(width=width, highlight=False), Console(stderr=True, highlight=False, width=width)


def _fail(errors) -> None:
    """Print AdeliaErrors on stderr and exit 1."""
    errors = list(errors)
    for i, err in enumerate(errors):
        if i:
            click.echo("", err=True)
        click.echo(str(err), err=True)
    if len(errors) > 1:
        click.echo(f"\n{len(errors)} problems found", err=True)
    raise SystemExit(EXIT_MODEL_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="adelia", message="%(prog)s %(version)s")
def cli() -> None:
    """INLA for latent Gaussian models: check, fit, predict and summarise .adl model files."""


_model_arg = click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
_data_opt = click.option("--data", "data", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Data table (csv/parquet/netCDF) replacing the model file's data statement.")


def _prepare(model: Path, data: Path | None):
    from adelia.adl_run import check_model
    from adelia.errors import AdeliaError

    try:
        return check_model(model, data=data)
    except AdeliaError as err:       # cannot read or parse the file
        return None, [err]


@cli.command()
@_model_arg
@_data_opt
def check(model: Path, data: Path | None) -> None:
    """Parse MODEL and validate it against its data without fitting."""
    prepared, problems = _prepare(model, data)
    if problems:
        _fail(problems)
    comps = ", ".join(f"f({t.label})" for t in prepared.formula.latent) or "none"
    kinds = prepared.model.object_kinds()
    objects = ", ".join(f"{kinds[k]} {k}" for k in prepared.definitions if k in kinds)
    click.echo(f"{model}: ok — {prepared.family_label} model, {len(prepared.data)} rows, latent: {comps}"
               + (f"; objects: {objects}" if objects else ""))


def _check_output(out: Path, inputs) -> None:
    out_r = out.resolve()
    for p in inputs:
        try:
            same = out_r == Path(p).resolve() or (out.exists() and os.path.samefile(out, p))
        except OSError:
            same = False
        if same:
            raise click.BadParameter(f"'{out}' is an input of the model; refusing to overwrite it",
                                     param_hint="'-o' / '--output'")
    if out.exists() and out.is_dir():
        raise click.BadParameter(f"'{out}' is a directory", param_hint="'-o' / '--output'")
    if not out_r.parent.is_dir():
        raise click.BadParameter(f"directory '{out.parent}' does not exist", param_hint="'-o' / '--output'")


def write_datatree(dt, out: Path) -> None:
    """Write ``dt`` to netCDF atomically: a temporary file in the same directory, then rename."""
    fd, tmp = tempfile.mkstemp(dir=out.resolve().parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        dt.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@cli.command()
@_model_arg
@_data_opt
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the result DataTree here (netCDF, .nc).")
@click.option("--samples", type=click.IntRange(min=0), default=None, help="Posterior draws (overrides options()).")
@click.option("--seed", type=int, default=None, help="Random seed (overrides options()).")
@click.option("--int-strategy", type=click.Choice(list(INT_STRATEGIES)), default=None,
              help="Integration over the hyperparameters (overrides options()).")
@click.option("--strategy", type=click.Choice(list(STRATEGIES)), default=None,
              help="Approximation of the latent marginals (overrides options()).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--devices", type=click.IntRange(min=1), default=None,
              help="Spread the fit over this many devices (default: all JAX sees).")
@click.option("--distributed", is_flag=True,
              help="Join a multi-process run (jax.distributed: Slurm / Open MPI detected, else "
                   "ADELIA_COORDINATOR, ADELIA_NUM_PROCESSES, ADELIA_PROCESS_ID).")
def fit(model: Path, data: Path | None, output: Path | None, samples: int | None, seed: int | None,
        int_strategy: str | None, strategy: str | None, quiet: bool, force: bool, devices: int | None = None,
        distributed: bool = False) -> None:
    """Fit MODEL with INLA, print the summary and optionally save the result."""
    from adelia.adl_run import fit_model
    from adelia.errors import AdeliaError

    if distributed:   # before anything starts JAX's backends
        from adelia.runtime.devices import initialize_distributed

        try:
            initialize_distributed()
        except AdeliaError as err:
            _fail([err])

    if output is not None and output.suffix.lower() not in (".nc", ".nc4", ".netcdf"):
        raise click.BadParameter("the output must be a netCDF file ending in .nc", param_hint="'-o' / '--output'")
    if output is not None and output.exists() and not force:
        raise click.BadParameter(f"'{output}' exists; pass --force to overwrite it", param_hint="'-o' / '--output'")
    prepared, problems = _prepare(model, data)
    if problems:
        _fail(problems)
    if output is not None:
        _check_output(output, prepared.inputs)
    out_console, err_console = _consoles()
    try:
        with _progress(err_console, quiet) as say:
            dt = fit_model(prepared, progress=say, n_samples=samples, seed=seed, int_strategy=int_strategy,
                           strategy=strategy, devices=devices, distributed=distributed or None)
    except AdeliaError as err:
        _fail([err])
    if output is not None:
        _write(dt, output, err_console, quiet)
    _print_summary(dt, out_console, title=str(model))


def _write(dt, output, err_console, quiet: bool) -> None:
    """Write a result atomically (never onto an input: the callers check), or exit with an error."""
    try:
        write_datatree(dt, output)
    except (OSError, ValueError, TypeError) as err:
        click.echo(f"error: cannot write '{output}': {err}", err=True)
        raise SystemExit(EXIT_MODEL_ERROR)
    if not quiet:
        err_console.print(f"wrote {output}")


class _progress:
    """A context manager giving a ``callable(str)`` that shows fit progress on stderr."""

    def __init__(self, console, quiet: bool):
        self.console, self.quiet, self.bar = console, quiet, None

    def __enter__(self):
        if self.quiet:
            return lambda msg: None
        if self.console.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                console=self.console, transient=True)
            self.bar.start()
            task = self.bar.add_task("compiling", total=None)
            return lambda msg: self.bar.update(task, description=str(msg))
        return lambda msg: self.console.print(f"[dim]adelia:[/dim] {msg}")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def _fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.3e}"
    return f"{v:.4f}"


def _print_summary(dt, console, title: str | None = None) -> None:
    from rich import box
    from rich.table import Table

    from adelia.results import summary

    df = summary(dt)
    inla = dt["inla"] if "inla" in dt.children else None
    fixed_names = set()
    if inla is not None and "summary_fixed" in inla.dataset:
        fixed_names = {str(v) for v in inla.dataset["summary_fixed"]["fixed_term"].values}
    attrs = dt.attrs
    if attrs.get("formula"):
        console.print(f"formula: {attrs['formula']}")
    if attrs.get("family"):
        console.print(f"family:  {attrs['family']}")
    for label, rows in (("Fixed effects", [r for r in df.index if r in fixed_names]),
                        ("Hyperparameters", [r for r in df.index if r not in fixed_names])):
        if not rows:
            continue
        table = Table(title=label, title_justify="left", box=box.SIMPLE_HEAD, header_style="bold")
        table.add_column("")
        for c in df.columns:
            table.add_column(str(c), justify="right")
        for r in rows:
            table.add_row(str(r), *(_fmt(float(v)) for v in df.loc[r].to_numpy()))
        console.print(table)
    if inla is not None:
        a = inla.attrs
        if "mlik_integration" in a:
            console.print(f"Marginal log-likelihood: {float(a['mlik_integration']):.3f} (integration), "
                          f"{float(a.get('mlik_gaussian', float('nan'))):.3f} (Gaussian)")
        crit = [f"{k.upper()} {float(a[k]):.2f}" for k in ("dic", "waic") if k in a]
        if crit:
            console.print("   ".join(crit))


@cli.command()
@click.argument("result", type=click.Path(dir_okay=False, path_type=Path))
def summary(result: Path) -> None:
    """Print the R-INLA-like summary of a saved RESULT (.nc from 'adelia fit -o')."""
    import xarray as xr

    from adelia.errors import AdeliaError

    if not result.is_file():
        click.echo(f"error: result file '{result}' not found", err=True)
        raise SystemExit(EXIT_MODEL_ERROR)
    try:
        dt = xr.open_datatree(result, engine="h5netcdf")
    except Exception as err:  # h5py/xarray raise many types for a file that is not netCDF
        click.echo(f"error: cannot read '{result}' as a netCDF result: {type(err).__name__}: {err}", err=True)
        raise SystemExit(EXIT_MODEL_ERROR)
    try:
        _print_summary(dt, _consoles()[0], title=str(result))
    except AdeliaError as err:
        _fail([err])


@cli.command()
@_model_arg
@click.argument("newdata", type=click.Path(dir_okay=False, path_type=Path))
@_data_opt
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Write the predictions DataTree here (netCDF, .nc).")
@click.option("--kind", type=click.Choice(["response", "linear"]), default="response", show_default=True,
              help="Summary of the fitted mean (response) or of the linear predictor.")
@click.option("--samples", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Predictive draws (η, mean, y).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the predictive draws.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def predict(model: Path, newdata: Path, data: Path | None, output: Path, kind: str, samples: int, seed: int,
            quiet: bool, force: bool) -> None:
    """Fit MODEL, predict the rows of NEWDATA (csv) and save the predictions."""
    import pandas as pd

    from adelia.adl_run import fit_model
    from adelia.errors import AdeliaError
    from adelia.prediction import predict as predict_rows

    if output.suffix.lower() not in (".nc", ".nc4", ".netcdf"):
        raise click.BadParameter("the output must be a netCDF file ending in .nc", param_hint="'-o' / '--output'")
    if output.exists() and not force:
        raise click.BadParameter(f"'{output}' exists; pass --force to overwrite it", param_hint="'-o' / '--output'")
    if not newdata.is_file():
        click.echo(f"error: new data file '{newdata}' not found", err=True)
        raise SystemExit(EXIT_MODEL_ERROR)
    prepared, problems = _prepare(model, data)
    if problems:
        _fail(problems)
    _check_output(output, [*prepared.inputs, newdata])
    try:
        new = pd.read_csv(newdata)
    except Exception as err:  # pandas raises many types for a file that is not a table
        click.echo(f"error: cannot read '{newdata}' as csv: {type(err).__name__}: {err}", err=True)
        raise SystemExit(EXIT_MODEL_ERROR)
    from adelia.adl_run import _Problems, add_columns

    probs = _Problems(prepared.model)
    new = add_columns(prepared.model, new, probs)        # the file's derived columns, on the new rows too
    if probs.items:
        _fail(probs.items)
    out_console, err_console = _consoles()
    try:
        with _progress(err_console, quiet) as say:
            dt = fit_model(prepared, progress=say)
            say(f"predicting {len(new)} rows")
            pred = predict_rows(dt, new, kind=kind, n_samples=samples, seed=seed)
    except AdeliaError as err:
        _fail([err])
    _write(pred, output, err_console, quiet)
    _print_predictions(pred, out_console, kind)


def _print_predictions(pred, console, kind: str, max_rows: int = 20) -> None:
    from rich import box
    from rich.table import Table

    da = pred["inla"]["summary_predictions"]
    label = "fitted values" if kind == "response" else "linear predictor"
    table = Table(title=f"Predictions ({label})", title_justify="left", box=box.SIMPLE_HEAD, header_style="bold")
    table.add_column("row")
    stats = [str(s) for s in da["stat"].values]
    for s in stats:
        table.add_column(s, justify="right")
    for i, row in zip(da["pred_id"].values[:max_rows], da.values[:max_rows]):
        table.add_row(str(int(i)), *(_fmt(float(v)) for v in row))
    console.print(table)
    if da.shape[0] > max_rows:
        console.print(f"... {da.shape[0] - max_rows} more rows in the output file")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="adelia")


if __name__ == "__main__":  # pragma: no cover
    main()
