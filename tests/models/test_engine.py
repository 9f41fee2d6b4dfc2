"""The training engine: overfitting, checkpoints, exact resume, unlabeled merging, accumulation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from slumwatch.models import (
    Engine,
    MethodStepBase,
    StepOutput,
    SupervisedStep,
    TileDataset,
    TrainConfig,
    get_method,
    get_model,
    load_checkpoint,
    seed_everything,
    to_device,
)
from slumwatch.models.augment import AugmentConfig
from slumwatch.models.engine import poly_lr

SMALL = "deeplabv3plus_resnet18"
SIZE = 32


def _dataset(n: int, *, seed: int = 0, augment: bool = True, labeled: bool = True) -> TileDataset:
    rng = np.random.default_rng(seed)
    images = rng.random((n, 3, SIZE, SIZE)).astype(np.float32)
    images[:, 0] = np.repeat(np.repeat(rng.random((n, 4, 4)), 8, axis=1), 8, axis=2)  # blocky signal
    labels = (images[:, 0] > 0.5).astype(np.int64)
    return TileDataset(
        images, labels if labeled else None, augment=AugmentConfig() if augment else None, seed=seed
    )


def _loader(ds: TileDataset, batch_size: int, *, shuffle: bool = True) -> DataLoader[Any]:
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=shuffle)


def _engine(run_dir: Path, config: TrainConfig, *, step: Any = None, val: bool = False) -> Engine:
    seed_everything(0)
    return Engine(
        config,
        model=get_model(SMALL),
        step=step if step is not None else SupervisedStep(),
        run_dir=run_dir,
        train_loader=_loader(_dataset(4), 2),
        val_loader=_loader(_dataset(2, seed=9, augment=False), 1, shuffle=False) if val else None,
        progress=False,
        normalization={"low": [0.0] * 3, "high": [1.0] * 3},
        split_hash="abc123",
    )


def test_loss_decreases_on_a_tiny_overfit_problem(tmp_path: Path) -> None:
    tiles = _dataset(4, augment=False)
    repeated = TileDataset(np.tile(tiles.images, (6, 1, 1, 1)), np.tile(tiles.labels, (6, 1, 1)))
    config = TrainConfig(epochs=3, lr=0.02, seed=1)  # 6 iterations per epoch, one checkpoint per epoch
    seed_everything(0)
    engine = Engine(
        config,
        model=get_model(SMALL),
        step=SupervisedStep(),
        run_dir=tmp_path,
        train_loader=_loader(repeated, 4),
        progress=False,
    )
    result = engine.fit()
    losses = [loss for _, loss in result.losses]
    assert len(losses) == 18
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert result.iterations == 18
    assert result.best_path is None  # no validation loader


def test_best_and_latest_are_written_with_metadata(tmp_path: Path) -> None:
    config = TrainConfig(epochs=2, lr=0.01, eval_window=16, eval_overlap=0.5)
    result = _engine(tmp_path, config, val=True).fit()
    assert result.latest_path == tmp_path / "latest.pt"
    assert result.best_path == tmp_path / "best.pt"
    assert result.best_miou is not None and 0.0 <= result.best_miou <= 1.0
    assert len(result.history) == 2
    assert "val" in result.history[-1]
    loaded = load_checkpoint(result.best_path)
    meta = loaded.metadata
    assert meta["method"] == "supervised"
    assert meta["split_hash"] == "abc123"
    assert meta["config"]["eval_window"] == 16
    assert meta["metrics"]["miou"] == pytest.approx(meta["metrics"]["best_miou"])
    assert "code_version" in meta
    assert loaded.normalization == {"low": [0.0] * 3, "high": [1.0] * 3}
    assert load_checkpoint(tmp_path / "latest.pt").metadata["epoch"] == 2


class CrashingStep(SupervisedStep):
    """Supervised, but raises at a given iteration (simulates a killed job)."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at

    def training_step(
        self, model: Any, batch: Mapping[str, Tensor], *, iteration: int, total_iters: int
    ) -> StepOutput:
        if iteration == self.crash_at:
            raise KeyboardInterrupt
        return super().training_step(model, batch, iteration=iteration, total_iters=total_iters)


def test_resume_reproduces_the_next_losses_exactly(tmp_path: Path) -> None:
    config = TrainConfig(epochs=3, lr=0.01, seed=5)
    full = _engine(tmp_path / "full", config).fit()
    iters_per_epoch = 2
    with pytest.raises(KeyboardInterrupt):
        _engine(tmp_path / "crashed", config, step=CrashingStep(crash_at=iters_per_epoch)).fit()
    resumed = _engine(tmp_path / "crashed", config).fit()
    assert resumed.resumed_from_epoch == 1
    assert resumed.losses[0][0] == iters_per_epoch
    assert resumed.losses == full.losses[iters_per_epoch:]  # exact float equality
    assert len(resumed.history) == 3
    final_full = load_checkpoint(tmp_path / "full" / "latest.pt").model.state_dict()
    final_resumed = load_checkpoint(tmp_path / "crashed" / "latest.pt").model.state_dict()
    for key, value in final_full.items():
        torch.testing.assert_close(final_resumed[key], value, rtol=0, atol=0)


def test_checkpoint_every_spaces_latest_and_keep_epochs_snapshots(tmp_path: Path) -> None:
    config = TrainConfig(epochs=5, lr=0.01, seed=5, checkpoint_every=2)
    engine = _engine(tmp_path / "spaced", config)
    engine.keep_epochs = frozenset({1})
    reports: list[Any] = []
    engine.on_epoch_end = reports.append
    engine.fit()
    written = [r.epoch for r in reports if r.latest_path is not None]
    assert written == [1, 2, 4, 5]  # kept epoch 1, every 2nd epoch, and the last one
    assert sorted(p.name for p in (tmp_path / "spaced" / "checkpoints").iterdir()) == ["epoch_0001.pt"]
    assert load_checkpoint(tmp_path / "spaced" / "checkpoints" / "epoch_0001.pt").metadata["epoch"] == 1
    # a run cut during epoch 4 resumes from epoch 2's latest.pt and ends where the full run ended
    full = _engine(tmp_path / "full", TrainConfig(epochs=5, lr=0.01, seed=5)).fit()
    with pytest.raises(KeyboardInterrupt):
        _engine(tmp_path / "cut", config, step=CrashingStep(crash_at=7)).fit()
    resumed = _engine(tmp_path / "cut", config).fit()
    assert resumed.resumed_from_epoch == 2
    assert resumed.losses == full.losses[4:]
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(epochs=1, checkpoint_every=0)


class RecordingStep(MethodStepBase):
    """Needs unlabeled data; records batch keys and optimizer-step hooks."""

    name = "recording"
    needs_unlabeled = True

    def __init__(self) -> None:
        self.keys: list[set[str]] = []
        self.hooks: list[int] = []
        self.calls = 0

    def training_step(
        self, model: Any, batch: Mapping[str, Tensor], *, iteration: int, total_iters: int
    ) -> StepOutput:
        self.keys.append(set(batch))
        logits = model(torch.cat([batch["image"], batch["u_image"]]))
        loss = logits.mean() * 0.0 + torch.nn.functional.cross_entropy(
            logits[: len(batch["label"])], batch["label"]
        )
        return StepOutput(loss=loss, logs={"n_u": float(len(batch["u_image"]))})

    def after_optimizer_step(self, model: Any, *, iteration: int) -> None:
        self.hooks.append(iteration)

    def state_dict(self) -> dict[str, Any]:
        return {"hooks": list(self.hooks)}


def test_unlabeled_batches_are_merged_with_prefix_and_labeled_cycles(tmp_path: Path) -> None:
    step = RecordingStep()
    seed_everything(0)
    engine = Engine(
        TrainConfig(epochs=1, grad_accum_steps=2),
        model=get_model(SMALL),
        step=step,
        run_dir=tmp_path,
        train_loader=_loader(_dataset(2), 2),  # 1 labeled batch, cycled
        unlabeled_loader=_loader(_dataset(10, labeled=False), 2),  # 5 iterations
        progress=False,
    )
    result = engine.fit()
    assert result.iterations == 5
    assert all({"image", "label", "index", "u_image", "u_index"} == keys for keys in step.keys)
    assert step.hooks == [1, 3, 4]  # every 2 iterations and a flush at the epoch end
    assert result.history[0]["n_u"] == 2.0


def test_engine_requires_unlabeled_loader_for_ssl_steps(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unlabeled_loader"):
        Engine(
            TrainConfig(epochs=1),
            model=get_model(SMALL),
            step=RecordingStep(),
            run_dir=tmp_path,
            train_loader=_loader(_dataset(2), 2),
        )


def test_config_validation_and_helpers() -> None:
    with pytest.raises(ValueError, match="epochs or max_iters"):
        TrainConfig()
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(epochs=1, optimizer="adam")  # type: ignore[arg-type]
    assert poly_lr(0.01, 0, 100, 0.9) == pytest.approx(0.01)
    assert poly_lr(0.01, 50, 100, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100, 0.9) == 0.0
    moved = to_device({"a": torch.zeros(1), "b": [torch.ones(1)], "c": 3}, torch.device("cpu"))
    assert moved["c"] == 3 and moved["b"][0].device.type == "cpu"
    assert isinstance(get_method("supervised"), SupervisedStep)


def test_adamw_and_max_iters_cap(tmp_path: Path) -> None:
    config = TrainConfig(
        epochs=5, max_iters=3, optimizer="adamw", lr=1e-4, head_lr_multiplier=40.0, weight_decay=0.01
    )
    engine = _engine(tmp_path, config)
    result = engine.fit()
    assert result.iterations == 3
    assert engine.optimizer is not None
    assert isinstance(engine.optimizer, torch.optim.AdamW)
    lrs = {g["name"]: g["base_lr"] for g in engine.optimizer.param_groups}
    assert lrs["head"] == pytest.approx(40 * lrs["backbone"])
