"""slumwatch.models: networks, registry, metrics, checkpoints, inference and the training engine.

Pure torch (no Ray, Prefect, xarray, zarr or dask). Main entry points::

    from slumwatch.models import get_model, list_models, Engine, TrainConfig, get_method
    model = get_model("deeplabv3plus_resnet18", num_classes=2, in_channels=3)
    logits = model(x)                      # (B, C, H, W) -> (B, K, H, W)
    out = model.forward_dict(x, fp=True)   # {"logits", "logits_fp"}

Network modules (smp / timm) are imported when a model of theirs is first built.
"""

from slumwatch.models.base import SegmentationModel, call_forward_dict, unwrap_model
from slumwatch.models.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from slumwatch.models.data import TileDataset, band_percentiles, scale_to_unit
from slumwatch.models.engine import Engine, EpochReport, TrainConfig, TrainResult, seed_everything, to_device
from slumwatch.models.errors import (
    CheckpointError,
    ModelsError,
    UnknownModelError,
    UnsupportedOutputError,
    WeightsError,
)
from slumwatch.models.inference import predict_proba, sliding_window_proba
from slumwatch.models.methods import (
    MethodStep,
    MethodStepBase,
    StepOutput,
    SupervisedStep,
    UnknownMethodError,
    get_method,
    list_methods,
    register_method,
)
from slumwatch.models.metrics import ConfusionMatrix, SegmentationScores
from slumwatch.models.registry import get_model, list_models, register_model

__all__ = [
    "CheckpointError",
    "ConfusionMatrix",
    "Engine",
    "EpochReport",
    "LoadedCheckpoint",
    "MethodStep",
    "MethodStepBase",
    "ModelsError",
    "SegmentationModel",
    "SegmentationScores",
    "StepOutput",
    "SupervisedStep",
    "TileDataset",
    "TrainConfig",
    "TrainResult",
    "UnknownMethodError",
    "UnknownModelError",
    "UnsupportedOutputError",
    "WeightsError",
    "band_percentiles",
    "call_forward_dict",
    "get_method",
    "get_model",
    "list_methods",
    "list_models",
    "load_checkpoint",
    "predict_proba",
    "register_method",
    "register_model",
    "save_checkpoint",
    "scale_to_unit",
    "seed_everything",
    "sliding_window_proba",
    "to_device",
    "unwrap_model",
]
