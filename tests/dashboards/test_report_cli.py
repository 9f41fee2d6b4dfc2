"""``slumwatch report RUN_DIR [--out DIR]`` through a Typer app that registers the command."""

from __future__ import annotations

from pathlib import Path

import typer
from report_fakes import FakeRun
from typer.testing import CliRunner

from slumwatch.commands import report as report_command


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root (keeps ``report`` a subcommand)."""

    report_command.register(app)
    return app


def test_report_command_prints_index_path(fake_run: FakeRun, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = CliRunner().invoke(_app(), ["report", str(fake_run.run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / "index.html")
    assert (out / "index.html").is_file()


def test_report_command_reports_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["report", str(tmp_path)])
    assert result.exit_code == report_command.REPORT_ERROR_EXIT_CODE
    assert "growth.csv" in result.stderr and "not found" in result.stderr
