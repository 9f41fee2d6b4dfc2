"""The end-to-end demo flow on a small synthetic city: real Prefect, Ray, Zarr, STAC, torch."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import zarr

from slumwatch.config import DemoConfig, parse_years


@pytest.mark.integration
def test_demo_flow_end_to_end(tmp_path: Path, prefect_harness: None, ray_local: None) -> None:
    from slumwatch.pipelines.demo import demo_flow

    cfg = DemoConfig(
        out=tmp_path / "run",
        size="320x288",
        seed=3,
        years=parse_years("2019-2021"),
        train_years=(2019, 2021),
        epochs=1,
        batch_size=2,
        crop_size=64,
        tile_size=64,
        tile_overlap=8,
        model="deeplabv3plus_resnet18",
    )
    result = demo_flow(cfg)

    rows = list(csv.DictReader(result.growth_csv.open()))
    assert [int(r["year"]) for r in rows] == [2019, 2020, 2021]
    truth = json.loads((result.city_dir / "truth.json").read_text())
    for row in rows:
        assert float(row["true_area_m2"]) == pytest.approx(float(truth["slum_area_m2"][row["year"]]))
        assert 0.0 <= float(row["valid_fraction"]) <= 1.0
        assert float(row["predicted_area_m2"]) >= 0.0
    metrics = json.loads(result.metrics_json.read_text())
    assert 0.0 <= metrics["overall"]["miou"] <= 1.0
    assert set(metrics["timings_s"]) >= {"synth", "cube", "train", "predict", "summarize"}

    probs = zarr.open_group(str(result.predictions), mode="r")["slum_prob"]
    cube = zarr.open_group(str(result.cube), mode="r")["imagery"]
    assert probs.shape == (3, cube.shape[2], cube.shape[3])
    assert result.checkpoint.is_file()
    html = result.report.read_text()
    assert "2021" in html and result.report.name == "index.html"
