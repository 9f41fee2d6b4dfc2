"""Typed, loud errors of :mod:`slumwatch.catalogs`.

Every error says *what* was wrong and *where* (href, item id, year, window, store path),
so a failed citywide ingest can be diagnosed from its message alone.
"""

from __future__ import annotations

__all__ = [
    "AssetError",
    "AssetNotFoundError",
    "AssetReadError",
    "CatalogError",
    "CubeError",
    "EmptySearchError",
    "EmptyYearError",
    "GridMismatchError",
    "LabelError",
    "SearchError",
    "SplitError",
    "StacApiError",
    "TruncatedAssetError",
]


class CatalogError(Exception):
    """Base class of every error raised by :mod:`slumwatch.catalogs`."""


class SearchError(CatalogError):
    """A STAC search could not be carried out."""


class StacApiError(SearchError):
    """A STAC API answered with an error (after retries) or a malformed page.

    Attributes:
        status_code: The last HTTP status, when there was one.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class EmptySearchError(SearchError):
    """A search or an AOI matched no item (e.g. the AOI lies outside every item)."""


class AssetError(CatalogError):
    """An asset could not be read.

    Attributes:
        href: The asset's href.
    """

    def __init__(self, message: str, *, href: str | None = None) -> None:
        super().__init__(message)
        self.href = href


class AssetNotFoundError(AssetError):
    """An asset does not exist (HTTP 404, missing file). Never silently turned into nodata."""


class TruncatedAssetError(AssetError):
    """An asset exists but its bytes end early or a block does not decode."""


class AssetReadError(AssetError):
    """Any other failure reading an asset."""


class GridMismatchError(CatalogError):
    """Items or an existing store disagree on CRS, band count, dtype or grid."""


class EmptyYearError(CatalogError):
    """A year's composite has no valid pixel at all (all nodata or cloud)."""

    def __init__(self, message: str, *, year: int) -> None:
        super().__init__(message)
        self.year = year


class CubeError(CatalogError):
    """A cube store is missing, inconsistent or cannot be extended as asked."""


class LabelError(CatalogError):
    """Labels could not be read or put onto the cube grid."""


class SplitError(CatalogError):
    """Splits could not be generated or a split file is invalid."""
