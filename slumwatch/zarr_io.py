"""Small typed helpers for reading Zarr stores (shared by actors, change detection and tools)."""

from __future__ import annotations

from pathlib import Path

import zarr

__all__ = ["StoreError", "optional_array", "require_array"]


class StoreError(ValueError):
    """A Zarr store lacks an expected array, or holds something else under that name."""


def require_array(group: zarr.Group, name: str, *, where: Path | str) -> zarr.Array:
    """``group[name]`` as an array; :class:`StoreError` naming the store when absent or not an array."""
    if name not in group:
        raise StoreError(f"{where}: no {name!r} array")
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise StoreError(f"{where}: {name!r} is a group, expected an array")
    return node


def optional_array(group: zarr.Group, name: str, *, where: Path | str) -> zarr.Array | None:
    """Like :func:`require_array`, but ``None`` when the array is absent."""
    return require_array(group, name, where=where) if name in group else None
