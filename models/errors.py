"""Exceptions raised by :mod:`slumwatch.models`.

All derive from :class:`ModelsError` so callers can catch the whole family at once.
"""

from __future__ import annotations


class ModelsError(Exception):
    """Base class of every error raised by ``slumwatch.models``."""


class UnknownModelError(ModelsError, KeyError):
    """A model name that is not in the registry; the message lists the available names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(ModelsError):
    """Pretrained weights that are missing, unreadable or do not fit the network."""


class CheckpointError(ModelsError):
    """A checkpoint that is missing, of the wrong format, or does not fit its architecture."""


class UnsupportedOutputError(ModelsError):
    """``forward_dict`` was asked for an output (e.g. ``gram``) the network does not have."""
