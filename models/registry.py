"""Explicit, timm-like model registry.

Networks register a builder with :func:`register_model`; :func:`get_model` builds one by name,
records ``model_name`` / ``model_kwargs`` on it (so checkpoints can rebuild it) and optionally loads
pretrained weights from a local file (nothing is ever downloaded).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from slumwatch.models.base import SegmentationModel
from slumwatch.models.errors import UnknownModelError
from slumwatch.models.weights import load_weights

ModelBuilder = Callable[..., SegmentationModel]
BuilderT = TypeVar("BuilderT", bound=ModelBuilder)

_REGISTRY: dict[str, ModelBuilder] = {}

# Built-in networks are imported on first use, so ``import slumwatch.models`` stays light (no smp/timm).
_BUILTIN_MODULES: dict[str, str] = {
    "deeplabv3plus_resnet18": "slumwatch.models.deeplabv3plus",
    "deeplabv3plus_resnet50": "slumwatch.models.deeplabv3plus",
    "deeplabv3plus_resnet101": "slumwatch.models.deeplabv3plus",
    "deeplabv3plus_aux_resnet50": "slumwatch.models.deeplabv3plus",
    "deeplabv3plus_aux_resnet101": "slumwatch.models.deeplabv3plus",
    "dinov2_vits14_dpt": "slumwatch.models.dinov2_dpt",
    "deeplabv2_resnet101": "slumwatch.models.deeplabv2",
    "pspnet_resnet50": "slumwatch.models.pspnet",
}


def register_model(name: str) -> Callable[[BuilderT], BuilderT]:
    """Decorator registering ``builder(*, num_classes, in_channels, **kwargs) -> SegmentationModel``."""

    def decorator(builder: BuilderT) -> BuilderT:
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Sorted names of all registered models (built-in ones included, even if not imported yet)."""
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def _builder(name: str) -> ModelBuilder:
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; available: {', '.join(list_models()) or '(none)'}"
        ) from None


def get_model(
    name: str,
    *,
    num_classes: int = 2,
    in_channels: int = 3,
    weights: Path | None = None,
    **kwargs: Any,
) -> SegmentationModel:
    """Build the registered network ``name`` (random init unless ``weights`` is given).

    ``weights`` is a local torchvision-/timm-style backbone state dict (``.pth``) or an earlier
    slumwatch checkpoint; see :func:`slumwatch.models.weights.load_weights`.
    Raises :class:`UnknownModelError` listing the available names.
    """
    builder = _builder(name)
    model = builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    model.model_name = name
    model.model_kwargs = {"num_classes": num_classes, "in_channels": in_channels, **kwargs}
    if weights is not None:
        load_weights(model, Path(weights))
    return model


__all__ = ["ModelBuilder", "get_model", "list_models", "register_model"]
