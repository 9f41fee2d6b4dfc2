"""Multi-stage self-training: ST and ST++ (Yang et al., CVPR 2022), the base of SegSlum.

Every training stage is one :class:`slumwatch.models.engine.Engine` run in its own folder (so a stopped
pipeline resumes: finished stages return at once from their ``latest.pt``, a stage cut mid-way resumes
from it) on a freshly initialised network::

    ST   1  supervised teacher on the labeled tiles
         2  pseudo-label every unlabeled tile with the teacher (TTA)            -> pseudo_labels/v2
         3  re-train a fresh model on labeled + pseudo-labelled tiles (``st``)  -> final model

    ST++ 1  supervised teacher; checkpoints kept at epochs E/3, 2E/3 and E
         2  stability of each unlabeled tile: mean over the E/3 and 2E/3 checkpoints of
            mIoU(checkpoint argmax, epoch-E argmax); the top ``reliable_fraction`` is reliable
         3  pseudo-label the reliable tiles with the teacher (TTA)              -> pseudo_labels/v3
         4  re-train fresh on labeled + reliable (``st++``)
         5  pseudo-label the unreliable tiles with the stage-4 model (TTA); reliable rows kept from v3
                                                                                -> pseudo_labels/v5
         6  re-train fresh on labeled + all unlabeled (``st++``)                -> final model

The teacher of a pseudo-labelling stage is the stage's ``best.pt`` (validation mIoU) when validation
tiles are given, else its final ``latest.pt``. Stage 1 trains with the ``supervised`` step; re-training
stages with ``st`` / ``st++`` (:mod:`slumwatch.models.methods.self_training`), optionally with SegSlum's
GRAM loss (``use_gram``, needs a ``deeplabv3plus_aux_*`` network).

Pseudo-labels are versioned Zarr arrays in ``<out_dir>/pseudo_labels.zarr``: ``pseudo_labels/v{stage}``
(N, H, W) uint8 over *all* N unlabeled tiles (255 = not pseudo-labelled in this version, or a pixel
without data when ``SelfTrainingData.unlabeled_valid`` is given), attrs
``teacher_checkpoint``, ``stage``, ``created`` (UTC ISO), ``method``, ``labelled_indices``,
``tta_scales``, ``tta_flip`` and ``base_version`` (v5 inherits its reliable rows from v3).
ST++ also writes ``stability/scores`` (N,) float64 (attrs: checkpoints, reliable/unreliable indices).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import torch
import zarr
from torch.utils.data import DataLoader, Dataset

from slumwatch.models.augment import AugmentConfig
from slumwatch.models.base import SegmentationModel
from slumwatch.models.checkpoint import load_checkpoint
from slumwatch.models.data import TileDataset
from slumwatch.models.engine import (
    KEPT_DIR,
    Engine,
    TrainConfig,
    TrainResult,
    derive_seed,
    resolve_device,
)
from slumwatch.models.methods import get_method
from slumwatch.models.methods.augment import UnlabeledViews
from slumwatch.models.methods.self_training import (
    DEFAULT_RELIABLE_FRACTION,
    DEFAULT_TTA_SCALES,
    pseudo_label_tta,
    select_reliable,
    stability_scores,
)
from slumwatch.models.registry import get_model

LOGGER = logging.getLogger(__name__)

IGNORE_VALUE = 255
STORE_NAME = "pseudo_labels.zarr"
PSEUDO_GROUP = "pseudo_labels"
STABILITY_ARRAY = "stability/scores"
THIRDS = 3
DEFAULT_LABEL_BATCH = 4

ArrayLike = Any  # numpy array, zarr array or sequence of (C, H, W) arrays


@dataclass(frozen=True)
class SelfTrainingData:
    """The tiles of a self-training run (numpy or zarr arrays; read lazily tile by tile).

    Attributes:
        labeled_images: (L, C, H, W).
        labeled_labels: (L, H, W) 0/1/.../255.
        unlabeled_images: (N, C, H, W), all of one size.
        val_images, val_labels: optional validation tiles (enable ``best.pt`` teachers).
        low, high: per-band scaling bounds (see :func:`slumwatch.models.data.scale_to_unit`); ``None`` when
            the images are already float in [0, 1].
        unlabeled_ids: optional names of the unlabeled tiles (stored in the Zarr attrs).
        unlabeled_valid: optional (N, H, W) per-pixel data masks of the unlabeled tiles: bool (True = the
            pixel has data) or integer with 255 where it has none (the ``"valid"`` kind of
            :class:`~slumwatch.actors.cube_tiles.CubeTileSequence`). Pixels without data (nodata, clouds,
            tile padding) get no pseudo-label (255) and do not count in the ST++ stability score.
    """

    labeled_images: ArrayLike
    labeled_labels: ArrayLike
    unlabeled_images: ArrayLike
    val_images: ArrayLike | None = None
    val_labels: ArrayLike | None = None
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    unlabeled_ids: Sequence[str] | None = None
    unlabeled_valid: ArrayLike | None = None


@dataclass(frozen=True)
class ModelSpec:
    """The network every stage builds afresh through :func:`slumwatch.models.get_model`."""

    name: str
    num_classes: int = 2
    in_channels: int = 3
    weights: Path | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SelfTrainingOptions:
    """Pipeline options.

    Attributes:
        augment: weak (geometric) augmentation of the training tiles.
        use_gram: SegSlum's GRAM texture-consistency loss in the re-training stages.
        reliable_fraction: share of unlabeled tiles called reliable by ST++ (0.5).
        tta_scales, tta_flip: pseudo-label test-time augmentation (0.5-2.0 x flip, ST++).
        label_batch_size: batch size of the labelling / stability passes.
        progress: tqdm bars in the engine.
    """

    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    use_gram: bool = False
    reliable_fraction: float = DEFAULT_RELIABLE_FRACTION
    tta_scales: tuple[float, ...] = DEFAULT_TTA_SCALES
    tta_flip: bool = True
    label_batch_size: int = DEFAULT_LABEL_BATCH
    progress: bool = False


@dataclass(frozen=True)
class SelfTrainingResult:
    """Outcome of :func:`run_self_training`."""

    plus: bool
    final_checkpoint: Path
    stages: Mapping[int, Mapping[str, Any]]  # stage -> TrainResult.to_dict()
    pseudo_label_store: Path
    versions: tuple[str, ...]
    reliable: tuple[int, ...] = ()
    unreliable: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()


class _Rows(Sequence[Any]):
    """Lazy view of ``rows`` of an array-like (numpy / zarr / sequence)."""

    def __init__(self, source: ArrayLike, rows: Sequence[int]) -> None:
        self.source = source
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return np.asarray(self.source[self.rows[index]])


def _valid_mask(mask: Any) -> npt.NDArray[np.bool_]:
    """(H, W) bool from a bool mask or a ``"valid"``-kind tile (255 = no data)."""
    array = np.asarray(mask)
    return array if array.dtype == np.bool_ else array != IGNORE_VALUE


def _teacher_path(result: TrainResult) -> Path:
    path = result.best_path if result.best_path is not None else result.latest_path
    if path is None:
        path = result.run_dir / "latest.pt"
    if not path.is_file():
        raise FileNotFoundError(f"stage checkpoint {path} missing")
    return path


def _checkpoint_epochs(num_epochs: int) -> list[int]:
    """ST++ checkpoints: epochs E/3, 2E/3 (at least 1) and E."""
    return sorted({*(max(1, num_epochs * k // THIRDS) for k in (1, 2)), num_epochs})


def _loader(
    dataset: Dataset[Any], *, batch_size: int, shuffle: bool, num_workers: int = 0
) -> DataLoader[Any]:
    size = len(dataset)  # type: ignore[arg-type]
    return DataLoader(
        dataset,
        batch_size=min(batch_size, size),
        shuffle=shuffle,
        drop_last=shuffle and size >= batch_size,
        num_workers=num_workers,
    )


class SelfTrainingRun:
    """State of one run (see :func:`run_self_training`)."""

    def __init__(
        self,
        *,
        plus: bool,
        out_dir: Path,
        data: SelfTrainingData,
        model: ModelSpec,
        train: TrainConfig,
        options: SelfTrainingOptions,
        normalization: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        split_hash: str | None = None,
    ) -> None:
        self.plus = plus
        self.normalization = dict(normalization) if normalization else None
        self.metadata = dict(metadata or {})
        self.split_hash = split_hash
        self.out_dir = Path(out_dir)
        self.data = data
        self.model_spec = model
        self.train = train
        self.options = options
        self.device = resolve_device(train.device)
        self.n_unlabeled = len(data.unlabeled_images)
        if data.unlabeled_valid is not None and len(data.unlabeled_valid) != self.n_unlabeled:
            raise ValueError(
                f"unlabeled_valid holds {len(data.unlabeled_valid)} masks for "
                f"{self.n_unlabeled} unlabeled tiles"
            )
        self.store_path = self.out_dir / STORE_NAME
        self.method = "st++" if plus else "st"
        self.stages: dict[int, Mapping[str, Any]] = {}
        self.versions: list[str] = []

    # ------------------------------------------------------------------ datasets
    def _scaling(self) -> dict[str, Any]:
        """What checkpoints record as input normalisation: the caller's record, else the bounds."""
        if self.normalization is not None:
            return dict(self.normalization)
        return {"low": self.data.low, "high": self.data.high}

    def _tiles(self, images: ArrayLike, labels: ArrayLike | None, *, augment: bool, seed: int) -> TileDataset:
        return TileDataset(
            images,
            labels,
            low=self.data.low,
            high=self.data.high,
            augment=self.options.augment if augment else None,
            seed=seed,
        )

    def _labeled_loader(self, stage: int) -> DataLoader[Any]:
        ds = self._tiles(
            self.data.labeled_images,
            self.data.labeled_labels,
            augment=True,
            seed=derive_seed(self.train.seed, stage),
        )
        return _loader(ds, batch_size=self.train.batch_size, shuffle=True, num_workers=self.train.num_workers)

    def _val_loader(self) -> DataLoader[Any] | None:
        if self.data.val_images is None or self.data.val_labels is None:
            return None
        ds = self._tiles(self.data.val_images, self.data.val_labels, augment=False, seed=0)
        return _loader(ds, batch_size=self.train.eval_batch_size, shuffle=False)

    def _pseudo_loader(self, stage: int, version: str, rows: Sequence[int]) -> DataLoader[Any]:
        labels = zarr.open_group(str(self.store_path), mode="r")[f"{PSEUDO_GROUP}/{version}"]
        seed = derive_seed(self.train.seed, stage, 1)
        tiles = self._tiles(
            _Rows(self.data.unlabeled_images, rows), _Rows(labels, rows), augment=True, seed=seed
        )
        views = UnlabeledViews(tiles, seed=seed, mode="segslum")
        return _loader(
            views, batch_size=self.train.batch_size, shuffle=True, num_workers=self.train.num_workers
        )

    def _unlabeled_batches(
        self, rows: Sequence[int]
    ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor | None]]:
        """Batches of unlabeled ``rows``: (row indices, images (B, C, H, W), valid (B, H, W) bool or None)."""
        tiles = self._tiles(_Rows(self.data.unlabeled_images, rows), None, augment=False, seed=0)
        masks = self.data.unlabeled_valid
        batch = self.options.label_batch_size
        for start in range(0, len(rows), batch):
            chunk = list(range(start, min(start + batch, len(rows))))
            images = torch.stack([tiles[i]["image"] for i in chunk]).to(self.device)
            valid = (
                None
                if masks is None
                else torch.from_numpy(np.stack([_valid_mask(masks[rows[i]]) for i in chunk]))
            )
            if valid is not None and tuple(valid.shape[-2:]) != tuple(images.shape[-2:]):
                raise ValueError(
                    f"unlabeled_valid masks are {tuple(valid.shape[-2:])}, "
                    f"the tiles {tuple(images.shape[-2:])}"
                )
            yield [rows[i] for i in chunk], images, valid

    # ------------------------------------------------------------------ stages
    def _fresh_model(self, stage: int) -> SegmentationModel:
        spec = self.model_spec
        torch.manual_seed(derive_seed(self.train.seed, stage, 2))
        return get_model(
            spec.name,
            num_classes=spec.num_classes,
            in_channels=spec.in_channels,
            weights=spec.weights,
            **dict(spec.kwargs),
        )

    def train_stage(
        self, stage: int, *, method: str, pseudo: tuple[str, Sequence[int]] | None
    ) -> TrainResult:
        """One Engine run in ``out_dir/stage{stage}``; stage 1 also keeps the E/3, 2E/3, E checkpoints."""
        run_dir = self.out_dir / f"stage{stage}"
        kwargs: dict[str, Any] = {"use_gram": self.options.use_gram} if pseudo is not None else {}
        step = get_method(method, **kwargs)
        unlabeled = None if pseudo is None else self._pseudo_loader(stage, *pseudo)
        engine = Engine(
            self.train,
            model=self._fresh_model(stage),
            step=step,
            run_dir=run_dir,
            train_loader=self._labeled_loader(stage),
            val_loader=self._val_loader(),
            unlabeled_loader=unlabeled,
            progress=self.options.progress,
            normalization=self._scaling(),
            metadata={
                **self.metadata,
                "self_training": self.method,
                "stage": stage,
                "pseudo_labels": pseudo[0] if pseudo else None,
            },
            split_hash=self.split_hash,
            device=self.device,
        )
        if stage == 1:  # E/3, 2E/3 and E are known once the engine has sized its epochs
            engine.keep_epochs = frozenset(_checkpoint_epochs(engine.num_epochs))
        result = engine.fit()
        self.stages[stage] = result.to_dict()
        LOGGER.info("self-training stage %d (%s) done: best mIoU %s", stage, method, result.best_miou)
        return result

    def stage1_checkpoints(self) -> list[Path]:
        """The kept stage-1 checkpoints, oldest first (the last one is epoch E)."""
        ckpt_dir = self.out_dir / "stage1" / KEPT_DIR
        paths = sorted(ckpt_dir.glob("epoch_*.pt"))
        if not paths:
            raise FileNotFoundError(f"no stage-1 checkpoints in {ckpt_dir}")
        return paths

    @torch.no_grad()
    def stability(self, checkpoints: Sequence[Path]) -> np.ndarray:
        """(N,) ST++ stability scores of all unlabeled tiles (plain argmax, no TTA, as ST++)."""
        if len(checkpoints) < 2:
            raise ValueError("ST++ stability needs at least two stage-1 checkpoints (train >= 2 epochs)")
        models = [load_checkpoint(p, map_location=self.device).model for p in checkpoints]
        scores = np.zeros(self.n_unlabeled, dtype=np.float64)
        for rows, images, valid in self._unlabeled_batches(range(self.n_unlabeled)):
            preds = [m(images).argmax(dim=1).cpu() for m in models]
            scores[rows] = stability_scores(
                preds[:-1], preds[-1], num_classes=self.model_spec.num_classes, valid=valid
            ).numpy()
        return scores

    @torch.no_grad()
    def pseudo_label(
        self, stage: int, *, teacher: Path, rows: Sequence[int], base_version: str | None = None
    ) -> str:
        """Write ``pseudo_labels/v{stage}``: TTA labels of ``rows`` (others from ``base_version`` or 255)."""
        model = load_checkpoint(teacher, map_location=self.device).model
        group = zarr.open_group(str(self.store_path), mode="a")
        first = np.asarray(self.data.unlabeled_images[0])
        height, width = first.shape[-2:]
        version = f"v{stage}"
        arr = group.require_group(PSEUDO_GROUP).create_array(
            version,
            shape=(self.n_unlabeled, height, width),
            dtype="uint8",
            chunks=(1, height, width),
            fill_value=IGNORE_VALUE,
            overwrite=True,
        )
        if base_version is not None:
            base = group[f"{PSEUDO_GROUP}/{base_version}"]
            if not isinstance(base, zarr.Array):
                raise TypeError(f"{PSEUDO_GROUP}/{base_version} is not an array")
            arr[:] = base[:]
        for batch_rows, images, valid in self._unlabeled_batches(rows):
            labels, _ = pseudo_label_tta(
                model, images, scales=self.options.tta_scales, flip=self.options.tta_flip
            )
            if valid is not None:
                labels = labels.cpu().masked_fill(~valid, IGNORE_VALUE)
            for row, label in zip(batch_rows, labels.to(torch.uint8).cpu().numpy(), strict=True):
                arr[row] = label
        arr.attrs.update(
            {
                "teacher_checkpoint": str(teacher),
                "stage": stage,
                "created": datetime.now(timezone.utc).isoformat(),
                "method": self.method,
                "labelled_indices": [int(r) for r in rows],
                "tta_scales": list(self.options.tta_scales),
                "tta_flip": self.options.tta_flip,
                "base_version": base_version,
                "unlabeled_ids": list(self.data.unlabeled_ids)
                if self.data.unlabeled_ids is not None
                else None,
            }
        )
        self.versions.append(version)
        return version

    def _write_scores(
        self, scores: npt.NDArray[np.float64], checkpoints: Sequence[Path], split: tuple[list[int], list[int]]
    ) -> None:
        group = zarr.open_group(str(self.store_path), mode="a")
        arr = group.create_array(STABILITY_ARRAY, shape=scores.shape, dtype="float64", overwrite=True)
        arr[:] = scores
        arr.attrs.update(
            {
                "checkpoints": [str(p) for p in checkpoints],
                "reliable_indices": split[0],
                "unreliable_indices": split[1],
                "created": datetime.now(timezone.utc).isoformat(),
            }
        )

    # ------------------------------------------------------------------ pipelines
    def run(self) -> SelfTrainingResult:
        """Run all stages (see the module docstring)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        all_rows = list(range(self.n_unlabeled))
        teacher = _teacher_path(self.train_stage(1, method="supervised", pseudo=None))
        if not self.plus:
            version = self.pseudo_label(2, teacher=teacher, rows=all_rows)
            final = self.train_stage(3, method=self.method, pseudo=(version, all_rows))
            return self._result(final)

        checkpoints = self.stage1_checkpoints()
        scores = self.stability(checkpoints)
        reliable, unreliable = select_reliable(
            scores.tolist(), all_rows, fraction=self.options.reliable_fraction
        )
        self._write_scores(scores, checkpoints, (reliable, unreliable))
        v3 = self.pseudo_label(3, teacher=teacher, rows=reliable)
        student = _teacher_path(self.train_stage(4, method=self.method, pseudo=(v3, reliable)))
        v5 = self.pseudo_label(5, teacher=student, rows=unreliable, base_version=v3)
        final = self.train_stage(6, method=self.method, pseudo=(v5, all_rows))
        return self._result(final, reliable=reliable, unreliable=unreliable, scores=scores.tolist())

    def _result(
        self,
        final: TrainResult,
        *,
        reliable: Sequence[int] = (),
        unreliable: Sequence[int] = (),
        scores: Sequence[float] = (),
    ) -> SelfTrainingResult:
        return SelfTrainingResult(
            plus=self.plus,
            final_checkpoint=_teacher_path(final),
            stages=dict(self.stages),
            pseudo_label_store=self.store_path,
            versions=tuple(self.versions),
            reliable=tuple(reliable),
            unreliable=tuple(unreliable),
            scores=tuple(scores),
        )


def run_self_training(
    *,
    plus: bool,
    out_dir: Path,
    data: SelfTrainingData,
    model: ModelSpec,
    train: TrainConfig,
    options: SelfTrainingOptions | None = None,
    normalization: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    split_hash: str | None = None,
) -> SelfTrainingResult:
    """Run ST (``plus=False``) or ST++ (``plus=True``); see the module docstring for the stages.

    Args:
        plus: ST++ (stability ranking + two re-training rounds) instead of plain ST.
        out_dir: run folder (``stage{k}/`` engine runs, ``pseudo_labels.zarr``); an existing run resumes.
        data: labeled, unlabeled and optional validation tiles.
        model: the network (re-initialised for every training stage).
        train: the engine settings of every training stage (epochs per stage, lr, batch size...).
        options: augmentation, GRAM, reliable fraction, TTA.
        normalization: the input-normalisation record every stage's checkpoint stores (bands, bounds;
            see :meth:`slumwatch.actors.tiles.BandScaling.to_dict`); default ``{"low", "high"}`` of ``data``.
        metadata: provenance every stage's checkpoint stores (label budget, cubes, cities, years...).
        split_hash: hash of the label split, stored in the checkpoints.

    Returns:
        The final model's checkpoint, the per-stage engine summaries and the pseudo-label versions.
    """
    run = SelfTrainingRun(
        plus=plus,
        out_dir=out_dir,
        data=data,
        model=model,
        train=train,
        options=options or SelfTrainingOptions(),
        normalization=normalization,
        metadata=metadata,
        split_hash=split_hash,
    )
    return run.run()


__all__ = [
    "ModelSpec",
    "SelfTrainingData",
    "SelfTrainingOptions",
    "SelfTrainingResult",
    "SelfTrainingRun",
    "run_self_training",
]
