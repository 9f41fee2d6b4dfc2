"""Reports built from the outputs of a run (read-only: never imports torch, ray, prefect or other layers).

Public API:

- :func:`render_report` - write the static HTML report of a run folder and return its ``index.html``
- :class:`ReportError` - a required input (``growth.csv``) is missing or malformed
"""

from slumwatch.dashboards.inputs import ReportError
from slumwatch.dashboards.report import render_report

__all__ = ["ReportError", "render_report"]
