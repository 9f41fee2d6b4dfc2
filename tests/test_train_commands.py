"""``slumwatch train`` and ``slumwatch evaluate`` through a Typer app that registers the commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from training_fixtures import BUDGET, CROP, MODEL, tiny_supervised_checkpoint, tiny_training_cube
from typer.testing import CliRunner

from slumwatch.commands import evaluate as evaluate_command
from slumwatch.commands import train as train_command

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root (keeps the commands subcommands)."""

    train_command.register(app)
    evaluate_command.register(app)
    return app


def test_evaluate_prints_per_class_iou(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    tiny = tiny_training_cube(tmp_path_factory)
    checkpoint = tiny_supervised_checkpoint(tmp_path_factory)
    out = tmp_path / "m.json"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--cube", str(tiny.cube)]
    result = runner.invoke(
        _app(), [*args, "--splits", str(tiny.splits), "--split", "test", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    for text in ("non-slum", "slum", "IoU", "mean", "mIoU"):
        assert text in result.output
    assert out.is_file()
    missing = runner.invoke(
        _app(), ["evaluate", "--checkpoint", str(tmp_path / "no.pt"), "--cube", str(tiny.cube)]
    )
    assert missing.exit_code == 1 and "does not exist" in " ".join(missing.output.split())


def test_train_rejects_an_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({"batch_size": 0, "lr": -1, "colour": "red"}))
    result = runner.invoke(
        _app(),
        [
            "train",
            "--method",
            "unimatch",
            "--cube",
            "c.zarr",
            "--out",
            str(tmp_path),
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 2
    for field in ("batch_size", "lr", "colour"):
        assert field in result.output
    bad_method = runner.invoke(
        _app(), ["train", "--method", "mean-teacher", "--cube", "c.zarr", "--out", "o"]
    )
    assert bad_method.exit_code == 2 and "method" in bad_method.output
    no_budget = runner.invoke(_app(), ["train", "--budget", "0.07", "--cube", "c.zarr", "--out", "o"])
    assert no_budget.exit_code == 2 and "split fractions" in no_budget.output


@pytest.mark.integration
def test_train_command_runs_the_flow_in_process(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> None:
    tiny = tiny_training_cube(tmp_path_factory)
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "batch_size": 2,
                "crop_size": CROP,
                "amp": False,
                "device": "cpu",
                "splits": [str(tiny.splits)],
                "registry": str(tmp_path / "reg"),
            }
        )
    )
    args = ["train", "--method", "supervised", "--budget", str(BUDGET), "--cube", str(tiny.cube)]
    args += ["--out", str(tmp_path / "run"), "--config", str(config), "--model", MODEL]
    result = runner.invoke(_app(), [*args, "--max-iters", "1", "--local"])
    assert result.exit_code == 0, result.output
    assert "slum" in result.output and "mIoU" in result.output
    assert "registry entry" in result.output
    assert list((tmp_path / "reg").glob("*/model.json"))
