"""Windowed downsampling (stride, block mean, slum share), percentile stretch and number formatting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slumwatch.dashboards.formatting import (
    HECTARE,
    SQUARE_KILOMETRE,
    SQUARE_METRE,
    choose_area_unit,
    format_area,
    format_duration,
    format_fraction_pct,
    format_pct,
    format_resolution,
)
from slumwatch.dashboards.raster import (
    MAX_MAP_SIDE,
    downsample_factor,
    mean_reduce,
    percentile_stretch,
    prediction_reduce,
    read_downsampled,
    stride_reduce,
    window_size,
)


class RecordingReader:
    """Serves windows of an in-memory array and records their sizes."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.windows: list[tuple[int, int]] = []

    def __call__(self, ys: slice, xs: slice) -> np.ndarray:
        window = self.array[..., ys, xs]
        self.windows.append(window.shape[-2:])
        return window.copy()


def test_strided_downsampling_of_a_larger_array() -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 250, size=(3000, 2500), dtype=np.uint8)
    factor = downsample_factor(height=3000, width=2500)
    assert factor == 3 and math.ceil(3000 / factor) <= MAX_MAP_SIDE
    reader = RecordingReader(array)
    out = read_downsampled(
        reader, height=3000, width=2500, factor=factor, reduce=stride_reduce, target_window=512
    )
    np.testing.assert_array_equal(out, array[::factor, ::factor])
    assert len(reader.windows) > 1
    assert max(h * w for h, w in reader.windows) <= 512 * 512


def test_windows_align_with_factor_and_chunks() -> None:
    assert window_size(factor=3, target=512) % 3 == 0
    size = window_size(factor=4, chunk=512, target=2048)
    assert size % 512 == 0 and size % 4 == 0
    assert window_size(factor=7, chunk=1000, target=2048) % 7 == 0  # lcm too large: factor only


def test_multiband_stride_and_odd_edges() -> None:
    array = np.arange(3 * 101 * 77, dtype=np.uint16).reshape(3, 101, 77)
    out = read_downsampled(
        RecordingReader(array), height=101, width=77, factor=4, reduce=stride_reduce, target_window=10
    )
    np.testing.assert_array_equal(out, array[:, ::4, ::4])


def test_mean_reduce_ignores_nodata() -> None:
    bands = np.array([[[0, 10, 20], [0, 30, 40]], [[0, 100, 200], [0, 300, 400]]], dtype=np.uint16)
    out = mean_reduce(bands, 2)
    assert out.shape == (2, 1, 2)
    np.testing.assert_allclose(out[:, 0, 0], [20.0, 200.0])  # (10 + 30) / 2, the zeros are nodata
    np.testing.assert_allclose(out[:, 0, 1], [30.0, 300.0])  # edge block of one column
    assert np.isnan(mean_reduce(np.zeros((3, 4, 4), dtype=np.uint8), 4)).all()


def test_prediction_reduce_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    prob = rng.integers(0, 251, size=(37, 29), dtype=np.uint8)
    prob[rng.random(prob.shape) < 0.3] = 255
    factor = 5
    share = read_downsampled(
        RecordingReader(prob), height=37, width=29, factor=factor, reduce=prediction_reduce, target_window=10
    )
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            block = prob[i * factor : (i + 1) * factor, j * factor : (j + 1) * factor]
            usable = block != 255
            if usable.sum() < 0.5 * block.size:
                assert np.isnan(share[i, j])
            else:
                assert share[i, j] == pytest.approx(((block >= 125) & usable).sum() / usable.sum())


def test_percentile_stretch_uint16() -> None:
    rng = np.random.default_rng(2)
    bands = rng.normal(1500, 300, size=(3, 50, 60)).clip(1, 4095).astype(np.uint16).astype(np.float32)
    bands[:, :5, :5] = np.nan
    rgb = percentile_stretch(bands)
    assert rgb.shape == (50, 60, 3) and rgb.dtype == np.uint8
    assert rgb[5:].min() == 0 and rgb[5:].max() == 255
    assert (rgb[:5, :5] == 128).all()
    grey = percentile_stretch(bands[:1])
    assert (grey[..., 0] == grey[..., 2]).all()


def test_downsample_factor() -> None:
    assert downsample_factor(height=64, width=80) == 1
    assert downsample_factor(height=40_000, width=40_000) == 40
    assert downsample_factor(height=1025, width=10) == 2
    with pytest.raises(ValueError, match="positive"):
        downsample_factor(height=0, width=10)


def test_area_formatting() -> None:
    nbsp = "\u00a0"
    assert choose_area_unit(5_000) is SQUARE_METRE
    assert choose_area_unit(5_000, 20_000) is HECTARE
    assert choose_area_unit(None, 2_500_000.0) is SQUARE_KILOMETRE
    assert format_area(1234.4) == f"1,234{nbsp}m²"
    assert format_area(123_456.7) == f"12.35{nbsp}ha"
    assert format_area(12_345_678.0) == f"12.35{nbsp}km²"
    assert format_area(1_234_567_890.0) == f"1,234.57{nbsp}km²"
    assert format_area(-52_000.0, signed=True) == f"\u22125.20{nbsp}ha"
    assert format_area(0.2, unit=SQUARE_METRE, signed=True) == f"0{nbsp}m²"
    assert format_area(None) == format_area(float("nan")) == "—"
    assert format_pct(4.26, signed=True) == f"+4.3{nbsp}%" and format_pct(-0.01, signed=True) == f"0.0{nbsp}%"
    assert format_fraction_pct(0.963) == f"96.3{nbsp}%"
    assert format_resolution(0.3) == f"30{nbsp}cm" and format_resolution(2.0) == f"2{nbsp}m"
    assert format_duration(42.0) == f"42.0{nbsp}s"
    assert format_duration(185.0) == f"3{nbsp}min 05{nbsp}s"
    assert format_duration(3720.0) == f"1{nbsp}h 02{nbsp}min"
