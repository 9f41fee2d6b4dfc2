"""Complementary channel dropout (UniMatch V2) applied to a network's backbone features.

For a forward pass on ``cat(s1, s2)`` (2N images), each backbone feature level gets a channel mask
``m1 ~ 2 * Bernoulli(0.5)`` (N, C) for the first view and its complement ``m2 = 2 - m1`` for the second,
so the two strong views see disjoint halves of the channels (scaled by 2 to keep the expectation).
A random ``keep_fraction`` of the N image pairs is left unperturbed (V2: half). The kept pairs are drawn
once per forward call and shared by all levels; masks are drawn per level (CNN levels differ in width).

The networks' ``forward_dict`` has no complementary-dropout switch, so this is done with a forward hook
on ``unwrap_model(model).backbone`` for the duration of a ``with`` block. The backbone's output is a
tensor or a list/tuple of tensors; 4-D tensors are (B, C, h, w) and 3-D tensors (B, tokens, C) (ViT),
and any output that *is* the backbone's input (smp encoders return the input as level 0) is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from slumwatch.models.base import unwrap_model

DROP_PROB = 0.5
KEEP_FRACTION = 0.5
MASK_SCALE = 2.0


def complementary_masks(n_pairs: int, channels: int, *, kept: Tensor, device: torch.device) -> Tensor:
    """(2N, C) masks: rows ``[:N]`` are ``2 * Bernoulli(0.5)``, rows ``[N:]`` their complement ``2 - m``;
    rows of the ``kept`` pair indices are all ones in both halves."""
    first = torch.bernoulli(torch.full((n_pairs, channels), DROP_PROB, device=device)) * MASK_SCALE
    second = MASK_SCALE - first
    first[kept] = 1.0
    second[kept] = 1.0
    return torch.cat((first, second), dim=0)


def _perturb(value: Any, inputs: tuple[Any, ...], kept: Tensor) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_perturb(v, inputs, kept) for v in value)
    if not isinstance(value, Tensor) or any(value is x for x in inputs) or value.ndim not in (3, 4):
        return value
    batch = value.shape[0]
    if batch % 2:
        raise ValueError(f"complementary dropout needs an even batch (two views), got {batch}")
    if value.ndim == 4:  # (B, C, h, w)
        masks = complementary_masks(batch // 2, value.shape[1], kept=kept, device=value.device)
        return value * masks.to(value.dtype)[:, :, None, None]
    masks = complementary_masks(batch // 2, value.shape[-1], kept=kept, device=value.device)  # (B, T, C)
    return value * masks.to(value.dtype)[:, None, :]


@contextmanager
def complementary_dropout(model: nn.Module, *, keep_fraction: float = KEEP_FRACTION) -> Iterator[None]:
    """Within the block, every backbone forward of ``model`` gets complementary channel dropout."""
    backbone = unwrap_model(model).backbone

    def hook(_module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
        first = next((x for x in _flatten(output) if isinstance(x, Tensor) and x.ndim in (3, 4)), None)
        if first is None:
            return output
        n_pairs = first.shape[0] // 2
        kept = torch.randperm(n_pairs)[: int(n_pairs * keep_fraction)]
        return _perturb(output, inputs, kept)

    handle = backbone.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _flatten(v)
    else:
        yield value
