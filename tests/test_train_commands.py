"""``slumwatch train`` and ``slumwatch evaluate`` through a Typer app that registers the commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from training_fixtures import CROP, MODEL, tiny_supervised_checkpoint, tiny_training_cube
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


def test_train_command_validates_the_config_and_runs_the_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI builds the config from YAML + flags, runs the flow and prints its registry entry.

    The flow itself is faked here (it runs end to end in tests/pipelines/test_train.py): a flow run inside
    CliRunner would bind Prefect's console log handler to CliRunner's short-lived stream.
    """
    import slumwatch.pipelines.train as train_pipeline
    from slumwatch.actors.model_registry import register_model_run
    from slumwatch.training_config import TrainRunConfig

    seen: list[TrainRunConfig] = []

    def fake_flow(cfg: TrainRunConfig):
        seen.append(cfg)
        return register_model_run(
            registry_dir=cfg.registry_dir,
            method=cfg.method,
            model_name=cfg.model,
            checkpoint=cfg.out / "best.pt",
            label_budget=cfg.budget,
            split_sha256="h",
            train_config={"max_iters": cfg.max_iters},
            training_data=[{"path": str(cfg.cubes[0]), "city": "a", "years": [2019]}],
            metrics={"miou": 0.625, "iou_per_class": {"non-slum": 0.95, "slum": 0.3}, "mean_f1": 0.7},
        )

    monkeypatch.setattr(train_pipeline, "train_flow", fake_flow)
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {"batch_size": 2, "crop_size": CROP, "split": {"seed": 4}, "method_options": {"threshold": 0.9}}
        )
    )
    args = ["train", "--method", "slum-i", "--budget", "0.03", "--cube", "a.zarr", "--cube", "b.zarr"]
    args += ["--out", str(tmp_path / "run"), "--config", str(config), "--model", MODEL, "--epochs", "3"]
    result = runner.invoke(_app(), [*args, "--workers", "2", "--local"])
    assert result.exit_code == 0, result.output
    cfg = seen[0]
    assert cfg.method == "slum-i" and cfg.budget == 0.03 and cfg.epochs == 3 and cfg.num_workers == 2
    assert [p.name for p in cfg.cubes] == ["a.zarr", "b.zarr"] and cfg.distributed is False
    assert cfg.split.seed == 4 and cfg.method_kwargs() == {"threshold": 0.9} and cfg.batch_size == 2
    text = " ".join(result.output.split())
    for expected in ("non-slum", "0.9500", "0.3000", "mIoU 0.6250", "registry entry", "checkpoint"):
        assert expected in text
    assert len(list((tmp_path / "registry").glob("*/model.json"))) == 1
