"""Prototype Bank, SLUM-i section 3.3.

Per class, a FIFO queue of L2-normalised projection-head features (D = 128) taken from weak-view pixels
whose pseudo-label passed the confidence gate (CAAT). Each batch adds at most ``samples_per_class``
randomly chosen pixels per class (seeded generator, part of the state); under DDP every rank pushes the
samples of all ranks, so the queues are the same on every rank.

Reliability weight of a pixel with predicted class c and normalised feature f::

    s = max_{q in queue_c} <f, q>                       (max cosine similarity, in [-1, 1])
    w = w_min + (1 - w_min) * exp(-scale * (1 - s))      (in [w_min, 1]; 1 when s = 1)

so features far from every stored prototype of their class are down-weighted, smoothly, by ``scale``
(the paper's scaling factor; its exact formula is lost in the text, so this mapping is a documented
choice). An empty queue gives weight 1 (no evidence against the pixel). Similarities are computed on the
feature grid (H/4, W/4), bilinearly upsampled to the label grid, then read at the predicted class.

Defaults (``docs/methods.md``): queue 256 per class, 64 samples per class per batch, ``w_min`` 0.1,
``scale`` 2.0 -- all chosen (not stated in the paper) and exposed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from slumwatch.models.methods.sync import all_gather_rows

DEFAULT_QUEUE_SIZE = 256
DEFAULT_SAMPLES_PER_CLASS = 64
DEFAULT_FEATURE_DIM = 128
DEFAULT_W_MIN = 0.1
DEFAULT_SCALE = 2.0


@dataclass(frozen=True)
class PrototypeBankConfig:
    """Prototype Bank hyper-parameters.

    Attributes:
        num_classes: K.
        dim: projection feature dimension D.
        queue_size: FIFO length per class.
        samples_per_class: at most this many pixels per class are pushed per batch (random subsample).
        w_min: the smallest reliability weight.
        scale: steepness of the similarity-to-weight map (see module docstring).
        seed: seed of the subsampling generator.
    """

    num_classes: int = 2
    dim: int = DEFAULT_FEATURE_DIM
    queue_size: int = DEFAULT_QUEUE_SIZE
    samples_per_class: int = DEFAULT_SAMPLES_PER_CLASS
    w_min: float = DEFAULT_W_MIN
    scale: float = DEFAULT_SCALE
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.w_min <= 1.0:
            raise ValueError(f"w_min must be in [0, 1], got {self.w_min}")
        if self.queue_size < 1 or self.samples_per_class < 1 or self.dim < 1:
            raise ValueError("queue_size, samples_per_class and dim must be >= 1")
        if self.scale < 0:
            raise ValueError("scale must be >= 0")


def similarity_to_weight(similarity: Tensor, *, w_min: float, scale: float) -> Tensor:
    """Map cosine similarity in [-1, 1] to a weight in [w_min, 1]: ``w_min + (1-w_min) exp(-scale (1-s))``."""
    s = similarity.clamp(-1.0, 1.0)
    return (w_min + (1.0 - w_min) * torch.exp(-scale * (1.0 - s))).clamp(w_min, 1.0)


class PrototypeBank:
    """Per-class FIFO feature queues and the reliability weight they induce.

    State: ``queues`` (K, Q, D) float, ``ptr`` (K,) next write slot, ``count`` (K,) filled slots, and the
    subsampling generator state.
    """

    def __init__(self, config: PrototypeBankConfig) -> None:
        self.config = config
        k, q, d = config.num_classes, config.queue_size, config.dim
        self.queues = torch.zeros(k, q, d)
        self.ptr = torch.zeros(k, dtype=torch.long)
        self.count = torch.zeros(k, dtype=torch.long)
        self.generator = torch.Generator().manual_seed(config.seed)

    def _to(self, device: torch.device) -> None:
        if self.queues.device != device:
            self.queues = self.queues.to(device)

    def prototypes(self, cls: int) -> Tensor:
        """(n, D) stored features of class ``cls``, oldest first."""
        q, n, ptr = self.config.queue_size, int(self.count[cls]), int(self.ptr[cls])
        order = (torch.arange(n) + (ptr - n)) % q
        return self.queues[cls, order.to(self.queues.device)]

    @torch.no_grad()
    def push(self, cls: int, features: Tensor) -> None:
        """Append (n, D) features (normalised here) to class ``cls``'s queue, dropping the oldest."""
        cfg = self.config
        if features.numel() == 0:
            return
        self._to(features.device)
        feats = F.normalize(features.detach().to(self.queues.dtype), dim=1)[-cfg.queue_size :]
        n = feats.shape[0]
        slots = (int(self.ptr[cls]) + torch.arange(n)) % cfg.queue_size
        self.queues[cls, slots.to(self.queues.device)] = feats
        self.ptr[cls] = (int(self.ptr[cls]) + n) % cfg.queue_size
        self.count[cls] = min(int(self.count[cls]) + n, cfg.queue_size)

    @torch.no_grad()
    def update(self, features: Tensor, label: Tensor, keep: Tensor) -> None:
        """Push a random subsample of the gated pixels of each class.

        Under DDP each rank subsamples its own pixels, then every rank pushes all ranks' samples in rank
        order (:func:`~slumwatch.models.methods.sync.all_gather_rows`), so the queues stay identical on
        every rank. Every rank must call this once per step (it is a collective then).

        Args:
            features: (B, D, h, w) projection features of the weak view.
            label: (B, H, W) pseudo-labels (any H, W; resized to (h, w) by nearest neighbour).
            keep: (B, H, W) bool, pixels that passed the gate and are not ignored.
        """
        cfg = self.config
        h, w = features.shape[-2:]
        small_label = _resize_nearest(label, (h, w))
        small_keep = _resize_nearest(keep.to(torch.uint8), (h, w)).bool()
        flat = features.detach().permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        flat_label = small_label.reshape(-1)
        flat_keep = small_keep.reshape(-1)
        chosen: list[Tensor] = []
        for cls in range(cfg.num_classes):
            idx = torch.nonzero(flat_keep & (flat_label == cls), as_tuple=False).squeeze(1)
            if idx.numel() > cfg.samples_per_class:
                choice = torch.randperm(idx.numel(), generator=self.generator)[: cfg.samples_per_class]
                idx = idx[choice.to(idx.device)]
            chosen.append(idx)
        # One gather for all classes: rows are (class id, feature), rank-major, class-ordered per rank.
        order = torch.cat(chosen)
        rows = torch.cat([flat_label[order].unsqueeze(1).to(flat.dtype), flat[order]], dim=1)
        gathered = all_gather_rows(rows)
        classes = gathered[:, 0].round().long()
        for cls in range(cfg.num_classes):
            self.push(cls, gathered[classes == cls, 1:])

    @torch.no_grad()
    def max_similarity(self, features: Tensor) -> Tensor:
        """(B, K, h, w) max cosine similarity of each feature to each class's queue; NaN for empty queues."""
        cfg = self.config
        self._to(features.device)
        feats = F.normalize(features.detach().to(self.queues.dtype), dim=1)
        b, _, h, w = feats.shape
        out = torch.full((b, cfg.num_classes, h, w), float("nan"), device=feats.device, dtype=feats.dtype)
        for cls in range(cfg.num_classes):
            protos = self.prototypes(cls)
            if protos.shape[0] == 0:
                continue
            sims = torch.einsum("bdhw,nd->bnhw", feats, protos)
            out[:, cls] = sims.amax(dim=1)
        return out

    @torch.no_grad()
    def reliability(self, features: Tensor, label: Tensor) -> Tensor:
        """(B, H, W) weights in [w_min, 1] for pixels with pseudo-label ``label`` (B, H, W).

        Args:
            features: (B, D, h, w) projection features (usually h = H/4).
            label: (B, H, W) predicted classes.
        """
        cfg = self.config
        sims = self.max_similarity(features)
        if sims.shape[-2:] != label.shape[-2:]:
            sims = F.interpolate(sims, size=label.shape[-2:], mode="bilinear", align_corners=False)
        s = sims.gather(1, label.unsqueeze(1)).squeeze(1)
        weight = similarity_to_weight(torch.nan_to_num(s, nan=1.0), w_min=cfg.w_min, scale=cfg.scale)
        empty = torch.isnan(s)
        return torch.where(empty, torch.ones_like(weight), weight)

    def state_dict(self) -> dict[str, Any]:
        return {
            "queues": self.queues.detach().cpu().clone(),
            "ptr": self.ptr.clone(),
            "count": self.count.clone(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        queues = torch.as_tensor(state["queues"])
        expected = (self.config.num_classes, self.config.queue_size, self.config.dim)
        if tuple(queues.shape) != expected:
            raise ValueError(f"queues shape {tuple(queues.shape)} != {expected}")
        self.queues = queues.to(self.queues.device, self.queues.dtype).clone()
        self.ptr = torch.as_tensor(state["ptr"], dtype=torch.long).clone()
        self.count = torch.as_tensor(state["count"], dtype=torch.long).clone()
        self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8))


def _resize_nearest(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of a (B, H, W) integer map."""
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1).to(x.dtype)
