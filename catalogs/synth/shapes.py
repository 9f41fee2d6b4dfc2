"""The five parameterised roof footprints R, U, T, I and L.

Each shape lives in a ``length x width`` box centred on the origin of its local frame
(``x`` along the long side), with arms ``arm`` (a fraction of the box) thick. The same
shapes are used for formal and informal buildings; only their sizes and packing differ,
which is what the building stage (UDOS-style shape fitting) is scored against.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from shapely.geometry import Polygon

__all__ = ["MAX_ARM", "MIN_ARM", "SHAPE_TYPES", "ShapeType", "footprint", "footprint_coords"]

ShapeType = Literal["R", "U", "T", "I", "L"]
#: All footprint types, in a fixed order.
SHAPE_TYPES: tuple[ShapeType, ...] = get_args(ShapeType)
#: Arm thickness as a fraction of the box side (keeps notches and arms visible at 0.6 m).
MIN_ARM = 0.3
MAX_ARM = 0.5
#: Thickness of each flange of an ``I`` relative to ``arm`` (two flanges must leave a web).
I_FLANGE_FRACTION = 0.8


def footprint_coords(shape_type: ShapeType, *, length: float, width: float, arm: float) -> npt.NDArray[np.float64]:
    """Vertices (k, 2), counter-clockwise, of a shape in its local frame (no closing vertex).

    Args:
        shape_type: One of ``R``, ``U``, ``T``, ``I``, ``L``.
        length: Box extent along the local x axis, metres.
        width: Box extent along the local y axis, metres.
        arm: Arm thickness as a fraction of the box side, in ``[MIN_ARM, MAX_ARM]``.
    """
    if not MIN_ARM <= arm <= MAX_ARM:
        raise ValueError(f"arm must be in [{MIN_ARM}, {MAX_ARM}], got {arm}")
    hx, hy = length / 2.0, width / 2.0
    ax, ay = arm * length, arm * width
    if shape_type == "R":
        pts = [(-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy)]
    elif shape_type == "L":
        pts = [(-hx, -hy), (hx, -hy), (hx, -hy + ay), (-hx + ax, -hy + ay), (-hx + ax, hy), (-hx, hy)]
    elif shape_type == "U":
        pts = [
            (-hx, -hy),
            (hx, -hy),
            (hx, hy),
            (hx - ax, hy),
            (hx - ax, -hy + ay),
            (-hx + ax, -hy + ay),
            (-hx + ax, hy),
            (-hx, hy),
        ]
    elif shape_type == "T":
        sx = ax / 2.0
        pts = [(-sx, -hy), (sx, -hy), (sx, hy - ay), (hx, hy - ay), (hx, hy), (-hx, hy), (-hx, hy - ay), (-sx, hy - ay)]
    elif shape_type == "I":
        sx = ax / 2.0
        bar = ay * I_FLANGE_FRACTION
        pts = [
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
    else:
        raise ValueError(f"unknown shape type {shape_type!r}; expected one of {SHAPE_TYPES}")
    return np.asarray(pts, dtype=np.float64)


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
