"""SegSlum GRAM texture-consistency loss.

The network's GRAM branch (``forward_dict(gram=True)``, only on ``*_aux`` models) maps the Gram matrix
of the fused decoder feature to a (B, 1, 16, 16) texture map. SegSlum asks the strong view's map to match
the weak view's (detached), which makes the texture descriptor invariant to photometric change::

    L_gram = mean((gram_weak.detach() - gram_strong) ** 2)         total += 1e-3 * L_gram

Default weight 1e-3 from DS4H-GIS/SegSlum ``main.py`` (``docs/methods.md``).
"""

from __future__ import annotations

from torch import Tensor

GRAM_WEIGHT = 1e-3


def gram_consistency_loss(gram_strong: Tensor, gram_weak: Tensor) -> Tensor:
    """Mean squared difference of (B, 1, h, w) Gram maps; no gradient flows into ``gram_weak``."""
    if gram_strong.shape != gram_weak.shape:
        raise ValueError(f"gram maps differ in shape: {tuple(gram_strong.shape)} vs {tuple(gram_weak.shape)}")
    return ((gram_weak.detach() - gram_strong) ** 2).mean()


__all__ = ["GRAM_WEIGHT", "gram_consistency_loss"]
