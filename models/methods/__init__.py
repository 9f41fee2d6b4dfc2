"""Training methods as step objects, and the method registry.

``register_method(name)`` registers a class (or factory) building a :class:`MethodStep`;
``get_method(name, **kwargs)`` builds one. Modules in this package are discovered automatically on the
first lookup of an unknown name, so a new method only needs ``@register_method("...")`` in its file.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from slumwatch.models.errors import ModelsError
from slumwatch.models.methods.base import MethodStep, MethodStepBase, StepOutput, merge_batches

MethodFactory = Callable[..., MethodStep]
FactoryT = TypeVar("FactoryT", bound=Callable[..., Any])

LOGGER = logging.getLogger(__name__)
_METHODS: dict[str, Callable[..., Any]] = {}
_DISCOVERED = False
_IMPORT_ERRORS: dict[str, str] = {}


class UnknownMethodError(ModelsError, KeyError):
    """A method name that is not registered; the message lists the available names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def register_method(name: str) -> Callable[[FactoryT], FactoryT]:
    """Decorator registering ``factory(**kwargs) -> MethodStep`` (usually the step class) as ``name``."""

    def decorator(factory: FactoryT) -> FactoryT:
        if name in _METHODS and _METHODS[name] is not factory:
            raise ValueError(f"method name {name!r} is already registered")
        _METHODS[name] = factory
        return factory

    return decorator


def _discover() -> None:
    """Import every module of this package once so their ``@register_method`` run."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__name__}.{info.name}")
        except Exception as exc:  # a broken method module must not hide the others
            _IMPORT_ERRORS[info.name] = f"{type(exc).__name__}: {exc}"
            LOGGER.warning("method module %s failed to import: %s", info.name, exc)


def list_methods() -> list[str]:
    """Sorted names of all registered methods."""
    _discover()
    return sorted(_METHODS)


def get_method(name: str, **kwargs: Any) -> MethodStep:
    """Build the method ``name``; :class:`UnknownMethodError` lists the available names."""
    if name not in _METHODS:
        _discover()
    try:
        factory = _METHODS[name]
    except KeyError:
        failed = "".join(f"; module {mod} failed to import ({err})" for mod, err in _IMPORT_ERRORS.items())
        raise UnknownMethodError(
            f"unknown method {name!r}; available: {', '.join(sorted(_METHODS))}{failed}"
        ) from None
    step: MethodStep = factory(**kwargs)
    return step


from slumwatch.models.methods import supervised  # noqa: E402  (registers "supervised")
from slumwatch.models.methods.supervised import SupervisedStep  # noqa: E402

__all__ = [
    "MethodStep",
    "MethodStepBase",
    "StepOutput",
    "SupervisedStep",
    "UnknownMethodError",
    "get_method",
    "list_methods",
    "merge_batches",
    "register_method",
    "supervised",
]
