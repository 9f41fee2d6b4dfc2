"""Streaming GeoParquet writer for the ground-truth layers (buildings and slum outlines).

Rows are written in batches with :class:`pyarrow.parquet.ParquetWriter`, so the millions
of buildings of a ``metro`` city never sit in memory at once. The file carries GeoParquet
1.1 ``geo`` metadata (WKB geometry column, PROJJSON CRS, polygon orientation), so
``geopandas.read_parquet`` reads it back with its CRS.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from rasterio.crs import CRS

__all__ = ["GEOPARQUET_VERSION", "GeoParquetWriter", "to_crs_coordinates"]

GEOPARQUET_VERSION = "1.1.0"
GEOMETRY_COLUMN = "geometry"
PARQUET_COMPRESSION = "zstd"


def to_crs_coordinates(
    geoms: npt.NDArray[np.object_], *, origin_easting: float, origin_northing: float
) -> npt.NDArray[np.object_]:
    """Scene-frame geometries (metres, ``y`` south) to CRS coordinates, exteriors counter-clockwise."""

    def shift(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.stack([origin_easting + xy[:, 0], origin_northing - xy[:, 1]], axis=1)

    moved = shapely.transform(np.asarray(geoms, dtype=object), shift)
    return np.asarray(shapely.orient_polygons(moved), dtype=object)


def _validity(nulls: npt.ArrayLike | None, n: int) -> pa.Buffer | None:
    if nulls is None:
        return None
    valid = ~np.asarray(nulls, dtype=bool).reshape(n)
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _binary_array(items: list[bytes], *, as_string: bool = False) -> pa.Array:
    """A binary (or utf-8 string) arrow array built from its buffers."""
    lengths = np.fromiter((len(b) for b in items), dtype=np.int64, count=len(items))
    offsets = np.zeros(len(items) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = pa.py_buffer(b"".join(items))
    kind = pa.string() if as_string else pa.binary()
    return pa.Array.from_buffers(kind, len(items), [None, pa.py_buffer(offsets), data])


def _arrow_array(
    values: npt.NDArray[Any], dtype: pa.DataType, *, nulls: npt.ArrayLike | None = None
) -> pa.Array:
    """An arrow array from a numpy column, built from buffers.

    (``pyarrow.array`` would import pandas on first use, which costs seconds in a CLI run.)
    """
    n = int(values.size)
    validity = _validity(nulls, n)
    if pa.types.is_string(dtype):
        strings = _binary_array([str(v).encode() for v in values.tolist()], as_string=True)
        return pa.Array.from_buffers(dtype, n, [validity, *strings.buffers()[1:]])
    if pa.types.is_boolean(dtype):
        bits = np.packbits(values.astype(bool), bitorder="little")
        return pa.Array.from_buffers(dtype, n, [validity, pa.py_buffer(bits)])
    data = np.ascontiguousarray(values, dtype=dtype.to_pandas_dtype())
    return pa.Array.from_buffers(dtype, n, [validity, pa.py_buffer(data)])


class GeoParquetWriter:
    """Append batches of ``(geometries, columns)`` to one GeoParquet file.

    Args:
        path: Output file.
        fields: The non-geometry columns (name, arrow type), in order.
        epsg: EPSG code of the geometries' CRS.
        geometry_types: GeoParquet geometry type names present (e.g. ``["Polygon"]``).
    """

    def __init__(
        self, path: Path, *, fields: list[tuple[str, pa.DataType]], epsg: int, geometry_types: list[str]
    ) -> None:
        geo = {
            "version": GEOPARQUET_VERSION,
            "primary_column": GEOMETRY_COLUMN,
            "columns": {
                GEOMETRY_COLUMN: {
                    "encoding": "WKB",
                    "geometry_types": geometry_types,
                    "crs": CRS.from_epsg(epsg).to_dict(projjson=True),
                    "orientation": "counterclockwise",
                }
            },
        }
        self.path = path
        self.schema = pa.schema(
            [pa.field(GEOMETRY_COLUMN, pa.binary()), *(pa.field(name, dtype) for name, dtype in fields)],
            metadata={b"geo": json.dumps(geo).encode()},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, self.schema, compression=PARQUET_COMPRESSION)
        self.rows = 0

    def write(self, geoms: npt.NDArray[np.object_], columns: dict[str, Any]) -> None:
        """Append one batch: geometries plus one column per field.

        A column is an array-like, or ``(values, null_mask)`` for a nullable column.
        """
        if len(geoms) == 0:
            return
        arrays: list[pa.Array] = [_binary_array(shapely.to_wkb(geoms).tolist())]
        for field in self.schema:
            if field.name == GEOMETRY_COLUMN:
                continue
            column = columns[field.name]
            values, nulls = column if isinstance(column, tuple) else (column, None)
            arrays.append(_arrow_array(np.asarray(values), field.type, nulls=nulls))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(geoms)

    def close(self) -> None:
        """Finish the file (an empty file still has the schema and metadata)."""
        self._writer.close()

    def __enter__(self) -> GeoParquetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
