"""Parameters of a training run at the boundary (YAML, CLI flags, Prefect flow parameters).

Validated once here by pydantic; the flow turns them into the frozen dataclasses the library takes
(``TrainConfig``, ``DataOptions``, ``SplitSpec``). No torch/ray/prefect at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["METHOD_NAMES", "MethodName", "SelfTrainingSettings", "SplitSettings", "TrainRunConfig"]

MethodName = Literal[
    "supervised", "fixmatch", "unimatch", "slum-i", "unimatch-v2", "unimatch-v2-slum-i", "st", "st++"
]
METHOD_NAMES: tuple[str, ...] = (
    "supervised",
    "fixmatch",
    "unimatch",
    "slum-i",
    "unimatch-v2",
    "unimatch-v2-slum-i",
    "st",
    "st++",
)
DEFAULT_FRACTIONS = (0.03, 0.10, 0.20, 0.30)
DEFAULT_EPOCHS = 80
DEFAULT_BATCH = 8
DEFAULT_CROP = 256
DEFAULT_LR = 0.01
DEFAULT_WEIGHT_DECAY = 1e-4
DEFAULT_HEAD_LR_MULTIPLIER = 10.0
DEFAULT_SCALE_RANGE = (0.5, 2.0)
REGISTRY_FOLDER = "registry"
MAX_WORKERS = 1024


class SplitSettings(BaseModel):
    """How to split a cube's tiles when no splits file is given (see ``catalogs.splits.SplitSpec``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    train: float = Field(0.7, ge=0, le=1)
    val: float = Field(0.15, ge=0, le=1)
    test: float = Field(0.15, ge=0, le=1)
    fractions: tuple[float, ...] = Field(DEFAULT_FRACTIONS, min_length=1)
    seed: int = Field(0, ge=0)
    block: int = Field(1, ge=1, description="Tiles grouped into block x block blocks (spatial leakage).")
    min_labelled: float = Field(0.25, ge=0, le=1)
    tile_size: int | None = Field(None, ge=16, le=8192, description="Default: the cube's chunk tile.")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        bad = [f for f in value if not 0 < f <= 1]
        if bad:
            raise ValueError(f"label fractions must be in (0, 1], got {bad}")
        return value


class SelfTrainingSettings(BaseModel):
    """ST / ST++ options (``actors.self_training.SelfTrainingOptions``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    use_gram: bool = False
    reliable_fraction: float = Field(0.5, gt=0, le=1)
    tta_scales: tuple[float, ...] = Field((0.5, 0.75, 1.0, 1.5, 2.0), min_length=1)
    tta_flip: bool = True

    def as_kwargs(self) -> dict[str, Any]:
        """The settings as ``method_kwargs`` of ``train_method_from_cube``."""
        return self.model_dump()


class TrainRunConfig(BaseModel):
    """One training run: method, network, label budget, engine settings, data, cluster and outputs."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    method: MethodName = "supervised"
    model: str = Field("deeplabv3plus_resnet18", min_length=1, description="Registered network name.")
    budget: float = Field(0.1, gt=0, le=1, description="Label budget (a subset fraction of the splits).")
    cubes: tuple[Path, ...] = Field(min_length=1, description="Training cube(s), one per city.")
    splits: tuple[Path, ...] | None = Field(None, description="One splits JSON per cube; made if absent.")
    split: SplitSettings = Field(default_factory=SplitSettings)
    years: tuple[int, ...] | None = Field(None, description="Years whose tiles are used (default: all).")
    epochs: int | None = Field(DEFAULT_EPOCHS, ge=1)
    max_iters: int | None = Field(None, ge=1, description="Caps the run (iterations) when given.")
    batch_size: int = Field(DEFAULT_BATCH, ge=1, le=4096, description="Per worker.")
    crop_size: int | None = Field(DEFAULT_CROP, ge=16, le=8192)
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE
    lr: float = Field(DEFAULT_LR, gt=0, lt=10)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    weight_decay: float = Field(DEFAULT_WEIGHT_DECAY, ge=0)
    head_lr_multiplier: float = Field(DEFAULT_HEAD_LR_MULTIPLIER, gt=0)
    amp: bool = True
    seed: int = Field(0, ge=0)
    val_every: int = Field(1, ge=1)
    checkpoint_every: int = Field(
        1, ge=1, description="Write latest.pt every N epochs (and at the end); resume restarts from it."
    )
    eval_window: int | None = Field(None, ge=16, description="Sliding-window validation/test window.")
    method_options: dict[str, Any] = Field(default_factory=dict, description="Method config overrides.")
    self_training: SelfTrainingSettings = Field(default_factory=SelfTrainingSettings)
    model_options: dict[str, Any] = Field(default_factory=dict, description="Extra network kwargs.")
    num_workers: int = Field(1, ge=1, le=MAX_WORKERS, description="Ray Train workers.")
    use_gpu: bool = False
    distributed: bool = Field(True, description="Train on Ray (Ray Train / a Ray task); else in-process.")
    loader_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    out: Path = Field(description="Run folder (checkpoints, splits, metrics).")
    registry: Path | None = Field(None, description="Model registry folder (default: <out>/../registry).")
    run_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    eval_split: str = Field("test", min_length=1)

    @field_validator("out", "registry")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @field_validator("cubes", "splits")
    @classmethod
    def _absolute_all(cls, value: tuple[Path, ...] | None) -> tuple[Path, ...] | None:
        return None if value is None else tuple(p.expanduser().resolve() for p in value)

    @model_validator(mode="after")
    def _consistent(self) -> TrainRunConfig:
        if self.splits is not None and len(self.splits) != len(self.cubes):
            raise ValueError(
                f"give one splits file per cube: {len(self.cubes)} cubes, {len(self.splits)} splits"
            )
        if self.epochs is None and self.max_iters is None:
            raise ValueError("give epochs or max_iters")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {self.scale_range}")
        if self.splits is None and self.budget not in self.split.fractions and self.budget != 1:
            raise ValueError(
                f"budget {self.budget} is not one of the split fractions {list(self.split.fractions)}"
            )
        return self

    @property
    def registry_dir(self) -> Path:
        """``registry``, or ``<out>/../registry``."""
        return self.registry if self.registry is not None else self.out.parent / REGISTRY_FOLDER

    @property
    def is_self_training(self) -> bool:
        """ST or ST++."""
        return self.method in ("st", "st++")

    def method_kwargs(self) -> dict[str, Any]:
        """``method_options``, plus the self-training settings for ST/ST++."""
        if self.is_self_training:
            return {**self.self_training.as_kwargs(), **self.method_options}
        return dict(self.method_options)
