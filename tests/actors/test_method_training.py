"""Training every kind of method from a cube: datasets, the in-process engine path, ST, evaluation."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zarr
from training_fixtures import BUDGET, CROP, MODEL, TinyCube, tiny_supervised_checkpoint, tiny_training_cube

from slumwatch.actors.cube_tiles import CubeTileSequence, materialize, plan_tile_refs
from slumwatch.actors.evaluation import (
    CLASS_NAMES,
    EvaluationError,
    evaluate_checkpoint,
    pool_results,
    zero_shot_evaluation,
)
from slumwatch.actors.method_training import (
    DataOptions,
    MethodDatasets,
    MethodRunResult,
    MethodTrainingError,
    budget_key,
    budget_tiles,
    train_method_from_cube,
)
from slumwatch.catalogs.splits import load_splits
from slumwatch.catalogs.tiling import TileSpec
from slumwatch.models.checkpoint import load_checkpoint
from slumwatch.models.engine import TrainConfig

TINY_TRAIN = TrainConfig(max_iters=2, batch_size=2, device="cpu", amp=False, seed=1)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyCube:
    return tiny_training_cube(tmp_path_factory)


def _train(tiny: TinyCube, **kwargs: Any) -> MethodRunResult:
    """``train_method_from_cube`` on the tiny cube at ``BUDGET`` with ``MODEL`` (crop ``CROP`` by default)."""
    kwargs.setdefault("data", DataOptions(crop_size=CROP))
    return train_method_from_cube(
        cube=tiny.cube, splits=tiny.splits, budget=BUDGET, model_name=MODEL, **kwargs
    )


def test_budgets_name_the_nested_subsets(tiny: TinyCube) -> None:
    splits = load_splits(tiny.splits)
    assert budget_key(0.03) == "3" and budget_key(0.1) == "10"
    small, large = budget_tiles(splits, 0.1), budget_tiles(splits, BUDGET)
    assert set(small) <= set(large) <= set(splits.train)
    assert budget_tiles(splits, 1.0) == splits.train
    with pytest.raises(MethodTrainingError, match=r"no 0.2 label budget.*subsets: 0.1, 0.3"):
        budget_tiles(splits, 0.2)
    with pytest.raises(MethodTrainingError, match="unknown method 'mean-teacher'"):
        _train(
            tiny,
            method="mean-teacher",
            train_config=TINY_TRAIN,
            run_dir=Path("unused"),
        )


@pytest.mark.parametrize("mode", ["fixmatch", "unimatch", "unimatch_v2"])
def test_dataset_builder_is_picklable_and_emits_the_views(tiny: TinyCube, mode: str) -> None:
    splits = load_splits(tiny.splits)
    spec = TileSpec(splits.tile_size)
    labelled = plan_tile_refs(
        cube=tiny.cube,
        tile_ids=budget_tiles(splits, BUDGET),
        years=splits.years,
        spec=spec,
        require="labels",
        min_fraction=0.05,
    )
    rest = sorted(set(splits.train) - set(budget_tiles(splits, BUDGET)))
    unlabeled = plan_tile_refs(
        cube=tiny.cube, tile_ids=rest, years=splits.years, spec=spec, require="valid", min_fraction=0.05
    )
    builder = MethodDatasets(
        labelled=labelled,
        unlabeled=unlabeled,
        val=(),
        low=(0.0, 0.0, 0.0),
        high=(255.0, 255.0, 255.0),
        augment=DataOptions(crop_size=48).augment(),
        view_mode=mode,
        min_samples=50,
        preload_max_bytes=0,  # lazy: every sample is read from the cube
    )
    datasets = pickle.loads(pickle.dumps(builder))()
    assert len(datasets.train) >= 50 and datasets.val is None
    sample = datasets.train[0]
    assert sample["image"].shape == (3, 48, 48) and sample["image"].dtype == torch.float32
    assert set(np.unique(sample["label"].numpy())) <= {0, 1, 255}
    views = datasets.unlabeled[3]
    assert views["image_w"].shape == (3, 48, 48)
    assert set(np.unique(views["ignore_mask"].numpy())) <= {0, 255}
    expected = {"fixmatch": "image_mix", "unimatch": "image_mix_s2", "unimatch_v2": "cutmix_box2"}[mode]
    assert expected in views
    lazy = CubeTileSequence(unlabeled, "image")
    assert np.array_equal(materialize(lazy)[2], pickle.loads(pickle.dumps(lazy))[2])


def test_supervised_in_process_then_evaluate(
    tiny: TinyCube, tmp_path_factory: pytest.TempPathFactory
) -> None:
    checkpoint = tiny_supervised_checkpoint(tmp_path_factory)
    loaded = load_checkpoint(checkpoint)
    assert loaded.metadata["method"] == "supervised"
    assert loaded.metadata["split_hash"] == load_splits(tiny.splits).sha256
    assert loaded.metadata["label_budget"] == BUDGET
    assert loaded.normalization["bands"] == ["red", "green", "blue"]

    metrics = evaluate_checkpoint(checkpoint=checkpoint, cube=tiny.cube, splits=tiny.splits, split="test")
    assert set(metrics["iou_per_class"]) == set(CLASS_NAMES)
    assert 0.0 <= metrics["miou"] <= 1.0 and 0.0 <= metrics["pixel_accuracy"] <= 1.0
    assert metrics["split"] == "test" and metrics["years"] == [2019, 2020]
    assert sum(map(sum, metrics["confusion"])) == metrics["num_pixels"] > 0
    assert set(metrics["per_year"]) <= {"2019", "2020"}

    everything = zero_shot_evaluation(checkpoint=checkpoint, target_cube=tiny.cube, context=8)
    assert everything["protocol"] == "cross-city zero-shot" and everything["split"] == "all"
    assert everything["num_pixels"] > metrics["num_pixels"]
    assert everything["source_cities"] == [everything["target_city"]]
    pooled = pool_results([metrics, metrics])
    assert pooled["num_pixels"] == 2 * metrics["num_pixels"]
    assert pooled["miou"] == pytest.approx(metrics["miou"])
    with pytest.raises(EvaluationError, match="none of"):
        evaluate_checkpoint(checkpoint=checkpoint, cube=tiny.cube, years=[1999])


def test_semi_supervised_unimatch_in_process(tiny: TinyCube, tmp_path: Path) -> None:
    result = _train(
        tiny,
        method="unimatch",
        train_config=TINY_TRAIN,
        run_dir=tmp_path / "run",
        distributed=False,
        method_kwargs={"threshold": 0.6},
    )
    assert result.samples["unlabeled"] > 0 and result.samples["labelled"] > 0
    assert result.training["iterations"] == 2
    assert result.checkpoint.is_file() and result.checkpoint.parent == tmp_path / "run"
    assert result.method_kwargs == {"threshold": 0.6}
    assert result.to_dict()["cubes"][0]["city"] == "synth-256x256-s1"
    assert load_checkpoint(result.checkpoint).metadata["method"] == "unimatch"


def test_self_training_st_runs_its_stages(tiny: TinyCube, tmp_path: Path) -> None:
    result = _train(
        tiny,
        method="st",
        train_config=TrainConfig(epochs=1, max_iters=1, batch_size=2, device="cpu", amp=False),
        run_dir=tmp_path / "st",
        distributed=False,
        method_kwargs={"tta_scales": [1.0], "tta_flip": False},
    )
    assert result.training["versions"] == ["v2"]
    assert set(result.training["stages"]) == {"1", "3"}
    assert result.checkpoint.parent == tmp_path / "st" / "stage3"
    assert (tmp_path / "st" / "pseudo_labels.zarr").is_dir()
    final = load_checkpoint(result.checkpoint)
    assert final.normalization["bands"] == ["red", "green", "blue"]
    assert final.metadata["label_budget"] == BUDGET and final.metadata["cities"]
    assert final.metadata["split_hash"] == load_splits(tiny.splits).sha256
    assert final.metadata["self_training"] == "st" and final.metadata["stage"] == 3
    pseudo = zarr.open_group(str(tmp_path / "st" / "pseudo_labels.zarr"), mode="r")["pseudo_labels/v2"][:]
    splits = load_splits(tiny.splits)
    unlabeled = plan_tile_refs(  # the pipeline's unlabeled pool, in its order
        cube=tiny.cube,
        tile_ids=sorted(set(splits.train) - set(budget_tiles(splits, BUDGET))),
        years=final.metadata["years"],
        spec=TileSpec(splits.tile_size),
        require="valid",
        min_fraction=DataOptions().min_valid_fraction,
    )
    nodata = np.stack([np.asarray(v) for v in CubeTileSequence(unlabeled, "valid")]) == 255
    assert pseudo.shape == nodata.shape and nodata.any()  # clouds / swath edges in the tiny city
    assert (pseudo[nodata] == 255).all() and set(np.unique(pseudo[~nodata])) <= {0, 1}
    with pytest.raises(MethodTrainingError, match="ST/ST\\+\\+ options \\['threshold'\\] are unknown"):
        _train(
            tiny,
            method="st++",
            train_config=TINY_TRAIN,
            run_dir=tmp_path / "bad",
            distributed=False,
            method_kwargs={"threshold": 0.9},
        )
    with pytest.raises(MethodTrainingError, match="ST\\+\\+ needs >= 2 stage-1 epochs"):
        _train(
            tiny,
            method="st++",
            train_config=TrainConfig(max_iters=1, batch_size=2, device="cpu"),
            run_dir=tmp_path / "short",
            distributed=False,
        )


@pytest.mark.integration
@pytest.mark.slow
def test_ray_train_and_ray_task_paths(tiny: TinyCube, tmp_path: Path, ray_local: None) -> None:
    """FixMatch through Ray Train (DDP, one gloo worker) and ST as one Ray task, both reading the cube."""
    fixmatch = _train(
        tiny,
        method="fixmatch",
        train_config=TINY_TRAIN,
        run_dir=tmp_path / "fixmatch",
        distributed=True,
        num_workers=1,
    )
    assert fixmatch.checkpoint.parent == tmp_path / "fixmatch" / "engine"
    assert load_checkpoint(fixmatch.checkpoint).metadata["world_size"] == 1
    assert any((tmp_path / "fixmatch" / "ray").rglob("latest.pt"))
    st = _train(
        tiny,
        method="st",
        train_config=TrainConfig(max_iters=1, batch_size=2, device="cpu", amp=False),
        run_dir=tmp_path / "st",
        distributed=True,
        method_kwargs={"tta_scales": [1.0], "tta_flip": False},
    )
    assert st.checkpoint.is_file() and st.training["versions"] == ["v2"]
