"""Keyword overrides of (nested) frozen method configs.

``get_method("slum-i", tau_low=0.6, threshold=0.9)`` should not require building the nested
``CAATConfig`` / ``UniMatchConfig`` by hand (CLIs pass flat ``key=value`` pairs). A key that names a field
of the top-level config replaces it; otherwise it is routed to the one nested config dataclass that has a
field of that name. Unknown or ambiguous keys raise ``TypeError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

ConfigT = TypeVar("ConfigT")


def apply_overrides(config: ConfigT, overrides: Mapping[str, Any]) -> ConfigT:
    """A copy of the frozen dataclass ``config`` with ``overrides`` applied (see the module docstring)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    top = {f.name for f in dataclasses.fields(config)}
    direct = {k: v for k, v in overrides.items() if k in top}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if key in top:
            continue
        owners = [
            f.name
            for f in dataclasses.fields(config)
            if dataclasses.is_dataclass(getattr(config, f.name))
            and key in {g.name for g in dataclasses.fields(getattr(config, f.name))}
        ]
        if len(owners) != 1:
            problem = "unknown" if not owners else f"ambiguous (in {', '.join(owners)})"
            raise TypeError(f"{type(config).__name__}: {problem} option {key!r}")
        nested.setdefault(owners[0], {})[key] = value
    for owner, values in nested.items():
        if owner in direct:
            raise TypeError(f"{type(config).__name__}: {owner!r} given both whole and by field")
        direct[owner] = dataclasses.replace(getattr(config, owner), **values)
    return dataclasses.replace(config, **direct)  # type: ignore[type-var]


__all__ = ["apply_overrides"]
