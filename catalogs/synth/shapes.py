"""The five parameterised roof footprints R, U, T, I and L.

Each shape lives in a ``length x width`` box centred on the origin of its local frame
(``x`` along the long side), with arms ``arm`` (a fraction of the box side) thick. The
same shapes are used for formal and informal buildings; only their sizes and packing
differ, which is what a building stage (UDOS-style shape fitting) is scored against.

:func:`footprints` builds many polygons at once (vectorised per shape type), which is what
the layout uses for the thousands of roofs of a slum block.
"""

from __future__ import annotations

import math
from typing import Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon

__all__ = [
    "MAX_ARM",
    "MIN_ARM",
    "SHAPE_TYPES",
    "ShapeType",
    "footprint",
    "footprint_coords",
    "footprints",
]

ShapeType = Literal["R", "U", "T", "I", "L"]
#: All footprint types, in a fixed order.
SHAPE_TYPES: tuple[ShapeType, ...] = get_args(ShapeType)
#: Arm thickness as a fraction of the box side (keeps notches and arms visible at 0.6 m).
MIN_ARM = 0.3
MAX_ARM = 0.5
#: Thickness of each flange of an ``I`` relative to ``arm`` (two flanges must leave a web).
I_FLANGE_FRACTION = 0.8

_Num: TypeAlias = "float | npt.NDArray[np.float64]"


def _outline(shape_type: str, hx: _Num, hy: _Num, ax: _Num, ay: _Num) -> list[tuple[_Num, _Num]]:
    """Counter-clockwise vertices of a shape with half-sides ``hx, hy`` and arm widths ``ax, ay``."""
    if shape_type == "R":
        return [(-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy)]
    if shape_type == "L":
        return [(-hx, -hy), (hx, -hy), (hx, -hy + ay), (-hx + ax, -hy + ay), (-hx + ax, hy), (-hx, hy)]
    if shape_type == "U":
        return [
            (-hx, -hy),
            (hx, -hy),
            (hx, hy),
            (hx - ax, hy),
            (hx - ax, -hy + ay),
            (-hx + ax, -hy + ay),
            (-hx + ax, hy),
            (-hx, hy),
        ]
    if shape_type == "T":
        sx = ax / 2.0
        return [
            (-sx, -hy),
            (sx, -hy),
            (sx, hy - ay),
            (hx, hy - ay),
            (hx, hy),
            (-hx, hy),
            (-hx, hy - ay),
            (-sx, hy - ay),
        ]
    if shape_type == "I":
        sx = ax / 2.0
        bar = ay * I_FLANGE_FRACTION
        return [
            (-hx, -hy),
            (hx, -hy),
            (hx, -hy + bar),
            (sx, -hy + bar),
            (sx, hy - bar),
            (hx, hy - bar),
            (hx, hy),
            (-hx, hy),
            (-hx, hy - bar),
            (-sx, hy - bar),
            (-sx, -hy + bar),
            (-hx, -hy + bar),
        ]
    raise ValueError(f"unknown shape type {shape_type!r}; expected one of {SHAPE_TYPES}")


def footprint_coords(
    shape_type: ShapeType, *, length: float, width: float, arm: float
) -> npt.NDArray[np.float64]:
    """Vertices ``(k, 2)``, counter-clockwise, of a shape in its local frame (no closing vertex).

    Args:
        shape_type: One of ``R``, ``U``, ``T``, ``I``, ``L``.
        length: Box extent along the local x axis, metres.
        width: Box extent along the local y axis, metres.
        arm: Arm thickness as a fraction of the box side, in ``[MIN_ARM, MAX_ARM]``.
    """
    if not MIN_ARM <= arm <= MAX_ARM:
        raise ValueError(f"arm must be in [{MIN_ARM}, {MAX_ARM}], got {arm}")
    pts = _outline(shape_type, length / 2.0, width / 2.0, arm * length, arm * width)
    return np.asarray(pts, dtype=np.float64)


def footprints(
    shape_types: npt.ArrayLike,
    *,
    cx: npt.ArrayLike,
    cy: npt.ArrayLike,
    length: npt.ArrayLike,
    width: npt.ArrayLike,
    angle: npt.ArrayLike,
    arm: npt.ArrayLike,
) -> npt.NDArray[np.object_]:
    """Many footprint polygons at once (same arguments as :func:`footprint`, as arrays)."""
    types = np.asarray(shape_types, dtype="<U1")
    n = types.size
    cols = {
        name: np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))
        for name, value in (
            ("cx", cx),
            ("cy", cy),
            ("length", length),
            ("width", width),
            ("angle", angle),
            ("arm", arm),
        )
    }
    if n and (cols["arm"].min() < MIN_ARM - 1e-12 or cols["arm"].max() > MAX_ARM + 1e-12):
        raise ValueError(f"arm must be in [{MIN_ARM}, {MAX_ARM}]")
    out = np.empty(n, dtype=object)
    for shape_type in SHAPE_TYPES:
        sel = np.nonzero(types == shape_type)[0]
        if sel.size == 0:
            continue
        length_s, width_s, arm_s = cols["length"][sel], cols["width"][sel], cols["arm"][sel]
        pts = _outline(shape_type, length_s / 2.0, width_s / 2.0, arm_s * length_s, arm_s * width_s)
        lx = np.stack([np.broadcast_to(p[0], sel.shape) for p in pts], axis=1)
        ly = np.stack([np.broadcast_to(p[1], sel.shape) for p in pts], axis=1)
        c = np.cos(cols["angle"][sel])[:, None]
        s = np.sin(cols["angle"][sel])[:, None]
        gx = cols["cx"][sel][:, None] + lx * c - ly * s
        gy = cols["cy"][sel][:, None] + lx * s + ly * c
        out[sel] = shapely.polygons(np.stack([gx, gy], axis=2))
    unknown = ~np.isin(types, SHAPE_TYPES)
    if unknown.any():
        raise ValueError(f"unknown shape types {sorted(set(types[unknown]))}; expected {SHAPE_TYPES}")
    return out


def footprint(
    shape_type: ShapeType,
    *,
    cx: float,
    cy: float,
    length: float,
    width: float,
    angle: float,
    arm: float,
) -> Polygon:
    """A footprint polygon placed at ``(cx, cy)`` and rotated by ``angle`` radians.

    ``angle`` is measured in the coordinate frame of ``cx, cy`` from its x axis towards its
    y axis; the shape's box is centred on ``(cx, cy)``.
    """
    local = footprint_coords(shape_type, length=length, width=width, arm=arm)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return Polygon(local @ rot.T + np.array([cx, cy]))
