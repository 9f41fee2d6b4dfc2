"""The network contract every slumwatch segmentation model implements.

- ``forward(x) -> logits``: x (B, C, H, W) float32, logits (B, K, H, W) at input resolution;
  any ``H, W`` works (the network pads to its stride internally and crops back).
- ``forward_dict(x, *, fp=False, gram=False, proj=False) -> dict[str, Tensor]``:
  ``"logits"`` (B, K, H, W) always; ``"logits_fp"`` (B, K, H, W) with ``fp`` (UniMatch feature
  perturbation, decoded in the same batch as the clean features); ``"gram"`` (B, 1, 16, 16) with
  ``gram`` (SegSlum GRAM branch, only on networks that have it); ``"proj"`` (B, D, ceil(H/4), ceil(W/4))
  with ``proj`` (projection head for prototype banks).
- ``param_groups(lr, head_lr_multiplier)``: backbone parameters at ``lr``, head at ``lr * multiplier``.

A model wrapped in ``DistributedDataParallel`` still reaches ``forward_dict`` through the wrapper with
:func:`call_forward_dict` (the wrapper forwards keyword arguments to :meth:`SegmentationModel.forward`), which
keeps DDP's gradient synchronisation intact; ``model.module.forward_dict`` would bypass it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, Literal, overload

import torch
from torch import Tensor, nn

from slumwatch.models.errors import UnsupportedOutputError

LOGITS = "logits"
LOGITS_FP = "logits_fp"
GRAM = "gram"
PROJ = "proj"
BACKBONE_GROUP = "backbone"
HEAD_GROUP = "head"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EXTRA_BAND_MEAN = 0.5  # bands beyond RGB (e.g. NIR) in [0, 1]
EXTRA_BAND_STD = 0.25


def default_input_stats(in_channels: int) -> tuple[list[float], list[float]]:
    """ImageNet mean/std for the first three bands, (0.5, 0.25) for any further band."""
    mean = [IMAGENET_MEAN[i] if i < len(IMAGENET_MEAN) else EXTRA_BAND_MEAN for i in range(in_channels)]
    std = [IMAGENET_STD[i] if i < len(IMAGENET_STD) else EXTRA_BAND_STD for i in range(in_channels)]
    return mean, std


class SegmentationModel(nn.Module, ABC):
    """Base class of all registered networks.

    Inputs are images scaled to [0, 1]; each network standardises them internally with fixed
    per-band ``input_mean`` / ``input_std`` (ImageNet statistics for RGB by default, matching
    torchvision/DINOv2 pretrained weights), so training and inference always agree.

    Subclasses set ``self.backbone`` (the pretrained-initialisable part) and implement
    :meth:`forward_dict`. ``model_name`` / ``model_kwargs`` are filled in by the registry so a
    checkpoint can rebuild the network.
    """

    num_classes: int
    in_channels: int
    pad_multiple: int
    has_gram: bool = False
    has_proj: bool = False
    backbone: nn.Module

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        pad_multiple: int,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.pad_multiple = pad_multiple
        self.model_name: str | None = None
        self.model_kwargs: dict[str, Any] = {}
        default_mean, default_std = default_input_stats(in_channels)
        mean = list(input_mean) if input_mean is not None else default_mean
        std = list(input_std) if input_std is not None else default_std
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(f"input_mean/input_std need {in_channels} values")
        # not persistent: derived from the kwargs, so state dicts stay backbone-compatible
        self.register_buffer("input_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def standardize(self, x: Tensor) -> Tensor:
        """(x - mean) / std per band; x (B, C, H, W) in [0, 1] as produced by ``scale_to_unit``."""
        mean: Tensor = self.input_mean  # type: ignore[assignment]
        std: Tensor = self.input_std  # type: ignore[assignment]
        return (x - mean.to(x.dtype)) / std.to(x.dtype)

    @overload
    def forward(self, x: Tensor) -> Tensor: ...

    @overload
    def forward(
        self, x: Tensor, *, return_dict: Literal[True], fp: bool = ..., gram: bool = ..., proj: bool = ...
    ) -> dict[str, Tensor]: ...

    def forward(
        self,
        x: Tensor,
        *,
        return_dict: bool = False,
        fp: bool = False,
        gram: bool = False,
        proj: bool = False,
    ) -> Tensor | dict[str, Tensor]:
        """Logits (B, K, H, W) for x (B, C, H, W); ``return_dict=True`` gives :meth:`forward_dict` output."""
        if return_dict:
            return self.forward_dict(x, fp=fp, gram=gram, proj=proj)
        return self.forward_dict(x)[LOGITS]

    @abstractmethod
    def forward_dict(
        self, x: Tensor, *, fp: bool = False, gram: bool = False, proj: bool = False
    ) -> dict[str, Tensor]:
        """Richer forward; see the module docstring for the keys and their shapes."""

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the backbone (pretrained part)."""
        return self.backbone.parameters()

    def param_groups(self, lr: float, head_lr_multiplier: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups: ``backbone`` at ``lr``, ``head`` (everything else) at ``lr * mult``.

        Frozen parameters (``requires_grad=False``) are left out. Each group carries ``name`` and
        ``base_lr`` (the engine's poly schedule scales ``base_lr``).
        """
        backbone_ids = {id(p) for p in self.backbone_parameters()}
        backbone = [p for p in self.parameters() if id(p) in backbone_ids and p.requires_grad]
        head = [p for p in self.parameters() if id(p) not in backbone_ids and p.requires_grad]
        groups: list[dict[str, Any]] = []
        if backbone:
            groups.append({"params": backbone, "lr": lr, "base_lr": lr, "name": BACKBONE_GROUP})
        head_lr = lr * head_lr_multiplier
        groups.append({"params": head, "lr": head_lr, "base_lr": head_lr, "name": HEAD_GROUP})
        return groups

    def map_backbone_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map a foreign pretrained state dict (e.g. torchvision) to ``self.backbone`` key names.

        The default drops a leading ``module.`` and classification-head keys (``fc.``, ``head.``).
        """
        out: dict[str, Tensor] = {}
        for key, value in state.items():
            name = key.removeprefix("module.")
            if name.startswith(("fc.", "head.")):
                continue
            out[name] = value
        return out

    def first_conv_key(self) -> str | None:
        """Backbone key of the first convolution's weight (adapted when ``in_channels`` != 3)."""
        return None

    def _require(self, *, gram: bool, proj: bool) -> None:
        if gram and not self.has_gram:
            raise UnsupportedOutputError(
                f"{type(self).__name__} ({self.model_name}) has no GRAM branch; "
                "use a model registered with the branch, e.g. 'deeplabv3plus_aux_resnet50'"
            )
        if proj and not self.has_proj:
            raise UnsupportedOutputError(f"{type(self).__name__} ({self.model_name}) has no projection head")


def unwrap_model(model: nn.Module) -> SegmentationModel:
    """The :class:`SegmentationModel` inside a (possibly DDP / DataParallel) wrapper."""
    inner: object = model
    while not isinstance(inner, SegmentationModel) and isinstance(getattr(inner, "module", None), nn.Module):
        inner = getattr(inner, "module")  # noqa: B009
    if not isinstance(inner, SegmentationModel):
        raise TypeError(f"expected a SegmentationModel (optionally wrapped), got {type(model).__name__}")
    return inner


def call_forward_dict(
    model: nn.Module, x: Tensor, *, fp: bool = False, gram: bool = False, proj: bool = False
) -> dict[str, Tensor]:
    """``forward_dict`` through any wrapper (DDP keeps its gradient hooks because ``__call__`` is used)."""
    out: dict[str, Tensor] = model(x, return_dict=True, fp=fp, gram=gram, proj=proj)
    return out
