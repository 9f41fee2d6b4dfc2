"""The ``ingest`` Prefect flow and the ``slumwatch ingest`` command on a static fixture catalog."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely.geometry as sg

from slumwatch.catalogs.cube import CubeRef, open_cube
from slumwatch.catalogs.testing import SceneSpec, make_static_catalog

ORIGIN = (500_000.4, 2_100_000.0)


def _scene(year: int, **kw: object) -> SceneSpec:
    return SceneSpec(year=year, origin=ORIGIN, resolution=0.6, shape=(64, 96), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ingest")
    cat = make_static_catalog([_scene(2016, cloud_fraction=0.25), _scene(2018, seed=2)], root=root / "cat")
    labels = gpd.GeoDataFrame(
        {"year": [2016, 2018]},
        geometry=[sg.box(500010, 2099980, 500030, 2100000), sg.box(500010, 2099970, 500040, 2100000)],
        crs="EPSG:32643",
    )
    labels.to_parquet(root / "slums.parquet")
    return cat


def test_flow_end_to_end(prefect_harness: None, catalog: Path, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from slumwatch.pipelines.ingest import SUMMARY_KEY, IngestParams, ingest

    params = IngestParams(
        catalog=str(catalog),
        out=tmp_path / "cube.zarr",
        first_year=2015,
        last_year=2018,
        labels=catalog.parent.parent / "slums.parquet",
        tile_size=32,
        window_tiles=1,
    )
    result = ingest(params)
    assert [r.year for r in result.years] == [2016, 2018]
    assert result.missing_years == [2015, 2017]
    assert result.years[0].valid_fraction == pytest.approx(0.75)
    assert "| 2016 | 1 | 75.0% |" in result.summary_markdown
    ds = open_cube(CubeRef(params.out))
    assert ds["imagery"].shape == (2, 3, 64, 96) and "labels" in ds
    assert ds.attrs["slumwatch:query"]["catalog"] == str(catalog)
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts()
    assert any(a.key == SUMMARY_KEY for a in arts)
    # re-run resumes: nothing rewritten
    before = {p: p.stat().st_mtime_ns for p in params.out.rglob("c/*/*/*") if p.is_file()}
    ingest(params.model_copy(update={"labels": None}))
    after = {p: p.stat().st_mtime_ns for p in params.out.rglob("c/*/*/*") if p.is_file()}
    assert before == after


def test_params_validation() -> None:
    from pydantic import ValidationError

    from slumwatch.pipelines.ingest import IngestParams

    with pytest.raises(ValidationError, match="one of bbox, aoi, city"):
        IngestParams(catalog="x", out=Path("o.zarr"), bbox=(0, 0, 1, 1), city="Lagos")
    with pytest.raises(ValidationError, match="west,south,east,north"):
        IngestParams(catalog="x", out=Path("o.zarr"), bbox=(1, 0, 0, 1))
    p = IngestParams(catalog="x", out=Path("o.zarr"), city="Nairobi", first_year=2019, last_year=2020)
    assert p.years == [2019, 2020] and p.datetime == "2019-01-01/2020-12-31"


def test_cli_ingest(prefect_harness: None, catalog: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from slumwatch.commands.ingest import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode
    out = tmp_path / "cli.zarr"
    res = CliRunner().invoke(
        app,
        ["ingest", "--catalog", str(catalog), "--years", "2016-2018", "--out", str(out), "--tile-size", "32"],
    )
    assert res.exit_code == 0, res.output
    assert "2016" in res.output and out.exists()
    bad = CliRunner().invoke(app, ["ingest", "--catalog", str(catalog), "--bbox", "1,2,3", "--out", str(out)])
    assert bad.exit_code == 2 and "W,S,E,N" in bad.output
    outside = CliRunner().invoke(
        app, ["ingest", "--catalog", str(catalog), "--city", "Lagos", "--out", str(tmp_path / "lagos.zarr")]
    )
    assert outside.exit_code == 1 and "EmptySearchError" in outside.output
