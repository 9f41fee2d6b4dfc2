"""Surface colours (R, G, B, NIR reflectance-like values in ``[0, 1]``) of the synthetic city.

Roof materials are *shared* between formal and informal buildings, with only mildly
different mixing weights, so colour alone cannot tell a slum roof from a formal one:
size, packing density and texture must.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

__all__ = [
    "CAR_COLOURS",
    "FORMAL_ROOF_WEIGHTS",
    "GROUND_LOOKS",
    "INFORMAL_ROOF_WEIGHTS",
    "ROOF_MATERIALS",
    "TREE_COLOURS",
    "Ground",
    "GroundLook",
    "sample_roof_colours",
]

#: Per-building brightness jitter (multiplicative, uniform in 1 +- this).
ROOF_BRIGHTNESS_JITTER = 0.12
#: Per-building, per-channel tint jitter (multiplicative, uniform in 1 +- this).
ROOF_TINT_JITTER = 0.05


class Ground(IntEnum):
    """Ground cover classes, painted below buildings and trees."""

    ROAD = 0
    MARKING = 1
    SIDEWALK = 2
    PAVED = 3
    LAWN = 4
    VACANT = 5
    SLUM_GROUND = 6
    CONSTRUCTION = 7
    PARKING = 8
    PATH = 9


@dataclass(frozen=True, slots=True)
class GroundLook:
    """How a ground class looks.

    Attributes:
        colour_a: RGBN where the low-frequency mix field is low.
        colour_b: RGBN where the mix field is high (e.g. bare patches in dry grass).
        coarse: Amplitude of the metre-scale brightness variation.
        fine: Amplitude of the sub-metre grain.
    """

    colour_a: tuple[float, float, float, float]
    colour_b: tuple[float, float, float, float]
    coarse: float
    fine: float


GROUND_LOOKS: dict[Ground, GroundLook] = {
    Ground.ROAD: GroundLook((0.30, 0.30, 0.31, 0.20), (0.36, 0.35, 0.34, 0.22), 0.05, 0.04),
    Ground.MARKING: GroundLook((0.80, 0.80, 0.76, 0.55), (0.72, 0.71, 0.66, 0.50), 0.03, 0.03),
    Ground.SIDEWALK: GroundLook((0.60, 0.58, 0.54, 0.38), (0.54, 0.52, 0.48, 0.34), 0.04, 0.03),
    Ground.PAVED: GroundLook((0.52, 0.51, 0.48, 0.34), (0.58, 0.56, 0.52, 0.36), 0.05, 0.03),
    Ground.LAWN: GroundLook((0.30, 0.44, 0.20, 0.58), (0.40, 0.47, 0.26, 0.50), 0.08, 0.06),
    Ground.VACANT: GroundLook((0.50, 0.48, 0.34, 0.40), (0.60, 0.52, 0.42, 0.34), 0.08, 0.06),
    Ground.SLUM_GROUND: GroundLook((0.40, 0.36, 0.31, 0.28), (0.47, 0.42, 0.35, 0.30), 0.08, 0.08),
    Ground.CONSTRUCTION: GroundLook((0.64, 0.56, 0.45, 0.36), (0.56, 0.50, 0.42, 0.33), 0.10, 0.07),
    Ground.PARKING: GroundLook((0.34, 0.34, 0.35, 0.22), (0.40, 0.40, 0.40, 0.25), 0.04, 0.03),
    Ground.PATH: GroundLook((0.66, 0.62, 0.55, 0.40), (0.60, 0.57, 0.50, 0.38), 0.04, 0.04),
}

#: Roof materials shared by formal and informal buildings: name -> RGBN.
ROOF_MATERIALS: dict[str, tuple[float, float, float, float]] = {
    "concrete": (0.56, 0.55, 0.52, 0.36),
    "white": (0.78, 0.77, 0.74, 0.46),
    "tin": (0.65, 0.67, 0.69, 0.40),
    "blue_tarp": (0.24, 0.38, 0.62, 0.26),
    "rust": (0.52, 0.33, 0.23, 0.31),
    "red_tile": (0.62, 0.30, 0.23, 0.33),
    "asbestos": (0.42, 0.42, 0.41, 0.29),
}
#: Mixing weights per material (same order as ROOF_MATERIALS); they overlap on purpose.
FORMAL_ROOF_WEIGHTS: tuple[float, ...] = (0.22, 0.13, 0.15, 0.13, 0.13, 0.11, 0.13)
INFORMAL_ROOF_WEIGHTS: tuple[float, ...] = (0.17, 0.12, 0.22, 0.15, 0.16, 0.09, 0.09)

#: Tree canopy colours (RGBN).
TREE_COLOURS: tuple[tuple[float, float, float, float], ...] = (
    (0.14, 0.28, 0.11, 0.62),
    (0.18, 0.33, 0.14, 0.60),
    (0.12, 0.24, 0.12, 0.56),
    (0.22, 0.34, 0.16, 0.58),
)
#: Car paint colours (RGBN).
CAR_COLOURS: tuple[tuple[float, float, float, float], ...] = (
    (0.86, 0.86, 0.84, 0.60),
    (0.70, 0.71, 0.72, 0.50),
    (0.12, 0.12, 0.13, 0.10),
    (0.66, 0.14, 0.12, 0.35),
    (0.16, 0.26, 0.55, 0.25),
    (0.80, 0.72, 0.20, 0.50),
)


def sample_roof_colours(rng: np.random.Generator, n: int, *, informal: bool) -> npt.NDArray[np.float32]:
    """``(n, 4)`` RGBN roof colours drawn from the shared materials with jitter."""
    materials = np.asarray(list(ROOF_MATERIALS.values()), dtype=np.float64)
    weights = np.asarray(INFORMAL_ROOF_WEIGHTS if informal else FORMAL_ROOF_WEIGHTS, dtype=np.float64)
    pick = rng.choice(len(materials), size=n, p=weights / weights.sum())
    brightness = rng.uniform(1.0 - ROOF_BRIGHTNESS_JITTER, 1.0 + ROOF_BRIGHTNESS_JITTER, size=(n, 1))
    tint = rng.uniform(1.0 - ROOF_TINT_JITTER, 1.0 + ROOF_TINT_JITTER, size=(n, 4))
    return np.clip(materials[pick] * brightness * tint, 0.0, 1.0).astype(np.float32)
