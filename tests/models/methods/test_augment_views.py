"""Unlabeled views: seeded strong augmentations, CutMix boxes, cutout and the Dataset wrapper."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from slumwatch.models.methods.augment import (
    BOX_AREA_RANGE,
    BoxConfig,
    StrongAugConfig,
    UnlabeledViews,
    color_jitter,
    cutout,
    random_box,
    strong_photometric,
    to_grayscale,
)
from slumwatch.models.methods.base import merge_batches
from slumwatch.models.methods.unimatch import UniMatchStep

SIZE = 16


class _Images(Dataset[dict[str, torch.Tensor]]):
    """N random 4-band images in [0, 1]; optional labels and a no-data stripe."""

    def __init__(self, n: int = 5, *, labels: bool = False, channels: int = 4) -> None:
        g = torch.Generator().manual_seed(7)
        self.images = torch.rand(n, channels, SIZE, SIZE, generator=g)
        self.labels = torch.randint(0, 2, (n, SIZE, SIZE), generator=g) if labels else None
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return self.images.shape[0]

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        valid = torch.ones(SIZE, SIZE, dtype=torch.bool)
        valid[0, :] = False
        sample = {"image": self.images[index], "valid": valid}
        if self.labels is not None:
            sample["label"] = self.labels[index]
        return sample


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_colour_ops_touch_rgb_only_and_stay_in_unit_range() -> None:
    image = torch.rand(4, SIZE, SIZE, generator=_gen(1))
    jittered = color_jitter(image, brightness=0.5, contrast=0.5, saturation=0.5, hue=0.25, generator=_gen(2))
    assert jittered.shape == image.shape
    assert torch.equal(jittered[3], image[3])  # NIR untouched
    assert not torch.allclose(jittered[:3], image[:3])
    assert jittered.min() >= 0.0 and jittered.max() <= 1.0
    gray = to_grayscale(image)
    assert torch.equal(gray[3], image[3])
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])


def test_strong_photometric_is_seeded_and_blur_uses_all_bands() -> None:
    image = torch.rand(5, SIZE, SIZE, generator=_gen(3))
    a = strong_photometric(image, config=StrongAugConfig(), generator=_gen(4))
    b = strong_photometric(image, config=StrongAugConfig(), generator=_gen(4))
    assert torch.equal(a, b)
    blur_only = StrongAugConfig(p_jitter=0.0, p_grayscale=0.0, p_blur=1.0)
    blurred = strong_photometric(image, config=blur_only, generator=_gen(5))
    assert not torch.allclose(blurred[4], image[4])  # spatial op: every band
    nothing = StrongAugConfig(p_jitter=0.0, p_grayscale=0.0, p_blur=0.0)
    assert torch.equal(strong_photometric(image, config=nothing, generator=_gen(6)), image)


def test_random_box_probability_and_area() -> None:
    assert not random_box(SIZE, SIZE, config=BoxConfig(p=0.0), generator=_gen()).any()
    low, high = BOX_AREA_RANGE
    for seed in range(30):
        box = random_box(64, 48, config=BoxConfig(p=1.0), generator=_gen(seed))
        area = box.float().mean().item()
        assert 0.0 < area <= high + 1e-6
        rows, cols = box.any(dim=1).nonzero(), box.any(dim=0).nonzero()
        # a single filled rectangle
        assert box.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert low > 0


def test_cutout_fills_box_with_noise_and_reports_it() -> None:
    image = torch.zeros(3, SIZE, SIZE)
    out, box = cutout(image, config=BoxConfig(p=1.0), generator=_gen(8))
    assert box.any()
    assert torch.equal(out[:, ~box], image[:, ~box])
    assert (out[:, box] > 0).any()


def test_unlabeled_views_unimatch_keys_determinism_and_epochs() -> None:
    source = _Images()
    views = UnlabeledViews(source, seed=3, mode="unimatch")
    first = views[1]
    expected = {
        "image_w",
        "image_s1",
        "image_s2",
        "cutmix_box1",
        "cutmix_box2",
        "ignore_mask",
        "image_mix",
        "image_mix_s1",
        "image_mix_s2",
        "ignore_mask_mix",
        "index",
    }
    assert set(first) == expected
    assert first["image_s1"].shape == (4, SIZE, SIZE)
    assert first["cutmix_box1"].dtype == torch.bool and first["cutmix_box1"].shape == (SIZE, SIZE)
    assert (first["ignore_mask"][0] == 255).all() and (first["ignore_mask"][1:] == 0).all()
    again = views[1]
    assert all(torch.equal(first[k], again[k]) for k in expected)
    views.set_epoch(1)
    assert source.epochs == [1]
    moved = views[1]
    assert not torch.equal(first["image_s1"], moved["image_s1"])
    for key in ("image_w", "image_s1", "image_s2", "image_mix_s1"):
        assert first[key].min() >= 0 and first[key].max() <= 1


def test_unlabeled_views_other_modes() -> None:
    fix = UnlabeledViews(_Images(), seed=0, mode="fixmatch")[0]
    assert "image_s2" not in fix and "image_mix_s1" in fix
    v2 = UnlabeledViews(_Images(), seed=0, mode="unimatch_v2")[0]
    assert "image_mix" not in v2 and {"image_s1", "image_s2", "cutmix_box2"} <= set(v2)
    seg = UnlabeledViews(_Images(labels=True), seed=0, mode="segslum", cutout_box=BoxConfig(p=1.0))[2]
    assert {"image_w", "image_s", "ignore_mask", "label"} <= set(seg)
    cut = seg["ignore_mask"][1:] == 255  # row 0 is no-data anyway
    assert cut.any()
    assert (seg["label"][1:][cut] == 255).all()


def test_collated_views_drive_a_unimatch_step(model_factory) -> None:
    views = UnlabeledViews(_Images(channels=3), seed=0, mode="unimatch")
    unlabeled = next(iter(DataLoader(views, batch_size=2)))
    labeled = {"image": torch.rand(2, 3, SIZE, SIZE), "label": torch.randint(0, 2, (2, SIZE, SIZE))}
    batch = merge_batches(labeled, unlabeled)
    assert batch["u_image_w"].shape == (2, 3, SIZE, SIZE)
    out = UniMatchStep(threshold=0.5).training_step(model_factory(), batch, iteration=0, total_iters=1)
    assert torch.isfinite(out.loss)
