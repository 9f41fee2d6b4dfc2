"""Read (never write) the outputs of a run: ``growth.csv``, ``metrics.json``, ``predictions.zarr``, the cube.

``growth.csv`` is required and validated strictly (:class:`ReportError` says which file and what is
wrong). Every other input is optional: a missing or unreadable one yields ``None`` plus a note that
the report shows.

Rasters are opened lazily (xarray without dask, no in-memory cache): nothing is read until a window
is requested through :class:`RasterStack`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

GROWTH_CSV: Final = "growth.csv"
METRICS_JSON: Final = "metrics.json"
PREDICTIONS_ZARR: Final = "predictions.zarr"
PREDICTION_VARIABLE: Final = "slum_prob"
IMAGERY_VARIABLE: Final = "imagery"

REQUIRED_COLUMNS: Final = ("year", "predicted_area_m2")
OPTIONAL_COLUMNS: Final = (
    "true_area_m2",
    "valid_fraction",
    "predicted_growth_m2",
    "true_growth_m2",
    "area_error_pct",
    "iou",
)
FRACTION_COLUMNS: Final = ("valid_fraction", "iou")
NON_NEGATIVE_COLUMNS: Final = ("predicted_area_m2", "true_area_m2")
MIN_YEAR: Final = 1900
MAX_YEAR: Final = 2200
RGB_BANDS: Final = ("red", "green", "blue")
MAX_LISTED_PROBLEMS: Final = 5
LOW_VALID_FRACTION: Final = 0.7
"""Years with a smaller share of usable pixels are flagged: their area is likely underestimated."""
CONSOLIDATED_WARNING: Final = "Failed to open Zarr store with consolidated metadata"


class ReportError(ValueError):
    """A required report input is missing or malformed; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class YearRow:
    """One validated row of ``growth.csv``; ``None`` means the CSV cell was empty."""

    year: int
    predicted_area_m2: float
    true_area_m2: float | None = None
    valid_fraction: float | None = None
    predicted_growth_m2: float | None = None
    true_growth_m2: float | None = None
    area_error_pct: float | None = None
    iou: float | None = None


def _cell(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _list_problems(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED_PROBLEMS])
    more = len(items) - MAX_LISTED_PROBLEMS
    return f"{shown} (and {more} more)" if more > 0 else shown


def _numeric_column(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    empty = raw.isna() | raw.astype(str).str.strip().eq("")
    bad = values.isna() & ~empty
    if bad.any():
        rows = [f"line {i + 2} ({raw.iloc[i]!r})" for i in np.flatnonzero(bad.to_numpy())]
        raise ReportError(path, f"column {column!r} must be numeric; bad values at {_list_problems(rows)}")
    infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
    if infinite.any():
        rows = [f"line {i + 2}" for i in np.flatnonzero(infinite)]
        raise ReportError(path, f"column {column!r} has infinite values at {_list_problems(rows)}")
    return values.astype(float)


def load_growth(path: Path) -> list[YearRow]:
    """Read and validate ``growth.csv``; return its rows sorted by year.

    Required columns are ``year`` and ``predicted_area_m2``; the optional ones may be absent or
    empty. Growth and area error are derived from the areas when their columns are absent.

    Raises:
        ReportError: the file is missing, unreadable, empty, lacks a required column, or holds
            non-numeric, duplicate or out-of-range values.
    """
    if not path.is_file():
        raise ReportError(path, "file not found; a run directory must contain growth.csv")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise ReportError(path, "file is empty (expected a header row and one row per year)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReportError(path, f"not a readable CSV file ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        found = ", ".join(frame.columns) or "none"
        raise ReportError(path, f"missing required column(s) {', '.join(missing)}; found: {found}")
    if frame.empty:
        raise ReportError(path, "has a header but no rows (expected one row per year)")

    columns = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in frame.columns]
    numeric = pd.DataFrame({c: _numeric_column(frame, c, path) for c in columns})
    for column in REQUIRED_COLUMNS:
        empty_rows = [f"line {i + 2}" for i in np.flatnonzero(numeric[column].isna().to_numpy())]
        if empty_rows:
            raise ReportError(path, f"column {column!r} is empty at {_list_problems(empty_rows)}")
    years = numeric["year"]
    not_int = (years != years.round()) | (years < MIN_YEAR) | (years > MAX_YEAR)
    if not_int.any():
        rows = [f"line {i + 2} ({years.iloc[i]:g})" for i in np.flatnonzero(not_int.to_numpy())]
        raise ReportError(path, f"column 'year' must hold whole years; bad values at {_list_problems(rows)}")
    duplicated = years[years.duplicated()].astype(int).unique().tolist()
    if duplicated:
        raise ReportError(path, f"duplicate year(s) {', '.join(map(str, duplicated))}")
    for column in NON_NEGATIVE_COLUMNS:
        if column in numeric and (numeric[column] < 0).any():
            rows = [f"line {i + 2}" for i in np.flatnonzero((numeric[column] < 0).to_numpy())]
            raise ReportError(path, f"column {column!r} must not be negative; see {_list_problems(rows)}")
    for column in FRACTION_COLUMNS:
        if column in numeric:
            outside = (numeric[column] < 0) | (numeric[column] > 1)
            if outside.any():
                rows = [f"line {i + 2}" for i in np.flatnonzero(outside.to_numpy())]
                raise ReportError(path, f"column {column!r} must lie in 0–1; see {_list_problems(rows)}")

    numeric = numeric.sort_values("year", kind="stable").reset_index(drop=True)
    _derive_missing_columns(numeric)
    return [
        YearRow(
            year=int(record["year"]),
            predicted_area_m2=float(record["predicted_area_m2"]),
            **{c: _cell(record.get(c)) for c in OPTIONAL_COLUMNS},
        )
        for record in numeric.to_dict(orient="records")
    ]


def _derive_missing_columns(numeric: pd.DataFrame) -> None:
    """Fill absent optional columns that follow from the areas (in place)."""
    if "true_area_m2" not in numeric:
        numeric["true_area_m2"] = np.nan
    if "predicted_growth_m2" not in numeric:
        numeric["predicted_growth_m2"] = numeric["predicted_area_m2"].diff()
    if "true_growth_m2" not in numeric:
        numeric["true_growth_m2"] = numeric["true_area_m2"].diff()
    if "area_error_pct" not in numeric:
        truth = numeric["true_area_m2"].where(numeric["true_area_m2"] > 0)
        numeric["area_error_pct"] = (numeric["predicted_area_m2"] - truth) / truth * 100.0
    for column in OPTIONAL_COLUMNS:
        if column not in numeric:
            numeric[column] = np.nan


@dataclass
class Metrics:
    """``metrics.json`` as a dict with typed accessors; empty when the file is absent or unreadable."""

    data: dict[str, Any] = field(default_factory=dict)

    def section(self, key: str) -> dict[str, Any]:
        """Return a nested object (e.g. ``"overall"``), or an empty dict when absent or not an object."""
        value = self.data.get(key)
        return value if isinstance(value, dict) else {}

    def number(self, *keys: str) -> float | None:
        """Return the finite number at the nested ``keys``, or None."""
        node: Any = self.data
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        if isinstance(node, bool) or not isinstance(node, int | float):
            return None
        return float(node) if math.isfinite(node) else None

    def text(self, key: str) -> str | None:
        """Return a top-level scalar as text (None when absent or not a scalar)."""
        value = self.data.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        return None


def load_metrics(path: Path, *, notes: list[str]) -> Metrics:
    """Read ``metrics.json``; on absence or a parse error append a note and return empty metrics."""
    if not path.is_file():
        notes.append(f"{path.name} not found: header details, mIoU and growth-error figures are unavailable.")
        return Metrics()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes.append(f"{path.name} could not be read ({exc}); its figures are left out.")
        return Metrics()
    if not isinstance(data, dict):
        notes.append(f"{path.name} does not hold a JSON object; its figures are left out.")
        return Metrics()
    return Metrics(data)


@dataclass(frozen=True)
class RasterStack:
    """A lazily opened (time, [band,] y, x) raster: years, grid size and windowed reads.

    ``read(index, ys, xs)`` returns the window ``[..., ys, xs]`` of time step ``index`` as numpy
    (``band_index`` selects and orders bands for 4-D stacks). Rows are in storage order;
    ``north_up`` tells whether row 0 is the northern edge (y coordinate decreasing).
    """

    path: Path
    variable: xr.DataArray
    years: tuple[int, ...]
    height: int
    width: int
    chunk: tuple[int, int] | None
    north_up: bool
    band_index: tuple[int, ...] = ()

    def read(self, index: int, ys: slice, xs: slice) -> npt.NDArray[Any]:
        """Read one window of time step ``index``."""
        selection: dict[str, Any] = {"time": index, "y": ys, "x": xs}
        if self.band_index:
            selection["band"] = list(self.band_index)
        return np.asarray(self.variable.isel(selection).values)

    def index_of(self, year: int) -> int | None:
        """Return the time index of ``year``, or None when the stack has no such year."""
        return self.years.index(year) if year in self.years else None


def _years_of(time: xr.DataArray) -> tuple[int, ...]:
    values = time.values
    if np.issubdtype(values.dtype, np.datetime64):
        return tuple(int(y) for y in pd.DatetimeIndex(values).year)
    if np.issubdtype(values.dtype, np.integer):
        return tuple(int(v) for v in values)
    # cftime or strings: take the year of each parsed value
    return tuple(int(pd.Timestamp(str(v)).year) for v in values)


def _chunk_of(variable: xr.DataArray) -> tuple[int, int] | None:
    chunks = variable.encoding.get("chunks")
    if isinstance(chunks, tuple | list) and len(chunks) == variable.ndim:
        return int(chunks[-2]), int(chunks[-1])
    return None


def _open_dataset(path: Path) -> xr.Dataset:
    # no dask, no decoding of fill values (keeps uint8/uint16 and the nodata codes), no cache;
    # Zarr v3 stores are usually not consolidated, which is fine for a handful of variables
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=CONSOLIDATED_WARNING, category=RuntimeWarning)
        return xr.open_dataset(path, engine="zarr", chunks=None, mask_and_scale=False, cache=False)


def _stack_from(path: Path, dataset: xr.Dataset, name: str, dims: tuple[str, ...]) -> RasterStack:
    variable = dataset[name]
    if tuple(variable.dims) != dims:
        raise ValueError(f"{name!r} has dims {variable.dims}, expected {dims}")
    if "time" not in variable.coords:
        raise ValueError(f"{name!r} has no 'time' coordinate")
    years = _years_of(variable["time"])
    north_up = True
    if "y" in variable.coords and variable.sizes["y"] > 1:
        y = variable["y"].values
        north_up = bool(y[0] > y[-1])
    return RasterStack(
        path=path,
        variable=variable,
        years=years,
        height=int(variable.sizes["y"]),
        width=int(variable.sizes["x"]),
        chunk=_chunk_of(variable),
        north_up=north_up,
    )


def open_predictions(path: Path, *, notes: list[str]) -> RasterStack | None:
    """Open ``predictions.zarr`` lazily; on any problem append a note and return None."""
    if not path.exists():
        notes.append(f"{path.name} not found: the report has no maps.")
        return None
    try:
        dataset = _open_dataset(path)
        if PREDICTION_VARIABLE not in dataset:
            raise ValueError(f"no {PREDICTION_VARIABLE!r} variable")
        return _stack_from(path, dataset, PREDICTION_VARIABLE, ("time", "y", "x"))
    except Exception as exc:  # any unreadable store degrades to "no maps"
        notes.append(f"{path.name} could not be read ({exc}): the report has no maps.")
        return None


def _rgb_band_index(band_names: list[str]) -> tuple[int, ...]:
    lowered = [name.lower() for name in band_names]
    if all(name in lowered for name in RGB_BANDS):
        return tuple(lowered.index(name) for name in RGB_BANDS)
    if len(band_names) >= len(RGB_BANDS):
        return tuple(range(len(RGB_BANDS)))
    return (0,)


def open_cube(run_dir: Path, reference: Any, *, notes: list[str]) -> RasterStack | None:
    """Open the imagery cube named by metrics.json ``"cube"`` (relative paths are relative to the run).

    Selects the red, green and blue bands by name (else the first three, else one grey band).
    Returns None, with a note, when there is no reference or the cube cannot be read.
    """
    if reference is None:
        notes.append("metrics.json names no imagery cube: maps are drawn without an image background.")
        return None
    if not isinstance(reference, str) or not reference.strip():
        notes.append("metrics.json 'cube' is not a path: maps are drawn without an image background.")
        return None
    path = Path(reference).expanduser()
    if not path.is_absolute():
        path = run_dir / path
    if not path.exists():
        notes.append(f"imagery cube {path} not found: maps are drawn without an image background.")
        return None
    try:
        dataset = _open_dataset(path)
        if IMAGERY_VARIABLE not in dataset:
            raise ValueError(f"no {IMAGERY_VARIABLE!r} variable")
        stack = _stack_from(path, dataset, IMAGERY_VARIABLE, ("time", "band", "y", "x"))
        variable = dataset[IMAGERY_VARIABLE]
        if "band" in variable.coords:
            names = [str(b) for b in variable["band"].values]
        else:
            names = [str(i) for i in range(variable.sizes["band"])]
    except Exception as exc:  # any unreadable cube degrades to "no background"
        notes.append(f"imagery cube {path} could not be read ({exc}): maps have no image background.")
        return None
    band_index = _rgb_band_index(names)
    if len(band_index) == 1:
        notes.append(f"imagery cube {path.name} has no red/green/blue bands: background shown in grey.")
    return RasterStack(
        path=stack.path,
        variable=stack.variable,
        years=stack.years,
        height=stack.height,
        width=stack.width,
        chunk=stack.chunk,
        north_up=stack.north_up,
        band_index=band_index,
    )
