"""Training actors: the single-process path and a two-worker Ray Train (DDP, gloo) run with a failure."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from slumwatch.actors.training import TrainDatasets, train_distributed, train_local
from slumwatch.models import TileDataset, TrainConfig, load_checkpoint
from slumwatch.models.augment import AugmentConfig
from slumwatch.models.checkpoint import read_checkpoint
from slumwatch.models.methods.augment import UnlabeledViews

SMALL = "deeplabv3plus_resnet18"
SIZE = 32


def _arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.random((n, 3, SIZE, SIZE)).astype(np.float32)
    labels = (images[:, 0] > 0.5).astype(np.int64)
    return images, labels


class FlakyTiles(TileDataset):
    """Raises once (the first time epoch 1 is read, marked by a file) to simulate a dying worker."""

    def __init__(self, *args: Any, marker: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marker = marker

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.epoch == 1 and not self.marker.exists():
            self.marker.touch()
            raise RuntimeError("simulated worker failure")
        return super().__getitem__(index)


def build_small(marker: Path | None = None) -> TrainDatasets:
    images, labels = _arrays(8, seed=0)
    val_images, val_labels = _arrays(2, seed=1)
    train: TileDataset = (
        TileDataset(images, labels, augment=AugmentConfig())
        if marker is None
        else FlakyTiles(images, labels, augment=AugmentConfig(), marker=marker)
    )
    return TrainDatasets(train=train, val=TileDataset(val_images, val_labels))


def build_small_ssl() -> TrainDatasets:
    images, labels = _arrays(8, seed=0)
    unlabeled, _ = _arrays(8, seed=2)
    views = UnlabeledViews(TileDataset(unlabeled, None, augment=AugmentConfig()), seed=0, mode="unimatch")
    return TrainDatasets(train=TileDataset(images, labels, augment=AugmentConfig()), unlabeled=views)


def test_train_local_runs_the_engine(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = TrainConfig(epochs=1, batch_size=4, lr=0.01)
    result = train_local(
        config=config,
        model_name=SMALL,
        model_kwargs={},
        method_name="supervised",
        method_kwargs={},
        dataset_builder=build_small,
        run_dir=tmp_path,
        progress=False,
        split_hash="h",
    )
    assert result.iterations == 2
    assert result.best_path is not None and result.best_path.is_file()
    assert load_checkpoint(result.best_path).metadata["split_hash"] == "h"


def _run_two_workers(tmp_path: Path, *, marker: Path | None) -> Any:
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # The session-scoped local cluster (tests/conftest.py) is shared, not shut down here.
    assert ray.is_initialized(), "use the session's ray_local fixture"
    config = TrainConfig(epochs=2, batch_size=2, lr=0.01)  # 8 tiles / 2 workers / 2 per batch = 2 iters
    return train_distributed(
        config=config,
        model_name=SMALL,
        model_kwargs={},
        method_name="supervised",
        method_kwargs={},
        dataset_builder=partial(build_small, marker),
        run_dir=tmp_path / "run",
        num_workers=2,
        use_gpu=False,
        max_failures=1,
    )


@pytest.mark.integration
def test_two_worker_slum_i_keeps_one_caat_and_bank_state(tmp_path: Path, ray_local: None) -> None:
    """SLUM-i's collectives (CAAT all-reduce, bank all-gather) run under Ray Train's DDP without hanging."""
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    result = train_distributed(
        config=TrainConfig(epochs=1, batch_size=2, lr=0.01),
        model_name=SMALL,
        model_kwargs={},
        method_name="slum-i",
        # tau_low 0 lets every pixel through, so both ranks push samples into the bank
        method_kwargs={"tau_low": 0.0, "init": 0.0, "samples_per_class": 4},
        dataset_builder=build_small_ssl,
        run_dir=tmp_path / "run",
        num_workers=2,
        use_gpu=False,
    )
    raw = read_checkpoint(result.latest_path)
    assert raw["metadata"]["world_size"] == 2 and raw["metadata"]["method"] == "slum-i"
    state = raw["step_state"]
    iterations = result.iterations
    assert iterations >= 1
    # every iteration each of the 2 ranks pushes up to 4 samples per class: a per-rank bank would hold
    # at most 4 per class per iteration
    assert int(state["bank"]["count"].sum()) > 4 * iterations
    assert state["caat"]["thresholds"].shape == (2,)


def _check_result(result: Any, tmp_path: Path) -> None:
    assert result.iterations == 4
    assert len(result.history) == 2
    assert result.best_path is not None
    loaded = load_checkpoint(result.latest_path)
    assert loaded.metadata["world_size"] == 2
    assert loaded.metadata["epoch"] == 2
    assert any((tmp_path / "run" / "ray").rglob("latest.pt"))


@pytest.mark.integration
def test_two_worker_ray_train_run(tmp_path: Path, ray_local: None) -> None:
    _check_result(_run_two_workers(tmp_path, marker=None), tmp_path)


@pytest.mark.integration
@pytest.mark.slow
def test_two_worker_ray_train_resumes_after_a_worker_failure(tmp_path: Path, ray_local: None) -> None:
    marker = tmp_path / "failed-once"
    result = _run_two_workers(tmp_path, marker=marker)
    assert marker.exists()  # the failure happened and the run still completed from the epoch-1 checkpoint
    _check_result(result, tmp_path)
