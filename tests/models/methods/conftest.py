"""Tiny deterministic networks and batches for the method tests (CPU, 3 x 16 x 16 tiles).

``TinySegModel`` implements the network contract of :mod:`slumwatch.models.base` with 1x1 convolutions,
so the tests do not depend on the real networks: logits = head(backbone(x)); ``logits_fp`` decodes the
backbone feature with a *fixed* channel mask (deterministic FP stream); ``proj`` is a 1x1 conv on the
feature average-pooled to 1/4 resolution; ``gram`` is a learnable scaling of the feature's Gram matrix.
It records every ``forward_dict`` output so tests can inspect what the step did with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slumwatch.models.base import GRAM, LOGITS, LOGITS_FP, PROJ, SegmentationModel

FEATURES = 4
PROJ_DIM = 8
PROJ_STRIDE = 4
SIZE = 16


class TinySegModel(SegmentationModel):
    """1x1-conv segmentation network honouring ``forward_dict`` (see the module docstring)."""

    def __init__(self, *, num_classes: int = 2, in_channels: int = 3, gram_branch: bool = False) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, pad_multiple=1)
        self.backbone = nn.Conv2d(in_channels, FEATURES, 1)
        self.head = nn.Conv2d(FEATURES, num_classes, 1)
        self.proj_head = nn.Conv2d(FEATURES, PROJ_DIM, 1)
        self.gram_scale = nn.Parameter(torch.ones(()))
        self.register_buffer("fp_mask", torch.tensor([2.0, 0.0, 2.0, 0.0]).view(1, FEATURES, 1, 1))
        self.register_buffer("seen", torch.zeros(()))
        self.has_proj = True
        self.has_gram = gram_branch
        self.model_name = "tiny-test"
        self.records: list[dict[str, Any]] = []

    def forward_dict(
        self, x: Tensor, *, fp: bool = False, gram: bool = False, proj: bool = False
    ) -> dict[str, Tensor]:
        self._require(gram=gram, proj=proj)
        if self.training:
            self.seen += 1  # a floating buffer that changes with training (EMA tests)
        feat = self.backbone(x)
        out = {LOGITS: self.head(feat)}
        if fp:
            out[LOGITS_FP] = self.head(feat * self.fp_mask)
        if proj:
            out[PROJ] = self.proj_head(F.avg_pool2d(feat, PROJ_STRIDE, ceil_mode=True))
        if gram:
            flat = feat.flatten(2)
            out[GRAM] = self.gram_scale * (flat @ flat.transpose(1, 2) / flat.shape[-1]).unsqueeze(1)
        for value in out.values():
            if value.requires_grad:
                value.retain_grad()
        self.records.append(
            {"fp": fp, "proj": proj, "gram": gram, "training": self.training, "batch": x.shape[0], "out": out}
        )
        return out


def make_model(
    *,
    seed: int = 0,
    num_classes: int = 2,
    in_channels: int = 3,
    gram_branch: bool = False,
    sharpen: float = 60.0,
) -> TinySegModel:
    """A seeded TinySegModel; ``sharpen`` scales the head so some predictions are confident, and the head
    bias is centred so both classes are predicted on random inputs."""
    torch.manual_seed(seed)
    model = TinySegModel(num_classes=num_classes, in_channels=in_channels, gram_branch=gram_branch)
    with torch.no_grad():
        model.head.weight.mul_(sharpen)
        probe = torch.rand(8, in_channels, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
        model.head.bias.sub_(model.head(model.backbone(probe)).mean(dim=(0, 2, 3)))  # balance the classes
    return model


def make_batch(
    *, seed: int = 0, n_l: int = 2, n_u: int = 2, channels: int = 3, size: int = SIZE, num_classes: int = 2
) -> dict[str, Tensor]:
    """A merged labeled + unlabeled batch with every key any consistency method reads."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g)

    label = torch.randint(0, num_classes, (n_l, size, size), generator=g)
    label[:, 0, :] = 255
    box1 = torch.zeros(n_u, size, size, dtype=torch.bool)
    box1[:, 2:9, 3:11] = True
    box2 = torch.zeros(n_u, size, size, dtype=torch.bool)
    box2[0, 8:15, 0:6] = True
    ignore = torch.zeros(n_u, size, size, dtype=torch.long)
    ignore[:, -2:, :] = 255
    ignore_mix = torch.zeros(n_u, size, size, dtype=torch.long)
    ignore_mix[:, :, :1] = 255
    pseudo = torch.randint(0, num_classes, (n_u, size, size), generator=g)
    pseudo[:, :, -1] = 255
    return {
        "image": rand(n_l, channels, size, size),
        "label": label,
        "u_image_w": rand(n_u, channels, size, size),
        "u_image_s": rand(n_u, channels, size, size),
        "u_image_s1": rand(n_u, channels, size, size),
        "u_image_s2": rand(n_u, channels, size, size),
        "u_cutmix_box1": box1,
        "u_cutmix_box2": box2,
        "u_ignore_mask": ignore,
        "u_image_mix": rand(n_u, channels, size, size),
        "u_image_mix_s1": rand(n_u, channels, size, size),
        "u_image_mix_s2": rand(n_u, channels, size, size),
        "u_ignore_mask_mix": ignore_mix,
        "u_label": pseudo,
    }


@pytest.fixture
def model_factory() -> Callable[..., TinySegModel]:
    return make_model


@pytest.fixture
def batch_factory() -> Callable[..., dict[str, Tensor]]:
    return make_batch
