"""Build the static HTML report of a run: ``render_report(run_dir=...) -> index.html``.

Layout of the output folder::

    OUT/index.html                 self-contained page (inline CSS and JS, relative image links)
    OUT/growth.svg                 growth chart
    OUT/maps/<year>.png            one map per year
    OUT/maps/change_<a>_<b>.png    change first→last year

Only ``growth.csv`` is required; every other input degrades to a visible note on the page.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from jinja2 import Environment, PackageLoader, select_autoescape

from slumwatch.dashboards.chart import HIGHLIGHT_PERIOD, render_growth_chart
from slumwatch.dashboards.formatting import (
    MISSING,
    AreaUnit,
    choose_area_unit,
    format_area,
    format_duration,
    format_fraction_pct,
    format_m2,
    format_pct,
    format_resolution,
    format_score,
    is_missing,
)
from slumwatch.dashboards.inputs import (
    GROWTH_CSV,
    LOW_VALID_FRACTION,
    METRICS_JSON,
    PREDICTIONS_ZARR,
    Metrics,
    RasterStack,
    ReportError,
    YearRow,
    load_growth,
    load_metrics,
    open_cube,
    open_predictions,
)
from slumwatch.dashboards.maps import (
    CLEARED_RGB,
    NEW_RGB,
    SLUM_RGB,
    STABLE_RGB,
    MapGeometry,
    render_change_map,
    render_year_map,
    rgb_hex,
)
from slumwatch.dashboards.raster import (
    downsample_factor,
    mean_reduce,
    percentile_stretch,
    prediction_reduce,
    read_downsampled,
)

REPORT_DIRNAME: Final = "report"
INDEX_HTML: Final = "index.html"
CHART_SVG: Final = "growth.svg"
MAPS_DIRNAME: Final = "maps"
TEMPLATE: Final = "report.html"
STALE_MAP_PATTERN: Final = re.compile(r"^(\d{4}|change_\d{4}_\d{4})\.png$")
MODEL_NAME_KEYS: Final = ("name", "arch", "architecture", "model")
SCOPE_LABELS: Final = {"held_out_tiles": "held-out tiles"}
"""Short labels of ``metrics.json``'s ``overall_scope`` (where the pixel metrics were measured)."""
MODEL_DETAIL_KEYS: Final = ("encoder", "backbone")
PERCENT: Final = 100.0
MAX_YEAR_LABELS: Final = 11
"""The year slider labels at most about this many years."""


@dataclass(frozen=True)
class Card:
    """One summary card: a label, a big value and a detail line."""

    label: str
    value: str
    detail: str
    key: str
    raw: float | None = None


@dataclass(frozen=True)
class Cell:
    """One table cell: display text, the raw value (for ``data-value``) and CSS classes."""

    text: str
    raw: float | None = None
    css: str = ""
    title: str = ""


@dataclass(frozen=True)
class TableRow:
    """One row of the per-year table."""

    year: int
    cells: list[Cell]
    css: str
    has_map: bool


@dataclass(frozen=True)
class YearMap:
    """One year's map for the year control."""

    year: int
    src: str
    alt: str
    caption: str


@dataclass(frozen=True)
class ChangeMap:
    """The change map first→last year."""

    first: int
    last: int
    src: str
    alt: str


@dataclass
class MapSet:
    """What the map stage produced (empty when there are no predictions)."""

    years: list[YearMap] = field(default_factory=list)
    change: ChangeMap | None = None
    factor: int = 1
    size: tuple[int, int] = (0, 0)
    """Width and height of the map images, in pixels."""


def _package_version() -> str:
    try:
        return version("slumwatch")
    except PackageNotFoundError:
        return "unknown"


def _growth_pct(delta: float | None, base: float | None) -> float | None:
    if delta is None or base is None or is_missing(delta) or is_missing(base) or base <= 0:
        return None
    return delta / base * PERCENT


def _delta(first: float | None, last: float | None) -> float | None:
    if first is None or last is None:
        return None
    return last - first


def _scalar_text(value: str | int | float | bool) -> str:
    """Render a metadata value; integers get thousands separators."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _model_summary(model: Any) -> tuple[str, list[tuple[str, str]]]:
    """Return a one-line model name and the model's scalar details."""
    if isinstance(model, str | int | float) and not isinstance(model, bool):
        return str(model), []
    if not isinstance(model, dict):
        return MISSING, []
    details = [(str(k), _scalar_text(v)) for k, v in model.items() if isinstance(v, str | int | float | bool)]
    name = next((str(model[k]) for k in MODEL_NAME_KEYS if isinstance(model.get(k), str)), None)
    extra = next((str(model[k]) for k in MODEL_DETAIL_KEYS if isinstance(model.get(k), str)), None)
    parts = [p for p in (name, extra) if p]
    return (" · ".join(parts) if parts else MISSING), details


def _cards(rows: Sequence[YearRow], metrics: Metrics) -> list[Card]:
    first, last = rows[0], rows[-1]
    cards: list[Card] = []

    true_note = ""
    if last.true_area_m2 is not None:
        true_note = f" · ground truth {format_area(last.true_area_m2)}"
        if last.area_error_pct is not None:
            true_note += f" (error {format_pct(last.area_error_pct, signed=True)})"
    cards.append(
        Card(
            label=f"Slum area {last.year}",
            value=format_area(last.predicted_area_m2),
            detail=f"predicted, {format_m2(last.predicted_area_m2)}{true_note}",
            key="area",
            raw=last.predicted_area_m2,
        )
    )

    growth = last.predicted_area_m2 - first.predicted_area_m2
    growth_pct = _growth_pct(growth, first.predicted_area_m2)
    span = f"{first.year}→{last.year}"
    cards.append(
        Card(
            label=f"Growth {span}",
            value=format_area(growth, signed=True) if len(rows) > 1 else MISSING,
            detail=(
                f"{format_pct(growth_pct, signed=True)} · {format_m2(growth, signed=True)}"
                if len(rows) > 1
                else "a single year: no growth to measure"
            ),
            key="growth",
            raw=growth if len(rows) > 1 else None,
        )
    )

    true_growth = metrics.number("growth", "total_growth_true_m2")
    if true_growth is None:
        true_growth = _delta(first.true_area_m2, last.true_area_m2)
    pred_growth = metrics.number("growth", "total_growth_pred_m2")
    if pred_growth is None:
        pred_growth = growth
    growth_error = metrics.number("growth", "growth_error_pct")
    if growth_error is None and true_growth is not None and true_growth != 0:
        growth_error = (pred_growth - true_growth) / abs(true_growth) * PERCENT
    if growth_error is None:
        error_detail = "no ground truth for the first and last year"
    else:
        shown_pred, shown_true = format_area(pred_growth, signed=True), format_area(true_growth, signed=True)
        error_detail = f"predicted {shown_pred} vs true {shown_true}"
    cards.append(
        Card(
            label="Growth error vs truth",
            value=format_pct(growth_error, signed=True),
            detail=error_detail,
            key="growth-error",
            raw=growth_error,
        )
    )

    miou = metrics.number("overall", "miou")
    parts = []
    per_class = metrics.section("overall").get("iou_per_class")
    if isinstance(per_class, list) and len(per_class) >= 2 and isinstance(per_class[1], int | float):
        parts.append(f"slum IoU {format_score(float(per_class[1]))}")
    for key, label in (("f1", "F1"), ("accuracy", "accuracy")):
        value = metrics.number("overall", key)
        if value is not None:
            parts.append(f"{label} {format_score(value)}")
    scope = metrics.data.get("overall_scope")
    cards.append(
        Card(
            label=f"Mean IoU ({SCOPE_LABELS.get(str(scope), 'all years')})",
            value=format_score(miou),
            detail=" · ".join(parts) if parts else "pixel metrics not available",
            key="miou",
            raw=miou,
        )
    )
    return cards


def _area_unit(rows: Sequence[YearRow]) -> AreaUnit:
    """One unit for all yearly areas (table, captions)."""
    return choose_area_unit(*(r.predicted_area_m2 for r in rows), *(r.true_area_m2 for r in rows))


def _table(rows: Sequence[YearRow], map_years: set[int]) -> tuple[list[TableRow], AreaUnit, AreaUnit]:
    area_unit = _area_unit(rows)
    growth_unit = choose_area_unit(*(r.predicted_growth_m2 for r in rows), *(r.true_growth_m2 for r in rows))
    first, last = HIGHLIGHT_PERIOD
    table: list[TableRow] = []
    for row in rows:
        low_valid = row.valid_fraction is not None and row.valid_fraction < LOW_VALID_FRACTION
        cells = [
            Cell(format_area(row.predicted_area_m2, unit=area_unit), row.predicted_area_m2, "num"),
            Cell(format_area(row.true_area_m2, unit=area_unit), row.true_area_m2, "num"),
            Cell(format_pct(row.area_error_pct, signed=True), row.area_error_pct, "num"),
            Cell(
                format_area(row.predicted_growth_m2, unit=growth_unit, signed=True),
                row.predicted_growth_m2,
                "num",
            ),
            Cell(format_area(row.true_growth_m2, unit=growth_unit, signed=True), row.true_growth_m2, "num"),
            Cell(
                format_fraction_pct(row.valid_fraction),
                row.valid_fraction,
                "num low" if low_valid else "num",
                "few usable pixels: the area is likely underestimated" if low_valid else "",
            ),
            Cell(format_score(row.iou), row.iou, "num"),
        ]
        css = " ".join(
            c for c in ("period" if first <= row.year <= last else "", "low" if low_valid else "") if c
        )
        table.append(TableRow(year=row.year, cells=cells, css=css, has_map=row.year in map_years))
    return table, area_unit, growth_unit


def _background(
    cube: RasterStack | None, year: int, factor: int, notes: list[str]
) -> npt.NDArray[np.uint8] | None:
    if cube is None:
        return None
    index = cube.index_of(year)
    if index is None:
        notes.append(f"imagery cube has no {year} image: that map has no image background.")
        return None
    bands = read_downsampled(
        lambda ys, xs: cube.read(index, ys, xs),
        height=cube.height,
        width=cube.width,
        factor=factor,
        reduce=mean_reduce,
        chunk=cube.chunk,
    )
    if not cube.north_up:
        bands = bands[..., ::-1, :]
    return percentile_stretch(bands)


def _render_maps(
    *,
    predictions: RasterStack,
    cube: RasterStack | None,
    rows: Sequence[YearRow],
    city: str,
    resolution_m: float | None,
    maps_dir: Path,
    notes: list[str],
    area_unit: AreaUnit,
) -> MapSet:
    """Render one PNG per prediction year and the change map, reading the rasters window by window."""
    factor = downsample_factor(height=predictions.height, width=predictions.width)
    out_h, out_w = -(-predictions.height // factor), -(-predictions.width // factor)
    geometry = MapGeometry.for_grid(height=out_h, width=out_w, factor=factor, resolution_m=resolution_m)
    if cube is not None and (cube.height, cube.width) != (predictions.height, predictions.width):
        notes.append(
            f"imagery cube grid {cube.height}×{cube.width} differs from predictions "
            f"{predictions.height}×{predictions.width}: the background is resampled to fit."
        )
    by_year = {r.year: r for r in rows}
    cube_factor = downsample_factor(height=cube.height, width=cube.width) if cube is not None else factor
    result = MapSet(factor=factor, size=(out_w * geometry.upscale, out_h * geometry.upscale))
    first_share: npt.NDArray[np.float32] | None = None
    last_share: npt.NDArray[np.float32] | None = None
    last_background: npt.NDArray[np.uint8] | None = None
    years = sorted(set(predictions.years))
    for year in years:
        index = predictions.years.index(year)
        share = read_downsampled(
            lambda ys, xs, i=index: predictions.read(i, ys, xs),
            height=predictions.height,
            width=predictions.width,
            factor=factor,
            reduce=prediction_reduce,
            chunk=predictions.chunk,
        )
        if not predictions.north_up:
            share = share[::-1, :]
        background = _background(cube, year, cube_factor, notes)
        src = f"{MAPS_DIRNAME}/{year}.png"
        render_year_map(
            slum_share=share, background=background, geometry=geometry, path=maps_dir / f"{year}.png"
        )
        row = by_year.get(year)
        area = format_area(row.predicted_area_m2, unit=area_unit) if row else MISSING
        valid = format_fraction_pct(row.valid_fraction) if row else MISSING
        result.years.append(
            YearMap(
                year=year,
                src=src,
                alt=(
                    f"Map of {city} in {year}: predicted slum area ({area}) in pink with an outline"
                    f"{'' if background is not None else ' on a plain background'}; "
                    "hatched grey where no usable data."
                ),
                caption=f"{year} · predicted slum area {area} · usable pixels {valid}",
            )
        )
        if first_share is None:
            first_share = share
        last_share, last_background = share, background
    if len(years) >= 2 and first_share is not None and last_share is not None:
        first, last = years[0], years[-1]
        name = f"change_{first}_{last}.png"
        counts = render_change_map(
            first_share=first_share,
            last_share=last_share,
            background=last_background,
            geometry=geometry,
            path=maps_dir / name,
        )
        total = max(1, counts.new + counts.cleared + counts.stable)
        result.change = ChangeMap(
            first=first,
            last=last,
            src=f"{MAPS_DIRNAME}/{name}",
            alt=(
                f"Change map of {city}, {first} to {last}: new slum area in orange "
                f"({counts.new / total:.0%} of mapped slum pixels), cleared area in blue "
                f"({counts.cleared / total:.0%}), stable area in purple ({counts.stable / total:.0%}); "
                "hatched grey where either year has no usable data."
            ),
        )
    elif len(years) < 2:
        notes.append("predictions hold a single year: there is no change map.")
    return result


def _remove_stale_maps(maps_dir: Path, written: set[str]) -> None:
    if not maps_dir.is_dir():
        return
    for path in maps_dir.iterdir():
        if path.is_file() and STALE_MAP_PATTERN.match(path.name) and path.name not in written:
            path.unlink()


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("slumwatch.dashboards", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _run_details(
    metrics: Metrics, model_details: list[tuple[str, str]]
) -> list[tuple[str, list[tuple[str, str]]]]:
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    growth = metrics.section("growth")
    growth_items = []
    if "mae_m2" in growth:
        growth_items.append(
            ("Mean absolute error of yearly area", format_area(metrics.number("growth", "mae_m2")))
        )
    if "mape_pct" in growth:
        growth_items.append(
            ("Mean absolute % error of yearly area", format_pct(metrics.number("growth", "mape_pct")))
        )
    if "total_growth_pred_m2" in growth:
        growth_items.append(
            (
                "Total predicted growth",
                format_m2(metrics.number("growth", "total_growth_pred_m2"), signed=True),
            )
        )
    if "total_growth_true_m2" in growth:
        growth_items.append(
            ("Total true growth", format_m2(metrics.number("growth", "total_growth_true_m2"), signed=True))
        )
    if growth_items:
        groups.append(("Growth accuracy", growth_items))
    overall = metrics.section("overall")
    overall_items = [
        (label, format_score(metrics.number("overall", key)))
        for key, label in (("miou", "Mean IoU"), ("f1", "F1"), ("accuracy", "Accuracy"))
        if key in overall
    ]
    per_class = overall.get("iou_per_class")
    if isinstance(per_class, list):
        for name, value in zip(("non-slum", "slum"), per_class, strict=False):
            if isinstance(value, int | float):
                overall_items.append((f"IoU {name}", format_score(float(value))))
    if overall_items:
        groups.append(("Pixel accuracy (all years)", overall_items))
    if model_details:
        groups.append(("Model", model_details))
    timings = metrics.section("timings_s")
    timing_items = [
        (str(k).replace("_", " "), format_duration(float(v)))
        for k, v in timings.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if timing_items:
        groups.append(("Timings", timing_items))
    return groups


def render_report(*, run_dir: Path, out_dir: Path | None = None, title: str | None = None) -> Path:
    """Render the static HTML report of a run and return the path of its ``index.html``.

    Args:
        run_dir: the run folder holding ``growth.csv`` (required), ``metrics.json`` and
            ``predictions.zarr`` (optional); ``metrics.json`` may name an imagery ``cube``.
        out_dir: output folder (default ``run_dir / "report"``); created if needed.
        title: page title (default "Informal settlement growth — <city>").

    Raises:
        ReportError: ``run_dir`` is not a folder, or ``growth.csv`` is missing or malformed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(run_dir, "run directory not found")
    rows = load_growth(run_dir / GROWTH_CSV)
    notes: list[str] = []
    metrics = load_metrics(run_dir / METRICS_JSON, notes=notes)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / REPORT_DIRNAME
    maps_dir = out_dir / MAPS_DIRNAME
    out_dir.mkdir(parents=True, exist_ok=True)

    city = metrics.text("city") or run_dir.resolve().name
    resolution_m = metrics.number("resolution_m")
    predictions = open_predictions(run_dir / PREDICTIONS_ZARR, notes=notes)
    area_unit = _area_unit(rows)
    map_set = MapSet()
    if predictions is not None:
        cube = open_cube(run_dir, metrics.data.get("cube"), notes=notes)
        map_set = _render_maps(
            predictions=predictions,
            cube=cube,
            rows=rows,
            city=city,
            resolution_m=resolution_m,
            maps_dir=maps_dir,
            notes=notes,
            area_unit=area_unit,
        )
        without_map = sorted({r.year for r in rows} - {m.year for m in map_set.years})
        if without_map:
            notes.append(f"no prediction map for {', '.join(map(str, without_map))}.")
    written = {Path(m.src).name for m in map_set.years}
    if map_set.change is not None:
        written.add(Path(map_set.change.src).name)
    _remove_stale_maps(maps_dir, written)

    chart_path = render_growth_chart(rows=rows, path=out_dir / CHART_SVG)
    if all(r.true_area_m2 is None for r in rows):
        notes.append("growth.csv has no ground-truth areas: errors and true growth are not shown.")

    table, area_unit, growth_unit = _table(rows, {m.year for m in map_set.years})
    model_name, model_details = _model_summary(metrics.data.get("model"))
    first_year, last_year = rows[0].year, rows[-1].year
    years_text = f"{first_year}–{last_year}" if first_year != last_year else str(first_year)
    period_first, period_last = HIGHLIGHT_PERIOD
    context = {
        "title": title or f"Informal settlement growth — {city}",
        "city": city,
        "facts": [
            ("Years", f"{years_text} ({len(rows)} {'year' if len(rows) == 1 else 'years'})"),
            ("CRS", metrics.text("crs") or MISSING),
            ("Resolution", format_resolution(resolution_m)),
            ("Model", model_name),
        ],
        "cards": _cards(rows, metrics),
        "maps": map_set.years,
        "initial_map": map_set.years[-1] if map_set.years else None,
        "map_size": map_set.size,
        "tick_step": max(1, -(-len(map_set.years) // MAX_YEAR_LABELS)),
        "change": map_set.change,
        "chart_src": chart_path.name,
        "chart_alt": (
            f"Line chart of predicted{' and true' if any(r.true_area_m2 is not None for r in rows) else ''} "
            f"slum area per year, {years_text}, with bars of yearly growth below; "
            f"{period_first}–{period_last} is shaded. The table below lists the same figures."
        ),
        "table": table,
        "area_unit": area_unit.symbol,
        "growth_unit": growth_unit.symbol,
        "period": f"{period_first}–{period_last}",
        "low_valid_pct": f"{LOW_VALID_FRACTION:.0%}",
        "notes": notes,
        "details": _run_details(metrics, model_details),
        "colours": {
            "slum": rgb_hex(SLUM_RGB),
            "new": rgb_hex(NEW_RGB),
            "cleared": rgb_hex(CLEARED_RGB),
            "stable": rgb_hex(STABLE_RGB),
        },
        "map_data": [
            {"year": m.year, "src": m.src, "alt": m.alt, "caption": m.caption} for m in map_set.years
        ],
        "version": _package_version(),
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    html = _environment().get_template(TEMPLATE).render(**context)
    index = out_dir / INDEX_HTML
    index.write_text(html, encoding="utf-8")
    return index
