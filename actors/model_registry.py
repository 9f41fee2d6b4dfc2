"""A file-based model registry: one STAC-MLM-like JSON item per training run.

Layout::

    REGISTRY/<run_id>/model.json

Each ``model.json`` is a STAC Item (no geometry) using the field names of the STAC Machine Learning Model
extension (``mlm:name``, ``mlm:architecture``, ``mlm:tasks``, ``mlm:framework``, ``mlm:input``,
``mlm:output``, ``mlm:hyperparameters``; an asset with roles ``mlm:model``/``mlm:checkpoint``) plus
``slumwatch:*`` fields: method, label budget, split hash, training cubes/cities and years, metrics and the
slumwatch version. It is "MLM-like": the fields follow the extension, the file is not validated against its
schema. Plain JSON only (no torch), so listing runs is cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import slumwatch

__all__ = [
    "ENTRY_FILE",
    "ModelRunEntry",
    "RegistryError",
    "list_model_runs",
    "load_model_run",
    "make_run_id",
    "register_model_run",
]

ENTRY_FILE = "model.json"
STAC_VERSION = "1.0.0"
MLM_EXTENSION = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
MLM_TASK = "semantic-segmentation"
MLM_FRAMEWORK = "pytorch"
CHECKPOINT_MEDIA_TYPE = "application/octet-stream; application=pytorch"
DEFAULT_CLASSES: tuple[str, ...] = ("non-slum", "slum")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"


class RegistryError(ValueError):
    """A registry entry cannot be written or read (bad run id, duplicate, malformed JSON)."""


@dataclass(frozen=True)
class ModelRunEntry:
    """One registered training run.

    Attributes:
        run_id: Folder name of the entry (unique in the registry).
        created: UTC ISO timestamp of the registration.
        method: Training method (``supervised``, ``unimatch``, ``st++``...).
        model_name: Registered network name.
        checkpoint: Path of the checkpoint file.
        label_budget: Fraction of the train tiles that were labelled.
        split_sha256: Hash of the splits file(s) the run used.
        train_config: Engine settings (``TrainConfig.to_dict()``).
        method_kwargs: Method config overrides.
        model_kwargs: Network kwargs (classes, bands...).
        training_data: One mapping per training cube: ``path``, ``city``, ``years`` (+ provenance).
        metrics: Evaluation results (per-class IoU, mIoU, ...).
        bands: Input band names, in order.
        normalization: Input scaling stored in the checkpoint (``low``/``high`` per band).
        classes: Class names by id.
        slumwatch_version: Version of the code that trained the model.
        extra: Anything else (wall time, samples, Ray workers...).
        path: Where ``model.json`` lies (set when read or written).
    """

    run_id: str
    created: str
    method: str
    model_name: str
    checkpoint: str
    label_budget: float
    split_sha256: str | None
    train_config: Mapping[str, Any]
    method_kwargs: Mapping[str, Any]
    model_kwargs: Mapping[str, Any]
    training_data: tuple[Mapping[str, Any], ...]
    metrics: Mapping[str, Any]
    bands: tuple[str, ...] = ()
    normalization: Mapping[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] = DEFAULT_CLASSES
    slumwatch_version: str = slumwatch.__version__
    extra: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    @property
    def cities(self) -> tuple[str, ...]:
        """Training cities (from ``training_data``)."""
        return tuple(str(d.get("city", "")) for d in self.training_data)

    @property
    def years(self) -> tuple[int, ...]:
        """All training years (sorted)."""
        years = {int(y) for d in self.training_data for y in d.get("years", ())}
        return tuple(sorted(years))

    def to_stac(self) -> dict[str, Any]:
        """The STAC-MLM-like item."""
        in_channels = len(self.bands) or int(self.model_kwargs.get("in_channels", 0)) or -1
        return {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": [MLM_EXTENSION],
            "id": self.run_id,
            "geometry": None,
            "properties": {
                "datetime": self.created,
                "created": self.created,
                "mlm:name": f"{self.method}-{self.model_name}",
                "mlm:architecture": self.model_name,
                "mlm:tasks": [MLM_TASK],
                "mlm:framework": MLM_FRAMEWORK,
                "mlm:input": [
                    {
                        "name": "imagery",
                        "bands": list(self.bands),
                        "input": {
                            "shape": [-1, in_channels, -1, -1],
                            "dim_order": ["batch", "channel", "height", "width"],
                            "data_type": "float32",
                        },
                        "value_scaling": dict(self.normalization),
                    }
                ],
                "mlm:output": [
                    {
                        "name": "slum-segmentation",
                        "tasks": [MLM_TASK],
                        "result": {
                            "shape": [-1, len(self.classes), -1, -1],
                            "dim_order": ["batch", "channel", "height", "width"],
                            "data_type": "float32",
                        },
                        "classification:classes": [
                            {"value": i, "name": name} for i, name in enumerate(self.classes)
                        ],
                    }
                ],
                "mlm:hyperparameters": {**dict(self.train_config), **dict(self.method_kwargs)},
                "slumwatch:method": self.method,
                "slumwatch:label_budget": self.label_budget,
                "slumwatch:split_sha256": self.split_sha256,
                "slumwatch:train_config": dict(self.train_config),
                "slumwatch:method_kwargs": dict(self.method_kwargs),
                "slumwatch:model_kwargs": dict(self.model_kwargs),
                "slumwatch:training_data": [dict(d) for d in self.training_data],
                "slumwatch:cities": list(self.cities),
                "slumwatch:years": list(self.years),
                "slumwatch:metrics": dict(self.metrics),
                "slumwatch:version": self.slumwatch_version,
                "slumwatch:extra": dict(self.extra),
            },
            "assets": {
                "model": {
                    "href": self.checkpoint,
                    "type": CHECKPOINT_MEDIA_TYPE,
                    "title": f"{self.method} {self.model_name} checkpoint",
                    "roles": ["mlm:model", "mlm:weights", "mlm:checkpoint"],
                }
            },
            "links": [],
        }

    @classmethod
    def from_stac(cls, item: Mapping[str, Any], *, path: Path | None = None) -> ModelRunEntry:
        """Read an item written by :meth:`to_stac`.

        Raises:
            RegistryError: a required field is missing.
        """
        try:
            props = item["properties"]
            inputs = props.get("mlm:input") or [{}]
            outputs = props.get("mlm:output") or [{}]
            classes = (
                tuple(str(c["name"]) for c in outputs[0].get("classification:classes", ())) or DEFAULT_CLASSES
            )
            return cls(
                run_id=str(item["id"]),
                created=str(props["created"]),
                method=str(props["slumwatch:method"]),
                model_name=str(props["mlm:architecture"]),
                checkpoint=str(item["assets"]["model"]["href"]),
                label_budget=float(props["slumwatch:label_budget"]),
                split_sha256=props.get("slumwatch:split_sha256"),
                train_config=dict(props.get("slumwatch:train_config") or {}),
                method_kwargs=dict(props.get("slumwatch:method_kwargs") or {}),
                model_kwargs=dict(props.get("slumwatch:model_kwargs") or {}),
                training_data=tuple(dict(d) for d in props.get("slumwatch:training_data") or ()),
                metrics=dict(props.get("slumwatch:metrics") or {}),
                bands=tuple(str(b) for b in inputs[0].get("bands", ())),
                normalization=dict(inputs[0].get("value_scaling") or {}),
                classes=classes,
                slumwatch_version=str(props.get("slumwatch:version", "")),
                extra=dict(props.get("slumwatch:extra") or {}),
                path=path,
            )
        except (KeyError, TypeError, ValueError, IndexError) as err:
            where = f" ({path})" if path is not None else ""
            raise RegistryError(f"malformed registry entry{where}: {type(err).__name__}: {err}") from err


def make_run_id(*, method: str, model_name: str, label_budget: float, created: datetime) -> str:
    """``<method>-<model>-b<percent>-<UTC timestamp>``, with unsafe characters replaced."""
    stamp = created.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)
    raw = f"{method}-{model_name}-b{label_budget * 100:g}-{stamp}"
    return _UNSAFE.sub("_", raw)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a registry entry")


def register_model_run(
    *,
    registry_dir: Path,
    method: str,
    model_name: str,
    checkpoint: Path,
    label_budget: float,
    split_sha256: str | None,
    train_config: Mapping[str, Any],
    training_data: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    method_kwargs: Mapping[str, Any] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    bands: Sequence[str] = (),
    normalization: Mapping[str, Any] | None = None,
    classes: Sequence[str] = DEFAULT_CLASSES,
    extra: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    created: datetime | None = None,
    overwrite: bool = False,
) -> ModelRunEntry:
    """Write ``registry_dir/<run_id>/model.json`` and return the entry (``path`` set).

    ``run_id`` defaults to :func:`make_run_id` (a numeric suffix is added when it exists already).

    Raises:
        RegistryError: an invalid ``run_id``, or an existing one without ``overwrite``.
    """
    created = created or datetime.now(timezone.utc)
    registry_dir = Path(registry_dir)
    if run_id is None:
        base = make_run_id(method=method, model_name=model_name, label_budget=label_budget, created=created)
        run_id, n = base, 1
        while (registry_dir / run_id).exists():
            n += 1
            run_id = f"{base}-{n}"
    elif not RUN_ID_PATTERN.match(run_id):
        raise RegistryError(f"run id {run_id!r} must match {RUN_ID_PATTERN.pattern}")
    elif (registry_dir / run_id / ENTRY_FILE).exists() and not overwrite:
        raise RegistryError(f"run {run_id!r} is already registered in {registry_dir}")
    entry = ModelRunEntry(
        run_id=run_id,
        created=created.astimezone(timezone.utc).isoformat(),
        method=method,
        model_name=model_name,
        checkpoint=str(Path(checkpoint).resolve()),
        label_budget=float(label_budget),
        split_sha256=split_sha256,
        train_config=dict(train_config),
        method_kwargs=dict(method_kwargs or {}),
        model_kwargs=dict(model_kwargs or {}),
        training_data=tuple(dict(d) for d in training_data),
        metrics=dict(metrics),
        bands=tuple(bands),
        normalization=dict(normalization or {}),
        classes=tuple(classes),
        extra=dict(extra or {}),
    )
    folder = registry_dir / run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ENTRY_FILE
    tmp = folder / f".{ENTRY_FILE}.tmp"
    tmp.write_text(json.dumps(entry.to_stac(), indent=2, default=_json_default), encoding="utf-8")
    tmp.replace(path)
    return load_model_run(path)


def load_model_run(path: Path) -> ModelRunEntry:
    """Read one ``model.json`` (or the folder holding it).

    Raises:
        RegistryError: missing or malformed file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / ENTRY_FILE
    try:
        item = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RegistryError(f"cannot read registry entry {path}: {err}") from err
    return ModelRunEntry.from_stac(item, path=path)


def list_model_runs(registry_dir: Path) -> list[ModelRunEntry]:
    """Every entry of the registry, oldest first (an absent registry is empty).

    Raises:
        RegistryError: a malformed entry (its path is named).
    """
    registry_dir = Path(registry_dir)
    if not registry_dir.is_dir():
        return []
    entries = [load_model_run(p) for p in sorted(registry_dir.glob(f"*/{ENTRY_FILE}"))]
    return sorted(entries, key=lambda e: (e.created, e.run_id))
