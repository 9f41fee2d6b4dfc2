"""``slumwatch report RUN_DIR [--out DIR] [--title TEXT]``: build the static HTML report of a run.

The dashboards package (matplotlib, xarray) is imported inside the command, so ``slumwatch --help``
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import typer

REPORT_ERROR_EXIT_CODE: Final = 2


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""

    @app.command("report")
    def report(
        run_dir: Path = typer.Argument(
            ..., help="Run folder holding growth.csv, metrics.json and predictions.zarr.", show_default=False
        ),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Output folder (default: RUN_DIR/report).", show_default=False
        ),
        title: str | None = typer.Option(None, "--title", help="Page title (default: from the city name)."),
    ) -> None:
        """Write a static HTML report of a run (maps, growth chart, table); print the path of index.html."""
        from slumwatch.dashboards import ReportError, render_report

        try:
            index = render_report(run_dir=run_dir, out_dir=out, title=title)
        except ReportError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=REPORT_ERROR_EXIT_CODE) from exc
        typer.echo(str(index))
