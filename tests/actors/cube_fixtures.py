"""A tiny hand-made cube store for actor tests (generated, never committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr


def make_cube(path: Path, *, t: int = 2, c: int = 3, h: int = 70, w: int = 90, dtype: str = "uint8") -> Path:
    rng = np.random.default_rng(0)
    imagery = rng.integers(1, 200, size=(t, c, h, w)).astype(dtype)
    imagery[:, :, :, :5] = 0  # a nodata strip
    valid = (imagery[:, 0] != 0).astype(np.uint8)
    labels = (rng.random((t, h, w)) > 0.5).astype(np.uint8)
    labels[:, :3] = 255
    ds = xr.Dataset(
        {
            "imagery": (("time", "band", "y", "x"), imagery),
            "valid": (("time", "y", "x"), valid),
            "labels": (("time", "y", "x"), labels),
        },
        coords={
            "time": np.array([f"{2014 + i}-06-15" for i in range(t)], dtype="datetime64[ns]"),
            "band": ["red", "green", "blue", "nir"][:c],
            "y": np.arange(h) * -0.6,
            "x": np.arange(w) * 0.6,
        },
    )
    ds.to_zarr(str(path), mode="w")
    return path
