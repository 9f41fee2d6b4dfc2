"""Explicit, timm-like model registry.

Networks register a builder with :func:`register_model`; :func:`get_model` builds one by name,
records ``model_name`` / ``model_kwargs`` on it (so checkpoints can rebuild it) and optionally loads
pretrained weights from a local file (nothing is ever downloaded).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from slumwatch.models.base import SegmentationModel
from slumwatch.models.errors import UnknownModelError
from slumwatch.models.weights import load_weights

ModelBuilder = Callable[..., SegmentationModel]
BuilderT = TypeVar("BuilderT", bound=ModelBuilder)

_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[BuilderT], BuilderT]:
    """Decorator registering ``builder(*, num_classes, in_channels, **kwargs) -> SegmentationModel``."""

    def decorator(builder: BuilderT) -> BuilderT:
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Sorted names of all registered models."""
    return sorted(_REGISTRY)


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
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; available: {', '.join(list_models()) or '(none)'}"
        ) from None
    model = builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    model.model_name = name
    model.model_kwargs = {"num_classes": num_classes, "in_channels": in_channels, **kwargs}
    if weights is not None:
        load_weights(model, Path(weights))
    return model


__all__ = ["ModelBuilder", "get_model", "list_models", "register_model"]
