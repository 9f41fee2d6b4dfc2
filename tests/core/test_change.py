"""Change detection: gap filling, per-year area, growth and its error against truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from slumwatch.change import (
    PROB_NODATA,
    GrowthSummaryError,
    fill_gaps,
    summarize_growth,
    write_growth_csv,
)


def test_fill_gaps_prefers_previous_then_next_year() -> None:
    pred = np.array([[[True]], [[False]], [[False]], [[True]]])
    seen = np.array([[[False]], [[False]], [[True]], [[False]]])
    # year 0/1 unseen before any seen year -> next seen (year 2: False); year 3 -> previous (False)
    assert fill_gaps(pred, seen)[:, 0, 0].tolist() == [False, False, False, False]
    seen2 = np.array([[[True]], [[False]], [[False]], [[False]]])
    assert fill_gaps(pred, seen2)[:, 0, 0].tolist() == [True, True, True, True]
    never = np.zeros_like(seen)
    assert not fill_gaps(pred, never).any()


def test_fill_gaps_shape_mismatch_is_an_error() -> None:
    with pytest.raises(GrowthSummaryError, match="differ in shape"):
        fill_gaps(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 4), bool))


def _store(path: Path, name: str, data: np.ndarray) -> Path:
    xr.Dataset({name: (("time", "y", "x"), data)}).to_zarr(str(path), mode="w")
    return path


def test_summary_matches_hand_computed_areas(tmp_path: Path) -> None:
    t, h, w = 3, 8, 10
    prob = np.zeros((t, h, w), np.uint8)
    truth = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        prob[i, :, : 2 + 2 * i] = 240  # 8 * (2, 4, 6) slum pixels predicted
        truth[i, :, : 2 + 3 * i] = 1  # 8 * (2, 5, 8) true slum pixels
    prob[1, :, 5:] = PROB_NODATA  # a cloud over the right half of year 1: filled from year 0 (no slum)
    truth[2, 0, :] = 255  # an unlabelled row
    preds = _store(tmp_path / "p.zarr", "slum_prob", prob)
    labels = _store(tmp_path / "l.zarr", "labels", truth)
    report = summarize_growth(predictions=preds, years=[2020, 2021, 2022], pixel_area_m2=0.25, labels=labels)
    areas = [r.predicted_area_m2 for r in report.rows]
    assert areas == [8 * 2 * 0.25, 8 * 4 * 0.25, 8 * 6 * 0.25]
    assert [r.true_area_m2 for r in report.rows] == [8 * 2 * 0.25, 8 * 5 * 0.25, 7 * 8 * 0.25]
    assert report.rows[1].valid_fraction == pytest.approx(0.5)
    assert report.rows[0].iou == pytest.approx(1.0)
    assert report.rows[1].iou == pytest.approx(4 / 5)  # all seen pixels in the left half
    assert report.rows[1].predicted_growth_m2 == pytest.approx(4.0)
    g = report.growth_metrics
    assert g["total_growth_pred_m2"] == pytest.approx(8.0)
    assert g["total_growth_true_m2"] == pytest.approx(14 - 4)
    assert g["growth_error_pct"] == pytest.approx(20.0)
    assert 0 < report.pixel_metrics["miou"] <= 1  # type: ignore[operator]


def test_truth_areas_override_label_areas_and_csv(tmp_path: Path) -> None:
    prob = np.full((2, 4, 4), 200, np.uint8)
    preds = _store(tmp_path / "p.zarr", "slum_prob", prob)
    report = summarize_growth(
        predictions=preds, years=[2014, 2015], pixel_area_m2=1.0, truth_area_m2={2014: 10.0, 2015: 20.0}
    )
    assert report.rows[0].area_error_pct == pytest.approx(60.0)
    assert report.rows[1].area_error_pct == pytest.approx(-20.0)
    path = write_growth_csv(report, tmp_path / "growth.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("year,predicted_area_m2,true_area_m2")
    assert lines[1].split(",")[:3] == ["2014", "16.0", "10.0"]


def test_years_must_match_time_steps(tmp_path: Path) -> None:
    preds = _store(tmp_path / "p.zarr", "slum_prob", np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(GrowthSummaryError, match="2 time steps but 3 years"):
        summarize_growth(predictions=preds, years=[1, 2, 3], pixel_area_m2=1.0)
