"""Unlabeled-view builder for the semi-supervised methods (pure torch / torchvision, seeded).

Every random draw goes through an explicit :class:`torch.Generator`, so a sample's views depend only on
``(seed, epoch, index)`` and not on the DataLoader's worker count or the global RNG.

Inputs are float images in ``[0, 1]`` with any channel count ``C >= 3``; the colour operations (jitter,
grayscale) touch the first three channels (R, G, B) only, so an extra NIR band passes through unchanged.
Spatial operations (blur, cutout noise) apply to every channel.

Defaults follow the public reference code (see ``docs/methods.md``):

* UniMatch / FixMatch strong view: colour jitter (0.5, 0.5, 0.5, 0.25) with p 0.8, grayscale p 0.2,
  Gaussian blur (sigma 0.1-2.0) p 0.5; CutMix box p 0.5, area 2-40 % of the image, aspect 0.3-3.3.
* SegSlum strong view: colour jitter (0.9, 0.9, 0.9, 0.0) with p 0.8, grayscale p 0.2, blur p 0.5,
  cutout p 0.5 (same box law, filled with uniform noise, the pixels ignored in the loss).

Geometric augmentation (flips, crops, rescaling) is the base dataset's job; the wrapper here only builds
photometric views of an already (weakly) augmented sample, so the weak and strong views stay aligned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torch.utils.data import Dataset

IGNORE_INDEX = 255
RGB_CHANNELS = 3

# UniMatch / FixMatch strong view (LiheYoung/UniMatch dataset/semi.py)
UNIMATCH_JITTER = (0.5, 0.5, 0.5, 0.25)
# SegSlum strong view (DS4H-GIS/SegSlum dataset/semi.py: ColorJitter(0.9, 0.9, 0.9, 0))
SEGSLUM_JITTER = (0.9, 0.9, 0.9, 0.0)
P_JITTER = 0.8
P_GRAYSCALE = 0.2
P_BLUR = 0.5
BLUR_SIGMA_RANGE = (0.1, 2.0)
P_CUTMIX = 0.5
P_CUTOUT = 0.5
BOX_AREA_RANGE = (0.02, 0.4)
BOX_ASPECT_RANGE = (0.3, 1.0 / 0.3)
MAX_BOX_TRIES = 100

ViewMode = Literal["unimatch", "unimatch_v2", "fixmatch", "segslum"]
VIEW_MODES: tuple[str, ...] = ("unimatch", "unimatch_v2", "fixmatch", "segslum")


@dataclass(frozen=True)
class StrongAugConfig:
    """Photometric strong augmentation.

    Attributes:
        jitter: (brightness, contrast, saturation, hue) strengths as in ``torchvision.ColorJitter``.
        p_jitter: probability of applying the colour jitter.
        p_grayscale: probability of converting the RGB channels to grayscale.
        p_blur: probability of a Gaussian blur with sigma drawn uniformly from ``blur_sigma``.
        blur_sigma: (min, max) sigma in pixels.
    """

    jitter: tuple[float, float, float, float] = UNIMATCH_JITTER
    p_jitter: float = P_JITTER
    p_grayscale: float = P_GRAYSCALE
    p_blur: float = P_BLUR
    blur_sigma: tuple[float, float] = BLUR_SIGMA_RANGE


@dataclass(frozen=True)
class BoxConfig:
    """Random rectangle law shared by CutMix and cutout (UniMatch ``obtain_cutmix_box``, ST++ ``cutout``).

    Attributes:
        p: probability that a box is drawn at all (otherwise the mask is empty).
        area: (min, max) fraction of the image area.
        aspect: (min, max) aspect ratio h / w.
    """

    p: float = P_CUTMIX
    area: tuple[float, float] = BOX_AREA_RANGE
    aspect: tuple[float, float] = BOX_ASPECT_RANGE


UNIMATCH_STRONG = StrongAugConfig()
SEGSLUM_STRONG = StrongAugConfig(jitter=SEGSLUM_JITTER)
CUTMIX_BOX = BoxConfig()
CUTOUT_BOX = BoxConfig(p=P_CUTOUT)


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _bernoulli(p: float, generator: torch.Generator) -> bool:
    return float(torch.rand((), generator=generator)) < p


def _check_image(image: Tensor) -> None:
    if image.ndim != 3 or image.shape[0] < RGB_CHANNELS:
        raise ValueError(f"expected an image (C>=3, H, W), got shape {tuple(image.shape)}")


def color_jitter(
    image: Tensor,
    *,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator,
) -> Tensor:
    """``torchvision.ColorJitter`` semantics on the RGB channels of a (C, H, W) image in [0, 1].

    Factors are drawn as in torchvision (brightness/contrast/saturation in ``[max(0, 1-s), 1+s]``, hue in
    ``[-h, h]``) and applied in a random order. Channels beyond the third are returned unchanged.
    """
    _check_image(image)
    rgb = image[:RGB_CHANNELS]
    order = torch.randperm(4, generator=generator).tolist()
    factors = (
        _uniform(max(0.0, 1.0 - brightness), 1.0 + brightness, generator),
        _uniform(max(0.0, 1.0 - contrast), 1.0 + contrast, generator),
        _uniform(max(0.0, 1.0 - saturation), 1.0 + saturation, generator),
        _uniform(-hue, hue, generator),
    )
    for op in order:
        if op == 0 and brightness > 0:
            rgb = TF.adjust_brightness(rgb, factors[0])
        elif op == 1 and contrast > 0:
            rgb = TF.adjust_contrast(rgb, factors[1])
        elif op == 2 and saturation > 0:
            rgb = TF.adjust_saturation(rgb, factors[2])
        elif op == 3 and hue > 0:
            rgb = TF.adjust_hue(rgb, factors[3])
    return torch.cat((rgb, image[RGB_CHANNELS:]), dim=0)


def to_grayscale(image: Tensor) -> Tensor:
    """Replace the RGB channels of a (C, H, W) image by their luma (replicated 3x); other bands unchanged."""
    _check_image(image)
    gray = TF.rgb_to_grayscale(image[:RGB_CHANNELS], num_output_channels=RGB_CHANNELS)
    return torch.cat((gray, image[RGB_CHANNELS:]), dim=0)


def gaussian_blur(image: Tensor, *, sigma: float) -> Tensor:
    """Gaussian blur of every channel of a (C, H, W) image, kernel ``2 * ceil(3 sigma) + 1`` (PIL-like)."""
    radius = max(1, math.ceil(3.0 * sigma))
    kernel = 2 * radius + 1
    return TF.gaussian_blur(image, [kernel, kernel], [sigma, sigma])


def strong_photometric(image: Tensor, *, config: StrongAugConfig, generator: torch.Generator) -> Tensor:
    """Colour jitter (p), grayscale (p), blur (p) in this order, as in UniMatch / ST++; output in [0, 1]."""
    out = image
    if _bernoulli(config.p_jitter, generator):
        b, c, s, h = config.jitter
        out = color_jitter(out, brightness=b, contrast=c, saturation=s, hue=h, generator=generator)
    if _bernoulli(config.p_grayscale, generator):
        out = to_grayscale(out)
    if _bernoulli(config.p_blur, generator):
        out = gaussian_blur(out, sigma=_uniform(*config.blur_sigma, generator))
    return out.clamp(0.0, 1.0)


def random_box(height: int, width: int, *, config: BoxConfig, generator: torch.Generator) -> Tensor:
    """A (H, W) bool mask holding one random rectangle with probability ``config.p`` (else all False).

    The area is ``U(area) * H * W`` and the aspect ratio ``U(aspect)``; positions are redrawn until the box
    fits (at most ``MAX_BOX_TRIES`` times, then the last box is clipped to the image).
    """
    mask = torch.zeros(height, width, dtype=torch.bool)
    if not _bernoulli(config.p, generator):
        return mask
    box_h = box_w = top = left = 0
    for _ in range(MAX_BOX_TRIES):
        area = _uniform(*config.area, generator) * height * width
        ratio = _uniform(*config.aspect, generator)
        box_w = int(math.sqrt(area / ratio))
        box_h = int(math.sqrt(area * ratio))
        left = int(torch.randint(0, width, (), generator=generator))
        top = int(torch.randint(0, height, (), generator=generator))
        if left + box_w <= width and top + box_h <= height:
            break
    mask[top : min(top + box_h, height), left : min(left + box_w, width)] = True
    return mask


def cutout(image: Tensor, *, config: BoxConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """ST++ / SegSlum cutout: fill a random box with per-pixel uniform noise in [0, 1].

    Returns ``(image (C, H, W), box (H, W) bool)``; the box pixels must be ignored in the loss.
    """
    box = random_box(image.shape[-2], image.shape[-1], config=config, generator=generator)
    if not bool(box.any()):
        return image, box
    noise = torch.rand(image.shape, generator=generator, dtype=image.dtype)
    return torch.where(box.unsqueeze(0), noise, image), box


def _seed_for(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))


class UnlabeledViews(Dataset[dict[str, Tensor]]):
    """Wrap a dataset of images into dict samples holding the views a semi-supervised step needs.

    The wrapped dataset yields either a (C, H, W) float tensor in [0, 1] or a mapping with ``"image"``
    and optionally ``"label"`` (H, W) int (pseudo-labels for self-training; 255 = ignore) and ``"valid"``
    (H, W) bool (False = no data; such pixels get ``ignore_mask`` 255).

    Keys are produced *without* the ``u_`` prefix: the engine adds it when it merges the unlabeled batch
    into the labeled one (:func:`~slumwatch.models.methods.base.merge_batches`), so ``image_w`` here is
    ``u_image_w`` in the step. Keys per mode (all tensors; the DataLoader collates them into batches):

    * ``"fixmatch"``: ``image_w``, ``image_s1`` (C, H, W); ``cutmix_box1`` (H, W) bool;
      ``ignore_mask`` (H, W) int64 (0 or 255); and a second, independently drawn unlabeled image used
      as the CutMix source: ``image_mix`` (weak), ``image_mix_s1`` (strong), ``ignore_mask_mix``.
    * ``"unimatch"``: the above plus ``image_s2``, ``cutmix_box2``, ``image_mix_s2``.
    * ``"unimatch_v2"``: ``image_w``, ``image_s1``, ``image_s2``, ``cutmix_box1/2``,
      ``ignore_mask`` (UniMatch V2 mixes within the batch, so no second image).
    * ``"segslum"``: ``image_w``, ``image_s`` (SegSlum strong view with cutout), ``ignore_mask``
      (255 inside the cutout box and where there is no data) and, when the source has labels,
      ``label`` (H, W) int64 with the cutout box set to 255.

    Args:
        dataset: the source dataset (see above).
        seed: base seed; a sample's randomness depends only on ``(seed, epoch, index)``.
        mode: one of ``VIEW_MODES``.
        normalize: optional map applied to every output image after augmentation (e.g. mean/std).
        strong: photometric strong augmentation; defaults to UniMatch's for the UniMatch/FixMatch modes
            and SegSlum's for ``"segslum"``.
        cutmix: CutMix box law.
        cutout_box: cutout box law (``"segslum"`` only).
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        seed: int,
        mode: ViewMode = "unimatch",
        normalize: Callable[[Tensor], Tensor] | None = None,
        strong: StrongAugConfig | None = None,
        cutmix: BoxConfig = CUTMIX_BOX,
        cutout_box: BoxConfig = CUTOUT_BOX,
    ) -> None:
        if mode not in VIEW_MODES:
            raise ValueError(f"mode must be one of {VIEW_MODES}, got {mode!r}")
        self.dataset = dataset
        self.seed = seed
        self.mode = mode
        self.normalize = normalize
        self.strong = (
            strong if strong is not None else (SEGSLUM_STRONG if mode == "segslum" else UNIMATCH_STRONG)
        )
        self.cutmix = cutmix
        self.cutout_box = cutout_box
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the epoch so the next pass draws fresh views (also forwarded to the wrapped dataset)."""
        self.epoch = epoch
        setter = getattr(self.dataset, "set_epoch", None)
        if callable(setter):
            setter(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _load(self, index: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """Return ``(image (C,H,W) float, ignore (H,W) int64 0/255, label (H,W) int64 or None)``."""
        item = self.dataset[index]
        label: Tensor | None = None
        valid: Tensor | None = None
        if isinstance(item, Mapping):
            image = _as_tensor(item["image"])
            if item.get("label") is not None:
                label = _as_tensor(item["label"]).long()
            if item.get("valid") is not None:
                valid = _as_tensor(item["valid"]).bool()
        else:
            image = _as_tensor(item)
        image = image.float()
        _check_image(image)
        ignore = torch.zeros(image.shape[-2:], dtype=torch.long)
        if valid is not None:
            ignore[~valid] = IGNORE_INDEX
        return image, ignore, label

    def _out(self, image: Tensor) -> Tensor:
        return self.normalize(image) if self.normalize is not None else image

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        gen = torch.Generator().manual_seed(_seed_for(self.seed, self.epoch, index))
        image, ignore, label = self._load(index)
        height, width = image.shape[-2:]
        sample: dict[str, Tensor] = {
            "image_w": self._out(image),
            "ignore_mask": ignore,
            "index": torch.tensor(index),
        }

        if self.mode == "segslum":
            strong = strong_photometric(image, config=self.strong, generator=gen)
            strong, box = cutout(strong, config=self.cutout_box, generator=gen)
            sample["image_s"] = self._out(strong)
            sample["ignore_mask"] = ignore.masked_fill(box, IGNORE_INDEX)
            if label is not None:
                sample["label"] = label.masked_fill(box, IGNORE_INDEX)
            return sample

        n_strong = 1 if self.mode == "fixmatch" else 2
        for k in range(1, n_strong + 1):
            sample[f"image_s{k}"] = self._out(strong_photometric(image, config=self.strong, generator=gen))
            sample[f"cutmix_box{k}"] = random_box(height, width, config=self.cutmix, generator=gen)

        if self.mode == "unimatch_v2":
            return sample

        mix_index = int(torch.randint(0, len(self), (), generator=gen))
        mix, mix_ignore, _ = self._load(mix_index)
        if mix.shape != image.shape:
            raise ValueError(f"CutMix source shape {tuple(mix.shape)} != {tuple(image.shape)}")
        sample["image_mix"] = self._out(mix)
        sample["ignore_mask_mix"] = mix_ignore
        for k in range(1, n_strong + 1):
            sample[f"image_mix_s{k}"] = self._out(strong_photometric(mix, config=self.strong, generator=gen))
        return sample
