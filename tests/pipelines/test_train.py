"""The ``train`` flow end to end: Prefect tasks, training, evaluation and the model registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_fixtures import BUDGET, CROP, MODEL, tiny_training_cube

from slumwatch.actors.model_registry import list_model_runs
from slumwatch.catalogs.splits import load_splits
from slumwatch.training_config import SplitSettings, TrainRunConfig


@pytest.mark.integration
def test_train_flow_makes_splits_trains_evaluates_and_registers(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> None:
    """In-process training keeps this test short; the Ray Train path is covered (slow) in
    tests/actors/test_method_training.py::test_ray_train_and_ray_task_paths."""
    from slumwatch.pipelines.train import train_flow

    tiny = tiny_training_cube(tmp_path_factory)
    cfg = TrainRunConfig(
        method="fixmatch",
        model=MODEL,
        budget=BUDGET,
        cubes=(tiny.cube,),
        split=SplitSettings(fractions=(0.1, BUDGET), seed=2),
        max_iters=1,
        batch_size=2,
        crop_size=CROP,
        amp=False,
        device="cpu",
        method_options={"threshold": 0.6},
        out=tmp_path / "run",
        distributed=False,
    )
    entry = train_flow(cfg)

    splits = load_splits(tmp_path / "run" / "splits" / "00_cube.json")
    assert splits.spec.seed == 2
    assert entry.method == "fixmatch" and entry.label_budget == BUDGET
    assert entry.split_sha256 == splits.sha256
    assert entry.cities == ("synth-256x256-s1",) and entry.years == (2019, 2020)
    assert Path(entry.checkpoint).is_file()
    assert entry.extra["distributed"] is False and entry.train_config["max_iters"] == 1
    assert set(entry.metrics["iou_per_class"]) == {"non-slum", "slum"}
    assert entry.metrics["split"] == "test"
    assert entry.path is not None and entry.path.parent.parent == tmp_path / "registry"
    assert [e.run_id for e in list_model_runs(tmp_path / "registry")] == [entry.run_id]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["miou"] == entry.metrics["miou"]
    assert json.loads((tmp_path / "run" / "training.json").read_text())["method"] == "fixmatch"
