"""Human-readable formatting of areas, percentages, scores and durations for the report.

All functions accept ``None`` (or NaN) for "not available" and then return :data:`MISSING`.
Negative numbers use a true minus sign (U+2212); units are separated by a no-break space so a
value never wraps away from its unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

MISSING: Final = "—"
"""Shown for a value that is not available."""

NBSP: Final = "\u00a0"
MINUS: Final = "\u2212"
M2_PER_HA: Final = 10_000.0
M2_PER_KM2: Final = 1_000_000.0
SECONDS_PER_MINUTE: Final = 60.0
SECONDS_PER_HOUR: Final = 3600.0


@dataclass(frozen=True)
class AreaUnit:
    """A display unit for areas: its symbol and how many square metres make one unit."""

    symbol: str
    m2_per_unit: float


SQUARE_METRE: Final = AreaUnit("m²", 1.0)
HECTARE: Final = AreaUnit("ha", M2_PER_HA)
SQUARE_KILOMETRE: Final = AreaUnit("km²", M2_PER_KM2)


def is_missing(value: float | None) -> bool:
    """Return True when ``value`` is None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def choose_area_unit(*values_m2: float | None) -> AreaUnit:
    """Pick one unit that reads well for all of ``values_m2``: m² below 1 ha, ha below 1 km², else km²."""
    present = [abs(v) for v in values_m2 if v is not None and not is_missing(v)]
    largest = max(present, default=0.0)
    if largest < M2_PER_HA:
        return SQUARE_METRE
    if largest < M2_PER_KM2:
        return HECTARE
    return SQUARE_KILOMETRE


def _sign(value: float, *, signed: bool) -> str:
    if value < 0:
        return MINUS
    return "+" if signed and value > 0 else ""


def format_area(value_m2: float | None, *, unit: AreaUnit | None = None, signed: bool = False) -> str:
    """Format an area given in m², e.g. ``"12.35 ha"``, ``"1,234 m²"``, ``"+3.456 km²"``.

    ``unit`` defaults to :func:`choose_area_unit` of the value itself; pass one unit for a column of
    numbers so they compare at a glance. ``signed`` adds ``+`` to positive values (for growth).
    """
    if value_m2 is None or is_missing(value_m2):
        return MISSING
    unit = unit or choose_area_unit(value_m2)
    scaled = abs(value_m2) / unit.m2_per_unit
    if unit is SQUARE_METRE:
        digits = 0
    elif unit is HECTARE:
        digits = 2 if scaled < 100 else 1
    else:
        digits = 3 if scaled < 10 else 2
    text = f"{scaled:,.{digits}f}"
    # a value that rounds to zero shows no sign
    shown_value = 0.0 if float(text.replace(",", "")) == 0 else value_m2
    return f"{_sign(shown_value, signed=signed)}{text}{NBSP}{unit.symbol}"


def format_m2(value_m2: float | None, *, signed: bool = False) -> str:
    """Format an area as whole square metres with thousands separators, e.g. ``"123,457 m²"``."""
    return format_area(value_m2, unit=SQUARE_METRE, signed=signed)


def format_pct(value: float | None, *, signed: bool = False, digits: int = 1) -> str:
    """Format a value already in percent, e.g. ``"+4.2 %"``."""
    if value is None or is_missing(value):
        return MISSING
    text = f"{abs(value):,.{digits}f}"
    shown_value = 0.0 if float(text.replace(",", "")) == 0 else value
    return f"{_sign(shown_value, signed=signed)}{text}{NBSP}%"


def format_fraction_pct(fraction: float | None, *, digits: int = 1) -> str:
    """Format a 0–1 fraction as a percentage, e.g. ``0.963 -> "96.3 %"``."""
    if fraction is None or is_missing(fraction):
        return MISSING
    return format_pct(fraction * 100.0, digits=digits)


def format_score(value: float | None, *, digits: int = 3) -> str:
    """Format a 0–1 score such as IoU or F1, e.g. ``"0.812"``."""
    if value is None or is_missing(value):
        return MISSING
    return f"{value:.{digits}f}"


def format_resolution(metres: float | None) -> str:
    """Format a ground sampling distance, e.g. ``0.5 -> "0.5 m"``, ``0.3 -> "30 cm"``."""
    if metres is None or is_missing(metres):
        return MISSING
    if metres < 1:
        return f"{metres * 100:g}{NBSP}cm"
    return f"{metres:g}{NBSP}m"


def format_duration(seconds: float | None) -> str:
    """Format a duration, e.g. ``"4.2 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    if seconds is None or is_missing(seconds):
        return MISSING
    if seconds < SECONDS_PER_MINUTE:
        return f"{seconds:.1f}{NBSP}s"
    if seconds < SECONDS_PER_HOUR:
        minutes, secs = divmod(round(seconds), round(SECONDS_PER_MINUTE))
        return f"{minutes}{NBSP}min {secs:02d}{NBSP}s"
    hours, rest = divmod(round(seconds), round(SECONDS_PER_HOUR))
    return f"{hours}{NBSP}h {rest // round(SECONDS_PER_MINUTE):02d}{NBSP}min"


def format_length(metres: float) -> str:
    """Format a scale-bar length, e.g. ``"500 m"``, ``"2 km"``."""
    if metres >= 1000:
        return f"{metres / 1000:g} km"
    return f"{metres:g} m"
