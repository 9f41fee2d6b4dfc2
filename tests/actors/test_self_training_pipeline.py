"""End-to-end ST and ST++ on a tiny network: engine stages, Zarr pseudo-label versions, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from torch import Tensor, nn

from slumwatch.actors.self_training import (
    ModelSpec,
    SelfTrainingData,
    SelfTrainingOptions,
    run_self_training,
)
from slumwatch.models.augment import AugmentConfig
from slumwatch.models.base import LOGITS, SegmentationModel
from slumwatch.models.checkpoint import load_checkpoint
from slumwatch.models.engine import TrainConfig
from slumwatch.models.registry import list_models, register_model

MODEL_NAME = "test_tiny_selftraining"
SIZE = 16


class _TinyNet(SegmentationModel):
    def __init__(self, *, num_classes: int, in_channels: int) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, pad_multiple=1)
        self.backbone = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU())
        self.classifier = nn.Conv2d(8, num_classes, 1)

    def forward_dict(
        self, x: Tensor, *, fp: bool = False, gram: bool = False, proj: bool = False
    ) -> dict[str, Tensor]:
        self._require(gram=gram, proj=proj)
        return {LOGITS: self.classifier(self.backbone(self.standardize(x)))}


if MODEL_NAME not in list_models():

    @register_model(MODEL_NAME)
    def _tiny(*, num_classes: int = 2, in_channels: int = 3) -> _TinyNet:
        return _TinyNet(num_classes=num_classes, in_channels=in_channels)


def _tiles(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.random((n, 3, SIZE, SIZE), dtype=np.float32)
    labels = (images[:, 0] > 0.5).astype(np.int64)
    return images, labels


def _nodata_masks(n: int) -> np.ndarray:
    """(n, SIZE, SIZE) "valid"-kind masks: 255 (no data) in the left quarter and in all of tile 0."""
    masks = np.zeros((n, SIZE, SIZE), dtype=np.int64)
    masks[:, :, : SIZE // 4] = 255
    masks[0] = 255
    return masks


def _run(out: Path, *, plus: bool, unlabeled_valid: np.ndarray | None = None):
    lab_x, lab_y = _tiles(4, 0)
    unl_x, _ = _tiles(6, 1)
    val_x, val_y = _tiles(2, 2)
    data = SelfTrainingData(
        labeled_images=lab_x,
        labeled_labels=lab_y,
        unlabeled_images=unl_x,
        val_images=val_x,
        val_labels=val_y,
        unlabeled_ids=[f"tile{i}" for i in range(6)],
        unlabeled_valid=unlabeled_valid,
    )
    train = TrainConfig(epochs=2, batch_size=2, lr=0.05, device="cpu", amp=False, seed=3)
    options = SelfTrainingOptions(
        augment=AugmentConfig(rot90=False), tta_scales=(0.5, 1.0), label_batch_size=4
    )
    return run_self_training(
        plus=plus, out_dir=out, data=data, model=ModelSpec(name=MODEL_NAME), train=train, options=options
    )


def test_st_plus_plus_end_to_end_and_resume(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    result = _run(tmp_path, plus=True)
    assert result.plus and result.versions == ("v3", "v5")
    assert sorted(result.stages) == [1, 4, 6]
    assert len(result.reliable) == 3 and len(result.unreliable) == 3
    assert sorted(result.reliable + result.unreliable) == list(range(6))
    assert len(result.scores) == 6 and all(0.0 <= s <= 1.0 for s in result.scores)
    ranked = sorted(range(6), key=lambda i: -result.scores[i])
    assert set(ranked[:3]) == set(result.reliable)
    ckpts = sorted(p.name for p in (tmp_path / "stage1" / "checkpoints").glob("*.pt"))
    assert ckpts == ["epoch_0001.pt", "epoch_0002.pt"]

    store = zarr.open_group(str(result.pseudo_label_store), mode="r")
    v3, v5 = store["pseudo_labels/v3"], store["pseudo_labels/v5"]
    assert v3.shape == (6, SIZE, SIZE) and v3.dtype == np.uint8
    a3, a5 = v3[:], v5[:]
    for row in result.reliable:
        assert set(np.unique(a3[row])) <= {0, 1}
        assert np.array_equal(a5[row], a3[row])  # v5 keeps the teacher's reliable labels
    for row in result.unreliable:
        assert (a3[row] == 255).all() and set(np.unique(a5[row])) <= {0, 1}
    attrs3, attrs5 = dict(v3.attrs), dict(v5.attrs)
    assert attrs3["stage"] == 3 and attrs5["stage"] == 5 and attrs5["base_version"] == "v3"
    assert "stage1" in attrs3["teacher_checkpoint"] and "stage4" in attrs5["teacher_checkpoint"]
    assert sorted(attrs3["labelled_indices"]) == sorted(result.reliable)
    assert attrs3["created"] and attrs3["method"] == "st++" and attrs3["unlabeled_ids"][0] == "tile0"
    assert store["stability/scores"].shape == (6,)

    final = load_checkpoint(result.final_checkpoint)
    assert final.metadata["method"] == "st++" and final.metadata["stage"] == 6
    assert final.metadata["pseudo_labels"] == "v5"

    again = _run(tmp_path, plus=True)  # finished stages resume from their latest.pt
    assert again.final_checkpoint == result.final_checkpoint
    assert again.reliable == result.reliable
    for stage in (1, 4, 6):
        assert again.stages[stage]["resumed_from_epoch"] == 2


def test_plain_st_end_to_end(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    result = _run(tmp_path, plus=False)
    assert not result.plus and result.versions == ("v2",) and sorted(result.stages) == [1, 3]
    labels = zarr.open_group(str(result.pseudo_label_store), mode="r")["pseudo_labels/v2"][:]
    assert set(np.unique(labels)) <= {0, 1}
    assert load_checkpoint(result.final_checkpoint).metadata["method"] == "st"


@pytest.mark.parametrize("as_bool", [False, True])
def test_pixels_without_data_get_no_pseudo_label(tmp_path: Path, as_bool: bool) -> None:
    torch.set_num_threads(1)
    masks = _nodata_masks(6)
    given = masks != 255 if as_bool else masks
    result = _run(tmp_path, plus=True, unlabeled_valid=given)
    store = zarr.open_group(str(result.pseudo_label_store), mode="r")
    v5 = store["pseudo_labels/v5"][:]
    nodata = masks == 255
    assert (v5[nodata] == 255).all()
    assert set(np.unique(v5[~nodata])) <= {0, 1}
    # tile 0 has no valid pixel: its stability is NaN and it ranks unreliable
    assert np.isnan(store["stability/scores"][0]) and 0 in result.unreliable


def test_unlabeled_valid_must_match_the_unlabeled_tiles(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unlabeled_valid holds 2 masks for 6 unlabeled tiles"):
        _run(tmp_path, plus=False, unlabeled_valid=_nodata_masks(2))


@pytest.mark.parametrize("epochs", [1])
def test_st_plus_plus_needs_two_epochs(tmp_path: Path, epochs: int) -> None:
    lab_x, lab_y = _tiles(4, 0)
    unl_x, _ = _tiles(4, 1)
    data = SelfTrainingData(labeled_images=lab_x, labeled_labels=lab_y, unlabeled_images=unl_x)
    train = TrainConfig(epochs=epochs, batch_size=2, device="cpu", amp=False)
    with pytest.raises(ValueError, match="two stage-1 checkpoints"):
        run_self_training(
            plus=True, out_dir=tmp_path, data=data, model=ModelSpec(name=MODEL_NAME), train=train
        )
