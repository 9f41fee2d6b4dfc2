"""render_report on generated runs: files written, numbers match growth.csv, graceful degradation."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_fakes import CITY, CLOUD_YEAR, HEIGHT, WIDTH, YEARS, FakeRun, write_predictions
from report_html import parse_report

from slumwatch.dashboards import render_report
from slumwatch.dashboards import report as report_module
from slumwatch.dashboards.formatting import choose_area_unit, format_area, format_fraction_pct, format_pct
from slumwatch.dashboards.inputs import RasterStack
from slumwatch.dashboards.raster import MAX_MAP_SIDE, WINDOW_PX


def _csv_value(value: Any) -> float | None:
    return None if pd.isna(value) else float(value)


def test_writes_index_maps_and_chart(fake_run: FakeRun) -> None:
    index = render_report(run_dir=fake_run.run_dir)

    out = fake_run.run_dir / "report"
    assert index == out / "index.html"
    assert index.is_file()
    svg = (out / "growth.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "2020–2021" in svg
    for year in YEARS:
        with Image.open(out / "maps" / f"{year}.png") as image:
            assert image.mode == "RGB"
            assert max(image.size) <= MAX_MAP_SIDE
            # 80 x 64 px grids are enlarged by an integer factor for legibility, keeping the aspect
            assert image.size[0] * HEIGHT == image.size[1] * WIDTH
    assert (out / "maps" / f"change_{YEARS[0]}_{YEARS[-1]}.png").is_file()
    html = index.read_text(encoding="utf-8")
    assert f"<title>Informal settlement growth — {CITY}</title>" in html
    assert "EPSG:32637" in html and "unet · resnet34" in html


def test_custom_out_dir_and_title(fake_run: FakeRun, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "site"
    index = render_report(run_dir=fake_run.run_dir, out_dir=out, title="Kibera <2024>")
    assert index == out / "index.html"
    html = index.read_text(encoding="utf-8")
    assert "<title>Kibera &lt;2024&gt;</title>" in html  # escaped
    assert not (fake_run.run_dir / "report").exists()


def test_table_numbers_match_csv(fake_run: FakeRun) -> None:
    parsed = parse_report(render_report(run_dir=fake_run.run_dir).read_text(encoding="utf-8"))
    growth = fake_run.growth
    area_unit = choose_area_unit(*growth["predicted_area_m2"], *growth["true_area_m2"].dropna())
    growth_unit = choose_area_unit(
        *growth["predicted_growth_m2"].dropna(), *growth["true_growth_m2"].dropna()
    )
    assert sorted(parsed.rows) == list(YEARS)
    for record in growth.to_dict(orient="records"):
        cells = parsed.rows[int(record["year"])]
        expected = [
            (
                record["predicted_area_m2"],
                format_area(_csv_value(record["predicted_area_m2"]), unit=area_unit),
            ),
            (record["true_area_m2"], format_area(_csv_value(record["true_area_m2"]), unit=area_unit)),
            (record["area_error_pct"], format_pct(_csv_value(record["area_error_pct"]), signed=True)),
            (
                record["predicted_growth_m2"],
                format_area(_csv_value(record["predicted_growth_m2"]), unit=growth_unit, signed=True),
            ),
            (
                record["true_growth_m2"],
                format_area(_csv_value(record["true_growth_m2"]), unit=growth_unit, signed=True),
            ),
            (record["valid_fraction"], format_fraction_pct(_csv_value(record["valid_fraction"]))),
        ]
        for (raw, text), (csv_raw, csv_text) in zip(cells, expected, strict=False):
            if pd.isna(csv_raw):
                assert raw is None and text == "—"
            else:
                assert raw is not None and math.isclose(float(raw), float(csv_raw))
                assert csv_text in text
    # the cloudy year is flagged for its low share of usable pixels
    assert parsed.rows[CLOUD_YEAR][5][1].startswith("!")


def test_summary_cards_match_csv_and_metrics(fake_run: FakeRun) -> None:
    parsed = parse_report(render_report(run_dir=fake_run.run_dir).read_text(encoding="utf-8"))
    first, last = fake_run.growth.iloc[0], fake_run.growth.iloc[-1]
    growth = last.predicted_area_m2 - first.predicted_area_m2
    assert parsed.cards["area"] == (str(float(last.predicted_area_m2)), format_area(last.predicted_area_m2))
    raw, text = parsed.cards["growth"]
    assert raw is not None and math.isclose(float(raw), growth)
    assert text == format_area(growth, signed=True)
    assert parsed.cards["growth-error"][1] == format_pct(6.27, signed=True) == "+6.3\u00a0%"
    assert parsed.cards["miou"][1] == "0.812"


def test_human_numbers_from_a_handwritten_csv(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "growth.csv").write_text(
        "year,predicted_area_m2,true_area_m2,valid_fraction,predicted_growth_m2,true_growth_m2,area_error_pct,iou\n"
        "2019,2500000,2400000,0.98,,,4.1667,0.71\n"
        "2020,2750000.5,,0.5,250000.5,,,\n"
        "2021,3123456.7,3000000,1.0,373456.2,600000,4.1152,0.74\n",
        encoding="utf-8",
    )
    html = render_report(run_dir=run).read_text(encoding="utf-8")
    parsed = parse_report(html)
    nbsp = "\u00a0"
    assert parsed.rows[2019][0] == ("2500000.0", f"2.500{nbsp}km²")
    assert parsed.rows[2021][0] == ("3123456.7", f"3.123{nbsp}km²")
    assert parsed.rows[2021][3][1] == f"+37.35{nbsp}ha"
    assert parsed.rows[2020][1] == (None, "—")
    assert parsed.cards["area"][1] == f"3.123{nbsp}km²"
    assert parsed.cards["growth"][1] == f"+62.35{nbsp}ha"  # 3,123,456.7 - 2,500,000 m²
    assert f"+24.9{nbsp}%" in html and "+623,457" in html
    # without metrics.json and predictions.zarr: visible notes instead of a failure
    assert any("metrics.json not found" in n for n in parsed.notes)
    assert any("predictions.zarr not found" in n for n in parsed.notes)
    assert parsed.cards["miou"][1] == "—"
    assert not (run / "report" / "maps").exists()


def test_missing_optional_inputs_degrade(fake_run_factory: Callable[..., FakeRun]) -> None:
    run = fake_run_factory(imagery_dtype=None, with_metrics=False)
    parsed = parse_report(render_report(run_dir=run.run_dir).read_text(encoding="utf-8"))
    assert any("metrics.json not found" in n for n in parsed.notes)
    assert (run.run_dir / "report" / "maps" / "2024.png").is_file()  # maps without a background


def test_missing_cube_is_a_note(fake_run_factory: Callable[..., FakeRun]) -> None:
    run = fake_run_factory(cube_reference="does/not/exist.zarr")
    parsed = parse_report(render_report(run_dir=run.run_dir).read_text(encoding="utf-8"))
    assert any("exist.zarr not found" in n for n in parsed.notes)
    assert (run.run_dir / "report" / "maps" / "2024.png").is_file()


def test_relative_cube_path_and_malformed_metrics(fake_run_factory: Callable[..., FakeRun]) -> None:
    run = fake_run_factory(cube_reference="../cube.zarr")
    parsed = parse_report(render_report(run_dir=run.run_dir).read_text(encoding="utf-8"))
    assert not any("cube" in n for n in parsed.notes)
    (run.run_dir / "metrics.json").write_text("{not json", encoding="utf-8")
    parsed = parse_report(render_report(run_dir=run.run_dir).read_text(encoding="utf-8"))
    assert any("metrics.json could not be read" in n for n in parsed.notes)


def _background_spread(path: Path) -> float:
    with Image.open(path) as image:
        pixels = np.asarray(image, dtype=np.float32)
    corner = pixels[-pixels.shape[0] // 4 :, -pixels.shape[1] // 8 :]  # imagery only, no slum there
    return float(corner.std(axis=(0, 1)).max())


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_imagery_background_uint8_and_uint16(fake_run_factory: Callable[..., FakeRun], dtype: str) -> None:
    run = fake_run_factory(imagery_dtype=dtype)
    parsed = parse_report(render_report(run_dir=run.run_dir).read_text(encoding="utf-8"))
    assert not any("cube" in n for n in parsed.notes)
    # percentile stretch spreads the imagery over the 8-bit range, whatever the input depth
    assert _background_spread(run.run_dir / "report" / "maps" / "2018.png") > 20


def test_no_cube_gives_flat_background(fake_run_factory: Callable[..., FakeRun]) -> None:
    run = fake_run_factory(imagery_dtype=None)
    render_report(run_dir=run.run_dir)
    assert _background_spread(run.run_dir / "report" / "maps" / "2018.png") < 1


def test_page_is_self_contained(fake_run: FakeRun) -> None:
    html = render_report(run_dir=fake_run.run_dir).read_text(encoding="utf-8")
    parsed = parse_report(html)
    assert parsed.script_src == [] and parsed.stylesheet_links == 0
    assert all(not re.match(r"^[a-z]+://|^//", src) for src in parsed.img_src + parsed.hrefs)
    assert "growth.svg" in parsed.img_src and f"maps/{YEARS[-1]}.png" in parsed.img_src
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert data is not None
    maps = json.loads(data.group(1))
    assert [m["year"] for m in maps] == list(YEARS)
    assert all((fake_run.run_dir / "report" / m["src"]).is_file() for m in maps)


def test_stale_maps_are_removed(fake_run: FakeRun) -> None:
    maps = fake_run.run_dir / "report" / "maps"
    maps.mkdir(parents=True)
    (maps / "1999.png").write_bytes(b"old")
    (maps / "keep-me.txt").write_text("not ours")
    render_report(run_dir=fake_run.run_dir)
    assert not (maps / "1999.png").exists()
    assert (maps / "keep-me.txt").exists()


def test_large_prediction_is_read_window_by_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A grid larger than one window is downsampled from bounded reads to at most MAX_MAP_SIDE px."""
    height, width, years = 2600, 2300, (2019, 2024)
    rng = np.random.default_rng(3)
    prob = rng.integers(0, 120, size=(len(years), height, width), dtype=np.uint8)
    prob[1, 500:1500, 400:1200] = 240  # new slum block
    prob[:, :300, :] = 255
    run = tmp_path / "run"
    run.mkdir()
    write_predictions(run / "predictions.zarr", prob, years=years, chunks=(1, 512, 512))
    (run / "growth.csv").write_text("year,predicted_area_m2\n2019,0\n2024,800000\n", encoding="utf-8")

    windows: list[tuple[int, int]] = []
    original = RasterStack.read

    def recording_read(self: RasterStack, index: int, ys: slice, xs: slice) -> np.ndarray:
        block = original(self, index, ys, xs)
        windows.append(block.shape[-2:])
        return block

    monkeypatch.setattr(RasterStack, "read", recording_read)
    spy: dict[str, Any] = {}
    original_year_map = report_module.render_year_map

    def spy_year_map(**kwargs: Any) -> Path:
        spy.setdefault("shares", []).append(kwargs["slum_share"])
        return original_year_map(**kwargs)

    monkeypatch.setattr(report_module, "render_year_map", spy_year_map)
    render_report(run_dir=run)

    assert len(windows) > len(years)  # several windows per year
    assert max(h * w for h, w in windows) <= WINDOW_PX**2 < height * width
    with Image.open(run / "report" / "maps" / "2024.png") as image:
        assert max(image.size) <= MAX_MAP_SIDE
    share = spy["shares"][1]
    factor = math.ceil(max(height, width) / MAX_MAP_SIDE)
    assert share.shape == (math.ceil(height / factor), math.ceil(width / factor))
    assert np.isnan(share[: 300 // factor - 1]).all()  # nodata rows
    assert (share[600 // factor : 1400 // factor, 500 // factor : 1100 // factor] == 1).all()
    assert (share[1600 // factor :] == 0).all()


def test_single_year_without_truth(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "growth.csv").write_text("year,predicted_area_m2,true_area_m2\n2024,0,\n", encoding="utf-8")
    write_predictions(run / "predictions.zarr", np.zeros((1, 16, 20), dtype=np.uint8), years=(2024,))
    parsed = parse_report(render_report(run_dir=run).read_text(encoding="utf-8"))
    assert parsed.cards["area"][1] == "0\u00a0m²"
    assert parsed.cards["growth"][1] == parsed.cards["growth-error"][1] == "—"
    assert any("single year" in n for n in parsed.notes)
    assert any("no ground-truth areas" in n for n in parsed.notes)
    assert (run / "report" / "maps" / "2024.png").is_file()
    assert not list((run / "report" / "maps").glob("change_*.png"))
