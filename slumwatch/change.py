"""Change detection: per-year slum area, growth, and their error against ground truth.

Works window by window over a ``predictions.zarr`` store (``slum_prob`` (time, y, x)
uint8: probability x 250, 255 = no data), so a citywide time series never has to fit in
memory. Pixels without data in a year (cloud, nodata border) take the prediction of the
nearest year that saw them (previous year first, then next), so yearly areas are not
biased low by clouds; ``valid_fraction`` reports how much of each year was really seen.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import zarr

from slumwatch.zarr_io import StoreError, require_array

__all__ = [
    "PROB_NODATA",
    "PROB_SCALE",
    "GrowthReport",
    "GrowthSummaryError",
    "YearRow",
    "fill_gaps",
    "summarize_growth",
    "write_growth_csv",
]

PROB_SCALE = 250
"""``slum_prob`` stores probability x PROB_SCALE as uint8."""
PROB_NODATA = 255
"""``slum_prob`` value for pixels without data."""
LABEL_IGNORE = 255
SLUM_CLASS = 1
NUM_CLASSES = 2
WINDOW = 1024
"""Spatial window (pixels) processed at a time."""


class GrowthSummaryError(StoreError):
    """The predictions or labels cannot be summarised (missing array, shape mismatch...)."""


@dataclass(frozen=True, slots=True)
class YearRow:
    """One row of the growth table."""

    year: int
    predicted_area_m2: float
    true_area_m2: float | None
    valid_fraction: float
    predicted_growth_m2: float | None
    true_growth_m2: float | None
    area_error_pct: float | None
    iou: float | None


@dataclass(frozen=True, slots=True)
class GrowthReport:
    """The growth table plus aggregate pixel and growth metrics."""

    rows: tuple[YearRow, ...]
    pixel_metrics: Mapping[str, object]
    growth_metrics: Mapping[str, float]


def fill_gaps(pred: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Fill unseen pixels of a (time, y, x) boolean series from the nearest seen year.

    Previous years take precedence over later ones; pixels never seen stay False.

    Args:
        pred: (T, H, W) bool predictions.
        seen: (T, H, W) bool, True where ``pred`` is based on real data.
    Returns:
        (T, H, W) bool, gap-filled.
    """
    if pred.shape != seen.shape:
        raise GrowthSummaryError(f"pred {pred.shape} and seen {seen.shape} differ in shape")
    t_len = pred.shape[0]
    idx = np.where(seen, np.arange(t_len)[:, None, None], -1)
    last_seen: np.ndarray = np.maximum.accumulate(idx, axis=0)  # forward fill index
    big = t_len + 1
    idx_b = np.where(seen, np.arange(t_len)[:, None, None], big)
    reverse_min: np.ndarray = np.minimum.accumulate(idx_b[::-1], axis=0)
    next_seen = reverse_min[::-1]  # backward fill index
    source = np.where(last_seen >= 0, last_seen, np.where(next_seen < big, next_seen, -1))
    safe = np.clip(source, 0, t_len - 1)
    filled = np.take_along_axis(pred, safe, axis=0)
    return np.where(source >= 0, filled, False)


def _windows(height: int, width: int, size: int) -> Iterator[tuple[slice, slice]]:
    for r in range(0, height, size):
        for c in range(0, width, size):
            yield slice(r, min(r + size, height)), slice(c, min(c + size, width))


def _pct(pred: float, true: float | None) -> float | None:
    if true is None or true <= 0:
        return None
    return 100.0 * (pred - true) / true


def summarize_growth(
    *,
    predictions: Path,
    years: Sequence[int],
    pixel_area_m2: float,
    labels: Path | None = None,
    labels_variable: str = "labels",
    truth_area_m2: Mapping[int, float] | None = None,
    eval_mask: np.ndarray | None = None,
    threshold: float = 0.5,
    window: int = WINDOW,
) -> GrowthReport:
    """Per-year slum area and growth from a predictions store, scored against truth.

    Args:
        predictions: Zarr store with ``slum_prob`` (T, H, W) uint8.
        years: the calendar year of each time step (length T).
        pixel_area_m2: ground area of one pixel.
        labels: optional Zarr store with ``labels_variable`` (T, H, W) uint8 (0/1, 255 ignore)
            on the same grid; gives per-year IoU and the pixel metrics.
        truth_area_m2: optional true slum area per year (e.g. from the synthetic city's
            ``truth.json``); otherwise the labelled slum pixel area is used when labels exist.
        eval_mask: optional (H, W) bool; pixel metrics are computed only where True
            (e.g. tiles held out from training). Per-year IoU uses all labelled pixels.
        threshold: probability above which a pixel is slum.
    """
    prob = require_array(zarr.open_group(str(predictions), mode="r"), "slum_prob", where=predictions)
    t_len, height, width = prob.shape
    if len(years) != t_len:
        raise GrowthSummaryError(f"{predictions}: {t_len} time steps but {len(years)} years given")
    lab = None
    if labels is not None:
        lab_group = zarr.open_group(str(labels), mode="r")
        if labels_variable in lab_group:
            lab = require_array(lab_group, labels_variable, where=labels)
            if tuple(lab.shape) != (t_len, height, width):
                raise GrowthSummaryError(
                    f"{labels}/{labels_variable} has shape {lab.shape}, predictions {prob.shape}"
                )
    if eval_mask is not None and eval_mask.shape != (height, width):
        raise GrowthSummaryError(f"eval_mask shape {eval_mask.shape} != raster {(height, width)}")

    cut = round(threshold * PROB_SCALE)
    pred_pixels = np.zeros(t_len, dtype=np.int64)
    seen_pixels = np.zeros(t_len, dtype=np.int64)
    true_pixels = np.zeros(t_len, dtype=np.int64)
    inter = np.zeros(t_len, dtype=np.int64)
    union = np.zeros(t_len, dtype=np.int64)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for rows, cols in _windows(height, width, window):
        p = np.asarray(prob[:, rows, cols])
        seen = p != PROB_NODATA
        pred = seen & (p >= cut)
        filled = fill_gaps(pred, seen)
        pred_pixels += filled.reshape(t_len, -1).sum(axis=1)
        seen_pixels += seen.reshape(t_len, -1).sum(axis=1)
        if lab is None:
            continue
        y = np.asarray(lab[:, rows, cols])
        labelled = y != LABEL_IGNORE
        truth = labelled & (y == SLUM_CLASS)
        true_pixels += truth.reshape(t_len, -1).sum(axis=1)
        both = labelled & seen
        inter += (both & pred & truth).reshape(t_len, -1).sum(axis=1)
        union += (both & (pred | truth)).reshape(t_len, -1).sum(axis=1)
        scored = both if eval_mask is None else both & eval_mask[rows, cols][None]
        idx = truth[scored].astype(np.int64) * NUM_CLASSES + pred[scored].astype(np.int64)
        confusion += np.bincount(idx, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)

    total = height * width
    rows_out: list[YearRow] = []
    prev_pred: float | None = None
    prev_true: float | None = None
    for i, year in enumerate(years):
        pred_area = float(pred_pixels[i]) * pixel_area_m2
        if truth_area_m2 is not None and year in truth_area_m2:
            true_area: float | None = float(truth_area_m2[year])
        elif lab is not None:
            true_area = float(true_pixels[i]) * pixel_area_m2
        else:
            true_area = None
        iou = float(inter[i] / union[i]) if lab is not None and union[i] > 0 else None
        rows_out.append(
            YearRow(
                year=int(year),
                predicted_area_m2=pred_area,
                true_area_m2=true_area,
                valid_fraction=float(seen_pixels[i]) / total,
                predicted_growth_m2=None if prev_pred is None else pred_area - prev_pred,
                true_growth_m2=None if prev_true is None or true_area is None else true_area - prev_true,
                area_error_pct=_pct(pred_area, true_area),
                iou=iou,
            )
        )
        prev_pred, prev_true = pred_area, true_area
    return GrowthReport(
        rows=tuple(rows_out),
        pixel_metrics=_pixel_metrics(confusion) if lab is not None else {},
        growth_metrics=_growth_metrics(rows_out),
    )


def _pixel_metrics(confusion: np.ndarray) -> dict[str, object]:
    """IoU, F1 and accuracy from a (true, pred) confusion matrix."""
    tp = np.diag(confusion).astype(np.float64)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
    total = confusion.sum()
    return {
        "iou_per_class": [None if math.isnan(v) else float(v) for v in iou],
        "miou": float(np.nanmean(iou)) if not np.all(np.isnan(iou)) else None,
        "f1_per_class": [None if math.isnan(v) else float(v) for v in f1],
        "f1": float(np.nanmean(f1)) if not np.all(np.isnan(f1)) else None,
        "accuracy": float(tp.sum() / total) if total else None,
        "pixels": int(total),
    }


def _growth_metrics(rows: Sequence[YearRow]) -> dict[str, float]:
    with_truth = [r for r in rows if r.true_area_m2 is not None]
    out: dict[str, float] = {}
    if not rows:
        return out
    out["total_growth_pred_m2"] = rows[-1].predicted_area_m2 - rows[0].predicted_area_m2
    if len(with_truth) != len(rows):
        return out
    errors = [abs(r.predicted_area_m2 - float(r.true_area_m2 or 0.0)) for r in rows]
    out["area_mae_m2"] = float(np.mean(errors))
    pct = [abs(e) for r in rows if (e := _pct(r.predicted_area_m2, r.true_area_m2)) is not None]
    if pct:
        out["area_mape_pct"] = float(np.mean(pct))
    growth_err = [
        abs(float(r.predicted_growth_m2) - float(r.true_growth_m2))
        for r in rows
        if r.predicted_growth_m2 is not None and r.true_growth_m2 is not None
    ]
    if growth_err:
        out["mae_m2"] = float(np.mean(growth_err))
    true_total = float(rows[-1].true_area_m2 or 0.0) - float(rows[0].true_area_m2 or 0.0)
    out["total_growth_true_m2"] = true_total
    if true_total != 0:
        out["growth_error_pct"] = 100.0 * abs(out["total_growth_pred_m2"] - true_total) / abs(true_total)
    return out


def write_growth_csv(report: GrowthReport, path: Path) -> Path:
    """Write the growth table as CSV (empty cells where a value is unknown)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(YearRow.__dataclass_fields__)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in report.rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})
    tmp.replace(path)
    return path
