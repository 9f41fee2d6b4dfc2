"""A deterministic, ground-truthed, multi-year synthetic city (``slumwatch.catalogs.synth``).

A seeded procedural city stands in for 0.5-0.6 m imagery so that every later stage
(slum segmentation, building instances, change detection) can be scored against exact
ground truth. One scene per year shows formal districts (road grid, regular buildings,
vegetation, shadows) and informal settlements (dense small R/U/T/I/L roofs, narrow
alleys) that grow, faster in 2020-2021, and are sometimes cleared; roof colours overlap
between the two so only texture, size and density separate them. Each year has its own
sun angle, sensor gain, haze, clouds (with a mask) and nodata swath edges.

Usage::

    from slumwatch.catalogs.synth import SynthSpec, generate_city

    city = generate_city(SynthSpec.from_size("tiny", seed=7), out=Path("out/tiny"))
    city.truth["slum_area_m2"]["2020"]

Modules: :mod:`.spec` (parameters, presets), :mod:`.layout` (city plan and growth
schedule), :mod:`.shapes` (footprints), :mod:`.acquisition` (per-year conditions),
:mod:`.render` (windowed rendering), :mod:`.noise` (position-keyed randomness),
:mod:`.palette` (colours), :mod:`.vectors` (GeoParquet), :mod:`.stac` (catalog) and
:mod:`.writer` (everything on disk). Output layout: ``docs/architecture.md``.
"""

from __future__ import annotations

from .render import RenderedWindow, Renderer, render_window
from .shapes import SHAPE_TYPES, ShapeType
from .spec import DEFAULT_YEARS, SIZE_PRESETS, SynthError, SynthSpec, parse_size, parse_years
from .writer import SynthCity, generate_city

__all__ = [
    "DEFAULT_YEARS",
    "SHAPE_TYPES",
    "SIZE_PRESETS",
    "RenderedWindow",
    "Renderer",
    "ShapeType",
    "SynthCity",
    "SynthError",
    "SynthSpec",
    "generate_city",
    "parse_size",
    "parse_years",
    "render_window",
]
