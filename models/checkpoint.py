"""Self-describing checkpoints that load without the training code.

A checkpoint is a ``torch.save`` dict with::

    format, format_version, model_name, model_kwargs, model_state, normalization, metadata,
    optimizer_state, scheduler_state, step_state, extra_state

``model_name`` + ``model_kwargs`` rebuild the network through the registry; ``normalization`` holds the
input scaling (e.g. per-band ``low``/``high`` percentiles for :func:`slumwatch.models.data.scale_to_unit`);
``metadata`` holds method, config, split hash, metrics and ``code_version``. Files are written atomically
(temporary file in the same folder, fsync, ``os.replace``) and read with ``weights_only=True``: every value
must be a tensor, a number, a string, ``None`` or a list/tuple/dict of those.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from torch import nn

from slumwatch.models._format import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, FORMAT_KEY, MODEL_STATE_KEY
from slumwatch.models.base import SegmentationModel, unwrap_model
from slumwatch.models.errors import CheckpointError, UnknownModelError
from slumwatch.models.registry import get_model

MODEL_KWARGS_EXCLUDED = ("weights",)
CHECKPOINT_FILE_MODE = 0o644


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint read back: ``model`` is rebuilt through the registry and in eval mode."""

    model: SegmentationModel
    model_name: str
    model_kwargs: Mapping[str, Any]
    normalization: Mapping[str, Any]
    metadata: Mapping[str, Any]
    raw: Mapping[str, Any]


def to_plain(value: Any) -> Any:
    """Convert paths, numpy values and dataclass-like containers to checkpoint-safe plain values."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k) if isinstance(k, PurePath) else k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        converted = [to_plain(v) for v in value]
        return converted if isinstance(value, list) else tuple(converted)
    return value


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    model_name: str,
    model_kwargs: Mapping[str, Any],
    normalization: Mapping[str, Any],
    metadata: Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler_state: Mapping[str, Any] | None = None,
    step_state: Mapping[str, Any] | None = None,
    extra_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically to ``path`` (parents are created); returns ``path``.

    ``model`` may be wrapped (DDP); its unwrapped state is saved. ``extra_state`` carries the engine's
    resume state (GradScaler, iteration, RNG states).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inner = unwrap_model(model)
    kwargs = {k: v for k, v in model_kwargs.items() if k not in MODEL_KWARGS_EXCLUDED}
    payload: dict[str, Any] = {
        FORMAT_KEY: CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model_name": model_name,
        "model_kwargs": to_plain(kwargs),
        MODEL_STATE_KEY: inner.state_dict(),
        "normalization": to_plain(dict(normalization)),
        "metadata": to_plain(dict(metadata)),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scheduler_state": to_plain(dict(scheduler_state)) if scheduler_state is not None else None,
        "step_state": to_plain(dict(step_state)) if step_state is not None else None,
        "extra_state": to_plain(dict(extra_state)) if extra_state is not None else None,
    }
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp_path = Path(tmp_name)
    try:
        tmp_path.chmod(CHECKPOINT_FILE_MODE)  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp_path.replace(path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, validated for format; :class:`CheckpointError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(raw, dict) or raw.get(FORMAT_KEY) != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a slumwatch checkpoint (missing format={CHECKPOINT_FORMAT!r})")
    version = raw.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, expected {CHECKPOINT_FORMAT_VERSION}"
        )
    for key in ("model_name", "model_kwargs", MODEL_STATE_KEY):
        if key not in raw:
            raise CheckpointError(f"checkpoint {path} lacks {key!r}")
    return raw


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Read ``path`` and rebuild its model (eval mode) through the registry."""
    path = Path(path)
    raw = read_checkpoint(path, map_location=map_location)
    name = raw["model_name"]
    kwargs = dict(raw["model_kwargs"])
    try:
        model = get_model(name, **kwargs)
    except UnknownModelError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    except TypeError as exc:
        raise CheckpointError(f"checkpoint {path}: model {name!r} rejects kwargs {kwargs}: {exc}") from exc
    try:
        model.load_state_dict(raw[MODEL_STATE_KEY], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path}: state does not fit architecture {name!r}: {exc}") from exc
    model.to(map_location).eval()
    return LoadedCheckpoint(
        model=model,
        model_name=name,
        model_kwargs=kwargs,
        normalization=dict(raw.get("normalization") or {}),
        metadata=dict(raw.get("metadata") or {}),
        raw=raw,
    )


__all__ = ["LoadedCheckpoint", "load_checkpoint", "read_checkpoint", "save_checkpoint", "to_plain"]
