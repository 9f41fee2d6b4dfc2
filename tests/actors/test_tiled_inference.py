"""Tiled inference on a local Ray cluster (Ray Data): every core pixel written once, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from cube_fixtures import make_cube

from slumwatch.actors.inference import PROB_NODATA, InferenceError, predict_cube, progress_manifest
from slumwatch.actors.tiles import BandScaling
from slumwatch.catalogs.tiling import TileSpec


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    import torch

    from slumwatch.models import get_model
    from slumwatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = get_model("deeplabv3plus_resnet18", num_classes=2, in_channels=3)
    scaling = BandScaling(bands=("red", "green", "blue"), low=(0.0,) * 3, high=(255.0,) * 3)
    return save_checkpoint(
        tmp_path / "m.pt",
        model=model,
        model_name="deeplabv3plus_resnet18",
        model_kwargs={"num_classes": 2, "in_channels": 3},
        normalization=scaling.to_dict(),
        metadata={},
    )


@pytest.mark.integration
def test_predict_cube_writes_every_pixel_and_resumes(
    tmp_path: Path, checkpoint: Path, ray_local: None
) -> None:
    cube = make_cube(tmp_path / "c.zarr", t=2, h=70, w=90)
    scaling = BandScaling(bands=("red", "green", "blue"), low=(0.0,) * 3, high=(255.0,) * 3)
    out = tmp_path / "p.zarr"
    spec = TileSpec(32, 8)
    predict_cube(
        cube=cube, checkpoint=checkpoint, out=out, spec=spec, scaling=scaling, batch_size=4, progress=False
    )

    probs = xr.open_zarr(str(out), mask_and_scale=False)["slum_prob"]
    assert probs.dims == ("time", "y", "x") and probs.shape == (2, 70, 90)
    values = probs.values
    valid = zarr.open_group(str(cube), mode="r")["valid"][:].astype(bool)
    assert (values[~valid] == PROB_NODATA).all()
    assert (values[valid] <= 250).all()
    manifest = json.loads(progress_manifest(out).read_text())
    assert len(manifest["done"]) == 2 * 3 * 3

    # A re-run finds everything done and rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("c/*") if p.is_file()}
    predict_cube(
        cube=cube, checkpoint=checkpoint, out=out, spec=spec, scaling=scaling, batch_size=4, progress=False
    )
    after = {p: p.stat().st_mtime_ns for p in out.rglob("c/*") if p.is_file()}
    assert before == after

    # Overlap gives context only: cores are identical to a run without overlap except near tile borders.
    out0 = tmp_path / "p0.zarr"
    predict_cube(
        cube=cube, checkpoint=checkpoint, out=out0, spec=TileSpec(32, 0), scaling=scaling, progress=False
    )
    v0 = xr.open_zarr(str(out0), mask_and_scale=False)["slum_prob"].values
    assert np.mean(v0 == values) > 0.2


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    cube = make_cube(tmp_path / "c.zarr")
    scaling = BandScaling(bands=("red", "green", "blue"), low=(0.0,) * 3, high=(255.0,) * 3)
    with pytest.raises(InferenceError, match="checkpoint not found"):
        predict_cube(
            cube=cube, checkpoint=tmp_path / "nope.pt", out=tmp_path / "p", spec=TileSpec(32), scaling=scaling
        )
