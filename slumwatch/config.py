"""Run configuration at the boundary: YAML files and CLI flags validated once by pydantic.

Inside the library, settings travel as frozen dataclasses; the pydantic models here are
only the boundary (CLI, flow parameters, YAML). ``load_yaml_config`` reads a YAML file,
validates it against a model and names the file and the field on error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "ConfigError",
    "DemoConfig",
    "YearRange",
    "load_yaml_config",
    "parse_years",
]

FIRST_SUPPORTED_YEAR = 1990
LAST_SUPPORTED_YEAR = 2100
DEFAULT_FIRST_YEAR = 2014
DEFAULT_LAST_YEAR = 2024
DEFAULT_TRAIN_YEARS = 4


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message says which and why."""


class YearRange(BaseModel):
    """An inclusive range of calendar years."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first: int = Field(DEFAULT_FIRST_YEAR, ge=FIRST_SUPPORTED_YEAR, le=LAST_SUPPORTED_YEAR)
    last: int = Field(DEFAULT_LAST_YEAR, ge=FIRST_SUPPORTED_YEAR, le=LAST_SUPPORTED_YEAR)

    @model_validator(mode="after")
    def _ordered(self) -> YearRange:
        if self.last < self.first:
            raise ValueError(f"last year {self.last} is before first year {self.first}")
        return self

    @property
    def years(self) -> tuple[int, ...]:
        return tuple(range(self.first, self.last + 1))


def parse_years(text: str) -> YearRange:
    """Parse ``"2014-2024"`` or ``"2019"`` into a :class:`YearRange`.

    Raises:
        ConfigError: when the text is not a year or a ``first-last`` range.
    """
    parts = text.strip().split("-")
    try:
        if len(parts) == 1:
            year = int(parts[0])
            return YearRange(first=year, last=year)
        if len(parts) == 2:
            return YearRange(first=int(parts[0]), last=int(parts[1]))
    except (ValueError, ValidationError) as err:
        raise ConfigError(f"invalid year range {text!r}: {err}") from err
    raise ConfigError(f"invalid year range {text!r}: expected 'YYYY' or 'YYYY-YYYY'")


class DemoConfig(BaseModel):
    """Parameters of the end-to-end demo run (``slumwatch demo``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out: Path = Field(description="Output folder of the run; created if missing.")
    size: str = Field("tiny", description="Synthetic city size preset or WIDTHxHEIGHT.")
    seed: int = Field(7, ge=0, description="Seed of the synthetic city.")
    years: YearRange = Field(default_factory=YearRange)
    model: str = Field("deeplabv3plus_resnet18", description="Registered segmentation model name.")
    epochs: int = Field(40, ge=1, le=1000)
    val_every: int = Field(10, ge=1, le=1000, description="Validate (and keep best.pt) every N epochs.")
    batch_size: int = Field(8, ge=1, le=1024)
    crop_size: int = Field(128, ge=32, le=2048, description="Random training crop (pixels).")
    learning_rate: float = Field(0.01, gt=0, lt=10)
    train_fraction: float = Field(
        0.5, gt=0, lt=1, description="Share of tile positions whose labels are used for training."
    )
    train_years: tuple[int, ...] | None = Field(
        None,
        description="Years whose labelled tiles train the model (default: first, last and two between).",
    )
    tile_size: int = Field(256, ge=32, le=4096)
    tile_overlap: int = Field(32, ge=0, le=1024)
    resolution: float = Field(0.6, gt=0.05, le=100.0, description="Cube resolution in metres.")
    ray_workers: int = Field(1, ge=1, le=64, description="Inference actors on the local Ray cluster.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda(:[0-9]+)?)$")

    @field_validator("out")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _consistent(self) -> DemoConfig:
        if self.tile_overlap >= self.tile_size:
            raise ValueError(
                f"tile_overlap ({self.tile_overlap}) must be smaller than tile_size ({self.tile_size})"
            )
        outside = [y for y in self.train_years or () if y not in self.years.years]
        if outside:
            raise ValueError(f"train_years {outside} are outside years {self.years.first}-{self.years.last}")
        return self

    @property
    def training_years(self) -> tuple[int, ...]:
        """``train_years``, or up to ``DEFAULT_TRAIN_YEARS`` years spread evenly over ``years``."""
        if self.train_years:
            return tuple(self.train_years)
        years = self.years.years
        count = min(DEFAULT_TRAIN_YEARS, len(years))
        picks = {years[round(i * (len(years) - 1) / max(1, count - 1))] for i in range(count)}
        return tuple(sorted(picks))


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_yaml_config(path: Path, model: type[ModelT], *, overrides: dict[str, Any] | None = None) -> ModelT:
    """Read ``path`` (YAML), apply ``overrides`` and validate against ``model``.

    Raises:
        ConfigError: the file is missing, is not a YAML mapping, or fails validation
            (the message names the file and every offending field).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    data = {**raw, **(overrides or {})}
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path}: invalid {model.__name__}: {problems}") from err
