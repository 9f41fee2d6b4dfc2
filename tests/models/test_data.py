"""TileDataset, weak augmentation and scale_to_unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from slumwatch.models import TileDataset, band_percentiles, scale_to_unit
from slumwatch.models.augment import AugmentConfig


def test_scale_to_unit_uint8_and_uint16() -> None:
    u8 = np.array([[[0, 10, 255]], [[5, 50, 100]]], dtype=np.uint8)  # (2, 1, 3)
    out = scale_to_unit(u8, [10, 0], [110, 100])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(out[1, 0], [0.05, 0.5, 1.0])
    u16 = np.full((3, 2, 2), 3000, dtype=np.uint16)
    np.testing.assert_allclose(scale_to_unit(u16, 1000, 5000), 0.5)
    batch = np.stack([u8, u8])  # (N, C, H, W)
    np.testing.assert_allclose(scale_to_unit(batch, [10, 0], [110, 100])[1], out)


def test_band_percentiles_skip_nodata() -> None:
    image = np.zeros((2, 10, 10), dtype=np.uint16)
    image[0, :5] = np.arange(50).reshape(5, 10) + 1
    image[1] = 7
    lows, highs = band_percentiles(image, lower=0, upper=100)
    assert lows == [1.0, 7.0]
    assert highs == [50.0, 7.0]


def _tiles(n: int = 4, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (n, size, size))
    images = np.stack([labels, rng.integers(0, 255, labels.shape), labels * 3]).transpose(1, 0, 2, 3)
    return images.astype(np.uint8), labels


def test_samples_are_deterministic_per_seed_epoch_and_index() -> None:
    images, labels = _tiles()
    config = AugmentConfig(crop_size=12)
    a = TileDataset(images, labels, low=[0, 0, 0], high=[1, 255, 3], augment=config, seed=3)
    b = TileDataset(images, labels, low=[0, 0, 0], high=[1, 255, 3], augment=config, seed=3)
    torch.testing.assert_close(a[1]["image"], b[1]["image"])
    a.set_epoch(1)
    changed = any(not torch.equal(a[i]["image"], b[i]["image"]) for i in range(len(a)))
    assert changed


def test_augmentation_keeps_image_and_label_aligned() -> None:
    images, labels = _tiles(n=6, size=16)
    ds = TileDataset(images, labels, low=[0, 0, 0], high=[1, 255, 3], augment=AugmentConfig(), seed=1)
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            sample = ds[i]
            assert sample["image"].shape == (3, 16, 16)
            assert sample["image"].dtype == torch.float32
            assert sample["label"].dtype == torch.int64
            torch.testing.assert_close(sample["image"][0], sample["label"].float())


def test_random_resized_crop_pads_label_with_ignore() -> None:
    images, labels = _tiles(n=2, size=16)
    config = AugmentConfig(crop_size=20, scale_range=(0.5, 0.5), rot90=False, hflip=False, vflip=False)
    ds = TileDataset(images, labels, low=[0, 0, 0], high=[1, 255, 3], augment=config)
    sample = ds[0]
    assert sample["image"].shape == (3, 20, 20)
    assert sample["label"].shape == (20, 20)
    assert (sample["label"] == 255).sum() == 20 * 20 - 8 * 8


def test_non_square_rotation_keeps_shape() -> None:
    images = np.random.default_rng(0).random((3, 3, 8, 12)).astype(np.float32)
    ds = TileDataset(images, np.zeros((3, 8, 12), dtype=np.int64), augment=AugmentConfig())
    for epoch in range(4):
        ds.set_epoch(epoch)
        assert all(ds[i]["image"].shape == (3, 8, 12) for i in range(3))


def test_unlabeled_and_transform_and_collate() -> None:
    images, _ = _tiles()

    def two_views(sample: dict, rng: np.random.Generator) -> dict:
        return {"image_w": sample["image"], "image_s1": sample["image"] * float(rng.uniform(0.5, 1.0))}

    ds = TileDataset(images, None, low=[0, 0, 0], high=[1, 255, 3], transform=two_views)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert set(batch) == {"image_w", "image_s1"}
    assert batch["image_w"].shape == (2, 3, 16, 16)


def test_integer_images_without_bounds_raise() -> None:
    images, labels = _tiles()
    with pytest.raises(ValueError, match="low/high"):
        TileDataset(images, labels)[0]
    with pytest.raises(ValueError, match="labels"):
        TileDataset(images, labels[:2])
