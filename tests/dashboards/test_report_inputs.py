"""ReportError for a missing or malformed growth.csv (the message names the file and the problem)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slumwatch.dashboards import ReportError, render_report
from slumwatch.dashboards.inputs import load_growth

HEADER = "year,predicted_area_m2,true_area_m2,valid_fraction\n"


def _run_with_csv(tmp_path: Path, text: str | bytes) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    path = run / "growth.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return run


def test_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="run directory not found") as info:
        render_report(run_dir=tmp_path / "nope")
    assert info.value.path == tmp_path / "nope"


def test_missing_growth_csv(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as info:
        render_report(run_dir=tmp_path)
    assert info.value.path == tmp_path / "growth.csv"
    assert "growth.csv" in str(info.value) and "not found" in str(info.value)
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "file is empty"),
        ("year,true_area_m2\n2020,5\n", "missing required column(s) predicted_area_m2"),
        (HEADER, "no rows"),
        (HEADER + "2020,abc,1,0.5\n", "'predicted_area_m2' must be numeric; bad values at line 2 ('abc')"),
        (HEADER + "2020,10,1,0.5\n2021,,1,0.5\n", "'predicted_area_m2' is empty at line 3"),
        (HEADER + "2020.5,10,1,0.5\n", "whole years"),
        (HEADER + "2020,10,1,0.5\n2020,12,1,0.5\n", "duplicate year(s) 2020"),
        (HEADER + "2020,-10,1,0.5\n", "must not be negative"),
        (HEADER + "2020,10,1,1.5\n", "'valid_fraction' must lie in 0–1"),
        (HEADER + "2020,inf,1,0.5\n", "infinite"),
        (b"year,predicted_area_m2\n2020,\xff\xfe\n", "not a readable CSV"),
        ('year,predicted_area_m2\n2020,"1\n', "not a readable CSV"),
    ],
)
def test_malformed_growth_csv(tmp_path: Path, text: str | bytes, problem: str) -> None:
    run = _run_with_csv(tmp_path, text)
    with pytest.raises(ReportError) as info:
        render_report(run_dir=run)
    message = str(info.value)
    assert message.startswith(f"{run / 'growth.csv'}: ")
    assert problem in message


def test_growth_csv_minimal_columns_are_derived(tmp_path: Path) -> None:
    run = _run_with_csv(tmp_path, "year,predicted_area_m2,true_area_m2\n2021,150,100\n2020,100,\n")
    rows = load_growth(run / "growth.csv")
    assert [r.year for r in rows] == [2020, 2021]  # sorted
    assert rows[0].predicted_growth_m2 is None and rows[1].predicted_growth_m2 == 50
    assert rows[1].area_error_pct == pytest.approx(50.0)
    assert rows[0].true_area_m2 is None and rows[0].valid_fraction is None and rows[1].iou is None
