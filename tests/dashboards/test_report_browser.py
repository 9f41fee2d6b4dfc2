"""Real Chromium over a loopback HTTP server: the report loads cleanly and the year control works."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from report_fakes import YEARS, FakeRun

from slumwatch.dashboards import render_report
from slumwatch.dashboards.formatting import format_area, format_pct

pytestmark = pytest.mark.integration

CHROMIUM_ENV = "SLUMWATCH_CHROMIUM"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000


def _chromium() -> str | None:
    configured = os.environ.get(CHROMIUM_ENV)
    for candidate in (configured, *CHROMIUM_CANDIDATES):
        if candidate:
            found = shutil.which(candidate)
            if found:
                return found
    return None


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


@pytest.fixture
def served_report(fake_run: FakeRun) -> Iterator[tuple[str, FakeRun]]:
    """Render the report of a fake run and serve it on 127.0.0.1 at a random port."""
    index = render_report(run_dir=fake_run.run_dir)
    handler = functools.partial(_QuietHandler, directory=str(index.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="report-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html", fake_run
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_report_in_chromium(served_report: tuple[str, FakeRun], tmp_path: Path) -> None:
    executable = _chromium()
    if executable is None:
        pytest.skip("chromium not installed: run `make browser`")
    sync_api = pytest.importorskip("playwright.sync_api")
    url, run = served_report
    growth = run.growth
    first, last = growth.iloc[0], growth.iloc[-1]

    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TIMEOUT_MS)
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.on(
                "response",
                lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
            )
            page.goto(url, wait_until="networkidle")

            # summary cards show the figures of growth.csv and metrics.json
            assert page.locator('[data-card="area"] .card-value').inner_text() == format_area(
                last.predicted_area_m2
            )
            growth_m2 = last.predicted_area_m2 - first.predicted_area_m2
            assert page.locator('[data-card="growth"] .card-value').inner_text() == format_area(
                growth_m2, signed=True
            )
            expected_error = format_pct(run.metrics["growth"]["growth_error_pct"], signed=True)
            assert page.locator('[data-card="growth-error"] .card-value').inner_text() == expected_error
            assert page.locator('[data-card="miou"] .card-value').inner_text() == "0.812"

            # the year control is shown (JS ran) and switches the map
            image = page.locator("#year-map")
            slider = page.locator("#year-slider")
            assert page.locator("#year-control").is_visible()
            assert image.get_attribute("src") == f"maps/{YEARS[-1]}.png"
            slider.focus()
            page.keyboard.press("ArrowLeft")
            assert image.get_attribute("src") == f"maps/{YEARS[-2]}.png"
            assert page.locator("#year-output").inner_text() == str(YEARS[-2])
            slider.fill("0")
            assert image.get_attribute("src") == f"maps/{YEARS[0]}.png"
            assert page.locator("#year-prev").is_disabled()
            page.locator("#year-next").click()
            assert image.get_attribute("src") == f"maps/{YEARS[1]}.png"
            assert page.locator(f'tr[data-year="{YEARS[1]}"]').get_attribute("aria-current") == "true"
            page.wait_for_function("document.getElementById('year-map').complete")
            assert image.evaluate("img => img.naturalWidth") > 0

            # the chart and the change map are visible and loaded
            chart = page.locator("#growth-chart")
            chart.scroll_into_view_if_needed()
            assert chart.is_visible()
            assert chart.evaluate("img => img.complete && img.naturalWidth > 0")
            assert page.locator("#change-map").evaluate("img => img.complete && img.naturalWidth > 0")

            slider.fill(str(YEARS.index(2020)))
            page.wait_for_function("document.getElementById('year-map').complete")
            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 0
        finally:
            browser.close()
    assert problems == []
