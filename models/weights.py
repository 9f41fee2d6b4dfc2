"""Load local pretrained weights into a :class:`SegmentationModel` (nothing is downloaded).

Two kinds of file are accepted:

- a backbone state dict (torchvision ResNet ``.pth``, timm/DINOv2 ViT ``.pth``, optionally nested under
  ``"state_dict"`` or ``"model"``): keys are mapped by ``model.map_backbone_state_dict`` and must cover
  the backbone exactly (same keys, same shapes); the first convolution is adapted when the model has
  ``in_channels != 3``;
- an earlier slumwatch checkpoint: its full model state is loaded (same architecture required).

Anything else raises :class:`WeightsError` that says how many backbone keys matched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from slumwatch.models._format import CHECKPOINT_FORMAT, FORMAT_KEY, MODEL_STATE_KEY
from slumwatch.models.base import SegmentationModel
from slumwatch.models.errors import WeightsError

LOGGER = logging.getLogger(__name__)
NESTED_STATE_KEYS = ("state_dict", "model", "teacher")
RGB_CHANNELS = 3
MAX_LISTED_KEYS = 5


def read_state_file(path: Path) -> Mapping[str, Any]:
    """``torch.load`` a local file with ``weights_only=True``; :class:`WeightsError` if impossible."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle / zip errors of all kinds
        raise WeightsError(f"weights file {path} cannot be read as a torch state dict: {exc}") from exc
    if not isinstance(state, Mapping):
        raise WeightsError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    return state


def _unnest(state: Mapping[str, Any]) -> dict[str, Tensor]:
    for key in NESTED_STATE_KEYS:
        inner = state.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
            return dict(inner)
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def adapt_first_conv(weight: Tensor, in_channels: int) -> Tensor:
    """Adapt an RGB first-conv weight (O, 3, k, k) to (O, in_channels, k, k).

    Fewer channels: the mean over RGB is repeated; more channels: RGB is cycled and rescaled by
    ``3 / in_channels`` so activations keep their magnitude.
    """
    out_ch, rgb, kh, kw = weight.shape
    if in_channels == rgb:
        return weight
    if in_channels < rgb:
        return weight.mean(dim=1, keepdim=True).expand(out_ch, in_channels, kh, kw).clone()
    index = torch.arange(in_channels) % rgb
    return weight[:, index] * (rgb / in_channels)


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return shown + (f" (+{more} more)" if more > 0 else "")


def load_backbone_state(model: SegmentationModel, state: Mapping[str, Tensor], *, source: str) -> int:
    """Load a foreign backbone state dict into ``model.backbone``; returns the number of keys loaded."""
    mapped = model.map_backbone_state_dict(dict(state))
    first_conv = model.first_conv_key()
    target = model.backbone.state_dict()
    if first_conv is not None and first_conv in mapped and model.in_channels != RGB_CHANNELS:
        weight = mapped[first_conv]
        if weight.ndim == 4 and weight.shape[1] == RGB_CHANNELS:
            mapped[first_conv] = adapt_first_conv(weight, model.in_channels)
            LOGGER.info("adapted %s from 3 to %d input channels", first_conv, model.in_channels)
    missing = [k for k in target if k not in mapped]
    unexpected = [k for k in mapped if k not in target]
    mismatched = [
        f"{k} {tuple(mapped[k].shape)} vs {tuple(target[k].shape)}"
        for k in target
        if k in mapped and mapped[k].shape != target[k].shape
    ]
    matched = len(target) - len(missing) - len(mismatched)
    if missing or unexpected or mismatched:
        parts = [f"{matched} of {len(target)} backbone keys matched"]
        if missing:
            parts.append(f"missing {len(missing)}: {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {_listed(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch {len(mismatched)}: {_listed(mismatched)}")
        raise WeightsError(
            f"weights {source} do not fit {model.model_name or type(model).__name__}: " + "; ".join(parts)
        )
    model.backbone.load_state_dict(mapped, strict=True)
    return matched


def load_model_state(model: SegmentationModel, state: Mapping[str, Tensor], *, source: str) -> int:
    """Load a full slumwatch model state (same architecture); returns the number of keys loaded."""
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    mismatched = [k for k in target if k in state and state[k].shape != target[k].shape]
    if missing or unexpected or mismatched:
        matched = len(target) - len(missing) - len(mismatched)
        raise WeightsError(
            f"checkpoint {source} does not fit {model.model_name or type(model).__name__}: {matched} of "
            f"{len(target)} keys matched; missing {_listed(missing)}; unexpected {_listed(unexpected)}; "
            f"shape mismatch {_listed(mismatched)}"
        )
    model.load_state_dict(dict(state), strict=True)
    return len(target)


def load_weights(model: SegmentationModel, path: Path) -> int:
    """Load ``path`` (backbone state dict or slumwatch checkpoint) into ``model``; returns keys loaded."""
    state = read_state_file(path)
    if state.get(FORMAT_KEY) == CHECKPOINT_FORMAT:
        model_state = state.get(MODEL_STATE_KEY)
        if not isinstance(model_state, Mapping):
            raise WeightsError(f"checkpoint {path} has no model state")
        return load_model_state(model, model_state, source=str(path))
    tensors = _unnest(state)
    if not tensors:
        raise WeightsError(f"weights file {path} holds no tensors")
    return load_backbone_state(model, tensors, source=str(path))


__all__ = ["adapt_first_conv", "load_backbone_state", "load_model_state", "load_weights", "read_state_file"]
