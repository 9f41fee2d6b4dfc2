"""DINOv2 ViT-S/14 + DPT head (UniMatch-V2 / SLUM-i DINOv2 variant), registered as ``dinov2_vits14_dpt``.

The backbone is timm's ``vit_small_patch14_dinov2`` (``pretrained=False``, ``dynamic_img_size=True``: any
input size, position embeddings interpolated); features of blocks 2, 5, 8, 11 (after the final norm, as
DINOv2's ``get_intermediate_layers``) feed a :class:`~slumwatch.models.dpt_head.DPTHead`. Inputs are
padded to a multiple of 14 and outputs cropped back. ``weights=`` accepts the official DINOv2
``dinov2_vits14_pretrain.pth`` (keys map 1:1 to timm's, ``mask_token`` is dropped) from a local path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch
from torch import Tensor, nn

from slumwatch.models.base import SegmentationModel
from slumwatch.models.dpt_head import DEFAULT_FEATURES, DEFAULT_OUT_CHANNELS, DPTHead
from slumwatch.models.heads import (
    DEFAULT_PROJ_DIM,
    FP_DROPOUT,
    ProjectionHead,
    decoded_outputs,
    perturb_features,
)
from slumwatch.models.padding import pad_to_multiple
from slumwatch.models.registry import register_model

PATCH_SIZE = 14
VITS14_NAME = "vit_small_patch14_dinov2"
VITS14_LAYERS = (2, 5, 8, 11)
DROPPED_KEYS = ("mask_token",)
STRIPPED_PREFIXES = ("module.", "backbone.", "encoder.")
VIT_PREFIX = "vit."


class DinoV2Backbone(nn.Module):
    """timm DINOv2 ViT returning the normed patch-grid features of ``layers``: list of (B, C, h, w).

    Calling the module (not ``forward_intermediates`` directly) keeps forward hooks working
    (e.g. UniMatch-V2 complementary dropout registered on ``model.backbone``).
    """

    def __init__(self, *, variant: str, in_channels: int, layers: Sequence[int]) -> None:
        super().__init__()
        vit: Any = timm.create_model(
            variant, pretrained=False, dynamic_img_size=True, num_classes=0, in_chans=in_channels
        )
        self.vit = vit
        self.layers = tuple(layers)
        self.embed_dim = int(vit.embed_dim)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (B, C, 14h, 14w) → [(B, embed_dim, h, w)] * len(layers)."""
        feats = self.vit.forward_intermediates(
            x, indices=list(self.layers), norm=True, output_fmt="NCHW", intermediates_only=True
        )
        return list(feats)


class DinoV2DPT(SegmentationModel):
    """DINOv2 + DPT: (B, C, H, W) → logits (B, K, H, W); see :mod:`slumwatch.models.base` for outputs.

    Args:
        num_classes, in_channels: K and C.
        freeze_backbone: no gradients through the ViT (SLUM-i); its forward runs under ``no_grad``.
        features, out_channels: DPT widths.
        proj_dim: D of the projection head; ``proj`` is (B, D, ceil(H/4), ceil(W/4)).
        fp_dropout: Dropout2d probability on the four ViT maps for ``fp``.
        layers: ViT blocks whose outputs feed the head.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        variant: str = VITS14_NAME,
        layers: Sequence[int] = VITS14_LAYERS,
        freeze_backbone: bool = False,
        features: int = DEFAULT_FEATURES,
        out_channels: Sequence[int] = DEFAULT_OUT_CHANNELS,
        proj_dim: int = DEFAULT_PROJ_DIM,
        fp_dropout: float = FP_DROPOUT,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            in_channels=in_channels,
            pad_multiple=PATCH_SIZE,
            input_mean=input_mean,
            input_std=input_std,
        )
        self.backbone = DinoV2Backbone(variant=variant, in_channels=in_channels, layers=layers)
        self.head = DPTHead(self.backbone.embed_dim, features=features, out_channels=out_channels)
        self.classifier = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, num_classes, 1),
        )
        self.has_proj = True
        self.proj_head = ProjectionHead(features, dim=proj_dim)
        self.fp_dropout = fp_dropout
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)

    def first_conv_key(self) -> str | None:
        """Patch-embedding weight (adapted for ``in_channels`` != 3)."""
        return f"{VIT_PREFIX}patch_embed.proj.weight"

    def map_backbone_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Official DINOv2 / timm ViT keys → ``backbone`` keys (``vit.`` prefix, ``mask_token`` dropped)."""
        out: dict[str, Tensor] = {}
        for key, value in state.items():
            name = key
            for prefix in STRIPPED_PREFIXES:
                name = name.removeprefix(prefix)
            if name in DROPPED_KEYS or name.startswith(("head.", "fc.")):
                continue
            out[name if name.startswith(VIT_PREFIX) else VIT_PREFIX + name] = value
        return out

    def _features(self, x: Tensor) -> list[Tensor]:
        if self.freeze_backbone:
            with torch.no_grad():
                return [f.detach() for f in self.backbone(x)]
        return list(self.backbone(x))

    def forward_dict(
        self, x: Tensor, *, fp: bool = False, gram: bool = False, proj: bool = False
    ) -> dict[str, Tensor]:
        """x (B, C, H, W) → ``logits`` (B, K, H, W) [+ ``logits_fp`` (B, K, H, W), ``proj``]."""
        self._require(gram=gram, proj=proj)
        batch = x.shape[0]
        padded, size = pad_to_multiple(self.standardize(x), self.pad_multiple)
        feats = self._features(padded)
        if fp:
            feats = [perturb_features(f, p=self.fp_dropout) for f in feats]
        fused = self.head(feats)  # (B or 2B, F, 8h, 8w)
        return decoded_outputs(self, fused, batch=batch, padded=padded, size=size, fp=fp, proj=proj)


@register_model("dinov2_vits14_dpt")
def dinov2_vits14_dpt(*, num_classes: int = 2, in_channels: int = 3, **kwargs: object) -> DinoV2DPT:
    """DINOv2 ViT-S/14 + DPT (blocks 2, 5, 8, 11); ``freeze_backbone=True`` for SLUM-i."""
    return DinoV2DPT(num_classes=num_classes, in_channels=in_channels, **kwargs)  # type: ignore[arg-type]
