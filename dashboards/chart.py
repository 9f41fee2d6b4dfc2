"""The growth chart (SVG): predicted vs true slum area per year, and yearly growth bars.

Drawn with matplotlib's object API (no pyplot, no global backend), text kept as SVG text so it
stays sharp and searchable. The 2020–2021 period is shaded on both panels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from slumwatch.dashboards.formatting import AreaUnit, choose_area_unit
from slumwatch.dashboards.inputs import LOW_VALID_FRACTION, YearRow
from slumwatch.dashboards.maps import SLUM_RGB, rgb_hex

HIGHLIGHT_PERIOD: Final = (2020, 2021)
"""Years shaded on the chart (inclusive)."""
PREDICTED_COLOUR: Final = rgb_hex(SLUM_RGB)
TRUE_COLOUR: Final = "#1f3b57"
HIGHLIGHT_COLOUR: Final = "#f2c14e"
HIGHLIGHT_ALPHA: Final = 0.22
GRID_COLOUR: Final = "#d9dde3"
TEXT_COLOUR: Final = "#1f2933"
FIGURE_SIZE_IN: Final = (9.0, 6.0)
BAR_WIDTH: Final = 0.38
FONT_SIZE: Final = 10
SVG_SALT: Final = "slumwatch-report"
MAX_YEARLY_TICKS: Final = 16
HEADROOM: Final = 1.15
"""Top of the area axis, relative to the largest area (room for the period label)."""
PERIOD_LABEL_Y: Final = 0.98
LEGEND_ABOVE: Final[dict[str, Any]] = {
    "loc": "lower left",
    "bbox_to_anchor": (0.0, 1.0),
    "ncols": 3,
    "frameon": False,
    "borderaxespad": 0.2,
}
"""Up to this many years every year gets a tick label."""
LOW_VALID_MARKER_SIZE: Final = 11


def _values(rows: Sequence[YearRow], attribute: str, unit: AreaUnit) -> np.ndarray:
    return np.array(
        [np.nan if getattr(r, attribute) is None else getattr(r, attribute) / unit.m2_per_unit for r in rows],
        dtype=float,
    )


def _number_formatter(unit: AreaUnit) -> FuncFormatter:
    return FuncFormatter(lambda value, _pos: f"{value:,.{0 if unit.m2_per_unit == 1 else 1}f}")


def render_growth_chart(*, rows: Sequence[YearRow], path: Path) -> Path:
    """Write the two-panel growth chart for ``rows`` (sorted by year) to ``path`` as SVG."""
    years = np.array([r.year for r in rows], dtype=float)
    area_unit = choose_area_unit(*(r.predicted_area_m2 for r in rows), *(r.true_area_m2 for r in rows))
    growth_unit = choose_area_unit(*(r.predicted_growth_m2 for r in rows), *(r.true_growth_m2 for r in rows))
    predicted = _values(rows, "predicted_area_m2", area_unit)
    truth = _values(rows, "true_area_m2", area_unit)
    predicted_growth = _values(rows, "predicted_growth_m2", growth_unit)
    true_growth = _values(rows, "true_growth_m2", growth_unit)
    has_truth = bool(np.isfinite(truth).any())
    has_true_growth = bool(np.isfinite(true_growth).any())

    style: dict[Any, Any] = {
        "svg.fonttype": "none",
        "svg.hashsalt": SVG_SALT,
        "font.size": FONT_SIZE,
        "text.color": TEXT_COLOUR,
        "axes.labelcolor": TEXT_COLOUR,
        "xtick.color": TEXT_COLOUR,
        "ytick.color": TEXT_COLOUR,
        "axes.edgecolor": GRID_COLOUR,
    }
    with matplotlib.rc_context(style):
        figure = Figure(figsize=FIGURE_SIZE_IN, layout="constrained")
        area_ax, growth_ax = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        first, last = HIGHLIGHT_PERIOD
        for ax in (area_ax, growth_ax):
            if years.size and years.min() <= last and years.max() >= first:
                ax.axvspan(first - 0.5, last + 0.5, color=HIGHLIGHT_COLOUR, alpha=HIGHLIGHT_ALPHA, lw=0)
            ax.grid(axis="y", color=GRID_COLOUR, linewidth=0.8)
            ax.set_axisbelow(True)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
        if years.size and years.min() <= last and years.max() >= first:
            area_ax.text(
                (first + last) / 2,
                PERIOD_LABEL_Y,
                f"{first}–{last}",
                transform=area_ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=FONT_SIZE - 1,
            )

        area_ax.plot(years, predicted, color=PREDICTED_COLOUR, marker="o", lw=2, label="Predicted")
        if has_truth:
            area_ax.plot(years, truth, color=TRUE_COLOUR, marker="s", lw=1.6, ls="--", label="Ground truth")
        low = np.array([r.valid_fraction is not None and r.valid_fraction < LOW_VALID_FRACTION for r in rows])
        if low.any():
            area_ax.plot(
                years[low],
                predicted[low],
                ls="none",
                marker="o",
                ms=LOW_VALID_MARKER_SIZE,
                mfc="white",
                mec=PREDICTED_COLOUR,
                mew=2,
                zorder=3,
                label=f"Fewer than {LOW_VALID_FRACTION:.0%} usable pixels",
            )
        area_ax.set_ylabel(f"Slum area ({area_unit.symbol})")
        top = np.nanmax(np.concatenate([predicted, truth])) if np.isfinite(predicted).any() else 0.0
        area_ax.set_ylim(0, top * HEADROOM if top > 0 else 1.0)
        area_ax.yaxis.set_major_formatter(_number_formatter(area_unit))
        area_ax.legend(**LEGEND_ABOVE)

        offset = BAR_WIDTH / 2 if has_true_growth else 0.0
        growth_ax.bar(
            years - offset,
            np.nan_to_num(predicted_growth),
            width=BAR_WIDTH,
            color=PREDICTED_COLOUR,
            label="Predicted growth",
        )
        if has_true_growth:
            growth_ax.bar(
                years + offset,
                np.nan_to_num(true_growth),
                width=BAR_WIDTH,
                color=TRUE_COLOUR,
                label="True growth",
            )
        growth_ax.axhline(0, color=TEXT_COLOUR, linewidth=0.8)
        growth_ax.set_ylabel(f"Growth vs previous year ({growth_unit.symbol})")
        growth_ax.yaxis.set_major_formatter(_number_formatter(growth_unit))
        if len(rows) <= MAX_YEARLY_TICKS:
            growth_ax.xaxis.set_major_locator(MultipleLocator(1))
        else:
            growth_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        growth_ax.set_xlabel("Year")
        growth_ax.legend(**LEGEND_ABOVE)
        if years.size:
            growth_ax.set_xlim(years.min() - 0.6, years.max() + 0.6)

        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="svg", metadata={"Date": None}, transparent=False, facecolor="white")
    return path
