"""SLUM-i: UniMatch + Class-Aware Adaptive Thresholding (CAAT) + Prototype Bank.

Same streams and loss as :class:`~slumwatch.models.methods.unimatch.UniMatchStep`, with two switchable
changes (for the ablation of the paper's section 4.5):

* ``use_caat``: the fixed threshold is replaced by CAAT's per-class thresholds, EMA-updated from the weak
  view of each batch *before* gating it (as FreeMatch does); the CutMix source is gated with the same
  thresholds. Off: the fixed ``threshold``.
* ``use_prototypes``: each strong-view pixel's loss is multiplied by the Prototype Bank reliability weight
  of its pseudo-label (weak-view feature for pixels outside the CutMix box, CutMix-source feature inside).
  Weights are computed with the bank *before* it is updated with this batch's gated weak-view features,
  so a pixel is never compared with itself. The FP loss is not weighted (paper, section 3.3).

Features come from ``forward_dict(..., proj=True)`` (projection head, D = 128, at H/4 x W/4), detached.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from torch import Tensor

from slumwatch.models.methods import register_method
from slumwatch.models.methods.caat import CAATConfig, ClassAwareThreshold
from slumwatch.models.methods.consistency import PseudoLabels
from slumwatch.models.methods.overrides import apply_overrides
from slumwatch.models.methods.prototype_bank import PrototypeBank, PrototypeBankConfig
from slumwatch.models.methods.unimatch import UniMatchConfig, UniMatchStep


@dataclass(frozen=True)
class SlumIConfig:
    """SLUM-i hyper-parameters.

    Attributes:
        num_classes: K (sizes the CAAT vector and the bank).
        use_caat: CAAT thresholds instead of the fixed ``unimatch.threshold``.
        use_prototypes: multiply the strong-view losses by prototype reliability weights.
        unimatch: the underlying UniMatch loss weights and fixed threshold.
        caat: CAAT settings (its ``num_classes`` is overridden by ``num_classes``).
        bank: Prototype Bank settings (its ``num_classes`` is overridden by ``num_classes``).
    """

    num_classes: int = 2
    use_caat: bool = True
    use_prototypes: bool = True
    unimatch: UniMatchConfig = field(default_factory=UniMatchConfig)
    caat: CAATConfig = field(default_factory=CAATConfig)
    bank: PrototypeBankConfig = field(default_factory=PrototypeBankConfig)


class SlumIGating:
    """CAAT / prototype state and the two hooks shared by the SLUM-i variants (UniMatch and UniMatch V2)."""

    def __init__(
        self,
        *,
        num_classes: int,
        use_caat: bool,
        use_prototypes: bool,
        threshold: float,
        caat: CAATConfig,
        bank: PrototypeBankConfig,
    ) -> None:
        self.use_caat = use_caat
        self.use_prototypes = use_prototypes
        self.threshold = threshold
        self.caat = ClassAwareThreshold(replace(caat, num_classes=num_classes))
        self.bank = PrototypeBank(replace(bank, num_classes=num_classes))

    @classmethod
    def from_config(cls, config: Any, *, threshold: float) -> SlumIGating:
        """Build from a SLUM-i config (its classes, switches, ``caat`` and ``bank`` settings)."""
        return cls(
            num_classes=config.num_classes,
            use_caat=config.use_caat,
            use_prototypes=config.use_prototypes,
            threshold=threshold,
            caat=config.caat,
            bank=config.bank,
        )

    def check_num_classes(self, num_classes: int) -> None:
        """Raise if the network predicts a different number of classes than the CAAT/bank state holds."""
        expected = self.caat.config.num_classes
        if num_classes != expected:
            raise ValueError(
                f"the network predicts {num_classes} classes but SLUM-i was built for {expected}; "
                f"pass num_classes={num_classes} to get_method"
            )

    def gate(self, weak: PseudoLabels, *others: PseudoLabels) -> tuple[Tensor, ...]:
        """Gates (B, H, W) bool for ``weak`` and ``others``; CAAT is updated from ``weak`` first."""
        targets = (weak, *others)
        if not self.use_caat:
            return tuple(t.conf >= self.threshold for t in targets)
        self.caat.update(weak.conf, weak.label, weak.valid)
        return tuple(self.caat.gate(t.conf, t.label) for t in targets)

    def weights(
        self, targets: tuple[PseudoLabels, ...], feats: tuple[Tensor | None, ...], weak_gate: Tensor
    ) -> tuple[Tensor | None, ...]:
        """Reliability weights (B, H, W) of each target, then push ``targets[0]``'s gated features."""
        if not self.use_prototypes:
            return tuple(None for _ in targets)
        weights: list[Tensor | None] = []
        for target, feat in zip(targets, feats, strict=True):
            if feat is None:
                raise ValueError("prototype weights need projection features (forward_dict(proj=True))")
            weights.append(self.bank.reliability(feat, target.label))
        weak, weak_feat = targets[0], feats[0]
        if weak_feat is not None:
            self.bank.update(weak_feat, weak.label, weak_gate & weak.valid)
        return tuple(weights)

    def logs(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.use_caat:
            for cls, tau in enumerate(self.caat.thresholds.tolist()):
                out[f"tau_{cls}"] = float(tau)
        if self.use_prototypes:
            for cls, n in enumerate(self.bank.count.tolist()):
                out[f"bank_{cls}"] = float(n)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"caat": self.caat.state_dict(), "bank": self.bank.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; an empty mapping (fresh run) leaves the state untouched."""
        if "caat" in state:
            self.caat.load_state_dict(state["caat"])
        if "bank" in state:
            self.bank.load_state_dict(state["bank"])


@register_method("slum-i")
class SlumIStep(UniMatchStep):
    """UniMatch + CAAT + Prototype Bank (see the module docstring).

    Args:
        config: hyper-parameters; keyword overrides (e.g. ``use_caat=False``) replace its fields.
    """

    name = "slum-i"

    def __init__(self, *, config: SlumIConfig | None = None, **overrides: Any) -> None:
        self.slum_config = apply_overrides(config or SlumIConfig(), overrides)
        cfg = self.slum_config
        super().__init__(config=cfg.unimatch)
        self.gating = SlumIGating.from_config(cfg, threshold=cfg.unimatch.threshold)
        self.uses_projection = cfg.use_prototypes

    def _gates(self, weak: PseudoLabels, mix: PseudoLabels) -> tuple[Tensor, Tensor]:
        gate_w, gate_mix = self.gating.gate(weak, mix)
        return gate_w, gate_mix

    def _weights(
        self,
        weak: PseudoLabels,
        mix: PseudoLabels,
        gates: tuple[Tensor, Tensor],
        feats: tuple[Tensor | None, Tensor | None],
    ) -> tuple[Tensor | None, Tensor | None]:
        weight_w, weight_mix = self.gating.weights((weak, mix), feats, gates[0])
        return weight_w, weight_mix

    def _extra_logs(self) -> dict[str, float]:
        return self.gating.logs()

    def _check_num_classes(self, num_classes: int) -> None:
        self.gating.check_num_classes(num_classes)

    def state_dict(self) -> dict[str, Any]:
        return self.gating.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.gating.load_state_dict(state)
