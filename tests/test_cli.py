"""The command line: every subcommand answers --help; bad input is a clear error."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from slumwatch.cli import COMMAND_MODULES, app

runner = CliRunner()


def test_root_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMAND_MODULES:
        assert name in result.output


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_each_subcommand_has_help(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "--" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("slumwatch ")


def test_demo_rejects_bad_years(tmp_path: object) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--years", "2024-2014"])
    assert result.exit_code == 2
    assert "year" in result.output
