"""The ``slumwatch`` command line.

Each subcommand lives in :mod:`slumwatch.commands.<name>` and exposes
``register(app: typer.Typer) -> None``. Heavy libraries (torch, ray, prefect) are
imported inside the command functions, so ``slumwatch --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

from slumwatch import __version__

COMMAND_MODULES: tuple[str, ...] = ("synth", "ingest", "train", "evaluate", "demo", "report")

app = typer.Typer(
    name="slumwatch",
    help="Map informal settlements from sub-meter imagery and monitor their growth.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"slumwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """slumwatch command line."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"slumwatch.commands.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
