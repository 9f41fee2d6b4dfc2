"""Pixel metrics of a checkpoint on a cube's labelled tiles: a split, or every tile (cross-city zero-shot).

:func:`evaluate_checkpoint` reads the tiles of one split (or all tiles) in the chosen years, scales them
with the checkpoint's own band stretch (or the target cube's, ``scaling="cube"``), predicts each tile
whole (or with a sliding window) and accumulates a confusion matrix over labelled, valid pixels of the tile
cores (``context`` pixels of neighbouring imagery can be read around each tile; they are not scored).

:func:`zero_shot_evaluation` is the cross-city protocol of SLUM-i: a model trained on city A is scored on
every labelled tile of city B, without any adaptation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from slumwatch.actors.cube_tiles import CubeTileSequence, TileRef, cube_info, plan_tile_refs
from slumwatch.actors.tiles import LABEL_IGNORE, Scaling, scaling_for
from slumwatch.catalogs.splits import Splits, load_splits
from slumwatch.catalogs.tiling import TileSpec
from slumwatch.models.checkpoint import load_checkpoint, read_checkpoint
from slumwatch.models.engine import resolve_device
from slumwatch.models.inference import predict_proba, sliding_window_proba
from slumwatch.models.metrics import ConfusionMatrix, SegmentationScores

__all__ = [
    "ALL_TILES",
    "CLASS_NAMES",
    "EvaluationError",
    "evaluate_checkpoint",
    "pool_results",
    "scores_summary",
    "zero_shot_evaluation",
]

LOGGER = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = ("non-slum", "slum")
ALL_TILES = "all"
DEFAULT_TILE_SIZE = 256
DEFAULT_EVAL_BATCH = 4
DEFAULT_WINDOW_OVERLAP = 0.5
ZERO_SHOT_PROTOCOL = "cross-city zero-shot"
ScalingSource = Literal["checkpoint", "cube"]


class EvaluationError(ValueError):
    """A checkpoint cannot be evaluated on a cube as asked (bands, scaling, split, years)."""


def _stretch(
    source: ScalingSource, *, normalization: Mapping[str, Any], cube: Path, checkpoint: Path
) -> Scaling:
    """The input stretch: the checkpoint's own (per-year or fixed), or the target cube's percentiles."""
    from slumwatch.actors.inference import InferenceError
    from slumwatch.actors.segmentation import cube_band_scaling, scaling_for_checkpoint

    if source == "cube":
        return cube_band_scaling(cube)
    if source != "checkpoint":
        raise EvaluationError(f"scaling must be 'checkpoint' or 'cube', got {source!r}")
    try:
        return scaling_for_checkpoint(normalization, cube=cube)
    except InferenceError as err:
        raise EvaluationError(f"checkpoint {checkpoint}: {err}") from err


def scores_summary(scores: SegmentationScores, *, class_names: Sequence[str] = CLASS_NAMES) -> dict[str, Any]:
    """``SegmentationScores.to_dict()`` plus ``iou_per_class`` / ``f1_per_class`` keyed by class name."""
    out = scores.to_dict()
    names = [class_names[i] if i < len(class_names) else f"class{i}" for i in range(len(out["iou"]))]
    out["iou_per_class"] = dict(zip(names, out["iou"], strict=True))
    out["f1_per_class"] = dict(zip(names, out["f1"], strict=True))
    return out


def _batches(refs: Sequence[TileRef], size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, len(refs), size):
        yield start, min(start + size, len(refs))


def evaluate_checkpoint(
    *,
    checkpoint: Path,
    cube: Path,
    splits: Path | Splits | None = None,
    split: str = "test",
    years: Sequence[int] | None = None,
    sliding_window: int | None = None,
    window_overlap: float = DEFAULT_WINDOW_OVERLAP,
    context: int = 0,
    tile_size: int | None = None,
    batch_size: int = DEFAULT_EVAL_BATCH,
    device: str = "auto",
    scaling: ScalingSource = "checkpoint",
    tta_flip: bool = False,
) -> dict[str, Any]:
    """Per-class IoU, mIoU, F1 and pixel accuracy of ``checkpoint`` on ``cube`` (overall and per year).

    Args:
        checkpoint: A slumwatch checkpoint (``best.pt``/``latest.pt``).
        cube: The cube to score on (needs ``labels``).
        splits: The cube's splits (path or object); ``None`` scores every tile of the grid.
        split: ``train``/``val``/``test`` or a subset (``train_10``) of ``splits``.
        years: Years to score (default: the splits' years, else every cube year).
        sliding_window: Predict with overlapping windows of this size (default: whole tiles).
        window_overlap: Overlap fraction of the sliding windows.
        context: Pixels of surrounding imagery read around each tile (scored: the core only).
        tile_size: Tile edge (default: the splits' tile size, else the cube's chunk tile).
        batch_size: Tiles predicted at once.
        device: ``auto``, ``cpu`` or ``cuda``.
        scaling: ``checkpoint`` (the training stretch, the zero-shot protocol) or ``cube`` (the target cube's
            own percentile stretch).
        tta_flip: Average flipped predictions.

    Raises:
        EvaluationError: band mismatch, missing scaling, or nothing labelled to score.
    """
    checkpoint = Path(checkpoint)
    cube = Path(cube)
    torch_device = resolve_device(device)  # type: ignore[arg-type]
    loaded = load_checkpoint(checkpoint, map_location=torch_device)
    model = loaded.model
    info = cube_info(cube)
    if not info.has_labels:
        raise EvaluationError(f"cube {cube} has no labels to evaluate against")
    in_channels = int(loaded.model_kwargs.get("in_channels", len(info.bands)))
    if in_channels != len(info.bands):
        raise EvaluationError(
            f"checkpoint {checkpoint} takes {in_channels} bands, "
            f"cube {cube} has {len(info.bands)} {info.bands}"
        )
    stretch = _stretch(scaling, normalization=loaded.normalization, cube=cube, checkpoint=checkpoint)
    split_obj = (
        None if splits is None else (splits if isinstance(splits, Splits) else load_splits(Path(splits)))
    )
    size = tile_size or (split_obj.tile_size if split_obj else None) or info.tile_size or DEFAULT_TILE_SIZE
    wanted_years = (
        tuple(years) if years else (split_obj.years if split_obj and split_obj.years else info.years)
    )
    chosen_years = tuple(y for y in wanted_years if y in info.years)
    if not chosen_years:
        raise EvaluationError(f"cube {cube} holds years {list(info.years)}, none of {list(wanted_years)}")
    tile_ids = None if split_obj is None else split_obj.split(split)
    spec = TileSpec(size, context)
    refs = plan_tile_refs(
        cube=cube, tile_ids=tile_ids, years=chosen_years, spec=spec, require="labels", min_fraction=0.0
    )
    if not refs:
        raise EvaluationError(
            f"no labelled tile in {cube} for split {split!r} and years {list(chosen_years)}"
        )
    num_classes = int(loaded.model_kwargs.get("num_classes", len(CLASS_NAMES)))
    overall = ConfusionMatrix(num_classes, ignore_index=LABEL_IGNORE)
    per_year = {year: ConfusionMatrix(num_classes, ignore_index=LABEL_IGNORE) for year in chosen_years}
    images = CubeTileSequence(refs, "image")
    labels = CubeTileSequence(refs, "label")
    for start, stop in _batches(refs, batch_size):
        scaled = [scaling_for(stretch, refs[i].time_index).apply(images.read(i)) for i in range(start, stop)]
        batch = torch.from_numpy(np.stack(scaled)).to(torch_device)
        if sliding_window is not None:
            probs = sliding_window_proba(
                model,
                batch,
                window=sliding_window,
                overlap=window_overlap,
                batch_size=batch_size,
                tta_flip=tta_flip,
            )
        else:
            probs = predict_proba(model, batch, tta_flip=tta_flip)
        preds = probs.argmax(dim=1).cpu().numpy()
        for offset, i in enumerate(range(start, stop)):
            ref = refs[i]
            core = (
                slice(context, context + ref.window.height),
                slice(context, context + ref.window.width),
            )
            label = labels.read(i)[core]
            pred = preds[offset][core]
            overall.update(pred[None], label[None])
            per_year[ref.year].update(pred[None], label[None])
    result = scores_summary(overall.compute())
    result.update(
        {
            "checkpoint": str(checkpoint),
            "cube": str(cube),
            "city": info.city,
            "split": split if split_obj is not None else ALL_TILES,
            "split_sha256": split_obj.sha256 if split_obj is not None else None,
            "years": list(chosen_years),
            "tiles": len({r.window.tile_id for r in refs}),
            "samples": len(refs),
            "tile_size": size,
            "context": context,
            "sliding_window": sliding_window,
            "scaling": scaling,
            "model_name": loaded.model_name,
            "method": loaded.metadata.get("method"),
            "per_year": {
                str(year): scores_summary(matrix.compute())
                for year, matrix in per_year.items()
                if int(matrix.matrix.sum()) > 0
            },
        }
    )
    LOGGER.info("evaluated %s on %s (%s): mIoU %s", checkpoint, cube, result["split"], result["miou"])
    return result


def pool_results(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Scores of several :func:`evaluate_checkpoint` results pooled over their confusion matrices.

    Returns the pooled scores plus ``per_cube`` (each input result without its ``per_year``).

    Raises:
        EvaluationError: no results, or results with different numbers of classes.
    """
    if not results:
        raise EvaluationError("no evaluation results to pool")
    sizes = {len(r["confusion"]) for r in results}
    if len(sizes) != 1:
        raise EvaluationError(f"cannot pool results over different class counts {sorted(sizes)}")
    matrix = ConfusionMatrix(sizes.pop(), ignore_index=LABEL_IGNORE)
    for result in results:
        matrix.matrix += torch.tensor(result["confusion"], dtype=torch.int64)
    pooled = scores_summary(matrix.compute())
    first = results[0]
    pooled.update(
        {
            "checkpoint": first.get("checkpoint"),
            "split": first.get("split"),
            "cube": [r.get("cube") for r in results],
            "city": [r.get("city") for r in results],
            "years": sorted({int(y) for r in results for y in r.get("years", ())}),
            "samples": sum(int(r.get("samples", 0)) for r in results),
            "per_cube": [{k: v for k, v in r.items() if k != "per_year"} for r in results],
        }
    )
    return pooled


def zero_shot_evaluation(
    *,
    checkpoint: Path,
    target_cube: Path,
    years: Sequence[int] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Cross-city zero-shot: score a model trained on other cities on every labelled tile of ``target_cube``.

    ``kwargs`` go to :func:`evaluate_checkpoint` (``sliding_window``, ``context``, ``scaling``...); the result
    adds ``protocol``, the ``target_city`` and the training cities recorded in the checkpoint.
    """
    result = evaluate_checkpoint(checkpoint=checkpoint, cube=target_cube, splits=None, years=years, **kwargs)
    metadata = read_checkpoint(Path(checkpoint)).get("metadata") or {}
    sources = metadata.get("cities") or metadata.get("cubes") or []
    result.update(
        {
            "protocol": ZERO_SHOT_PROTOCOL,
            "target_city": result["city"],
            "source_cities": list(sources),
        }
    )
    if result["city"] in result["source_cities"]:
        LOGGER.warning("zero-shot target city %s was also a training city", result["city"])
    return result
